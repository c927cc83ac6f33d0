"""The embedded environment: moto's server, a real HSDS server and the project's stack, on loopback.

`up(state_dir)` starts moto (`moto_server -H 127.0.0.1 -p <free port>`), creates
the CloudFormation stack of `stack.py` in it, starts HSDS (POSIX storage, Unix
sockets, generated passwords), creates the HSDS folder for the domains, and
writes `<state>/env` (0600): the variables every worker reads, exactly as the
job definitions give them on AWS. `down(state_dir)` stops everything it started,
by PID. State directory layout::

    <state>/env                 KEY=VALUE lines (shell-quoted), 0600
    <state>/run/moto.pid        JSON process records (PID + start time + children)
    <state>/run/hsds.pid
    <state>/run/state.json      endpoints, socket directory, stack name
    <state>/logs/               moto.log, hsds.log, hsds.out
    <state>/hsds/root/<bucket>/ HSDS storage (emptied at every `up`: moto's state is in memory too)
    <state>/hsds/passwd         HSDS password file, 0600
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import importlib.util
import inspect
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import tenacity

from datacarousel import aws, contract, hsds
from datacarousel.errors import TransientError
from workbench.local import hsds_server, moto_server, process
from workbench.local.errors import LocalEnvironmentError, NotRunning, StackFailed, StartupFailed
from workbench.local.launcher import LocalLauncher

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("var/local")
DEFAULT_REGION = "us-west-2"  # the region of the public BasicFusion sampler bucket
DEFAULT_HSDS_USER = contract.PROJECT
DEFAULT_HSDS_BUCKET = "datacarousel-hsds"
STACK_TIMEOUT_S = 120.0
# Environment variables written to the env file, besides the stack's DC_* outputs.
BASE_VARIABLES = (
    contract.Env.AWS_ENDPOINT_URL,
    contract.Env.AWS_ACCESS_KEY_ID,
    contract.Env.AWS_SECRET_ACCESS_KEY,
    contract.Env.AWS_REGION,
    contract.Env.HS_ENDPOINT,
    contract.Env.HS_USERNAME,
    contract.Env.HS_PASSWORD,
    contract.Env.STACK_NAME,
    contract.Env.HSDS_FOLDER,
)


@dataclass(frozen=True)
class Paths:
    """Where the environment keeps its state."""

    root: Path

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def hsds_dir(self) -> Path:
        return self.root / "hsds"

    @property
    def hsds_root(self) -> Path:
        return self.hsds_dir / "root"

    @property
    def password_file(self) -> Path:
        return self.hsds_dir / "passwd"

    @property
    def override_file(self) -> Path:
        return self.hsds_dir / "override.yml"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    pids: tuple[int, ...]
    endpoint: str
    log_file: str


@dataclass
class LocalEnvironment:
    """A running embedded environment. `env` is what the env file holds (and what workers need)."""

    state_dir: Path
    env: dict[str, str]
    services: list[ServiceStatus] = field(default_factory=list)
    started: bool = False  # False when `up` found it already running
    stack_status: str = ""
    missing_outputs: tuple[str, ...] = ()
    hsds_bucket: str = ""  # the HSDS storage bucket: a directory under `hsds_root`
    # Seconds from the start of `up` at which each phase ended (moto_ready, stack, hsds_ready, done).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def env_file(self) -> Path:
        return Paths(self.state_dir).env_file

    @property
    def hsds_root(self) -> Path:
        """The HSDS server's POSIX root: a file under `<root>/<bucket dir>/` can be linked in place."""
        return Paths(self.state_dir).hsds_root

    def pids(self) -> list[int]:
        """Every live PID of the environment (servers and their child nodes)."""
        return sorted({pid for s in self.services for pid in s.pids})


# --- env file ------------------------------------------------------------------------


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """`KEY=value` lines, values shell-quoted (so `set -a; . env` works), created 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# Written by `datacarousel up`; removed by `datacarousel down`.\n")
        for key in sorted(env):
            out.write(f"{key}={shlex.quote(env[key])}\n")
    os.replace(tmp, path)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse an env file written by `write_env_file`."""
    env: dict[str, str] = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, raw = line.partition("=")
        if not sep or not key.isidentifier():
            raise LocalEnvironmentError(f"{path}:{number}: not a KEY=VALUE line")
        values = shlex.split(raw)
        env[key] = values[0] if values else ""
    return env


def export_lines(env: Mapping[str, str]) -> list[str]:
    return [f"export {key}={shlex.quote(env[key])}" for key in sorted(env)]


