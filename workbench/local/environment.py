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

The layout and its files (env file, state, PID records, lock) are `workbench/local/state_dir.py`;
`Paths`, `read_env_file`, `write_env_file` and `export_lines` stay importable from here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3

import stack_template
from datacarousel import aws, contract
from workbench.local import hsds_server, moto_server, process, startup_steps
from workbench.local.carousel_settings import local_carousel_env
from workbench.local.errors import LocalEnvironmentError, NotRunning, StackFailed, StartupFailed
from workbench.local.launcher import LocalLauncher
from workbench.local.state_dir import (
    Paths,
    export_lines,  # noqa: F401 - re-exported: `datacarousel env` uses it
    locked,
    read_env_file,
    read_records,
    read_state,
    write_env_file,
    write_state,
)

# The one mapping stack outputs -> DC_* variables, shared with `datacarousel env --stack` on AWS.
from workbench.stack_outputs import resource_env

if TYPE_CHECKING:  # the published stubs: a development dependency only
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_ec2 import EC2Client

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


# --- the stack ---------------------------------------------------------------------


def load_stack_module(path: Path | None = None) -> ModuleType:
    """The project's template, the `stack_template` package; or the template module file `path` (`--stack-file`)."""
    if path is None:
        return stack_template
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
    return dict(stack_template.build_template().to_dict())


def _template_body(stack_module: ModuleType, ec2: EC2Client) -> tuple[str, dict[str, str]]:
    """The template JSON and its local parameter values (`local_parameters(ec2)` names moto's default VPC)."""
    template = stack_module.build_template()
    body = template.to_json() if hasattr(template, "to_json") else json.dumps(template)
    params_fn = getattr(stack_module, "local_parameters", None)
    params: dict[str, Any] = {}
    if params_fn is not None:
        takes_client = bool(inspect.signature(params_fn).parameters)
        params = dict(params_fn(ec2) if takes_client else params_fn())
    return body, {str(k): str(v) for k, v in params.items()}


def create_stack(
    cfn: CloudFormationClient, ec2: EC2Client, stack_name: str, stack_module: ModuleType
) -> tuple[str, dict[str, str]]:
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


def _failure_reasons(cfn: CloudFormationClient, stack_name: str, stack: Mapping[str, Any]) -> str:
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


# --- up / down / status ------------------------------------------------------------


def status(state_dir: Path = DEFAULT_STATE_DIR) -> LocalEnvironment | None:
    """The environment of `state_dir` if anything of it is recorded, else None. Never starts anything."""
    paths = Paths(Path(state_dir).resolve())
    records = read_records(paths)
    if not records:
        return None
    state = read_state(paths)
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
    with locked(paths):
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
    startup = startup_steps.Startup(paths)
    try:
        paths.run.mkdir(parents=True, exist_ok=True)
        paths.logs.mkdir(parents=True, exist_ok=True)
        # 1. moto and HSDS start together (HSDS only needs moto's address, known up front);
        #    the stack is created in moto while HSDS boots.
        aws_env = startup_steps.moto_credentials(region)
        # The caller's AWS settings (perhaps another environment's endpoint) must not leak into the servers.
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        moto_endpoint = startup_steps.start_moto(startup, moto_port, {**clean_env, **aws_env})
        aws_env[contract.Env.AWS_ENDPOINT_URL] = moto_endpoint
        bucket = DEFAULT_HSDS_BUCKET
        credentials, hs_endpoint, dn_urls = startup_steps.start_hsds(
            startup, aws_env, hsds_user, bucket=bucket, dn_count=dn_count, base_env=clean_env,
            log_level=hsds_log_level,
        )  # fmt: skip

        # 2. the stack, in moto
        moto_server.wait_ready(moto_endpoint, startup.records[moto_server.NAME], timeout=timeout)
        timings = {"moto_ready": time.monotonic() - started}
        stack_status, dc_env, missing = _create_stack_in_moto(aws_env, stack_name, stack_module)
        timings["stack"] = time.monotonic() - started

        # 3. HSDS ready
        startup_steps.wait_hsds_ready(startup, hs_endpoint, dn_urls, timeout=timeout)
        timings["hsds_ready"] = time.monotonic() - started

        # 4. the HSDS folder of the domains, owned by the admin, with the writer's and the reader's ACLs
        folder = contract.DEFAULT_HSDS_FOLDER.format(user=hsds_user)
        startup_steps.ensure_hsds_folder(folder, hs_endpoint, credentials, timeout=timeout)

        hs_env = {
            contract.Env.HS_ENDPOINT: hs_endpoint,
            contract.Env.HS_USERNAME: credentials.username,
            contract.Env.HS_PASSWORD: credentials.password,
        }
        # The analyses' HSDS identity, for the local launcher (the env file holds the writer's).
        hsds_server.write_reader_file(_launcher_state(paths), credentials)
        write_env_file(
            paths.env_file,
            _worker_env(paths, aws_env=aws_env, hs_env=hs_env, stack_name=stack_name, folder=folder, dc_env=dc_env),
        )
        write_state(
            paths,
            {
                "endpoints": {moto_server.NAME: moto_endpoint, hsds_server.NAME: hs_endpoint},
                "socket_dir": str(startup.socket_dir),
                "stack_name": stack_name,
                "stack_status": stack_status,
                "missing_outputs": list(missing),
                "hsds_bucket": bucket,
                "started_at": time.time(),
                "timings": {**timings, "done": time.monotonic() - started},
            },
        )
    except BaseException:
        startup.stop_all()
        raise
    log.info("environment up in %.1f s (state %s)", time.monotonic() - started, paths.root)
    current = status(paths.root)
    assert current is not None
    current.started = True
    return current


