"""`datacarousel demo`: a researcher's month on the embedded default, end to end, in one command.

1. Brings up the embedded environment (moto's server + a real HSDS server + the stack created in
   moto's CloudFormation) in its own state directory, or reuses one already running there.
2. Generates a month of synthetic orbits for a few MISR paths and uploads them to the archive
   bucket as DEEP_ARCHIVE, with a restore delay set through moto's state manager.
3. Inventories the archive, submits two overlapping jobs of one job definition (alice and bob;
   ComputeRadiance unless `--definition` names another, with its parameters checked against the
   definition's description), and runs the carousel step in a loop with a small window, showing
   live progress: restores in windows, indexing, metadata, work released file by file, the
   definition's reducer, completion. The step starts the workers (index_file, record_metadata, the
   definition's own) as local processes through the LocalLauncher (or in their images with
   `--containers`).
4. Ends with a summary read back from the resources (tables, results bucket): per job files done /
   failed and where the results are, restore calls against files, time per stage, the cost of the
   same run on AWS at the archive's real file sizes, and what the jobs produced for their
   definition (`SUMMARISERS`): for ComputeRadiance quick-look PNGs of the monthly composite; for any
   other the result objects and the reducer's outputs (for RegionExtract with samples per instrument).
5. Takes everything down (the services and every job the launcher started), also when interrupted.

Layers: the planning functions are pure; `Demo` holds the clients and does the I/O; the
summarisers say what one definition's jobs produced; `workbench/commands/demo.py` is the
command line.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import xarray as xr
from botocore.exceptions import ClientError
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from batch_jobs.compute_radiance import composite as comp
from batch_jobs.compute_radiance import quicklook
from batch_jobs.compute_radiance.result import load_npz, npz_bytes
from carousel import cost, inventory, jobs
from carousel.launcher import job_definitions
from carousel.query import JobQuery
from carousel.runtime import Context
from carousel.status import overview
from carousel.step import Step
from datacarousel import archive, aws, naming, registry
from datacarousel.contract import Env, FileAttr, FileState, JobAttr, JobFileAttr, JobFileState, JobState, RestoreTier
from datacarousel.definitions import JobDefinition
from datacarousel.errors import BadInput, ConfigError, DataCarouselError
from workbench import images
from workbench.local import environment
from workbench.local.environment import template_dict
from workbench.local.errors import StartupFailed
from workbench.local.launcher import LocalLauncher
from workbench.synthetic.catalogue import archive_catalogue
from workbench.synthetic.generator import generate_orbit
from workbench.synthetic.selection import select_orbits

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("var/demo")
DEFAULT_OUT_DIR = Path("demo-output")
DEFAULT_MONTH = "2015.12"
DEFAULT_PATHS = (22, 23, 24)
DEFAULT_PRESET = "tiny"
DEFAULT_RESTORE_DELAY_S = 8.0
DEFAULT_LEASE_DAYS = 1
DEFAULT_INTERVAL_S = 1.0
DEFAULT_TIMEOUT_S = 900.0
DEFAULT_DEFINITION = "ComputeRadiance"
# The demo's own ComputeRadiance output (composites, maps) runs for that definition only.
RADIANCE = "ComputeRadiance"
INSTRUMENTS = ("modis", "misr", "ceres")
# An orbit's result: results/<job>/<YYYY.MM>/<name><suffix> (naming.result_key).
_RESULT_KEY_RE = re.compile(r"^[^/]+/[^/]+/\d{4}\.\d{2}/[^/]+$")
# Foreign credentials that could point boto3 at a real account instead of moto.
_FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")
# Jobs a finished job's drainers get to exit by themselves before they are stopped.
WORKER_GRACE_S = 20.0
UP_ATTEMPTS = 3
UP_TIMEOUT_S = 120.0


class DemoError(DataCarouselError):
    """The demo cannot run (bad options, container images missing, timeout)."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: the demo stops and takes everything down."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# --- options and pure planning ------------------------------------------------------------------