# --- the stack ---------------------------------------------------------------------


def load_stack_module(path: Path | None = None) -> ModuleType:
    """The project's `stack.py` (next to the package unless `path` says otherwise)."""
    path = path or Path(__file__).resolve().parents[2] / "stack.py"
    spec = importlib.util.spec_from_file_location("datacarousel_stack_template", path)
    if spec is None or spec.loader is None or not path.exists():
        raise LocalEnvironmentError(f"cannot load the stack template module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
    return module


def template_dict() -> dict[str, Any]:
    """The stack template as a dictionary (its job definitions are what the local launcher runs)."""
    return dict(load_stack_module().build_template().to_dict())


def _template_body(stack_module: ModuleType, ec2: Any) -> tuple[str, dict[str, str]]:
    """The template JSON and its local parameter values (`local_parameters(ec2)` names moto's default VPC)."""
    template = stack_module.build_template()
    body = template.to_json() if hasattr(template, "to_json") else json.dumps(template)
    params_fn = getattr(stack_module, "local_parameters", None)
    params: dict[str, Any] = {}
    if params_fn is not None:
        takes_client = bool(inspect.signature(params_fn).parameters)
        params = dict(params_fn(ec2) if takes_client else params_fn())
    return body, {str(k): str(v) for k, v in params.items()}


def create_stack(cfn: Any, ec2: Any, stack_name: str, stack_module: ModuleType) -> tuple[str, dict[str, str]]:
    """Create the stack in moto and wait for CREATE_COMPLETE; returns (status, outputs).

    A template without resources is not sent (CloudFormation refuses it): status "EMPTY_TEMPLATE".
    """
    try:
        body, params = _template_body(stack_module, ec2)
    except Exception as exc:
        raise StackFailed(f"stack.py could not build the template or its local parameters: {exc!r}") from exc
    if not json.loads(body).get("Resources"):
        log.warning("stack.build_template() has no resources: no stack created, no DC_* resource variables")
        return "EMPTY_TEMPLATE", {}
    try:
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except Exception as exc:
        raise StackFailed(f"moto's CloudFormation refused stack {stack_name!r}: {exc}") from exc
    deadline = time.monotonic() + STACK_TIMEOUT_S
    while True:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = str(stack["StackStatus"])
        if status == "CREATE_COMPLETE":
            outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
            return status, outputs
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            raise StackFailed(f"stack {stack_name!r} ended {status}: {_failure_reasons(cfn, stack_name, stack)}")
        time.sleep(0.2)


def _failure_reasons(cfn: Any, stack_name: str, stack: Mapping[str, Any]) -> str:
    reasons = [str(stack.get("StackStatusReason", ""))]
    with contextlib.suppress(Exception):
        for event in cfn.describe_stack_events(StackName=stack_name)["StackEvents"]:
            if str(event.get("ResourceStatus", "")).endswith("FAILED"):
                reasons.append(f"{event.get('LogicalResourceId')}: {event.get('ResourceStatusReason')}")
    return "; ".join(r for r in reasons if r) or "no reason given"


def apply_restore_notifications(
    session: boto3.session.Session, endpoint: str, stack_module: ModuleType, dc_env: Mapping[str, str]
) -> None:
    """Send the archive bucket's restore events to the restore-events queue, as the template does on AWS.

    moto's CloudFormation creates buckets without their NotificationConfiguration,
    so the embedded environment applies the template's own configuration itself.
    """
    configure = getattr(stack_module, "restore_notification_configuration", None)
    bucket = dc_env.get(contract.Env.ARCHIVE_BUCKET)
    queue_url = dc_env.get(contract.Env.RESTORE_EVENTS_QUEUE_URL)
    if configure is None or not bucket or not queue_url:
        return
    sqs = aws.client("sqs", session=session, endpoint_url=endpoint)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3 = aws.client("s3", session=session, endpoint_url=endpoint)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=configure(queue_arn))


