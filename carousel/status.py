"""Progress and cost of jobs and of the window, from the tables (Queries only).

`job_status(tables, config, job_id)` -> a dict (JSON-ready): state, files per
stage (waiting / restoring / readable / indexed / queued / running / done /
failed), bytes, cost so far and estimated (`carousel.cost.job_status`), ETA;
its failed files with their reasons (`failures`) and, once COMPLETE, its done and failed counts (`outcome`).
`window_status(snapshot, now)` -> what is restoring or staged now.
`overview(tables, config)` -> every open job (plus the ones asked for) and the window.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from carousel import cost
from carousel.model import F_FAILED, F_INDEXED, F_RESTORED, F_RESTORING, Snapshot
from carousel.planner import PlannerConfig, demand
from carousel.store import Loaded, Tables, iso_seconds, load
from datacarousel.contract import JobAttr, JobFileAttr, JobFileState, JobState
from datacarousel.errors import BadInput


def failures(loaded: Loaded, job_id: str) -> list[dict[str, str]]:
    """The job's FAILED job-files with their reasons (`error`), in file-name (= orbit) order."""
    return [
        {"file_name": name, "error": str(item.get(JobFileAttr.ERROR, ""))}
        for (job, name), item in sorted(loaded.job_files.items())
        if job == job_id and item.get(JobFileAttr.STATE) == JobFileState.FAILED.value
    ]


def outcome(item: dict[str, Any], files: dict[str, int]) -> dict[str, int]:
    """A finished job's done and failed counts: as the step recorded them on the job, else counted."""
    done, failed = item.get(JobAttr.DONE_FILES), item.get(JobAttr.FAILED_FILES)
    return {
        "done": int(done) if done is not None else files.get("done", 0),
        "failed": int(failed) if failed is not None else files.get("failed", 0),
    }


def _job_dict(loaded: Loaded, job_id: str, now: float, config: PlannerConfig) -> dict[str, Any]:
    status = cost.job_status(loaded.snapshot, job_id, now, config)
    item = loaded.jobs.get(job_id, {})
    total = sum(status.files.values())
    return {
        "job_id": job_id,
        "owner": item.get(JobAttr.OWNER, ""),
        "definition": item.get(JobAttr.DEFINITION, ""),
        "query": item.get(JobAttr.QUERY, {}),
        "parameters": item.get(JobAttr.PARAMETERS, {}),
        "state": status.state.value,
        "submitted_at": item.get(JobAttr.SUBMITTED_AT),
        "completed_at": item.get(JobAttr.COMPLETED_AT),
        "file_count": total,
        "files": status.files,
        "total_bytes": status.total_bytes,
        "done_bytes": status.done_bytes,
        "cost_so_far": status.cost_so_far.as_dict(),
        "estimated_cost": status.estimated_cost.as_dict(),
        "eta": iso_seconds(status.eta) if status.eta is not None else None,
        "composites": list(item.get(JobAttr.COMPOSITE_KEY) or []),  # what the definition's reducer wrote
        # Every file final, the reducer asked for and not done yet: the job is OPEN while it runs.
        "reduce_requested_at": item.get(JobAttr.REDUCE_REQUESTED_AT),
        "error": item.get(JobAttr.ERROR),
        "reopened_at": item.get(JobAttr.REOPENED_AT),  # `datacarousel retry --job` reopened it
        # COMPLETE: how many files gave a result and how many failed (`failures`: which, and why).
        "outcome": outcome(item, status.files) if status.state is JobState.COMPLETE else None,
        "failures": failures(loaded, job_id),
    }


def window_status(snapshot: Snapshot, now: float, config: PlannerConfig) -> dict[str, Any]:
    files = snapshot.files
    d = demand(snapshot, now)
    size = files.size

    def count(mask: np.ndarray) -> dict[str, int]:
        return {"files": int(mask.sum()), "bytes": int(size[mask].sum())}

    return {
        "restoring": count(files.state == F_RESTORING),
        "restored": count(files.state == F_RESTORED),
        "indexed": count(files.state == F_INDEXED),
        "failed": count(files.state == F_FAILED),
        "in_window": count(d.in_window),
        "needed_archived": count((d.waiting > 0) & ~d.in_window & ~d.readable),
        "window_cap": {"files": config.window_files, "bytes": config.window_bytes},
        "restores_so_far": int(files.restore_count[d.in_window].sum()),
        "tier": config.tier.value,
        "lease_days": config.lease_days,
    }


def job_status(tables: Tables, config: PlannerConfig, job_id: str, *, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    loaded = load(tables, job_ids=[job_id])
    if job_id not in loaded.jobs:
        raise BadInput(f"no such job {job_id!r}")
    return _job_dict(loaded, job_id, now, config)


def overview(
    tables: Tables, config: PlannerConfig, job_ids: Iterable[str] = (), *, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    wanted = list(job_ids)
    loaded = load(tables, job_ids=wanted)
    missing = [j for j in wanted if j not in loaded.jobs]
    if missing:
        raise BadInput(f"no such job(s): {', '.join(missing)}")
    ids = wanted or sorted(loaded.jobs)
    return {
        "now": iso_seconds(now),
        "jobs": [_job_dict(loaded, j, now, config) for j in ids],
        "window": window_status(loaded.snapshot, now, config),
    }
