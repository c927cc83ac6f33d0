"""Running job definitions: on AWS Batch, or as local processes / containers.

The carousel step decides *what* to run (for example two more index_file
drainers); a launcher decides *where*. On AWS the `BatchLauncher` submits the
template's job definitions to the job queue. In the embedded environment moto
runs no containers, so the `LocalLauncher` plays the compute environment: it
reads the same job definitions from the template and runs their commands as
local processes, or in their images, with the environment the job definition
declares. Which launcher runs is one setting (`DC_LAUNCHER`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from datacarousel import images
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.errors import ConfigError

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


@dataclass(frozen=True)
class LaunchRequest:
    """Run `array_size` copies of a job definition with these parameters."""

    job_definition: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    array_size: int = 1
    name: str = ""

    def __post_init__(self) -> None:
        if self.array_size < 1:
            raise ValueError("array_size must be >= 1")


class Launcher(Protocol):
    def launch(self, request: LaunchRequest) -> list[str]:
        """Start the request; return the ids of what was started."""
        ...

    def active(self, job_definition: str) -> int:
        """How many copies of a job definition are pending or running."""
        ...


@dataclass(frozen=True)
class JobDefinition:
    """The parts of an AWS::Batch::JobDefinition that running it needs."""

    name: str
    command: tuple[str, ...]
    parameters: Mapping[str, str]
    environment: tuple[str, ...]  # names of variables and secrets it declares
    image_parameter: str = ""  # the template parameter holding its image URI

    def resolve_command(self, overrides: Mapping[str, str]) -> list[str]:
        """Substitute `Ref::name` placeholders as Batch does (defaults, then overrides)."""
        values = {**self.parameters, **overrides}
        unknown = set(overrides) - set(self.parameters)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {sorted(unknown)}")
        out: list[str] = []
        for part in self.command:
            if part.startswith("Ref::"):
                key = part[len("Ref::") :]
                if key not in values:
                    raise ValueError(f"{self.name}: no value for parameter {key!r}")
                out.append(str(values[key]))
            else:
                out.append(part)
        return out


def job_definitions(template: Mapping[str, Any]) -> dict[str, JobDefinition]:
    """Every Batch job definition of a CloudFormation template, by JobDefinitionName."""
    found: dict[str, JobDefinition] = {}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Batch::JobDefinition":
            continue
        props = resource["Properties"]
        container = props.get("ContainerProperties", {})
        names = [e["Name"] for e in container.get("Environment", [])]
        names += [s["Name"] for s in container.get("Secrets", [])]
        image = container.get("Image", {})
        image_parameter = image.get("Ref", "") if isinstance(image, dict) else ""
        name = props["JobDefinitionName"]
        found[name] = JobDefinition(
            name=name,
            command=tuple(container.get("Command", [])),
            parameters=dict(props.get("Parameters", {})),
            environment=tuple(names),
            image_parameter=image_parameter,
        )
    return found


class BatchLauncher:
    """Submits job definitions to an AWS Batch job queue."""

    def __init__(self, batch: Any, job_queue: str) -> None:
        self._batch = batch
        self._queue = job_queue

    def launch(self, request: LaunchRequest) -> list[str]:
        args: dict[str, Any] = {
            "jobName": request.name or request.job_definition,
            "jobQueue": self._queue,
            "jobDefinition": request.job_definition,
            "parameters": dict(request.parameters),
        }
        if request.array_size > 1:
            args["arrayProperties"] = {"size": request.array_size}
        job_id: str = self._batch.submit_job(**args)["jobId"]
        log.info("submitted %s x%d as Batch job %s", request.job_definition, request.array_size, job_id)
        return [job_id]

    def active(self, job_definition: str) -> int:
        count = 0
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
            pages = self._batch.get_paginator("list_jobs").paginate(jobQueue=self._queue, jobStatus=status)
            for page in pages:
                for job in page.get("jobSummaryList", []):
                    definition = job.get("jobDefinition", "")
                    if f"/{job_definition}:" in definition or definition == job_definition:
                        count += 1
        return count


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
    ) -> None:
        self._definitions = definitions
        self._env = dict(env)
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
        if array_index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(array_index)
        return env

    def launch(self, request: LaunchRequest) -> list[str]:
        definition = self._definitions.get(request.job_definition)
        if definition is None:
            raise ValueError(f"the template has no job definition {request.job_definition!r}")
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
            return self._containers.command(self._images[definition.image_parameter], command, env)
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


def local_launcher_from_env(template: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> LocalLauncher:
    env = dict(os.environ if environ is None else environ)
    state = env.get(Env.LOCAL_STATE_DIR)
    if not state:
        raise ConfigError(f"{Env.LOCAL_STATE_DIR} is not set")
    mode = env.get(Env.LOCAL_RUN_MODE, "process")
    if mode == "process":
        return LocalLauncher(job_definitions(template), env, Path(state))
    if mode == "container":
        # Each job definition's command in its image (built by `datacarousel images build`).
        return LocalLauncher(
            job_definitions(template),
            env,
            Path(state),
            images=images.local_images(),
            container_runner=images.ImageRunner(),
        )
    raise ConfigError(f"{Env.LOCAL_RUN_MODE}={mode!r} is malformed: must be 'process' or 'container'")


def launcher_from_env(batch: Any, template_loader: Any, environ: Mapping[str, str] | None = None) -> Launcher:
    """The launcher the environment asks for: `DC_LAUNCHER=batch` (default) or `local`."""
    env = os.environ if environ is None else environ
    kind = env.get(Env.LAUNCHER, "batch")
    if kind == "batch":
        queue = env.get(Env.BATCH_JOB_QUEUE)
        if not queue:
            raise ConfigError(f"{Env.BATCH_JOB_QUEUE} is not set")
        return BatchLauncher(batch, queue)
    if kind == "local":
        return local_launcher_from_env(template_loader(), env)
    raise ConfigError(f"{Env.LAUNCHER}={kind!r} is malformed: must be 'batch' or 'local'")


WORKER_DEFINITIONS = tuple(JobDefinitionName)