def resource_env(outputs: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """DC_* variables from stack outputs, and the names of contract outputs the stack lacks."""
    env = {r.env: outputs[r.output] for r in contract.SHARED_RESOURCES if r.output in outputs}
    missing = tuple(r.output for r in contract.SHARED_RESOURCES if r.output not in outputs)
    return env, missing


# --- up / down / status ------------------------------------------------------------


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    """One `up`/`down` at a time per state directory (across processes)."""
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(paths.lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(paths: Paths) -> dict[str, Any]:
    try:
        raw = json.loads(paths.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _records(paths: Paths) -> dict[str, process.ProcessRecord]:
    found = {}
    for name in (moto_server.NAME, hsds_server.NAME):
        record = process.read_record(paths.pid_file(name))
        if record is not None:
            found[name] = record
    return found


def status(state_dir: Path = DEFAULT_STATE_DIR) -> LocalEnvironment | None:
    """The environment of `state_dir` if anything of it is recorded, else None. Never starts anything."""
    paths = Paths(Path(state_dir).resolve())
    records = _records(paths)
    if not records:
        return None
    state = _read_state(paths)
    endpoints = state.get("endpoints", {})
    services = [
        ServiceStatus(
            name=name,
            running=process.is_running(record),
            pid=record.pid,
            pids=tuple(process.all_pids(record)),
            endpoint=str(endpoints.get(name, "")),
            log_file=record.log_file,
        )
        for name, record in records.items()
    ]
    env = read_env_file(paths.env_file) if paths.env_file.exists() else {}
    return LocalEnvironment(
        state_dir=paths.root,
        env=env,
        services=services,
        started=False,
        stack_status=str(state.get("stack_status", "")),
        missing_outputs=tuple(state.get("missing_outputs", ())),
        hsds_bucket=str(state.get("hsds_bucket", "")),
        timings={str(k): float(v) for k, v in state.get("timings", {}).items()},
    )


def _is_healthy(current: LocalEnvironment | None) -> bool:
    if current is None or not current.env:
        return False
    names = {s.name for s in current.services if s.running}
    if names != {moto_server.NAME, hsds_server.NAME}:
        return False
    endpoint = current.env.get(contract.Env.AWS_ENDPOINT_URL, "")
    if not endpoint or not moto_server.answers(endpoint):
        return False
    return hsds_server.about(current.env.get(contract.Env.HS_ENDPOINT, "")) is not None


START_ATTEMPTS = 3


def up(
    state_dir: Path = DEFAULT_STATE_DIR,
    *,
    moto_port: int | None = None,
    dn_count: int = 2,
    stack_name: str = contract.DEFAULT_STACK_NAME,
    hsds_user: str = DEFAULT_HSDS_USER,
    region: str = DEFAULT_REGION,
    stack_file: Path | None = None,
    hsds_log_level: str = "WARNING",
    timeout: float = 60.0,
) -> LocalEnvironment:
    """Bring the environment up (or report the one already running in `state_dir`).

    Raises `PortInUse`, `MissingDependency`, `StartupFailed` or `StackFailed` with a clear
    message; whatever this call started is stopped again before it raises.
    """
    paths = Paths(Path(state_dir).resolve())
    with _locked(paths):
        current = status(paths.root)
        if _is_healthy(current):
            assert current is not None
            log.info("environment already running in %s (pids %s)", paths.root, current.pids())
            return current
        if current is not None:
            log.warning("environment in %s is partly running or stale: stopping what is left first", paths.root)
            _down_locked(paths)
        # HSDS gives its nodes a fixed 10 s to open their sockets; on a loaded machine a start
        # can miss that. Each failed attempt has stopped what it started, so trying again is safe.
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return _start(
                    paths,
                    moto_port=moto_port,
                    dn_count=dn_count,
                    stack_name=stack_name,
                    hsds_user=hsds_user,
                    region=region,
                    stack_file=stack_file,
                    hsds_log_level=hsds_log_level,
                    timeout=timeout,
                )
            except StartupFailed as exc:
                if attempt == START_ATTEMPTS:
                    raise
                log.warning("start attempt %d of %d failed (%s): trying again", attempt, START_ATTEMPTS, exc)
        raise AssertionError("unreachable")


def _start(
    paths: Paths,
    *,
    moto_port: int | None,
    dn_count: int,
    stack_name: str,
    hsds_user: str,
    region: str,
    stack_file: Path | None,
    hsds_log_level: str,
    timeout: float,
) -> LocalEnvironment:
    moto_server.check_installed()
    hsds_server.check_installed()
    stack_module = load_stack_module(stack_file)
    started = time.monotonic()
    records: dict[str, process.ProcessRecord] = {}
    socket_dir: Path | None = None
    try:
        paths.run.mkdir(parents=True, exist_ok=True)
        paths.logs.mkdir(parents=True, exist_ok=True)
        # 1. moto and HSDS start together (HSDS only needs moto's address, known up front);
        #    the stack is created in moto while HSDS boots.
        aws_env = {
            contract.Env.AWS_ACCESS_KEY_ID: "dclocal" + secrets.token_hex(4),  # moto accepts any key
            contract.Env.AWS_SECRET_ACCESS_KEY: secrets.token_urlsafe(24),
            contract.Env.AWS_REGION: region,
        }
        # The caller's AWS settings (perhaps another environment's endpoint) must not leak into the servers.
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        moto_env = {**clean_env, **aws_env}
        record, moto_endpoint = moto_server.start(
            port=moto_port, env=moto_env, cwd=paths.root, log_file=paths.logs / "moto.log"
        )
        records[moto_server.NAME] = record
        process.write_record(paths.pid_file(moto_server.NAME), record)
        _write_state(paths, {"endpoints": {moto_server.NAME: moto_endpoint}})
        aws_env[contract.Env.AWS_ENDPOINT_URL] = moto_endpoint

        # HSDS: fresh storage at every `up` (moto's objects, which linked domains point at, are new too).
        bucket = DEFAULT_HSDS_BUCKET
        shutil.rmtree(paths.hsds_root, ignore_errors=True)
        (paths.hsds_root / bucket).mkdir(parents=True)
        credentials = hsds_server.Credentials.generate(hsds_user)
        credentials.write_password_file(paths.password_file)
        socket_dir = hsds_server.make_socket_dir()
        s3 = hsds_server.S3Access(
            gateway=moto_endpoint,
            access_key_id=aws_env[contract.Env.AWS_ACCESS_KEY_ID],
            secret_access_key=aws_env[contract.Env.AWS_SECRET_ACCESS_KEY],
            region=region,
        )
        record, hs_endpoint, dn_urls = hsds_server.start(
            root_dir=paths.hsds_root,
            bucket=bucket,
            password_file=paths.password_file,
            socket_dir=socket_dir,
            override_file=paths.override_file,
            log_file=paths.logs / "hsds.log",
            dn_count=dn_count,
            base_env=clean_env,
            s3=s3,
            log_level=hsds_log_level,
        )
        records[hsds_server.NAME] = record
        process.write_record(paths.pid_file(hsds_server.NAME), record)
        _write_state(
            paths,
            {
                "endpoints": {moto_server.NAME: moto_endpoint, hsds_server.NAME: hs_endpoint},
                "socket_dir": str(socket_dir),
            },
        )

        # 2. the stack, in moto
        moto_server.wait_ready(moto_endpoint, records[moto_server.NAME], timeout=timeout)
        timings = {"moto_ready": time.monotonic() - started}
        session = boto3.session.Session(
            aws_access_key_id=aws_env[contract.Env.AWS_ACCESS_KEY_ID],
            aws_secret_access_key=aws_env[contract.Env.AWS_SECRET_ACCESS_KEY],
            region_name=region,
        )
        cfn = aws.client("cloudformation", session=session, endpoint_url=moto_endpoint)
        ec2 = aws.client("ec2", session=session, endpoint_url=moto_endpoint)
        stack_status, outputs = create_stack(cfn, ec2, stack_name, stack_module)
        timings["stack"] = time.monotonic() - started
        dc_env, missing = resource_env(outputs)
        if missing and stack_status != "EMPTY_TEMPLATE":
            log.warning("stack %s lacks contract outputs: %s", stack_name, ", ".join(missing))
        apply_restore_notifications(session, moto_endpoint, stack_module, dc_env)

        # 3. HSDS ready
        hsds_server.wait_ready(hs_endpoint, dn_urls, record, timeout=timeout)
        timings["hsds_ready"] = time.monotonic() - started
        # Remember the nodes, so `down` can stop them even if the parent has died meanwhile.
        record = record.with_children(process.live_children(record))
        records[hsds_server.NAME] = record
        process.write_record(paths.pid_file(hsds_server.NAME), record)

        # 4. the HSDS folder of the domains, owned by the worker account
        folder = contract.DEFAULT_HSDS_FOLDER.format(user=hsds_user)
        # Right after READY a node may still answer 503 for a moment: retry transient errors briefly.
        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
            reraise=True,
        ):
            with attempt:
                hsds.ensure_folder(
                    folder,
                    endpoint=hs_endpoint,
                    username=credentials.username,
                    password=credentials.password,
                    admin_username=credentials.admin_user,
                    admin_password=credentials.admin_password,
                )

        env = {
            **aws_env,
            contract.Env.HS_ENDPOINT: hs_endpoint,
            contract.Env.HS_USERNAME: credentials.username,
            contract.Env.HS_PASSWORD: credentials.password,
            contract.Env.STACK_NAME: stack_name,
            contract.Env.HSDS_FOLDER: folder,
            **_launcher_env(paths),
            **dc_env,
        }
        write_env_file(paths.env_file, env)
        _write_state(
            paths,
            {
                "endpoints": {moto_server.NAME: moto_endpoint, hsds_server.NAME: hs_endpoint},
                "socket_dir": str(socket_dir),
                "stack_name": stack_name,
                "stack_status": stack_status,
                "missing_outputs": list(missing),
                "hsds_bucket": bucket,
                "started_at": time.time(),
                "timings": {**timings, "done": time.monotonic() - started},
            },
        )
    except BaseException:
        log.error("start-up failed: stopping what was started")
        for name in (hsds_server.NAME, moto_server.NAME):
            if name in records:
                _stop_record(name, records[name])
            paths.pid_file(name).unlink(missing_ok=True)
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)
        paths.state_file.unlink(missing_ok=True)
        raise
    log.info("environment up in %.1f s (state %s)", time.monotonic() - started, paths.root)
    current = status(paths.root)
    assert current is not None
    current.started = True
    return current


def _launcher_env(paths: Paths) -> dict[str, str]:
    """Job definitions run as local processes here (moto runs no containers)."""
    env = {}
    launcher = getattr(contract.Env, "LAUNCHER", None)
    state = getattr(contract.Env, "LOCAL_STATE_DIR", None)
    if launcher:
        env[launcher] = "local"
    if state:
        env[state] = str(paths.root / "jobs")
    return env


def _write_state(paths: Paths, state: Mapping[str, Any]) -> None:
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, paths.state_file)