@dataclass(frozen=True)
class Researcher:
    owner: str
    misr_paths: tuple[int, ...]


@dataclass(frozen=True)
class DemoOptions:
    month: str = DEFAULT_MONTH
    paths: tuple[int, ...] = DEFAULT_PATHS
    orbits: int | None = None  # at most this many orbits of the month (first ones), None = all
    preset: str = DEFAULT_PRESET
    seed: int = 0
    tier: str = "Bulk"
    window_files: int | None = None  # None: every file of the run fits (see docs/demo.md)
    window_bytes: int | None = None
    restore_delay_s: float = DEFAULT_RESTORE_DELAY_S
    lease_days: int = DEFAULT_LEASE_DAYS
    definition: str = DEFAULT_DEFINITION  # the job definition both researchers submit
    params: Mapping[str, str] = field(default_factory=dict)  # --param NAME=VALUE, as given
    resolution: float | None = None  # ComputeRadiance only: --resolution, its grid cell (= --param resolution=X)
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_index_workers: int = 2
    max_job_workers: int = 2
    keep: bool = False
    containers: bool = False
    out_dir: Path = DEFAULT_OUT_DIR
    state_dir: Path = DEFAULT_STATE_DIR

    def validate(self) -> None:
        problems = []
        try:
            year, month = (int(x) for x in self.month.split("."))
            if not (2000 <= year <= 2015 and 1 <= month <= 12):
                problems.append(f"--month {self.month!r} must lie in 2000.01..2015.12")
        except ValueError:
            problems.append(f"--month {self.month!r} is not YYYY.MM")
        if not self.paths or any(not 1 <= p <= 233 for p in self.paths):
            problems.append(f"--paths {list(self.paths)} must be MISR paths 1..233")
        if self.orbits is not None and self.orbits < 1:
            problems.append("--orbits must be >= 1")
        if self.window_files is not None and self.window_files < 1:
            problems.append("--window-files must be >= 1")
        if self.window_bytes is not None and self.window_bytes < 1:
            problems.append("--window-bytes must be >= 1")
        if self.restore_delay_s < 0:
            problems.append("--restore-delay must be >= 0")
        if self.tier not in ("Bulk", "Standard"):
            problems.append("--tier must be Bulk or Standard (Deep Archive has no Expedited tier)")
        try:
            self.job_parameters()
        except (BadInput, ConfigError) as exc:
            problems.append(str(exc))
        if problems:
            raise DemoError("; ".join(problems))

    def job_definition(self) -> JobDefinition:
        """The chosen job definition; BadInput naming the known ones."""
        return registry.get(self.definition)

    def job_parameters(self) -> dict[str, str]:
        """The jobs' parameters, checked against the definition's description (canonical, defaults filled
        in); BadInput naming every problem. `--resolution` is a ComputeRadiance shortcut only."""
        definition = self.job_definition()
        given: dict[str, Any] = dict(self.params)
        if self.resolution is not None:
            if definition.name != RADIANCE:
                raise BadInput(
                    f"--resolution is a {RADIANCE} option; {definition.name} takes --param NAME=VALUE "
                    f"({', '.join(p.name for p in definition.parameters)})"
                )
            if "resolution" in given:
                raise BadInput("--resolution and --param resolution=... are the same parameter: give one")
            given["resolution"] = self.resolution
        return definition.validate(given)

    @property
    def year(self) -> int:
        return int(self.month.split(".")[0])

    @property
    def month_number(self) -> int:
        return int(self.month.split(".")[1])


def researchers(paths: Sequence[int]) -> tuple[Researcher, Researcher]:
    """alice takes the first half of the paths and bob the second; they overlap on the middle one(s)."""
    ordered = sorted(dict.fromkeys(paths))
    middle = (len(ordered) - 1) // 2
    return Researcher("alice", tuple(ordered[: middle + 1])), Researcher("bob", tuple(ordered[middle:]))


