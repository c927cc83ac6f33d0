"""One line, never a traceback: every command and worker entry point, failing the ways users make them fail.

The commands are the README's CLI table (a new row is covered at once), the workers are the README's
"Workers run as ..." sentence (checked against the packages' `__main__` modules). Each runs with a bad
option, a bad value, the variables of an embedded environment that is down (`datacarousel down` with the
old variables still exported: AWS_ENDPOINT_URL on a closed loopback port), no credentials, no region, and
unwritable output paths. Every run must end with a non-zero exit code, exactly one non-empty line on
stderr (log lines count), no traceback, exit code 2 for bad input and configuration, and never call a
permanent error something to retry. The CLI runs in this process (Typer's runner, logging rebound to each
run's stderr); the workers run as `python -m ...` subprocesses, in parallel. No service is needed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_in_process import SCRUBBED_PREFIXES, Run, run_cli

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
RETRY_WORDS = ("retry later", "try again", "run it again")  # the project's wordings of "a retry may fix it"
FAST_S = 10.0  # a dead loopback endpoint must fail at once, not after a minute of retries
JOB = "job-20151201T000000Z-0a1b2c3d"
NOT_A_WORKER = {"workbench"}  # `python -m workbench` is the CLI itself


def readme_commands() -> list[str]:
    """`upload`, ..., `images build`, ...: the backticked commands of the README's CLI table."""
    return re.findall(r"^\| `datacarousel ([a-z][a-z -]*)` \|", README, flags=re.MULTILINE)


def readme_workers() -> list[str]:
    """`loader`, `carousel step`, `batch_jobs.compute_radiance run`, ...: the README's "Workers run as" sentence."""
    sentence = README[README.index("Workers run as") :].split("—", 1)[0]
    found = []
    for module, modes in re.findall(r"`python -m ([\w.]+)((?: [^`]+)?)`", sentence):
        choices = modes.strip().strip("{}").split(",") if modes.strip() else [""]
        found += [f"{module} {mode.strip()}".strip() for mode in choices]
    return found


def main_modules() -> set[str]:
    """Every package of the project with a `__main__` (the workers, and the CLI's `workbench`)."""
    found = set()
    for main in ROOT.glob("**/__main__.py"):
        parts = main.relative_to(ROOT).parent.parts
        if parts and parts[0] in {"loader", "index_file", "record_metadata", "carousel", "batch_jobs", "workbench"}:
            found.add(".".join(parts))
    return found


COMMANDS = readme_commands()
WORKERS = readme_workers()


def test_the_readme_lists_the_commands_and_every_worker_main() -> None:
    assert len(COMMANDS) >= 20 and "upload" in COMMANDS and "definitions register" in COMMANDS
    assert {w.split()[0] for w in WORKERS} == main_modules() - NOT_A_WORKER
    assert "carousel step" in WORKERS and "batch_jobs.region_extract reduce" in WORKERS


