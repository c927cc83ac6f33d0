"""The demo's summary: the facts read back from the resources, put together and shown (pure).

`JobOutput` is one job's objects in the results bucket as the summarisers see them; `job_facts`
and `build_summary` turn what `Demo.collect` read into the summary's entries; `real_cost` prices
the same run on AWS at the archive's real file sizes; `print_summary` renders the report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from carousel import cost
from datacarousel import naming
from datacarousel.contract import Env, FileAttr, JobAttr, JobFileAttr, JobFileState, RestoreTier
from datacarousel.definitions import JobDefinition
from workbench.demo.plan import DemoOptions
from workbench.demo.progress import Stages

# An orbit's result: results/<job>/<YYYY.MM>/<name><suffix> (naming.result_key).
_RESULT_KEY_RE = re.compile(r"^[^/]+/[^/]+/\d{4}\.\d{2}/[^/]+$")


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


def job_facts(
    info: JobInfo,
    item: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    objects: Mapping[str, int],
    *,
    definition: JobDefinition,
    month: str,
    results_bucket: str,
) -> dict[str, Any]:
    """One job's entry in the summary, from its item, its job-file rows and its objects in the results bucket."""
    states = Counter(str(r[JobFileAttr.STATE]) for r in rows)
    prefix = f"{naming.RESULTS_PREFIX}/{info.job_id}/"
    result_keys = sorted(k for k in objects if is_result_key(k, definition))
    return {
        "job_id": info.job_id,
        "owner": info.owner,
        "definition": definition.name,
        "query": {"year_month": month, "misr_paths": list(info.paths)},
        "state": item.get(JobAttr.STATE, "?"),
        "files": len(rows),
        "done": states[JobFileState.DONE.value],
        "failed": states[JobFileState.FAILED.value],
        "errors": sorted({str(r.get(JobFileAttr.ERROR)) for r in rows if r.get(JobFileAttr.ERROR)}),
        "results": f"s3://{results_bucket}/{prefix}",
        "result_objects": len(result_keys),
        "result_bytes": sum(objects[k] for k in result_keys),
        "reduced": [f"s3://{results_bucket}/{k}" for k in reduced_keys(item)],
        "local_copies": [],
        "submitted": {
            k: info.submission[k] for k in ("file_count", "to_restore_files", "shared_files", "estimated_cost")
        },
    }


def reduced_keys(item: Mapping[str, Any]) -> list[str]:
    """What the definition's reducer wrote: the job item's composite_key."""
    return [str(k) for k in item.get(JobAttr.COMPOSITE_KEY) or []]


def files_facts(
    files: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    keys: Sequence[str],
    job_files: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """The run's archive files: their states, the restore calls, the job-file demands and shared files."""
    restore_counts = {str(f[FileAttr.FILE_NAME]): int(f.get(FileAttr.RESTORE_COUNT, 0)) for f in files}
    demands = Counter(name for names in job_files.values() for name in names)
    return {
        "count": len(files),
        "names": names,
        "keys": keys,
        "states": dict(Counter(str(f.get(FileAttr.STATE, "?")) for f in files)),
        "restore_counts": restore_counts,
        "restore_calls": sum(restore_counts.values()),
        "job_file_demands": sum(demands.values()),
        "shared_files": sorted(n for n, c in demands.items() if c > 1),
        "bytes": sum(int(f.get(FileAttr.SIZE, 0)) for f in files),
    }


def build_summary(
    options: DemoOptions,
    *,
    definition: JobDefinition,
    parameters: Mapping[str, str],
    env: Mapping[str, str],
    jobs: Sequence[Mapping[str, Any]],
    files: Mapping[str, Any],
    aws_cost: Mapping[str, Any],
    produced: Mapping[str, Any],
    stages: Stages,
) -> dict[str, Any]:
    """The summary (summary.json): the run's choices, its environment, the jobs, the files, the cost on AWS,
    what the definition's summariser found, and the time per stage."""
    return {
        "month": options.month,
        "paths": list(options.paths),
        "preset": options.preset,
        "definition": definition.name,
        "parameters": dict(parameters),
        "state_dir": str(options.state_dir),
        "environment": {
            "aws_endpoint_url": env[Env.AWS_ENDPOINT_URL],
            "hs_endpoint": env[Env.HS_ENDPOINT],
            "archive_bucket": env[Env.ARCHIVE_BUCKET],
            "results_bucket": env[Env.RESULTS_BUCKET],
        },
        "jobs": list(jobs),
        "files": files,
        "aws_cost_at_real_sizes": aws_cost,
        **produced,
        "stages_s": dict(stages.seconds),
        "carousel_milestones_s": dict(stages.milestones),
        "out_dir": str(options.out_dir),
    }


def _say(console: Console, text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True)


def print_summary(console: Console, summary: Mapping[str, Any]) -> None:
    """The report every definition gets: the jobs, the restores, the cost on AWS, the time per stage."""
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
    console.print(table)
    f = summary["files"]
    _say(
        console,
        f"[bold]Restores[/bold]: {f['restore_calls']} restore calls for {f['count']} files "
        f"(restore_count in BasicFusionFiles), serving {f['job_file_demands']} job-file demands; "
        f"shared: {len(f['shared_files'])} file(s) wanted by both jobs, restored once",
    )
    c = summary["aws_cost_at_real_sizes"]
    _say(
        console,
        f"[bold]On AWS at real sizes[/bold] ({c['files']} files, {c['real_bytes'] / gib:,.0f} GiB in the archive "
        f"catalogue, {c['tier']}, {c['lease_days']}-day lease): carousel ${c['carousel']['total']:.2f} "
        f"(retrieval ${c['carousel']['retrieval']:.2f}, requests ${c['carousel']['requests']:.4f}, "
        f"staging ${c['carousel']['staging']:.2f}) vs one restore per job "
        f"${c['one_restore_per_job']['total']:.2f}: saved ${c['saved']:.2f}",
    )
    stages = Table(title="Time per stage (s)")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    for name, seconds in summary["stages_s"].items():
        stages.add_row(name, f"{seconds:.1f}")
    for name, seconds in summary["carousel_milestones_s"].items():
        if name != "steps":
            stages.add_row(f"  carousel: {name}", f"@{seconds:.1f}")
    console.print(stages)