def _stop_record(name: str, record: process.ProcessRecord) -> bool:
    if name == hsds_server.NAME:
        # SIGINT lets the launcher stop its nodes; SIGTERM would orphan them.
        return process.stop(record, signal.SIGINT, timeout=20.0)
    return process.stop(record, signal.SIGTERM, timeout=10.0)


# Variables that could point boto3 at a real AWS account instead of the embedded moto.
FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


@contextlib.contextmanager
def running(state_dir: Path = DEFAULT_STATE_DIR, **up_options: Any) -> Iterator[LocalEnvironment]:
    """The environment up in `state_dir` for the length of a `with` block, with its variables in
    `os.environ` (and none that could reach a real AWS account); afterwards `os.environ` is as it
    was and everything is stopped, also when the block raises or `up` fails half-way."""
    saved = dict(os.environ)
    try:
        for name in FOREIGN_AWS_VARIABLES:
            os.environ.pop(name, None)
        env = up(state_dir, **up_options)
        os.environ.update(env.env)
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        down(state_dir)


def down(state_dir: Path = DEFAULT_STATE_DIR) -> list[str]:
    """Stop everything `up` started in `state_dir` (by PID); returns the names of what was running.

    Removes the PID files, the env file and the socket directory. HSDS storage stays
    until the next `up`.
    """
    paths = Paths(Path(state_dir).resolve())
    if not paths.root.exists():
        return []
    with _locked(paths):
        return _down_locked(paths)