def choose_orbits(month: str, paths: Sequence[int], limit: int | None) -> list[int]:
    """Orbits starting in `month` on `paths`, in orbit order, at most `limit`."""

    orbits = select_orbits(year_month=month, paths=list(paths))
    return orbits[:limit] if limit is not None else orbits


def carousel_environment(options: DemoOptions, file_count: int) -> dict[str, str]:
    """The carousel settings the demo runs with (the window, fast probes, few workers)."""
    probe = max(1.0, min(2.0, options.restore_delay_s / 2)) if options.restore_delay_s else 1.0
    return {
        Env.WINDOW_FILES: str(options.window_files or file_count),
        Env.WINDOW_BYTES: str(options.window_bytes or 50 * 10**12),
        Env.RESTORE_TIER: options.tier,
        Env.RESTORE_DAYS: str(options.lease_days),
        Env.PROBE_AFTER_S: str(probe),
        Env.INDEX_RETRY_S: "120",
        Env.MAX_INDEX_WORKERS: str(options.max_index_workers),
        Env.MAX_JOB_WORKERS: str(options.max_job_workers),
        Env.LOG_LEVEL: "INFO",
    }


@dataclass
class Stages:
    """Wall time per stage (seconds), in the order they ran, plus milestones inside the carousel loop."""

    seconds: dict[str, float] = field(default_factory=dict)
    milestones: dict[str, float] = field(default_factory=dict)  # seconds from the first carousel step
    _t0: float = 0.0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - began, 3)

    def mark(self, name: str, since: float) -> None:
        if name not in self.milestones:
            self.milestones[name] = round(time.monotonic() - since, 3)


def real_cost(
    files: Sequence[Mapping[str, Any]],
    job_files: Mapping[str, Sequence[str]],
    real_sizes: Mapping[str, int],
    *,
    tier: str,
    lease_days: int,
) -> dict[str, Any]:
    """What the same run costs on AWS at the archive's real file sizes (pure).

    `files`: the run's file items (file_name, restore_count); `job_files`: job -> its file names;
    `real_sizes`: file name -> size in the archive catalogue. The carousel's restores are the
    counted ones (restore_count); "one restore per job" is what the jobs would pay without sharing.
    """

    restore_tier = RestoreTier(tier)
    stage_s = cost.staging_seconds(0.0, lease_days)
    restored_bytes = 0
    requests = 0
    for item in files:
        count = int(item.get(FileAttr.RESTORE_COUNT, 0))
        restored_bytes += count * int(real_sizes[str(item[FileAttr.FILE_NAME])])
        requests += count
    unique_bytes = sum(int(real_sizes[str(item[FileAttr.FILE_NAME])]) for item in files)
    carousel = cost.account(
        restored_bytes=restored_bytes,
        restore_requests=requests,
        staged_byte_seconds=restored_bytes * stage_s,
        tier=restore_tier,
    )
    demands = [name for names in job_files.values() for name in names]
    per_job_bytes = sum(int(real_sizes[name]) for name in demands)
    per_job = cost.account(
        restored_bytes=per_job_bytes,
        restore_requests=len(demands),
        staged_byte_seconds=per_job_bytes * stage_s,
        tier=restore_tier,
    )
    return {
        "tier": restore_tier.value,
        "lease_days": lease_days,
        "files": len(files),
        "real_bytes": unique_bytes,
        "restored_real_bytes": restored_bytes,
        "restore_requests": requests,
        "carousel": carousel.as_dict(),
        "one_restore_per_job": {**per_job.as_dict(), "restore_requests": len(demands), "restored_bytes": per_job_bytes},
        "saved": per_job.total - carousel.total,
    }


# --- moto's restore clock -----------------------------------------------------------------------


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


# --- signals ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` in the main thread, so `finally` blocks tear down."""

    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if received:  # already stopping: a second Ctrl-C must not cut the teardown short
            log.warning("%s again: still taking everything down", signal.Signals(signum).name)
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# --- the run -------------------------------------------------------------------------------------


