"""Researchers' API: submit a job (a job definition over a typed query) and cancel it.

`submit` finds the query's files through index queries on BasicFusionFiles
(`carousel.query.lookups`, never a Scan), writes one job-file per file (batch
puts), then the job itself (OPEN) last: a step never sees an open job whose
job-files are still being written. It answers at once with the file count,
the bytes, the files already readable, the estimated cost and start.

`cancel` moves an OPEN job to CANCELLED. The files only it needed are then no
longer restored or renewed: their copies expire on their own.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carousel import planner
from carousel.cost import SubmissionEstimate, estimate_submission
from carousel.model import FileRecord
from carousel.planner import PlannerConfig
from carousel.query import JobQuery, lookups, matches
from carousel.store import Tables, file_record, iso_seconds, load
from datacarousel.contract import (
    FileIndex,
    JobAttr,
    JobFileAttr,
    JobFileState,
    JobState,
)
from datacarousel.definitions import JobDefinition
from datacarousel.errors import BadInput, MalformedMessage
from datacarousel.messages import OWNER_RE, check_job_id

log = logging.getLogger(__name__)


def validate_owner(owner: str) -> str:
    if not isinstance(owner, str) or not OWNER_RE.fullmatch(owner):
        raise BadInput(f"owner must match {OWNER_RE.pattern} (lower-case letters, digits, '_', '.', '-')")
    return owner


MAX_SLACK_S = 366 * 86_400.0  # a deadline more than a year ahead is a mistake (and restores stay wanted)


def validate_deadline(now: float, *, deadline: float | None = None, slack_s: float | None = None) -> float | None:
    """The job's deadline from either form (None: prompt); BadInput for both, a non-finite, past or far one."""
    if deadline is not None and slack_s is not None:
        raise BadInput("give a deadline or a slack, not both")
    if slack_s is not None:
        if isinstance(slack_s, bool) or not isinstance(slack_s, int | float) or not math.isfinite(slack_s):
            raise BadInput(f"slack must be a number of seconds, got {slack_s!r}")
        if slack_s <= 0:
            raise BadInput(f"slack must be > 0, got {slack_s}")
        deadline = now + float(slack_s)
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not math.isfinite(deadline):
        raise BadInput(f"deadline must be POSIX seconds, got {deadline!r}")
    if deadline <= now:
        raise BadInput(f"deadline {iso_seconds(deadline)} is not in the future")
    if deadline - now > MAX_SLACK_S:
        raise BadInput(f"deadline {iso_seconds(deadline)} is more than {MAX_SLACK_S / 86_400:.0f} days ahead")
    return float(deadline)


def new_job_id(now: float) -> str:
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"job-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class _Row:
    orbit: int
    year_month: str
    misr_path: int


def find_files(tables: Tables, query: JobQuery) -> list[dict[str, Any]]:
    """Items of every file the query selects, in orbit order (index queries, then `matches`)."""
    found: dict[str, dict[str, Any]] = {}
    for lookup in lookups(query):
        bounds = (lookup.orbit_min, lookup.orbit_max)
        if lookup.index_name == FileIndex.BY_YEAR_MONTH:
            items = tables.files.by_year_month(str(lookup.hash_value), orbits=bounds)
        elif lookup.index_name == FileIndex.BY_MISR_PATH:
            items = tables.files.by_misr_path(int(lookup.hash_value), orbits=bounds)
        else:  # pragma: no cover - lookups only names these two
            raise ValueError(f"unexpected index {lookup.index_name}")
        for item in items:
            row = _Row(int(item["orbit"]), str(item.get("year_month", "")), int(item.get("misr_path", 0)))
            if row.year_month and matches(query, row):
                found[str(item["file_name"])] = item
    return sorted(found.values(), key=lambda item: int(item["orbit"]))


@dataclass(frozen=True)
class Submission:
    job_id: str
    owner: str
    definition: str
    query: JobQuery
    parameters: dict[str, str]
    estimate: SubmissionEstimate
    deadline: float | None = None  # the stated slack's end (None: prompt)

    def as_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "job_id": self.job_id,
            "owner": self.owner,
            "definition": self.definition,
            "query": self.query.to_dict(),
            "parameters": self.parameters,
            "file_count": e.file_count,
            "total_bytes": e.total_bytes,
            "readable_files": e.readable_files,
            "restoring_files": e.restoring_files,
            "to_restore_files": e.to_restore_files,
            "to_restore_bytes": e.to_restore_bytes,
            "shared_files": e.shared_files,
            "estimated_cost": e.estimated_cost.as_dict(),
            "estimated_cost_alone": e.estimated_cost_alone.as_dict(),
            "estimated_start": iso_seconds(e.estimated_start) if e.estimated_start is not None else None,
            "held_until": iso_seconds(e.held_until) if e.held_until is not None else None,
            "deadline": iso_seconds(self.deadline) if self.deadline is not None else None,
        }