def _create_stack_in_moto(
    aws_env: Mapping[str, str], stack_name: str, stack_module: ModuleType
) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """The stack in moto's CloudFormation, with the restore notifications moto leaves out; returns its
    status, the DC_* variables of its outputs and the contract outputs it lacks."""
    moto_endpoint = aws_env[contract.Env.AWS_ENDPOINT_URL]
    session = boto3.session.Session(
        aws_access_key_id=aws_env[contract.Env.AWS_ACCESS_KEY_ID],
        aws_secret_access_key=aws_env[contract.Env.AWS_SECRET_ACCESS_KEY],
        region_name=aws_env[contract.Env.AWS_REGION],
    )
    cfn = aws.client("cloudformation", session=session, endpoint_url=moto_endpoint)
    ec2 = aws.client("ec2", session=session, endpoint_url=moto_endpoint)
    stack_status, outputs = create_stack(cfn, ec2, stack_name, stack_module)
    dc_env, missing = resource_env(outputs)
    if missing and stack_status != "EMPTY_TEMPLATE":
        log.warning("stack %s lacks contract outputs: %s", stack_name, ", ".join(missing))
    apply_restore_notifications(session, moto_endpoint, stack_module, dc_env)
    return stack_status, dc_env, missing


def _worker_env(
    paths: Paths,
    *,
    aws_env: Mapping[str, str],
    hs_env: Mapping[str, str],
    stack_name: str,
    folder: str,
    dc_env: Mapping[str, str],
) -> dict[str, str]:
    """What the env file holds: every variable a worker reads, as the job definitions give them on AWS."""
    return {
        **aws_env,
        **hs_env,
        contract.Env.STACK_NAME: stack_name,
        contract.Env.HSDS_FOLDER: folder,
        **_launcher_env(paths),
        # moto completes a restore only when asked (HeadObject): probe after seconds, not AWS's 6 h.
        **local_carousel_env(),
        **dc_env,
    }


def _launcher_env(paths: Paths) -> dict[str, str]:
    """Job definitions run as local processes here (moto runs no containers)."""
    env = {}
    launcher = getattr(contract.Env, "LAUNCHER", None)
    state = getattr(contract.Env, "LOCAL_STATE_DIR", None)
    if launcher:
        env[launcher] = "local"
    if state:
        env[state] = str(_launcher_state(paths))
    return env


def _launcher_state(paths: Paths) -> Path:
    """The local launcher's state directory (DC_LOCAL_STATE_DIR): its job records, the reader's credentials."""
    return paths.root / "jobs"


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
    with locked(paths):
        return _down_locked(paths)


def _down_locked(paths: Paths) -> list[str]:
    state = read_state(paths)
    records = read_records(paths)
    # First the jobs the local launcher started (workers would otherwise outlive their services).
    jobs = LocalLauncher({}, {}, paths.root / "jobs").stop_all()
    if jobs:
        log.info("stopped %d local job(s) of %s", jobs, paths.root)
    names = [name for name in (hsds_server.NAME, moto_server.NAME) if name in records]
    # Both stop at once: HSDS takes a couple of seconds to stop its nodes.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda name: startup_steps.stop_record(name, records[name]), names))
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
