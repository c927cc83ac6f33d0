"""The job definitions a stack runs: the built-in analyses and those a researcher's group registered.

Each built-in analysis is a package under `batch_jobs/` with a `definition.toml` beside its code.
They are found as files (no analysis is imported): the CLI, the demo and the template read them
from here, and the carousel receives the one a job needs as a `JobDefinition` value.
A registered analysis (`datacarousel definitions register`) lives where AWS Batch keeps every job
definition: its Batch job definition is tagged with the stack's name and carries its description
as the Batch parameter `dc_description` (unused by its command). So the registry of a stack is
Batch itself, on AWS as in the embedded environment (moto's Batch), with nothing to keep in sync.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from datacarousel import aws, definitions
from datacarousel.contract import STACK_TAG, WORKER_IMAGES, Env, WorkerImage
from datacarousel.definitions import JobDefinition
from datacarousel.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient

DESCRIPTION_FILE = "definition.toml"
BUILTIN_PACKAGE = "batch_jobs"
DESCRIPTION_PARAMETER = "dc_description"  # its Batch parameter holding the description (JSON)


def builtin_files() -> list[Path]:
    """Every built-in description file, in name order."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)  # finds the folder without importing an analysis
    roots = list(spec.submodule_search_locations or []) if spec else []
    return sorted(path for root in roots for path in Path(root).glob(f"*/{DESCRIPTION_FILE}"))


@cache
def builtin() -> dict[str, JobDefinition]:
    """The built-in analyses' definitions by name."""
    return definitions.by_name([definitions.load(path) for path in builtin_files()])


def registered(batch: BatchClient, stack: str) -> dict[str, JobDefinition]:
    """The stack's registered definitions (latest ACTIVE revision of each), read from AWS Batch."""
    latest: dict[str, Mapping[str, Any]] = {}
    for page in batch.get_paginator("describe_job_definitions").paginate(status="ACTIVE"):
        for entry in page.get("jobDefinitions", []):
            if (entry.get("tags") or {}).get(STACK_TAG) != stack:
                continue
            name = str(entry["jobDefinitionName"])
            if DESCRIPTION_PARAMETER in (entry.get("parameters") or {}) and int(entry.get("revision", 0)) >= int(
                latest.get(name, {}).get("revision", -1)
            ):
                latest[name] = entry
    return {
        name: definitions.JobDefinition.from_dict(
            json.loads(entry["parameters"][DESCRIPTION_PARAMETER]), f"batch:{name}:{entry.get('revision')}"
        )
        for name, entry in sorted(latest.items())
    }


Registered = Callable[[], Mapping[str, JobDefinition]]


def registered_from_env(environ: Mapping[str, str] | None = None) -> Registered | None:
    """The registered definitions of the stack the environment names (DC_STACK_NAME), read when needed;
    None where no stack is configured (then only the built-ins are known)."""
    env = os.environ if environ is None else environ
    stack = env.get(Env.STACK_NAME)
    if not stack:
        return None

    def read() -> Mapping[str, JobDefinition]:
        try:
            return registered(aws.client("batch"), stack)
        except (ClientError, BotoCoreError) as exc:
            raise ConfigError(f"cannot read the job definitions registered with stack {stack!r}: {exc}") from exc

    return read


def known(registered_ones: Registered | None = None) -> dict[str, JobDefinition]:
    """Every definition a researcher can submit to, by name: the built-ins, then the registered ones."""
    found = dict(builtin())
    for name, definition in (registered_ones() if registered_ones else {}).items():
        found.setdefault(name, definition)  # a registered one never shadows a built-in
    return found


def worker_images() -> tuple[WorkerImage, ...]:
    """Every image a job definition runs: the pipeline workers' (contract) and each built-in analysis's."""
    analyses = (WorkerImage(d.name, d.image, d.image_parameter) for d in builtin().values())
    return (*WORKER_IMAGES, *analyses)


def get(name: str, registered_ones: Registered | None = None) -> JobDefinition:
    """The definition called `name` (looked up among the registered ones only if it is no built-in);
    BadInput listing the known ones otherwise."""
    if name in builtin():
        return builtin()[name]
    return definitions.find(known(registered_ones), name)
