"""Running job definitions on AWS Batch: what the carousel step launches, and how it counts what runs.

The carousel step decides *what* to run (for example two more index_file drainers); a launcher
decides *where*. In production that is the `BatchLauncher`, which submits the template's job
definitions to the stack's job queue. The embedded environment plays the compute environment
with its own launcher (`workbench.local.launcher.LocalLauncher`), built on the same
`JobDefinition` and `LaunchRequest`; which one runs is one setting (`DC_LAUNCHER`), read by the
entry point that wires the step (`python -m carousel step` knows only Batch).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from datacarousel.contract import STACK_TAG, Env
from datacarousel.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_batch.literals import JobStatusType

log = logging.getLogger(__name__)


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

    def __init__(self, batch: BatchClient, job_queue: str) -> None:
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
    ACTIVE_STATUSES: tuple[JobStatusType, ...] = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
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
        summaries: dict[str, Mapping[str, Any]] = {}  # by job id: a job seen in two listings counts once
        for status in self.ACTIVE_STATUSES:
            pages = self._batch.get_paginator("list_jobs").paginate(jobQueue=self._queue, jobStatus=status)
            for page in pages:
                for summary in page.get("jobSummaryList", []):
                    summaries[str(summary["jobId"])] = summary
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


def registered_lookup(batch: BatchClient, stack: str) -> Callable[[str], JobDefinition | None]:
    """Finds a job definition registered with the stack after it was created (its latest ACTIVE revision)."""

    def find(name: str) -> JobDefinition | None:
        entries = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE").get("jobDefinitions", [])
        mine = [e for e in entries if (e.get("tags") or {}).get(STACK_TAG) == stack]
        return registered_job_definition(max(mine, key=lambda e: int(e.get("revision", 0)))) if mine else None

    return find


def batch_launcher_from_env(batch: BatchClient, environ: Mapping[str, str] | None = None) -> BatchLauncher:
    """The production launcher: `DC_LAUNCHER` unset or `batch`, and the job queue named by `DC_BATCH_JOB_QUEUE`."""
    env = os.environ if environ is None else environ
    kind = env.get(Env.LAUNCHER, "batch")
    if kind == "local":
        raise ConfigError(
            f"{Env.LAUNCHER}=local is the embedded environment's launcher: run the step with `datacarousel step`"
        )
    if kind != "batch":
        raise ConfigError(f"{Env.LAUNCHER}={kind!r} is malformed: must be 'batch' or 'local'")
    queue = env.get(Env.BATCH_JOB_QUEUE)
    if not queue:
        raise ConfigError(f"{Env.BATCH_JOB_QUEUE} is not set")
    return BatchLauncher(batch, queue)