# --- the environments ---------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class World:
    tmp: Path
    orbit: Path  # a real (tiny) orbit file
    orbits: Path  # its directory
    a_file: Path  # a file where a directory is expected
    dead: str  # http://127.0.0.1:<closed port>

    def names(self, queues: str) -> dict[str, str]:
        """The stack's variables, as `datacarousel env` prints them."""
        return {
            "DC_STACK_NAME": "datacarousel",
            "DC_ARCHIVE_BUCKET": "archive",
            "DC_RESULTS_BUCKET": "results",
            "DC_HSDS_BUCKET": "hsds",
            "DC_HSDS_FOLDER": "/home/worker/basicfusion/",
            "DC_INDEX_QUEUE_URL": f"{queues}/123456789012/index",
            "DC_INDEX_DLQ_URL": f"{queues}/123456789012/index-dlq",
            "DC_RESTORE_EVENTS_QUEUE_URL": f"{queues}/123456789012/restore",
            "DC_RESTORE_EVENTS_DLQ_URL": f"{queues}/123456789012/restore-dlq",
            "DC_FILES_TABLE": "BasicFusionFiles",
            "DC_JOBS_TABLE": "Jobs",
            "DC_JOB_FILES_TABLE": "JobFiles",
            "DC_INDEX_REQUESTS_TABLE": "IndexRequests",
            "DC_BATCH_JOB_QUEUE": "datacarousel-job-queue",
            "HS_ENDPOINT": f"http+unix://{str(self.tmp / 'gone.sock').replace('/', '%2F')}",
            "HS_USERNAME": "worker",
            "HS_PASSWORD": "secret",
            "DC_LAUNCHER": "local",
            "DC_LOCAL_STATE_DIR": str(self.tmp / "jobs"),
        }

    def base(self) -> dict[str, str]:
        """No ~/.aws, no instance metadata lookup, the state directory in tmp; INFO logging (it must stay quiet)."""
        return {
            "HOME": str(self.tmp / "home"),
            "AWS_CONFIG_FILE": str(self.tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "DC_LOG_LEVEL": "INFO",
            "DC_STATE_DIR": str(self.tmp / "state"),
        }

    def env(self, scenario: str) -> dict[str, str]:
        keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        region = {"AWS_DEFAULT_REGION": "us-west-2"}
        aws_queues = "https://sqs.us-west-2.amazonaws.com"
        if scenario in ("stale", "bad_value"):  # after `down`, the old variables still exported
            return {**self.base(), **self.names(self.dead), **keys, **region, "AWS_ENDPOINT_URL": self.dead}
        if scenario == "no_credentials":
            return {**self.base(), **self.names(aws_queues), **region}
        if scenario == "no_region":
            return {**self.base(), **self.names(aws_queues), **keys}
        return {**self.base(), **self.names(self.dead), **keys, **region}  # bad_option, unwritable


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from workbench.synthetic.generator import generate_orbit  # noqa: PLC0415

    tmp = tmp_path_factory.mktemp("no-traceback")
    (tmp / "home").mkdir()
    orbit = generate_orbit(69400, tmp / "orbits", preset="tiny", seed=0)
    a_file = tmp / "a-file"
    a_file.write_text("not a directory\n")
    return World(tmp, orbit, orbit.parent, a_file, f"http://127.0.0.1:{_closed_port()}")


# --- the cases ----------------------------------------------------------------------------------

# Arguments that reach AWS (valid for the command): used with the stale environment, no credentials, no region.
AWS_ARGS: dict[str, list[str]] = {
    "upload": ["{orbits}"],
    "inventory": [],
    "submit": ["--owner", "alice", "--year-month", "2015.12", "--path", "22"],
    "cancel": [JOB],
    "step": ["--no-launch"],
    "status": [],
    "fetch": [JOB, "--out", "{tmp}/results"],
    "files": ["--year-month", "2015.12"],
    "retry": ["--job", JOB],
    "images push": ["--registry", "123456789012.dkr.ecr.us-west-2.amazonaws.com", "--tag", "t1"],
    "definitions list": [],
    "definitions show": ["NoSuchAnalysis"],  # not a built-in: the stack's registered ones are read
    "definitions register": [str(ROOT / "examples" / "misr_block_brightness"), "--image", "example.org/x:1"],
}
# With no region, a registry URI would name one: this one does not.
NO_REGION_ARGS = {"images push": ["--registry", "registry.example.org", "--tag", "t1"]}
# Commands that never reach AWS, and why they have no AWS scenario.
LOCAL_ONLY: dict[str, str] = {
    "demo": "starts its own embedded environment",
    "generate": "writes local files",
    "catalogue": "writes a local file",
    "up": "starts the embedded environment",
    "down": "stops what the state directory names (nothing: exit 0)",
    "services": "reads the state directory",
    "env": "reads the state directory",
    "images build": "runs the container engine",
    "images list": "runs the container engine",
}
# A bad value (not an unknown option): refused before anything is read, with exit code 2.
BAD_VALUE: dict[str, list[str]] = {
    "upload": ["{orbits}", "--storage-class", "EXPEDITED"],
    "inventory": ["--workers", "0"],
    "submit": ["--owner", "alice", "--year-month", "2015.13"],
    "cancel": [],  # JOB_ID missing
    "step": ["--interval", "-1"],
    "status": ["--interval", "0"],
    "fetch": ["a/b"],
    "demo": ["--preset", "huge", "--state-dir", "{case}/demo-state", "--out", "{tmp}/demo-out"],
    "files": ["--state", "LOST"],
    "retry": ["--job", JOB, "--reason", "x"],
    "generate": ["--out", "{tmp}/gen", "--orbit", "5"],
    "catalogue": ["--out", "{tmp}/catalogue.txt"],
    "up": ["--dn-count", "0", "--state-dir", "{case}/up-state"],
    "down": ["--state-dir"],
    "services": ["--state-dir"],
    "env": ["--state-dir"],
    "images build": ["--engine", "nerdctl"],
    "images list": ["--engine", "nerdctl"],
    "images push": ["--registry", "123456789012.dkr.ecr.us-west-2.amazonaws.com", "--tag", "t1", "--engine", "x"],
    "definitions list": ["--json=yes"],
    "definitions show": [],  # NAME missing
    "definitions register": ["{tmp}/no-such-analysis"],
}
# Output paths that cannot be written: /proc/x (no directory can be made there), a file where a directory goes.
UNWRITABLE: dict[str, list[list[str]]] = {
    "generate": [["--out", "/proc/x", "--orbits", "69400"], ["--out", "{a_file}", "--orbits", "69400"]],
    "catalogue": [["--out", "/proc/x/catalogue.csv"], ["--out", "{a_file}/catalogue.csv"]],
    "demo": [["--out", "{a_file}", "--state-dir", "{case}/demo-state"]],
}

WORKER_BAD_VALUE: dict[str, list[str]] = {
    "loader": ["--workers", "0"],
    "index_file": ["--wait-seconds", "99"],
    "record_metadata": ["extra-argument"],
    "carousel step": ["--interval", "-1"],
    "batch_jobs.compute_radiance run": ["--file", "{orbit}", "--out", "{tmp}/r/", "--resolution", "-1"],
    "batch_jobs.compute_radiance queue": ["--max-messages", "many"],
    "batch_jobs.compute_radiance array": ["--manifest", "{tmp}/m.json", "--index", "x"],
    "batch_jobs.region_extract queue": ["--max-messages", "many"],
    "batch_jobs.region_extract run": ["--file", "{orbit}", "--out", "{tmp}/r/", "--lat-min", "95"],
    "batch_jobs.region_extract reduce": [],  # --job-id missing
}
WORKER_AWS_ARGS: dict[str, list[str]] = {
    "loader": [],
    "index_file": ["--wait-seconds", "0"],
    "record_metadata": [],
    "carousel step": ["--no-launch"],
    "batch_jobs.compute_radiance run": ["--s3", "s3://archive/P022/{orbit_name}", "--out", "{tmp}/r/"],
    "batch_jobs.compute_radiance queue": ["--max-messages", "1"],
    "batch_jobs.compute_radiance array": ["--manifest", "s3://results/manifests/m.json", "--index", "0"],
    "batch_jobs.region_extract queue": ["--max-messages", "1"],
    "batch_jobs.region_extract run": ["--s3", "s3://archive/P022/{orbit_name}", "--out", "{tmp}/r/"],
    "batch_jobs.region_extract reduce": ["--job-id", JOB],
}
WORKER_UNWRITABLE: dict[str, list[str]] = {
    "batch_jobs.compute_radiance run": ["--file", "{orbit}", "--out", "/proc/x/"],
    "batch_jobs.region_extract run": ["--file", "{orbit}", "--out", "/proc/x/"],
}
# Cases failing today, each with what would fix it: xfail(strict), so the fix fails the suite until the entry goes.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def test_every_command_and_worker_has_its_cases() -> None:
    """A new README row fails here until it says how it reaches AWS (or why it does not)."""
    assert set(COMMANDS) == set(AWS_ARGS) | set(LOCAL_ONLY), "add the new command to AWS_ARGS or LOCAL_ONLY"
    assert not set(AWS_ARGS) & set(LOCAL_ONLY)
    assert set(BAD_VALUE) == set(COMMANDS)
    assert set(WORKER_BAD_VALUE) == set(WORKERS) == set(WORKER_AWS_ARGS)


# --- running them -------------------------------------------------------------------------------


def _fill(args: list[str], world: World, case: Path | None = None) -> list[str]:
    """The placeholders: {tmp} the module's directory, {case} the test's own, {orbits}, {orbit}, {a_file}."""
    values = {
        "tmp": str(world.tmp),
        "case": str(case or world.tmp),
        "orbits": str(world.orbits),
        "orbit": str(world.orbit),
        "orbit_name": world.orbit.name,
        "a_file": str(world.a_file),
    }
    return [a.format(**values) for a in args]


def _worker_env(env: Mapping[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES) and k != "HOME"}
    return {**keep, **env}


def run_worker(entry: str, args: list[str], env: Mapping[str, str]) -> Run:
    """`python -m MODULE [MODE] ARGS` in a subprocess: exactly how the job definitions run it."""
    module, *mode = entry.split()
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", module, *mode, *args],
        cwd=ROOT,
        env=_worker_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(done.returncode, done.stderr, time.monotonic() - began)


# One Python per worker package: it imports the package's dependencies once, then forks a child per case that
# runs the package's `__main__` as `python -m` does (runpy, `__name__ == "__main__"`), with the case's environment,
# arguments and its own stderr. A real `python -m` of each package (below) checks the two agree.
FORK_HARNESS = r"""
import importlib, json, os, runpy, sys, time, traceback
module, cases = sys.argv[1], json.loads(sys.stdin.read())
importlib.import_module(module + ".__main__")  # the imports, once
del sys.modules[module + ".__main__"]  # runpy runs it afresh, as `python -m` does
results = []
for case in cases:
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.environ.clear()
        os.environ.update(case["env"])
        sys.argv = [module, *case["args"]]
        code = 1
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int | None):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    results.append({"code": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - began})
print(json.dumps(results))
"""


def run_forked(module: str, cases: list[tuple[list[str], dict[str, str]]], tmp: Path) -> list[Run]:
    """Each (args, env) of `module` in a forked child of one Python that imported it once."""
    files = [tmp / f"{module}-{i}.stderr" for i in range(len(cases))]
    payload = [
        {"args": args, "env": _worker_env(env), "stderr": str(f)} for (args, env), f in zip(cases, files, strict=True)
    ]
    done = subprocess.run(
        [sys.executable, "-c", FORK_HARNESS, module],
        cwd=ROOT,
        env=_worker_env({}),
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [Run(r["code"], f.read_text(), r["seconds"]) for r, f in zip(results, files, strict=True)]


def check(run: Run, *, code: int | None = 2, fast: bool = False, mentions: str = "") -> None:
    """Non-zero (`code` if given), one non-empty line on stderr, no traceback, no retry for a permanent error."""
    assert run.escaped is None, f"an exception escaped the command: {run.escaped!r}"
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Traceback" not in run.stderr, run.stderr
    assert len(lines) == 1, f"want one line on stderr, got {len(lines)}:\n{run.stderr}"
    assert run.code != 0, run.stderr
    if code is not None:
        assert run.code == code, f"exit code {run.code}, want {code}: {run.stderr}"
    if code == 2:  # permanent: never something to retry
        assert not any(word in run.stderr.lower() for word in RETRY_WORDS), run.stderr
    if mentions:
        assert mentions in run.stderr, run.stderr
    if fast:
        assert run.seconds < FAST_S, f"took {run.seconds:.1f} s: {run.stderr}"


def _known(kind: str, entry: str) -> Iterator[Any]:
    reason = KNOWN_FAILURES.get((kind, entry))
    return iter([pytest.mark.xfail(reason=reason, strict=True)] if reason else [])


def _params(kind: str, entries: list[str]) -> list[Any]:
    return [pytest.param(e, id=e.replace(" ", "-"), marks=list(_known(kind, e))) for e in entries]


# --- the CLI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", _params("bad_option", COMMANDS))
def test_an_unknown_option_is_one_line_exit_2(command: str, world: World) -> None:
    run = run_cli([*command.split(), "--no-such-option"], world.env("bad_option"))
    check(run, mentions="--no-such-option")
    assert f"datacarousel {command} --help" in run.stderr  # the hint


@pytest.mark.parametrize("command", _params("bad_value", COMMANDS))
def test_a_bad_value_is_one_line_exit_2_before_anything_is_read(command: str, world: World, tmp_path: Path) -> None:
    """With the stale environment exported: a bad value is refused before any AWS call is tried (and before the
    demo or `up` start anything)."""
    run = run_cli([*command.split(), *_fill(BAD_VALUE[command], world, tmp_path)], world.env("bad_value"))
    check(run, fast=True)
    assert "nothing answers" not in run.stderr, "the value must be checked before AWS is called"
    assert not (tmp_path / "demo-state").exists() and not (tmp_path / "up-state").exists()


@pytest.mark.parametrize("command", _params("stale", sorted(AWS_ARGS)))
def test_a_stale_environment_after_down_fails_at_once_with_the_hint(command: str, world: World) -> None:
    run = run_cli([*command.split(), *_fill(AWS_ARGS[command], world)], world.env("stale"))
    check(run, fast=True, mentions="datacarousel up")


@pytest.mark.parametrize("command", _params("no_credentials", sorted(AWS_ARGS)))
def test_no_credentials_is_one_line_exit_2(command: str, world: World) -> None:
    run = run_cli([*command.split(), *_fill(AWS_ARGS[command], world)], world.env("no_credentials"))
    check(run, fast=True, mentions="credentials")


@pytest.mark.parametrize("command", _params("no_region", sorted(AWS_ARGS)))
def test_no_region_is_one_line_exit_2(command: str, world: World) -> None:
    args = NO_REGION_ARGS.get(command, AWS_ARGS[command])
    run = run_cli([*command.split(), *_fill(args, world)], world.env("no_region"))
    check(run, fast=True, mentions="AWS_DEFAULT_REGION")


@pytest.mark.parametrize(
    ("command", "args"),
    [pytest.param(c, a, id=f"{c}-{i}") for c, cases in UNWRITABLE.items() for i, a in enumerate(cases)],
)
def test_an_unwritable_output_path_is_one_line_exit_2(
    command: str, args: list[str], world: World, tmp_path: Path
) -> None:
    run = run_cli([command, *_fill(args, world, tmp_path)], world.env("unwritable"))
    check(run, fast=True)
    assert not (tmp_path / "demo-state").exists(), "the demo must check its output before starting anything"


def test_fetch_into_an_unwritable_directory_is_one_line_exit_2(
    fake_aws: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_aws.s3.create_bucket(Bucket="results")
    fake_aws.s3.put_object(Bucket="results", Key=f"results/{JOB}/2015.12/a.npz", Body=b"x")
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}  # the fakes' credentials and region
    env.update({**world.base(), "DC_RESULTS_BUCKET": "results", "DC_JOBS_TABLE": "Jobs"})
    for out in ("/proc/x", str(world.a_file)):
        check(run_cli(["fetch", JOB, "--out", out], env), fast=True)


# --- the workers --------------------------------------------------------------------------------

WORKER_SCENARIOS = ("bad_option", "bad_value", "stale", "no_credentials", "no_region")


def _worker_cases() -> list[tuple[str, str, list[str]]]:
    cases = []
    for entry in WORKERS:
        cases.append(("bad_option", entry, ["--no-such-option"]))
        cases.append(("bad_value", entry, WORKER_BAD_VALUE[entry]))
        cases += [(scenario, entry, WORKER_AWS_ARGS[entry]) for scenario in ("stale", "no_credentials", "no_region")]
    cases += [("unwritable", entry, args) for entry, args in WORKER_UNWRITABLE.items()]
    return cases


@pytest.fixture(scope="module")
def worker_runs(world: World) -> dict[tuple[str, str], Run]:
    """Every worker case: one forking Python per package, the packages side by side."""
    by_module: dict[str, list[tuple[str, str, list[str], dict[str, str]]]] = {}
    for kind, entry, args in _worker_cases():
        module, *mode = entry.split()
        by_module.setdefault(module, []).append((kind, entry, [*mode, *_fill(args, world)], world.env(kind)))
    out = world.tmp / "stderr"
    out.mkdir(exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            module: pool.submit(run_forked, module, [(args, env) for _, _, args, env in cases], out)
            for module, cases in by_module.items()
        }
        runs = {m: f.result() for m, f in futures.items()}
    return {
        (kind, entry): run
        for module, cases in by_module.items()
        for (kind, entry, _, _), run in zip(cases, runs[module], strict=True)
    }


@pytest.mark.parametrize("module", sorted({w.split()[0] for w in WORKERS}))
def test_a_real_python_m_agrees_with_the_forked_run(
    module: str, world: World, worker_runs: dict[tuple[str, str], Run]
) -> None:
    """The forked runs stand for `python -m`: one real `python -m` per package gives the same line and code."""
    entry = next(w for w in WORKERS if w.split()[0] == module)
    real = run_worker(entry, ["--no-such-option"], world.env("bad_option"))
    forked = worker_runs[("bad_option", entry)]
    assert (real.code, real.stderr) == (forked.code, forked.stderr)


WORKER_MENTIONS = {"stale": "datacarousel up", "no_credentials": "credentials", "no_region": "AWS_DEFAULT_REGION"}


@pytest.mark.parametrize(
    ("kind", "entry"),
    [
        pytest.param(kind, entry, id=f"{kind}-{entry.replace(' ', '-')}", marks=list(_known(kind, entry)))
        for kind, entry, _ in _worker_cases()
    ],
)
def test_worker_fails_in_one_line(kind: str, entry: str, worker_runs: dict[tuple[str, str], Run]) -> None:
    run = worker_runs[(kind, entry)]
    check(run, fast=kind != "bad_option", mentions=WORKER_MENTIONS.get(kind, ""))
    if kind == "bad_option":
        assert "--no-such-option" in run.stderr