@dataclass
class JobInfo:
    job_id: str
    owner: str
    paths: tuple[int, ...]
    submission: dict[str, Any]


@dataclass
class JobOutput:
    """One job's objects in the results bucket, as a summariser sees them."""

    info: JobInfo
    objects: dict[str, int]  # key -> size: everything under results/<job>/
    result_keys: list[str]  # one per file done: results/<job>/<YYYY.MM>/<name><suffix>
    reduced: list[str]  # what the definition's reducer wrote (the job item's composite_key)
    local_dir: Path  # <out>/jobs/<owner>-<job>/
    facts: dict[str, Any]  # the job's entry in the summary; a summariser adds to it


def is_result_key(key: str, definition: JobDefinition) -> bool:
    """An orbit's result of `definition` (`results/<job>/<YYYY.MM>/<name><suffix>`), not a reduced output."""
    return key.endswith(definition.result_suffix) and bool(_RESULT_KEY_RE.match(key))


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

    def upload(self, paths: Sequence[Path], s3: Any) -> float:
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
        # moto counts the restore delay from the upload: a restore requested before it has passed would be
        # readable at once. Wait out the rest of it, so that every restore takes the delay.
        wait = o.restore_delay_s + 0.5 - (time.monotonic() - uploaded_at)
        if wait > 0:
            with self.stages.stage("restore clock settles"):
                self.say(f"   (moto's restore clock starts at the upload: {wait:.1f} s until restores take time)")
                time.sleep(wait)
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
                report = step.run()
                steps += 1
                data = self.snapshot()
                self.note_milestones(data, report)
                if self.pending and self.second_submission_due(data):
                    self.submit_next(say=(live.console.print if live is not None else None))
                    data = self.snapshot()
                if live is not None:
                    live.update(self.render(data, steps))
                else:
                    line = self.progress_line(data)
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

    @staticmethod
    def second_submission_due(data: Mapping[str, Any]) -> bool:
        """bob submits once a file alice wanted is readable: he then finds it staged and shares it."""
        states = Counter(str(f.get(FileAttr.STATE, "")) for f in data["file_items"])
        return bool(states[FileState.RESTORED.value] + states[FileState.INDEXED.value])

    def note_milestones(self, data: Mapping[str, Any], report: Any) -> None:
        t0 = self._carousel_t0
        files = data["file_items"]
        states = Counter(str(f.get(FileAttr.STATE, "")) for f in files)
        if any(int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files):
            self.stages.mark("first restore requested", t0)
        if states[FileState.RESTORED.value] + states[FileState.INDEXED.value]:
            self.stages.mark("first file readable", t0)
        if states[FileState.INDEXED.value]:
            self.stages.mark("first file indexed", t0)
        if states[FileState.INDEXED.value] == len(files):
            self.stages.mark("every file indexed", t0)
        if any(j["files"]["done"] for j in data["jobs"]):
            self.stages.mark("first result", t0)
        if all(j["files"]["done"] + j["files"]["failed"] == j["file_count"] for j in data["jobs"]):
            self.stages.mark("every result", t0)
        for job in data["jobs"]:
            if job["state"] != JobState.OPEN.value:
                owner = job["owner"]
                self.stages.mark(f"{owner}'s job complete", t0)

    @staticmethod
    def progress_line(data: Mapping[str, Any]) -> str:
        files = data["file_items"]
        states = Counter(str(f.get(FileAttr.STATE, "")) for f in files)
        restores = sum(int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files)
        w = data["window"]["in_window"]
        cost_so_far = sum(j["cost_so_far"]["total"] for j in data["jobs"])
        parts = [
            f"files {', '.join(f'{k.lower()} {v}' for k, v in sorted(states.items()))}; restores {restores}; "
            f"window {w['files']} files {w['bytes'] / 2**20:.1f} MiB; cost so far ${cost_so_far:.6f}"
        ]
        for job in data["jobs"]:
            f = job["files"]
            parts.append(
                f"{job['owner']} {job['state'].lower()}: done {f['done']}/{job['file_count']}, queued {f['queued']}, "
                f"waiting {f['waiting'] + f['restoring'] + f['readable'] + f['indexed']}"
            )
        return " | ".join(parts)

    def render(self, data: Mapping[str, Any], steps: int) -> Group:
        elapsed = time.monotonic() - self._carousel_t0
        files = data["file_items"]
        files_table = Table(title=f"archive files ({self.options.month}) — step {steps}, {elapsed:.0f} s", expand=False)
        for column in ("file", "path", "state", "restores", "MiB"):
            files_table.add_column(column)
        for item in files:
            name = str(item.get(FileAttr.FILE_NAME, "?"))
            state = str(item.get(FileAttr.STATE, "?"))
            style = {"ARCHIVED": "dim", "RESTORING": "yellow", "RESTORED": "cyan", "INDEXED": "green"}.get(state, "red")
            files_table.add_row(
                name,
                str(item.get(FileAttr.MISR_PATH, "")),
                f"[{style}]{state}[/{style}]",
                str(item.get(FileAttr.RESTORE_COUNT, 0)),
                f"{int(item.get(FileAttr.SIZE, 0)) / 2**20:.1f}",
            )
        jobs_table = Table(title="jobs")
        for column in ("owner", "job", "state", "waiting", "restoring", "readable", "indexed", "queued", "running",
                       "done", "failed", "cost so far"):  # fmt: skip
            jobs_table.add_column(column)
        for job in data["jobs"]:
            f = job["files"]
            jobs_table.add_row(
                job["owner"], job["job_id"], job["state"],
                *(str(f[k]) for k in ("waiting", "restoring", "readable", "indexed", "queued", "running", "done",
                                      "failed")),
                f"${job['cost_so_far']['total']:.6f}",
            )  # fmt: skip
        w = data["window"]
        window = (
            f"window: {w['in_window']['files']} of {w['window_cap']['files']} files in use "
            f"(restoring {w['restoring']['files']}, staged {w['restored']['files'] + w['indexed']['files']}), "
            f"{w['needed_archived']['files']} needed and still archived; "
            f"restore calls so far {sum(int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files)} for {len(files)} files"
        )
        return Group(files_table, jobs_table, window)

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

    def collect(self, s3: Any) -> dict[str, Any]:
        """The facts, read back from the resources: tables, results bucket, archive bucket; then what the
        jobs produced for their definition (its summariser)."""

        out = self.options.out_dir
        out.mkdir(parents=True, exist_ok=True)
        month = self.options.month
        files = [self.ctx.tables.files.get(name) or {FileAttr.FILE_NAME: name} for name in self.file_names]
        outputs: list[JobOutput] = []
        job_files: dict[str, list[str]] = {}
        for info in self.jobs:
            item = self.ctx.tables.jobs.get(info.job_id) or {}
            rows = list(self.ctx.tables.job_files.of_job(info.job_id))
            job_files[info.job_id] = [str(r[JobFileAttr.FILE_NAME]) for r in rows]
            states = Counter(str(r[JobFileAttr.STATE]) for r in rows)
            prefix = f"{naming.RESULTS_PREFIX}/{info.job_id}/"
            objects = {
                str(o["Key"]): int(o.get("Size", 0))
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.results_bucket, Prefix=prefix)
                for o in page.get("Contents", [])
            }
            result_keys = sorted(k for k in objects if is_result_key(k, self.definition))
            reduced = [str(k) for k in item.get(JobAttr.COMPOSITE_KEY) or []]
            local_dir = out / "jobs" / f"{info.owner}-{info.job_id}"
            local_dir.mkdir(parents=True, exist_ok=True)
            facts: dict[str, Any] = {
                "job_id": info.job_id,
                "owner": info.owner,
                "definition": self.definition.name,
                "query": {"year_month": month, "misr_paths": list(info.paths)},
                "state": item.get(JobAttr.STATE, "?"),
                "files": len(rows),
                "done": states[JobFileState.DONE.value],
                "failed": states[JobFileState.FAILED.value],
                "errors": sorted({str(r.get(JobFileAttr.ERROR)) for r in rows if r.get(JobFileAttr.ERROR)}),
                "results": f"s3://{self.results_bucket}/{prefix}",
                "result_objects": len(result_keys),
                "result_bytes": sum(objects[k] for k in result_keys),
                "reduced": [f"s3://{self.results_bucket}/{k}" for k in reduced],
                "local_copies": [],
                "submitted": {
                    k: info.submission[k] for k in ("file_count", "to_restore_files", "shared_files", "estimated_cost")
                },
            }
            outputs.append(JobOutput(info, objects, result_keys, reduced, local_dir, facts))
        produced = summariser(self.definition.name).collect(self, s3, outputs)
        catalogue = {e.file_name: e.size_bytes for e in archive_catalogue(seed=0)}
        restore_counts = {str(f[FileAttr.FILE_NAME]): int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files}
        demands = Counter(name for names in job_files.values() for name in names)
        return {
            "month": month,
            "paths": list(self.options.paths),
            "preset": self.options.preset,
            "definition": self.definition.name,
            "parameters": dict(self.parameters),
            "state_dir": str(self.options.state_dir),
            "environment": {
                "aws_endpoint_url": self.env[Env.AWS_ENDPOINT_URL],
                "hs_endpoint": self.env[Env.HS_ENDPOINT],
                "archive_bucket": self.archive_bucket,
                "results_bucket": self.results_bucket,
            },
            "jobs": [o.facts for o in outputs],
            "files": {
                "count": len(files),
                "names": self.file_names,
                "keys": self.keys,
                "states": dict(Counter(str(f.get(FileAttr.STATE, "?")) for f in files)),
                "restore_counts": restore_counts,
                "restore_calls": sum(restore_counts.values()),
                "job_file_demands": sum(demands.values()),
                "shared_files": sorted(n for n, c in demands.items() if c > 1),
                "bytes": sum(int(f.get(FileAttr.SIZE, 0)) for f in files),
            },
            "aws_cost_at_real_sizes": real_cost(
                files, job_files, catalogue, tier=self.options.tier, lease_days=self.options.lease_days
            ),
            **produced,
            "stages_s": dict(self.stages.seconds),
            "carousel_milestones_s": dict(self.stages.milestones),
            "out_dir": str(out),
        }

    def print_summary(self, summary: Mapping[str, Any]) -> None:
        gib = 2**30
        table = Table(title="Jobs (from DataCarouselJobs / DataCarouselJobFiles and the results bucket)")
        for column in ("researcher", "job", "state", "files", "done", "failed"):
            table.add_column(column)
        table.add_column("results", overflow="fold")
        for job in summary["jobs"]:
            table.add_row(
                job["owner"], job["job_id"], job["state"], str(job["files"]), str(job["done"]), str(job["failed"]),
                job["results"],
            )  # fmt: skip
        self.console.print(table)
        f = summary["files"]
        self.say(
            f"[bold]Restores[/bold]: {f['restore_calls']} restore calls for {f['count']} files "
            f"(restore_count in BasicFusionFiles), serving {f['job_file_demands']} job-file demands; "
            f"shared: {len(f['shared_files'])} file(s) wanted by both jobs, restored once"
        )
        c = summary["aws_cost_at_real_sizes"]
        self.say(
            f"[bold]On AWS at real sizes[/bold] ({c['files']} files, {c['real_bytes'] / gib:,.0f} GiB in the archive "
            f"catalogue, {c['tier']}, {c['lease_days']}-day lease): carousel ${c['carousel']['total']:.2f} "
            f"(retrieval ${c['carousel']['retrieval']:.2f}, requests ${c['carousel']['requests']:.4f}, "
            f"staging ${c['carousel']['staging']:.2f}) vs one restore per job "
            f"${c['one_restore_per_job']['total']:.2f}: saved ${c['saved']:.2f}"
        )
        stages = Table(title="Time per stage (s)")
        stages.add_column("stage")
        stages.add_column("seconds", justify="right")
        for name, seconds in summary["stages_s"].items():
            stages.add_row(name, f"{seconds:.1f}")
        for name, seconds in summary["carousel_milestones_s"].items():
            if name != "steps":
                stages.add_row(f"  carousel: {name}", f"@{seconds:.1f}")
        self.console.print(stages)
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