def _down_locked(paths: Paths) -> list[str]:
    state = _read_state(paths)
    records = _records(paths)
    # First the jobs the local launcher started (workers would otherwise outlive their services).
    jobs = LocalLauncher({}, {}, paths.root / "jobs").stop_all()
    if jobs:
        log.info("stopped %d local job(s) of %s", jobs, paths.root)
    names = [name for name in (hsds_server.NAME, moto_server.NAME) if name in records]
    # Both stop at once: HSDS takes a couple of seconds to stop its nodes.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda name: _stop_record(name, records[name]), names))
    stopped = [name for name, was_running in zip(names, results, strict=True) if was_running]
    for name in (hsds_server.NAME, moto_server.NAME):
        paths.pid_file(name).unlink(missing_ok=True)
    socket_dir = state.get("socket_dir")
    if socket_dir and Path(socket_dir).name.startswith(hsds_server.SOCKET_DIR_PREFIX):
        shutil.rmtree(socket_dir, ignore_errors=True)
    paths.state_file.unlink(missing_ok=True)
    paths.env_file.unlink(missing_ok=True)
    if stopped:
        log.info("stopped %s (state %s)", ", ".join(stopped), paths.root)
    return stopped


def require_env(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, str]:
    """The env file of a running environment, or `NotRunning` saying how to start it."""
    paths = Paths(Path(state_dir).resolve())
    if not paths.env_file.exists():
        raise NotRunning(f"no environment is up in {paths.root}: run `datacarousel up --state-dir {state_dir}`")
    return read_env_file(paths.env_file)
