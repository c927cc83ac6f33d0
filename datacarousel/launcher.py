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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from datacarousel import images
from datacarousel.contract import DEFAULT_STACK_NAME, STACK_TAG, Env, JobDefinitionName
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
    image: str = ""  # a registered definition's image URI (the template's: through image_parameter)
    values: Mapping[str, str] = field(default_factory=dict)  # literal variables (a registered definition's)

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


def registered_job_definition(entry: Mapping[str, Any]) -> JobDefinition:
    """A job definition as AWS Batch describes it (DescribeJobDefinitions), e.g. a registered analysis."""
    container = entry.get("containerProperties", {})
    values = {str(e["name"]): str(e["value"]) for e in container.get("environment", [])}
    names = [*values, *(str(s["name"]) for s in container.get("secrets", []))]
    return JobDefinition(
        name=str(entry["jobDefinitionName"]),
        command=tuple(container.get("command", [])),
        parameters=dict(entry.get("parameters", {})),
        environment=tuple(names),
        image=str(container.get("image", "")),
        values=values,
    )


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

    # Statuses of a job (or an array child) that holds or will hold a worker.
    ACTIVE_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
    DESCRIBE_MAX = 100  # job ids per DescribeJobs call

    @staticmethod
    def definition_name(definition: str) -> str:
        """A job definition's name from its ARN (`arn:...:job-definition/<name>:<revision>`),
        `<name>:<revision>` or `<name>`."""
        if definition.startswith("arn:"):
            definition = definition.rsplit("/", 1)[-1]
        name, _, revision = definition.rpartition(":")
        return name if name and revision.isdigit() else definition

    def active(self, job_definition: str) -> int:
        """Workers of `job_definition` in the queue that are pending or running, array children counted one by one.

        ListJobs on a queue lists an array job once (its parent, SUBMITTED or PENDING while children
        run), never its children, so each parent counts its children in the active statuses (the
        array's `statusSummary`, from ListJobs or else DescribeJobs; all `size` of them while none was
        spawned). A summary without `jobDefinition` (older API versions) is described too.
        """
        summaries: dict[str, dict[str, Any]] = {}  # by job id: a job seen in two listings counts once
        for status in self.ACTIVE_STATUSES:
            pages = self._batch.get_paginator("list_jobs").paginate(jobQueue=self._queue, jobStatus=status)
            for page in pages:
                for job in page.get("jobSummaryList", []):
                    summaries[str(job["jobId"])] = job
        unknown = [
            job_id
            for job_id, job in summaries.items()
            if not job.get("jobDefinition")
            or ((job.get("arrayProperties") or {}).get("size") and "statusSummary" not in job["arrayProperties"])
        ]
        for start in range(0, len(unknown), self.DESCRIBE_MAX):
            response = self._batch.describe_jobs(jobs=unknown[start : start + self.DESCRIBE_MAX])
            described = {str(job["jobId"]): job for job in response.get("jobs", [])}
            for job_id in unknown[start : start + self.DESCRIBE_MAX]:
                if job_id in described:
                    summaries[job_id] = {**summaries[job_id], **described[job_id]}
                else:  # finished (and forgotten) between the two calls
                    del summaries[job_id]
        count = 0
        for job_id, job in summaries.items():
            if self.definition_name(str(job.get("jobDefinition") or "")) != job_definition:
                continue
            if job_id.rpartition(":")[0] in summaries:  # an array child listed too: its parent counts it
                continue
            if job.get("status", self.ACTIVE_STATUSES[0]) not in self.ACTIVE_STATUSES:  # ended since it was listed
                continue
            array = job.get("arrayProperties") or {}
            size = int(array.get("size") or 0)
            if not size:
                count += 1
                continue
            children = array.get("statusSummary") or {}
            count += sum(int(children.get(s, 0)) for s in self.ACTIVE_STATUSES) if children else size
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
        registered: Callable[[str], JobDefinition | None] | None = None,
    ) -> None:
        self._definitions = dict(definitions)
        self._registered = registered
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
        # Values the definition states itself win, as in Batch (a registered analysis's PYTHONPATH).
        for name, value in definition.values.items():
            if name == "PYTHONPATH":  # a registered analysis's own code, ahead of the platform's path
                env[name] = os.pathsep.join(p for p in (value, env.get(name, "")) if p)
            else:
                env.setdefault(name, value)
        if array_index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(array_index)
        return env

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


def registered_lookup(batch: Any, stack: str) -> Callable[[str], JobDefinition | None]:
    """Finds a job definition registered with the stack after it was created (its latest ACTIVE revision)."""

    def find(name: str) -> JobDefinition | None:
        entries = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE").get("jobDefinitions", [])
        mine = [e for e in entries if (e.get("tags") or {}).get(STACK_TAG) == stack]
        return registered_job_definition(max(mine, key=lambda e: int(e.get("revision", 0)))) if mine else None

    return find


def local_launcher_from_env(
    template: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, batch: Any | None = None
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
        return local_launcher_from_env(template_loader(), env, batch=batch)
    raise ConfigError(f"{Env.LAUNCHER}={kind!r} is malformed: must be 'batch' or 'local'")


WORKER_DEFINITIONS = tuple(JobDefinitionName)