# --- what a definition's jobs produced: one summariser per definition, the generic one otherwise ----------


@dataclass(frozen=True)
class Summariser:
    """`collect(demo, s3, outputs)` fetches what the jobs produced (adds to each job's facts, returns
    summary-wide facts); `show(demo, summary)` prints it after the generic summary."""

    collect: Callable[[Demo, Any, list[JobOutput]], dict[str, Any]]
    show: Callable[[Demo, Mapping[str, Any]], None]


def _download(demo: Demo, s3: Any, output: JobOutput, key: str) -> str | None:
    """A copy of `key` under the job's local folder, at its path below `results/<job>/` (None: not below it)."""
    relative = key.removeprefix(f"{naming.RESULTS_PREFIX}/{output.info.job_id}/")
    if relative == key or not relative or ".." in relative.split("/"):
        return None
    target = output.local_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(demo.results_bucket, key, str(target))
    return str(target)


def collect_generic(demo: Demo, s3: Any, outputs: list[JobOutput]) -> dict[str, Any]:
    """Any definition: local copies of what its reducer wrote; the result objects are counted already."""
    for output in outputs:
        copies = (_download(demo, s3, output, key) for key in output.reduced)
        output.facts["local_copies"] = [path for path in copies if path]
    return {}


def _relative(job: Mapping[str, Any], url: str) -> str:
    """An S3 location below the job's results prefix, as its path there (`timeseries/MODIS.nc`)."""
    return url.removeprefix(str(job["results"]))