def _free_job_id(tables: Tables, job_id: str | None, now: float) -> str:
    """A new id, or the caller's if well-formed and not taken (BadInput otherwise)."""
    if not job_id:
        return new_job_id(now)
    # it names the job's results folder and travels in every WorkItem
    try:
        check_job_id(job_id)
    except MalformedMessage as exc:
        raise BadInput(str(exc)) from exc
    # Before any job-file is written: batch puts cannot be conditional, and they would reset the
    # existing job's job-files. (Two submissions racing for one new id are left to `create` in submit.)
    if tables.jobs.get(job_id) is not None:
        raise BadInput(f"job id {job_id!r} is already taken")
    return job_id


def submit(
    tables: Tables,
    config: PlannerConfig,
    *,
    owner: str,
    definition: JobDefinition,
    query: JobQuery,
    parameters: Mapping[str, Any] | None = None,
    now: float | None = None,
    job_id: str | None = None,
    deadline: float | None = None,
    slack_s: float | None = None,
) -> Submission:
    """Record a job and its job-files; BadInput for a bad owner, parameters, slack or an empty query.

    The parameters are checked against the definition's description and stored complete (defaults
    filled in), before any file is looked up: bad parameters never cost a restore. A job may state its
    slack, as a `deadline` (POSIX seconds) or `slack_s` (seconds from now), not both: the carousel may hold
    its restores back until then to share them with later jobs (`carousel.slack`). None: prompt.
    """
    now = time.time() if now is None else now
    owner = validate_owner(owner)
    deadline = validate_deadline(now, deadline=deadline, slack_s=slack_s)
    params = definition.validate(parameters or {})
    items = find_files(tables, query)
    if not items:
        raise BadInput(f"the query {query.to_dict()} matches no inventoried file (run `datacarousel inventory`?)")
    matched: list[FileRecord] = [file_record(item) for item in items]
    snapshot = load(tables).snapshot
    estimate = estimate_submission(matched, snapshot, now, config, deadline=deadline)
    job_id = _free_job_id(tables, job_id, now)
    stamp = iso_seconds(now)
    tables.job_files.put_new(
        [
            {
                JobFileAttr.JOB_ID: job_id,
                JobFileAttr.FILE_NAME: f.file_name,
                JobFileAttr.STATE: JobFileState.WAITING.value,
                JobFileAttr.ORBIT: f.orbit,
                JobFileAttr.SIZE: f.size_bytes,
                JobFileAttr.ATTEMPTS: 0,
                JobFileAttr.UPDATED_AT: stamp,
            }
            for f in matched
        ]
    )
    created = tables.jobs.create(
        {
            JobAttr.JOB_ID: job_id,
            JobAttr.OWNER: owner,
            JobAttr.DEFINITION: definition.name,
            JobAttr.QUERY: query.to_dict(),
            JobAttr.PARAMETERS: params,
            JobAttr.REDUCER: definition.reducer,
            JobAttr.RESULT_PREFIX: definition.result_prefix,
            JobAttr.RESULT_SUFFIX: definition.result_suffix,
            JobAttr.STATE: JobState.OPEN.value,
            JobAttr.SUBMITTED_AT: stamp,
            JobAttr.FILE_COUNT: len(matched),
            JobAttr.TOTAL_BYTES: estimate.total_bytes,
            **({JobAttr.DEADLINE: iso_seconds(deadline)} if deadline is not None else {}),
        }
    )
    if not created:
        raise BadInput(f"job id {job_id!r} is already taken")
    log.info(
        "job %s submitted by %s: %s over %d files (%d bytes, %d readable)",
        job_id,
        owner,
        definition.name,
        estimate.file_count,
        estimate.total_bytes,
        estimate.readable_files,
    )
    return Submission(job_id, owner, definition.name, query, params, estimate, deadline)


@dataclass(frozen=True)
class Cancellation:
    job_id: str
    cancelled: bool
    released_files: tuple[str, ...]  # files only this job needed: no longer restored or renewed

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "cancelled": self.cancelled, "released_files": list(self.released_files)}


def cancel(tables: Tables, job_id: str, *, now: float | None = None) -> Cancellation:
    now = time.time() if now is None else now
    loaded = load(tables, job_ids=[job_id])
    action, only_mine = planner.cancel_job(loaded.snapshot, job_id, now)
    done = tables.jobs.transition(action.job_id, JobState.OPEN, JobState.CANCELLED, now)
    if not done:
        raise BadInput(f"job {job_id!r} is not open (it completed or was cancelled meanwhile)")
    log.info("job %s cancelled; %d files no longer needed by anyone", job_id, len(only_mine))
    return Cancellation(job_id, True, only_mine)
