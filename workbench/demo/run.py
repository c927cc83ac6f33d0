"""`Demo`, the orchestrator: it wires the environment, generation, submission, stepping, collecting.

It holds the clients and does the I/O; what to generate and submit (`plan`), the progress shown
while the carousel runs (`progress`) and the summary (`summary`, `summarisers`) are pure functions
it calls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.live import Live

from carousel import inventory, jobs
from carousel.launcher import job_definitions
from carousel.query import JobQuery
from carousel.runtime import Context
from carousel.status import overview
from carousel.step import Step
from datacarousel import archive, aws, naming
from datacarousel.contract import Env, FileAttr, JobFileAttr, JobState
from workbench import images
from workbench.demo.plan import (
    RADIANCE,
    DemoError,
    DemoOptions,
    Researcher,
    carousel_environment,
    choose_orbits,
    researchers,
)
from workbench.demo.progress import Stages, note_milestones, progress_line, render, second_submission_due
from workbench.demo.signals import stop_signals
from workbench.demo.summarisers import summariser
from workbench.demo.summary import (
    JobInfo,
    JobOutput,
    build_summary,
    files_facts,
    is_result_key,
    job_facts,
    print_summary,
    real_cost,
    reduced_keys,
)
from workbench.local import environment
from workbench.local.environment import template_dict
from workbench.local.errors import StartupFailed
from workbench.local.launcher import LocalLauncher
from workbench.synthetic.catalogue import archive_catalogue
from workbench.synthetic.generator import generate_orbit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Foreign credentials that could point boto3 at a real account instead of moto.
_FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")
# Jobs a finished job's drainers get to exit by themselves before they are stopped.
WORKER_GRACE_S = 20.0
UP_ATTEMPTS = 3
UP_TIMEOUT_S = 120.0


def set_restore_delay(endpoint: str, seconds: float | None) -> None:
    """moto's state manager: a restore takes `seconds` (moto counts from the upload); None: immediate."""
    transition: dict[str, Any] = (
        {"progression": "immediate"} if not seconds else {"progression": "time", "seconds": seconds}
    )
    body = json.dumps({"model_name": "s3::keyrestore", "transition": transition}).encode()
    url = endpoint.rstrip("/") + "/moto-api/state-manager/set-transition"
    if not url.startswith(("http://127.0.0.1", "http://localhost")):
        raise DemoError(f"refusing to call moto's state manager on {endpoint!r}: the demo runs on loopback only")
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status not in (200, 201):
            raise DemoError(f"moto's state manager answered {response.status}")