def show_generic(demo: Demo, summary: Mapping[str, Any]) -> None:
    title = f"{summary['definition']} results (under each job's results; reduced: the job item's composite_key)"
    table = Table(title=title)
    table.add_column("researcher")
    table.add_column("result objects", justify="right")
    table.add_column("MiB", justify="right")
    table.add_column("reduced outputs", overflow="fold")
    for job in summary["jobs"]:
        reduced = ", ".join(_relative(job, url) for url in job["reduced"]) or "-"
        table.add_row(job["owner"], str(job["result_objects"]), f"{job['result_bytes'] / 2**20:.2f}", reduced)
    demo.console.print(table)
    for job in summary["jobs"]:
        if job["local_copies"]:
            local = Path(summary["out_dir"]) / "jobs" / f"{job['owner']}-{job['job_id']}"
            demo.say(f"   {job['owner']}'s reduced outputs, copied under {local}")


def collect_radiance(demo: Demo, s3: Any, outputs: list[JobOutput]) -> dict[str, Any]:
    """ComputeRadiance: each job's composite and maps copied; everyone's month composite and quick-looks."""

    out, month, bucket = demo.options.out_dir, demo.options.month, demo.results_bucket
    all_results: list[tuple[str, dict[str, Any]]] = []
    for output in outputs:
        job_id, keys, downloaded = output.info.job_id, output.objects, []
        for instrument in INSTRUMENTS:
            key = naming.composite_key(job_id, month, f"_{instrument}.png")
            if key in keys:
                target = output.local_dir / f"{month}_{instrument}.png"
                s3.download_file(bucket, key, str(target))
                downloaded.append(str(target))
        if naming.composite_key(job_id, month) in keys:
            target = output.local_dir / f"{month}.npz"
            s3.download_file(bucket, naming.composite_key(job_id, month), str(target))
            downloaded.append(str(target))
        for key in output.result_keys:
            all_results.append((key, load_npz(s3.get_object(Bucket=bucket, Key=key)["Body"].read())))
        output.facts["composites"] = [f"s3://{bucket}/{k}" for k in sorted(keys) if f"/{naming.COMPOSITES_DIR}/" in k]
        output.facts["local_copies"] = downloaded
    # Everyone's month: one composite over both jobs' results (a shared orbit counts once).
    quicklooks: list[str] = []
    composite_path = None
    n_orbits = 0
    if all_results:
        arrays = comp.build(all_results, month).to_arrays()
        n_orbits = int(arrays["n_orbits"])
        composite_path = out / f"{month}.npz"
        composite_path.write_bytes(npz_bytes(arrays))
        quicklooks = [str(p) for p in quicklook.write_quicklooks(arrays, out, month)]
    return {
        "month_composite": {"npz": str(composite_path) if composite_path else None, "orbits": n_orbits},
        "quicklooks": quicklooks,
    }


