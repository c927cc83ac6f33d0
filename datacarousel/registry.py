"""The job definitions this installation knows: the built-in analyses, found by their descriptions.

Each built-in analysis is a package under `batch_jobs/` with a `definition.toml` beside its code.
They are found as files (no analysis is imported): the CLI, the demo and the template read them
from here, and the carousel receives the one a job needs as a `JobDefinition` value.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from datacarousel import definitions
from datacarousel.contract import WORKER_IMAGES, WorkerImage
from datacarousel.definitions import JobDefinition

DESCRIPTION_FILE = "definition.toml"
BUILTIN_PACKAGE = "batch_jobs"


def builtin_files() -> list[Path]:
    """Every built-in description file, in name order."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)  # finds the folder without importing an analysis
    roots = list(spec.submodule_search_locations or []) if spec else []
    return sorted(path for root in roots for path in Path(root).glob(f"*/{DESCRIPTION_FILE}"))


@cache
def builtin() -> dict[str, JobDefinition]:
    """The built-in analyses' definitions by name."""
    return definitions.by_name([definitions.load(path) for path in builtin_files()])


def known() -> dict[str, JobDefinition]:
    """Every definition a researcher can submit to, by name."""
    return dict(builtin())


def worker_images() -> tuple[WorkerImage, ...]:
    """Every image a job definition runs: the pipeline workers' (contract) and each built-in analysis's."""
    analyses = (WorkerImage(d.name, d.image, d.image_parameter) for d in builtin().values())
    return (*WORKER_IMAGES, *analyses)


def get(name: str) -> JobDefinition:
    """The definition called `name`; BadInput listing the known ones otherwise."""
    return definitions.find(known(), name)