class Demo:
    """One demo run: environment, data, jobs, the carousel loop, the summary, teardown."""

    def __init__(self, options: DemoOptions, console: Console | None = None) -> None:
        options.validate()
        self.options = replace(options, state_dir=options.state_dir.resolve(), out_dir=options.out_dir.resolve())
        self.definition = options.job_definition()
        self.parameters = options.job_parameters()
        self.console = console or Console()
        self.stages = Stages()
        self.env: dict[str, str] = {}
        self.started_env = False
        self.launcher: Any = None
        self.jobs: list[JobInfo] = []
        self.file_names: list[str] = []
        self.keys: list[str] = []
        self.ctx: Any = None
        self._saved_environ: dict[str, str] | None = None
        self._carousel_t0 = 0.0
        self.pending: list[Researcher] = []
        self._container_parts: tuple[dict[str, str], Any] | None = None

    # ---- helpers ----

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    @property
    def results_bucket(self) -> str:
        return self.env[Env.RESULTS_BUCKET]

    @property
    def archive_bucket(self) -> str:
        return self.env[Env.ARCHIVE_BUCKET]

    # ---- 1. environment ----

    def bring_up(self) -> None:

        with self.stages.stage("environment up"):
            self.say(f"[bold]1. Embedded environment[/bold] (moto + HSDS + stack) in {self.options.state_dir}")
            local = None
            for attempt in range(1, UP_ATTEMPTS + 1):
                try:
                    local = environment.up(self.options.state_dir, timeout=UP_TIMEOUT_S)
                    break
                except StartupFailed as exc:  # HSDS gives itself 10 s to start: on a busy machine, try again
                    if attempt == UP_ATTEMPTS:
                        raise
                    self.say(f"   [yellow]{exc}; trying again ({attempt + 1}/{UP_ATTEMPTS})[/yellow]")
            assert local is not None
            self.started_env = local.started
            self.env = dict(local.env)
        if not self.started_env:
            self.say("   reusing the environment already running there (it stays up afterwards)")
        self.say(
            f"   moto {self.env[Env.AWS_ENDPOINT_URL]}, HSDS {self.env[Env.HS_ENDPOINT]}, "
            f"stack {self.env.get(Env.STACK_NAME, '-')}: archive s3://{self.archive_bucket}, "
            f"results s3://{self.results_bucket}"
        )
        self._saved_environ = dict(os.environ)
        for name in _FOREIGN_AWS_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(self.env)

    def check_containers(self) -> None:
        """With --containers: the engine and the five worker images must be there (before anything starts)."""
        if not self.options.containers:
            return
        try:
            engine = images.detect_engine()
            refs = images.local_images(engine)
            missing = sorted(ref for ref in set(refs.values()) if not images.image_exists(engine, ref))
            runner = images.ImageRunner(engine)
        except Exception as exc:  # the images part may be missing or broken here: say so clearly
            raise DemoError(f"--containers is not usable here: {type(exc).__name__}: {exc}") from exc
        if missing:
            raise DemoError(
                f"--containers: image(s) {', '.join(missing)} not built; run `datacarousel images build` first"
            )
        self._container_parts = (refs, runner)

    def make_launcher(self) -> Any:
        state = Path(os.environ.get(Env.LOCAL_STATE_DIR) or str(self.options.state_dir / "jobs"))
        definitions = job_definitions(template_dict())
        if self._container_parts is None:
            return LocalLauncher(definitions, dict(os.environ), state)
        refs, runner = self._container_parts
        return LocalLauncher(definitions, dict(os.environ), state, images=refs, container_runner=runner)

    # ---- 2. data ----

    def generate(self) -> list[Path]:

        o = self.options
        orbits = choose_orbits(o.month, o.paths, o.orbits)
        if not orbits:
            raise DemoError(f"no orbit of {o.month} lies on MISR path(s) {list(o.paths)}")
        cache = o.state_dir / "orbits" / f"{o.preset}-seed{o.seed}"
        cache.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        with self.stages.stage("generate orbits"):
            self.say(
                f"[bold]2. Synthetic archive[/bold]: {len(orbits)} orbits of {o.month} on MISR paths "
                f"{', '.join(map(str, o.paths))} (preset {o.preset}, seed {o.seed})"
            )
            for orbit in orbits:
                name = naming.BasicFusionName.for_orbit(orbit)
                path = cache / name.file_name
                if not path.exists():
                    path = generate_orbit(orbit, cache, preset=o.preset, seed=o.seed)
                paths.append(path)
                self.say(f"   {path.name}  path {name.misr_path:3d}  {path.stat().st_size / 2**20:6.1f} MiB")
        return paths

    def upload(self, paths: Sequence[Path], s3: S3Client) -> float:
        """Upload as DEEP_ARCHIVE what the archive lacks; returns the monotonic time of the last upload
        (moto's restore clock). An object already there (a reused environment) is left alone: replacing it
        would drop its restored copy under the feet of the tables that say it is readable."""

        prefix = self.env.get(Env.ARCHIVE_PREFIX, "")
        uploaded_at = time.monotonic() - self.options.restore_delay_s - 1.0  # nothing new: no clock to wait for
        sent: list[Path] = []
        with self.stages.stage("upload (DEEP_ARCHIVE)"):
            set_restore_delay(self.env[Env.AWS_ENDPOINT_URL], self.options.restore_delay_s)
            for path in paths:
                name = naming.BasicFusionName.parse(path.name)
                key = naming.archive_key(name, prefix)
                self.file_names.append(name.file_name)
                self.keys.append(key)
                try:
                    head = s3.head_object(Bucket=self.archive_bucket, Key=key)
                    if int(head["ContentLength"]) == path.stat().st_size:
                        continue
                except ClientError as exc:
                    if not archive.is_not_found(exc):
                        raise
                with path.open("rb") as body:
                    s3.put_object(Bucket=self.archive_bucket, Key=key, Body=body, StorageClass="DEEP_ARCHIVE")
                sent.append(path)
                uploaded_at = time.monotonic()
        total = sum(p.stat().st_size for p in sent)
        kept = len(paths) - len(sent)
        self.say(
            f"   uploaded {len(sent)} objects ({total / 2**20:.1f} MiB) to s3://{self.archive_bucket}/ "
            f"as DEEP_ARCHIVE"
            + (f" ({kept} already there)" if kept else "")
            + f"; a restore takes {self.options.restore_delay_s:g} s (moto's state manager)"
        )
        return uploaded_at

    # ---- 3. jobs ----

    def inventory_and_submit(self) -> None:

        os.environ.update(carousel_environment(self.options, len(self.file_names)))
        self.ctx = Context.from_env()
        with self.stages.stage("inventory"):
            report = inventory.run(
                self.ctx.s3,
                self.ctx.tables.files,
                bucket=self.archive_bucket,
                prefix=self.env.get(Env.ARCHIVE_PREFIX, ""),
                now=time.time(),
            )
        self.say(
            f"[bold]3. Inventory[/bold]: {report.listed} archive objects listed, {report.created} new "
            f"BasicFusionFiles items (ARCHIVED), {report.existing} already known"
        )
        if self.definition.name != RADIANCE or self.options.params or self.options.resolution is not None:
            given = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
            name = self.definition.name
            self.say(f"   job definition {name}: {given} (`datacarousel definitions show {name}`)")
        self.pending = list(researchers(self.options.paths))
        self.submit_next()

    def submit_next(self, say: Callable[[str], None] | None = None) -> None:
        """The next researcher submits (alice first; bob once the carousel is under way)."""

        who = self.pending.pop(0)
        with self.stages.stage(f"submit {who.owner}'s job"):
            query = JobQuery(years=(self.options.year,), months=(self.options.month_number,), misr_paths=who.misr_paths)
            sub = jobs.submit(
                self.ctx.tables,
                self.ctx.config,
                owner=who.owner,
                definition=self.definition,
                query=query,
                parameters=self.parameters,
            )
        data = sub.as_dict()
        self.jobs.append(JobInfo(sub.job_id, who.owner, who.misr_paths, data))
        (say or self.say)(
            f"   [bold]{who.owner}[/bold] submits {self.definition.name} over {self.options.month} paths "
            f"{'+'.join(map(str, who.misr_paths))}: job {sub.job_id}, {data['file_count']} files; readable now "
            f"{data['readable_files']}, restoring {data['restoring_files']}, to restore {data['to_restore_files']} "
            f"({data['shared_files']} shared with jobs already waiting); estimated cost "
            f"${data['estimated_cost']['total']:.6f} (alone ${data['estimated_cost_alone']['total']:.6f})"
        )

    # ---- 4. the carousel loop ----

    def snapshot(self) -> dict[str, Any]:
        """What the tables say now: per job (status), per file (state, restore count), the window."""

        data = overview(self.ctx.tables, self.ctx.config, [j.job_id for j in self.jobs])
        files = [self.ctx.tables.files.get(name) or {} for name in self.file_names]
        data["file_items"] = files
        return data

    def run_carousel(self, uploaded_at: float) -> dict[str, Any]:

        o = self.options
        self.settle_restore_clock(uploaded_at)
        self.announce_carousel()
        self.launcher = self.make_launcher()
        step = Step(self.ctx, launcher=self.launcher)
        deadline = time.monotonic() + o.timeout_s
        self._carousel_t0 = time.monotonic()
        steps = 0
        data: dict[str, Any] = {}
        live: Live | None = (
            Live(console=self.console, refresh_per_second=4, transient=False) if self.console.is_terminal else None
        )
        last_line = ""
        with self.stages.stage("carousel (restore, index, compute, complete)"), live or contextlib.nullcontext():
            while True:
                began = time.monotonic()
                step.run()
                steps += 1
                data = self.snapshot()
                note_milestones(self.stages, data, self._carousel_t0)
                if self.pending and second_submission_due(data):
                    self.submit_next(say=(live.console.print if live is not None else None))
                    data = self.snapshot()
                if live is not None:
                    live.update(render(data, steps, o.month, time.monotonic() - self._carousel_t0))
                else:
                    line = progress_line(data)
                    if line != last_line:
                        self.say(f"   [{time.monotonic() - self._carousel_t0:6.1f} s] {line}")
                        last_line = line
                if not self.pending and all(j["state"] != JobState.OPEN.value for j in data["jobs"]):
                    break
                if time.monotonic() > deadline:
                    raise DemoError(f"the jobs did not finish within {o.timeout_s:g} s (see {self.log_hint()})")
                time.sleep(max(0.0, o.interval_s - (time.monotonic() - began)))
        self.stages.milestones["steps"] = steps
        return data

    def settle_restore_clock(self, uploaded_at: float) -> None:
        # moto counts the restore delay from the upload: a restore requested before it has passed would be
        # readable at once. Wait out the rest of it, so that every restore takes the delay.
        wait = self.options.restore_delay_s + 0.5 - (time.monotonic() - uploaded_at)
        if wait > 0:
            with self.stages.stage("restore clock settles"):
                self.say(f"   (moto's restore clock starts at the upload: {wait:.1f} s until restores take time)")
                time.sleep(wait)

    def announce_carousel(self) -> None:
        """Say how the carousel runs: its step interval, window, tier, leases and where the workers run."""
        o = self.options
        window = f"{o.window_files or len(self.file_names)} files" + (
            f" / {o.window_bytes} bytes" if o.window_bytes else ""
        )
        self.say(
            f"[bold]4. Carousel[/bold]: step every {o.interval_s:g} s, window {window}, {o.tier} tier, "
            f"{o.lease_days}-day leases; workers: " + ("container images" if o.containers else "local processes")
        )
        if o.window_files and o.window_files < len(self.file_names):
            self.say(
                f"   [yellow]note: a window of {o.window_files} files holds staged copies until their lease ends "
                f"({o.lease_days} day(s), as on AWS): the other files wait that long[/yellow]"
            )

    def log_hint(self) -> str:
        return f"{self.options.out_dir / 'demo.log'} and {self.options.state_dir / 'jobs' / 'logs'}"

    def stop_workers(self, grace_s: float = 0.0) -> int:
        if self.launcher is None:
            return 0
        if grace_s > 0:
            with contextlib.suppress(TimeoutError):
                self.launcher.wait(timeout=grace_s)
        return int(self.launcher.stop_all())

    # ---- 5. results and summary ----

    def collect(self, s3: S3Client) -> dict[str, Any]:
        """The facts, read back from the resources: tables, results bucket, archive bucket; then what the
        jobs produced for their definition (its summariser)."""

        out = self.options.out_dir
        out.mkdir(parents=True, exist_ok=True)
        files = [self.ctx.tables.files.get(name) or {FileAttr.FILE_NAME: name} for name in self.file_names]
        outputs: list[JobOutput] = []
        job_files: dict[str, list[str]] = {}
        for info in self.jobs:
            rows = list(self.ctx.tables.job_files.of_job(info.job_id))
            job_files[info.job_id] = [str(r[JobFileAttr.FILE_NAME]) for r in rows]
            outputs.append(self.job_output(s3, info, rows))
        produced = summariser(self.definition.name).collect(self, s3, outputs)
        catalogue = {e.file_name: e.size_bytes for e in archive_catalogue(seed=0)}
        return build_summary(
            self.options,
            definition=self.definition,
            parameters=self.parameters,
            env=self.env,
            jobs=[o.facts for o in outputs],
            files=files_facts(files, self.file_names, self.keys, job_files),
            aws_cost=real_cost(files, job_files, catalogue, tier=self.options.tier, lease_days=self.options.lease_days),
            produced=produced,
            stages=self.stages,
        )

    def job_output(self, s3: S3Client, info: JobInfo, rows: list[dict[str, Any]]) -> JobOutput:
        """One job's item and objects in the results bucket, and the folder its local copies go to."""
        item = self.ctx.tables.jobs.get(info.job_id) or {}
        prefix = f"{naming.RESULTS_PREFIX}/{info.job_id}/"
        objects = {
            str(o["Key"]): int(o.get("Size", 0))
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.results_bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        }
        result_keys = sorted(k for k in objects if is_result_key(k, self.definition))
        local_dir = self.options.out_dir / "jobs" / f"{info.owner}-{info.job_id}"
        local_dir.mkdir(parents=True, exist_ok=True)
        facts = job_facts(
            info, item, rows, objects, definition=self.definition, month=self.options.month,
            results_bucket=self.results_bucket,
        )  # fmt: skip
        return JobOutput(info, objects, result_keys, reduced_keys(item), local_dir, facts)

    def print_summary(self, summary: Mapping[str, Any]) -> None:
        print_summary(self.console, summary)
        summariser(str(summary.get("definition", RADIANCE))).show(self, summary)

    # ---- 6. teardown ----

    def teardown(self) -> list[str]:

        stopped = self.stop_workers()
        if stopped:
            self.say(f"   stopped {stopped} worker process(es) the launcher had started")
        if self.env:
            with contextlib.suppress(Exception):
                set_restore_delay(self.env[Env.AWS_ENDPOINT_URL], None)
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
        if self.options.keep or not self.started_env:
            return []
        return environment.down(self.options.state_dir)

    # ---- all of it ----

    def run(self) -> dict[str, Any]:
        began = time.monotonic()
        summary: dict[str, Any] = {}
        ok = False
        try:
            self.check_containers()
            self.bring_up()
            s3 = aws.client("s3")
            paths = self.generate()
            uploaded = self.upload(paths, s3)
            self.inventory_and_submit()
            self.run_carousel(uploaded)
            with self.stages.stage("workers exit"):
                self.stop_workers(grace_s=WORKER_GRACE_S)
            with self.stages.stage("results and quick-looks" if self.definition.name == RADIANCE else "results"):
                summary = self.collect(s3)
            summary["stages_s"] = dict(self.stages.seconds)
            self.say("[bold]5. Summary[/bold]")
            self.print_summary(summary)
            ok = True
        finally:
            with self.stages.stage("environment down"):
                stopped = self.teardown()
            if stopped:
                self.say(f"[bold]6. Down[/bold]: stopped {', '.join(stopped)}; no process left behind")
            elif self.options.keep and self.env:
                self.say(
                    "[bold]6. Kept running[/bold]: explore with the CLI, then `datacarousel down --state-dir "
                    f"{self.options.state_dir}`:\n"
                    f'   eval "$(datacarousel env --state-dir {self.options.state_dir})"\n'
                    f"   datacarousel status {' '.join(j.job_id for j in self.jobs)}\n"
                    f"   datacarousel files --year-month {self.options.month} --format table"
                )
        if ok:
            summary["stages_s"] = dict(self.stages.seconds)
            summary["total_s"] = round(time.monotonic() - began, 3)
            summary["kept_running"] = bool(self.options.keep and self.started_env)
            (self.options.out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
            self.say(f"Done in {summary['total_s']:.0f} s. Summary JSON: {self.options.out_dir / 'summary.json'}")
        return summary


def configure_logging(out_dir: Path) -> Path:
    """Everything the carousel and its helpers log goes to `<out>/demo.log` (the screen shows progress)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "demo.log"
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "matplotlib", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def run(options: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    """Run the whole demo; SIGINT/SIGTERM raise `Interrupted` after everything is taken down."""
    with stop_signals():
        return Demo(options, console).run()