def show_radiance(demo: Demo, summary: Mapping[str, Any]) -> None:
    mc = summary["month_composite"]
    demo.say(
        f"[bold]Monthly composite[/bold] of {mc['orbits']} orbits: {mc['npz']}; quick-looks: "
        + ", ".join(summary["quicklooks"])
    )


# RegionExtract's reducer writes results/<job>/timeseries/<INSTRUMENT>.nc (batch_jobs/region_extract/__main__.py).
REGION_TIMESERIES_DIR = "timeseries"


def collect_region(demo: Demo, s3: Any, outputs: list[JobOutput]) -> dict[str, Any]:
    """RegionExtract: the generic facts, plus the samples per instrument of each time series file."""

    collect_generic(demo, s3, outputs)
    for output in outputs:
        series: dict[str, dict[str, Any]] = {}
        for key in output.reduced:
            parts = key.split("/")
            if len(parts) != 4 or parts[2] != REGION_TIMESERIES_DIR or not key.endswith(".nc"):
                continue
            data = s3.get_object(Bucket=demo.results_bucket, Key=key)["Body"].read()
            with xr.open_dataset(io.BytesIO(data), engine="h5netcdf") as ds:
                series[parts[3].removesuffix(".nc")] = {
                    "key": f"s3://{demo.results_bucket}/{key}",
                    "samples": int(ds.sizes.get("obs", 0)),
                    "orbits": int(ds.sizes.get("orbit_files", 0)),
                }
        output.facts["timeseries"] = series
    return {}


