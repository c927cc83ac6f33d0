"""The embedded environment's compute environment: the template's job definitions run as local processes or containers.

moto runs no containers, so the `LocalLauncher` plays AWS Batch: it reads the same job definitions
from the template (`carousel.launcher.job_definitions`) and runs their commands as local processes,
or in their images, with the environment each job definition declares. `launcher_from_env` is the
`DC_LAUNCHER` switch: `local` here, `batch` (the default) through `carousel.launcher`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psutil

from carousel.launcher import (
    JobDefinition,
    Launcher,
    LaunchRequest,
    batch_launcher_from_env,
    job_definitions,
    registered_lookup,
)
from datacarousel import hsds_accounts
from datacarousel.contract import DEFAULT_STACK_NAME, Env
from datacarousel.errors import ConfigError
from datacarousel.hsds_accounts import HsdsRole
from workbench import images
from workbench.local import hsds_server

if TYPE_CHECKING:  # the published stubs: a development dependency only
    from mypy_boto3_batch import BatchClient

log = logging.getLogger(__name__)

# Variables a local process inherits whatever its job definition says: on AWS the
# task role, region and endpoint come from the platform, not from the job definition.
_PLATFORM_VARIABLES = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    Env.AWS_ENDPOINT_URL,
    Env.AWS_REGION,
    "AWS_REGION",
    Env.AWS_ACCESS_KEY_ID,
    Env.AWS_SECRET_ACCESS_KEY,
    Env.LOG_LEVEL,
    Env.LAUNCHER,
    Env.LOCAL_STATE_DIR,
    Env.LOCAL_RUN_MODE,
)


class ContainerRunner(Protocol):
    def command(self, image: str, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        """The host command that runs `command` inside `image` with `env`."""
        ...


class LocalLauncher:
    """Runs the template's job definitions as local processes (or in their images).

    Each started copy gets a record `<state_dir>/jobs/<id>.json` (PID, command,
    log file) so that status and `down` find it; logs go to `<state_dir>/logs/`.
    """

    def __init__(
        self,
        definitions: Mapping[str, JobDefinition],
        env: Mapping[str, str],
        state_dir: Path,
        *,
        images: Mapping[str, str] | None = None,
        container_runner: ContainerRunner | None = None,
        registered: Callable[[str], JobDefinition | None] | None = None,
    ) -> None:
        self._definitions = dict(definitions)
        self._registered = registered
        self._env = dict(env)
        self._state_dir = state_dir
        self._jobs_dir = state_dir / "jobs"
        self._logs_dir = state_dir / "logs"
        self._images = dict(images or {})
        self._containers = container_runner
        if container_runner is not None:
            missing = sorted({d.image_parameter for d in definitions.values()} - set(self._images))
            if missing:
                raise ConfigError(f"no local image for template parameter(s) {missing}")

    def environment_for(self, definition: JobDefinition, array_index: int | None = None) -> dict[str, str]:
        """What the job sees: the platform's variables and the ones its definition declares."""
        names = set(_PLATFORM_VARIABLES) | set(definition.environment)
        env = {k: v for k, v in self._env.items() if k in names}
        # Values the definition states itself win, as in Batch (a registered analysis's PYTHONPATH).
        for name, value in definition.values.items():
            if name == "PYTHONPATH":  # a registered analysis's own code, ahead of the platform's path
                env[name] = os.pathsep.join(p for p in (value, env.get(name, "")) if p)
            else:
                env.setdefault(name, value)
        self._as_hsds_identity(definition.name, env)
        if array_index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(array_index)
        return env

    def _as_hsds_identity(self, definition: str, env: dict[str, str]) -> None:
        """HS_USERNAME / HS_PASSWORD of the job's own HSDS account (`datacarousel.hsds_accounts.role_of`):
        the env file's (the writer's) for the pipeline, the reader's (from the file `up`
        wrote, `hsds_server.write_reader_file`) for an analysis, none for the loader."""
        role = hsds_accounts.role_of(definition)
        if role is None:
            env.pop(Env.HS_USERNAME, None)
            env.pop(Env.HS_PASSWORD, None)
        elif role == HsdsRole.READER and env.get(Env.HS_USERNAME):
            reader_file = self._state_dir / hsds_server.READER_FILE
            reader = hsds_server.reader_of(reader_file, env[Env.HS_USERNAME])
            if reader is None:
                raise ConfigError(
                    f"no HSDS reader account for {definition} in {reader_file}: "
                    "restart the environment (`datacarousel down; datacarousel up`)"
                )
            env[Env.HS_USERNAME], env[Env.HS_PASSWORD] = reader

    def launch(self, request: LaunchRequest) -> list[str]:
        definition = self._definitions.get(request.job_definition)
        if definition is None and self._registered is not None:
            definition = self._registered(request.job_definition)  # registered after this launcher started
        if definition is None:
            raise ValueError(f"the stack has no job definition {request.job_definition!r}")
        self._definitions[definition.name] = definition
        command = definition.resolve_command(request.parameters)
        self._jobs_dir.mkdir(parents=True, exist_ok=True)
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        started: list[str] = []
        for index in range(request.array_size):
            job_id = f"{definition.name}-{uuid.uuid4().hex[:12]}"
            env = self.environment_for(definition, index if request.array_size > 1 else None)
            argv = self._argv(definition, command, env)
            log_path = self._logs_dir / f"{job_id}.log"
            # A container engine takes the values from its own environment (names only on its command line).
            popen_env = images.run_environment(env) if self._containers is not None else env
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    argv,
                    env=popen_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            record = {
                "job_id": job_id,
                "job_definition": definition.name,
                "pid": proc.pid,
                "create_time": psutil.Process(proc.pid).create_time(),
                "argv": argv,
                "log": str(log_path),
                "started_at": time.time(),
            }
            # Write then rename: a concurrent reader never sees a half-written record.
            tmp = self._jobs_dir / f".{job_id}.json.tmp"
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self._jobs_dir / f"{job_id}.json")
            log.info("started %s as local process %d (%s)", job_id, proc.pid, " ".join(command))
            started.append(job_id)
        return started

    def _argv(self, definition: JobDefinition, command: list[str], env: Mapping[str, str]) -> list[str]:
        if self._containers is not None:
            image = definition.image or self._images[definition.image_parameter]
            return self._containers.command(image, command, env)
        if command and command[0] in ("python", "python3"):
            # The project's own interpreter: the one with the project installed.
            return [sys.executable, *command[1:]]
        return command

    def records(self) -> list[dict[str, Any]]:
        if not self._jobs_dir.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self._jobs_dir.glob("*.json"))]

    def active(self, job_definition: str) -> int:
        return sum(1 for r in self.records() if r["job_definition"] == job_definition and _alive(r))

    def wait(self, timeout: float | None = None) -> None:
        """Wait until no started job is alive (reaping our own children)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(_alive(r) for r in self.records()):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("local jobs still running")
            time.sleep(0.2)

    def stop_all(self) -> int:
        """Terminate every live job this state dir started; return how many."""
        stopped = 0
        for record in self.records():
            if _alive(record):
                try:
                    proc = psutil.Process(record["pid"])
                    proc.terminate()
                    proc.wait(timeout=10)
                except psutil.TimeoutExpired:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
                stopped += 1
        return stopped


def _alive(record: Mapping[str, Any]) -> bool:
    """Alive and still the same process (a PID can be reused after exit)."""
    try:
        proc = psutil.Process(record["pid"])
        if abs(proc.create_time() - record["create_time"]) > 0.01:
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            proc.wait(timeout=0)  # reap our own child so it stops counting
            return False
        return True
    except (psutil.NoSuchProcess, psutil.TimeoutExpired, ChildProcessError):
        return False


def local_launcher_from_env(
    template: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, batch: BatchClient | None = None
) -> LocalLauncher:
    env = dict(os.environ if environ is None else environ)
    state = env.get(Env.LOCAL_STATE_DIR)
    if not state:
        raise ConfigError(f"{Env.LOCAL_STATE_DIR} is not set")
    mode = env.get(Env.LOCAL_RUN_MODE, "process")
    stack = env.get(Env.STACK_NAME) or DEFAULT_STACK_NAME
    registered = registered_lookup(batch, stack) if batch is not None else None
    if mode == "process":
        return LocalLauncher(job_definitions(template), env, Path(state), registered=registered)
    if mode == "container":
        # Each job definition's command in its image (built by `datacarousel images build`).
        return LocalLauncher(
            job_definitions(template),
            env,
            Path(state),
            images=images.local_images(),
            container_runner=images.ImageRunner(),
            registered=registered,
        )
    raise ConfigError(f"{Env.LOCAL_RUN_MODE}={mode!r} is malformed: must be 'process' or 'container'")


def launcher_from_env(
    batch: BatchClient, template_loader: Callable[[], Mapping[str, Any]], environ: Mapping[str, str] | None = None
) -> Launcher:
    """The launcher the environment asks for: `DC_LAUNCHER=local` here, else the production one (Batch)."""
    env = os.environ if environ is None else environ
    if env.get(Env.LAUNCHER) == "local":
        return local_launcher_from_env(template_loader(), env, batch=batch)
    return batch_launcher_from_env(batch, env)