def show_region(demo: Demo, summary: Mapping[str, Any]) -> None:
    show_generic(demo, summary)
    table = Table(title="RegionExtract time series: samples per instrument")
    table.add_column("researcher")
    table.add_column("file")
    table.add_column("samples", justify="right")
    table.add_column("orbits", justify="right")
    for job in summary["jobs"]:
        for found in job.get("timeseries", {}).values():
            table.add_row(job["owner"], _relative(job, found["key"]), str(found["samples"]), str(found["orbits"]))
    demo.console.print(table)


SUMMARISERS: dict[str, Summariser] = {
    RADIANCE: Summariser(collect_radiance, show_radiance),
    "RegionExtract": Summariser(collect_region, show_region),
}
GENERIC = Summariser(collect_generic, show_generic)


def summariser(definition: str) -> Summariser:
    """What to say about a definition's jobs: its own summariser, or the generic one."""
    return SUMMARISERS.get(definition, GENERIC)


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


__all__ = [
    "GENERIC",
    "SUMMARISERS",
    "Demo",
    "DemoError",
    "DemoOptions",
    "Interrupted",
    "JobOutput",
    "Summariser",
    "carousel_environment",
    "choose_orbits",
    "configure_logging",
    "is_result_key",
    "real_cost",
    "researchers",
    "run",
    "set_restore_delay",
    "summariser",
]
