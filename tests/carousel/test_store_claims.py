"""Every conditional write of `carousel/store.py`, against moto's DynamoDB in process (`fake_aws`).

One table of cases drives `test_conditional_write`: each seeds one item (or none), makes one write, and
checks

- a winner (its condition holds): the write returns True and the whole item afterwards is exactly the
  expected one (every attribute, nothing more);
- a loser (its condition fails, including a stale `expected_version` one behind the item's): the write
  returns False and the raw item (DynamoDB's typed JSON) is the same before and after, byte for byte,
  or still absent (an UpdateItem without its condition would create the item).

Dropping or loosening any condition makes a loser case fail (the item changes, or appears); boundary
cases (a lease ending exactly now, an index request exactly `retry_s` old, redrives at the limit) pin
the comparisons. `test_every_conditional_write_has_its_cases` keeps the table complete: a new write
in store.py without winner and loser cases (and a stale-version case if it checks a version) fails.

Races: two (or three) claimants of the same claim, each reading the item and then writing, in every
interleaving: exactly one wins. DynamoDB checks a condition and writes atomically (the embedded
environment's moto server is patched to do so too: `workbench.local.moto_main`); what these tests
check is that the conditions make every interleaving of read-then-write safe.
"""

from __future__ import annotations

import inspect
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carousel import store
from carousel.store import CarouselFiles, JobFilesTable, JobsTable, Lease, Tables, iso_seconds
from datacarousel import files_table, naming
from datacarousel.aws import Service
from datacarousel.contract import (
    FILES_TABLE,
    JOB_FILES_TABLE,
    JOBS_TABLE,
    LAUNCH_LEASE_ID,
    FileAttr,
    FileState,
    JobAttr,
    JobFileAttr,
    JobFileState,
    JobState,
    TableSchema,
)
from datacarousel.files_table import deserialize, serialize

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW_MS = int(NOW * 1000)
NOW_UTC = datetime.fromtimestamp(NOW, tz=UTC)
HOUR, DAY = 3600.0, 86_400.0
T = iso_seconds(NOW)
EARLIER = iso_seconds(NOW - 2 * DAY)
ORBIT = 63501  # no item of this test reaches another test's tables (moto is per test), but keep it apart
BF = naming.BasicFusionName.for_orbit(ORBIT)
F = BF.file_name
J = "job-20260101T000000Z-0123abcd"
LIMIT = 3  # claim_index_redrive's limit in the cases
RETRY_S = 600.0  # claim_index_request's retry_s in the cases
LONG = "x" * 2500  # an error longer than the 2,000 characters kept


# --- items -----------------------------------------------------------------------------------


def file_item(state: FileState | None, version: int | None = None, /, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        FileAttr.FILE_NAME: F,
        FileAttr.ORBIT: ORBIT,
        FileAttr.YEAR_MONTH: BF.year_month,
        FileAttr.MISR_PATH: BF.misr_path,
        FileAttr.SIZE: 31_000_000_000,
        FileAttr.BUCKET: "archive",
        FileAttr.KEY: naming.archive_key(BF),
        FileAttr.UPDATED_AT: EARLIER,
    }
    if state is not None:
        item[FileAttr.STATE] = state.value
    if version is not None:
        item[FileAttr.STATE_VERSION] = version
    item.update(extra)
    return item


def indexed_item(version: int = 4, state: FileState = FileState.INDEXED, **extra: Any) -> dict[str, Any]:
    """An INDEXED file (or `state`) with every attribute `invalidate` drops, and some it keeps."""
    return file_item(
        state,
        version,
        **{
            FileAttr.DOMAIN: naming.hsds_domain("/home/test/basicfusion/", BF),
            FileAttr.ETAG: "etag-1",
            FileAttr.INDEXED_AT: EARLIER,
            FileAttr.RESTORE_EXPIRY: iso_seconds(NOW + DAY),
            FileAttr.INDEX_REQUESTED_AT: EARLIER,
            FileAttr.RESTORE_CHECKED_AT: EARLIER,
            FileAttr.RESTORE_REQUESTED_AT: EARLIER,
            FileAttr.RESTORE_COUNT: 1,
            **extra,
        },
    )


def job_item(state: JobState = JobState.OPEN, /, **extra: Any) -> dict[str, Any]:
    return {
        JobAttr.JOB_ID: J,
        JobAttr.OWNER: "alice",
        JobAttr.DEFINITION: "ComputeRadiance",
        JobAttr.QUERY: {"years": [2014], "months": [6]},
        JobAttr.STATE: state.value,
        JobAttr.SUBMITTED_AT: EARLIER,
        JobAttr.FILE_COUNT: 2,
        **extra,
    }


def job_file_item(state: JobFileState, /, **extra: Any) -> dict[str, Any]:
    return {
        JobFileAttr.JOB_ID: J,
        JobFileAttr.FILE_NAME: F,
        JobFileAttr.STATE: state.value,
        JobFileAttr.ORBIT: ORBIT,
        JobFileAttr.SIZE: 31_000_000_000,
        JobFileAttr.UPDATED_AT: EARLIER,
        **extra,
    }


def lease_item(holder: str, until_ms: int) -> dict[str, Any]:
    return {JobAttr.JOB_ID: LAUNCH_LEASE_ID, JobAttr.LEASE_HOLDER: holder, JobAttr.LEASE_UNTIL_MS: until_ms}


def changed(item: Mapping[str, Any], remove: Sequence[str] = (), **values: Any) -> dict[str, Any]:
    """`item` with `values` set and `remove` gone: what a winning write leaves."""
    out = {k: v for k, v in item.items() if k not in remove}
    out.update(values)
    return out


# --- the cases -------------------------------------------------------------------------------

Write = Callable[[Tables], Any]


@dataclass(frozen=True)
class Case:
    write: str  # "Class.method" of store.py
    path: str  # what the case shows
    schema: TableSchema
    key: Mapping[str, Any]
    before: Mapping[str, Any] | None  # the item seeded (None: no item)
    call: Write
    after: Mapping[str, Any] | None = None  # the whole item after a winning write; None: the write loses
    returns: Any = True  # what a winning write returns (a loser returns False, or None for claim_redrive)

    @property
    def wins(self) -> bool:
        return self.after is not None

    @property
    def id(self) -> str:
        return f"{self.write}: {self.path}"


FILE_KEY = {FileAttr.FILE_NAME: F}
JOB_KEY = {JobAttr.JOB_ID: J}
LEASE_KEY = {JobAttr.JOB_ID: LAUNCH_LEASE_ID}
JOB_FILE_KEY = {JobFileAttr.JOB_ID: J, JobFileAttr.FILE_NAME: F}
STALE = "stale version"  # `path` of the cases whose expected_version is one behind the item's


def files_case(write: str, path: str, before: Mapping[str, Any] | None, call: Write, after: Any = None) -> Case:
    return Case(f"CarouselFiles.{write}", path, FILES_TABLE, FILE_KEY, before, call, after)


def jobs_case(write: str, path: str, before: Mapping[str, Any] | None, call: Write, after: Any = None) -> Case:
    key = LEASE_KEY if write.startswith("Lease") and (before is None or before.get(JobAttr.JOB_ID) != J) else JOB_KEY
    return Case(write if "." in write else f"JobsTable.{write}", path, JOBS_TABLE, key, before, call, after)


def job_files_case(
    write: str, path: str, before: Mapping[str, Any] | None, call: Write, after: Any = None, *, returns: Any = True
) -> Case:
    return Case(f"JobFilesTable.{write}", path, JOB_FILES_TABLE, JOB_FILE_KEY, before, call, after, returns)


def cf(t: Tables) -> CarouselFiles:
    return t.carousel_files


def launch(t: Tables) -> Lease:
    return store.LaunchLease(t.jobs)


def _set_state_cases() -> Iterator[Case]:
    restoring = file_item(
        FileState.RESTORING, 3, **{FileAttr.RESTORE_COUNT: 2, FileAttr.RESTORE_EXPIRY: iso_seconds(NOW - DAY)}
    )
    yield files_case(
        "set_state",
        "winner: RESTORING -> RESTORED with an expiry",
        restoring,
        lambda t: cf(t).set_state(F, 3, FileState.RESTORED, NOW + DAY, NOW),
        changed(restoring, state="RESTORED", state_version=4, restore_expiry=iso_seconds(NOW + DAY), updated_at=T),
    )
    yield files_case(
        "set_state",
        "winner: back to ARCHIVED, expiry removed, the restore uncounted",
        restoring,
        lambda t: cf(t).set_state(F, 3, FileState.ARCHIVED, None, NOW, uncount_restore=True),
        changed(restoring, [FileAttr.RESTORE_EXPIRY], state="ARCHIVED", state_version=4, restore_count=1, updated_at=T),
    )
    never = file_item(FileState.ARCHIVED)  # inventory's item: no state_version yet
    yield files_case(
        "set_state",
        "winner: version 0 matches an item that never had one",
        never,
        lambda t: cf(t).set_state(F, 0, FileState.RESTORING, None, NOW, uncount_restore=True),
        changed(never, state="RESTORING", state_version=1, restore_count=0, updated_at=T),
    )
    yield files_case(
        "set_state",
        "loser: no item (not created)",
        None,
        lambda t: cf(t).set_state(F, 0, FileState.RESTORED, None, NOW),
    )
    yield files_case("set_state", STALE, restoring, lambda t: cf(t).set_state(F, 2, FileState.RESTORED, NOW + DAY, NOW))
    yield files_case(
        "set_state",
        STALE + " (0 against 1)",
        file_item(FileState.RESTORING, 1),
        lambda t: cf(t).set_state(F, 0, FileState.RESTORED, NOW + DAY, NOW),
    )
    yield files_case(
        "set_state", "loser: version ahead", restoring, lambda t: cf(t).set_state(F, 4, FileState.RESTORED, None, NOW)
    )


def _claim_restore_cases() -> Iterator[Case]:
    archived = file_item(
        FileState.ARCHIVED,
        2,
        **{
            FileAttr.RESTORE_COUNT: 1,
            FileAttr.RESTORE_EXPIRY: EARLIER,
            FileAttr.RESTORE_CHECKED_AT: EARLIER,
            FileAttr.RESTORE_REQUESTED_AT: EARLIER,
        },
    )
    yield files_case(
        "claim_restore",
        "winner: ARCHIVED at the version read",
        archived,
        lambda t: cf(t).claim_restore(F, 2, NOW),
        changed(
            archived,
            [FileAttr.RESTORE_EXPIRY, FileAttr.RESTORE_CHECKED_AT],
            state="RESTORING",
            state_version=3,
            restore_count=2,
            restore_requested_at=T,
            updated_at=T,
        ),
    )
    never = file_item(FileState.ARCHIVED)
    yield files_case(
        "claim_restore",
        "winner: a never-restored item (no version, no count)",
        never,
        lambda t: cf(t).claim_restore(F, 0, NOW),
        changed(never, state="RESTORING", state_version=1, restore_count=1, restore_requested_at=T, updated_at=T),
    )
    for state in (FileState.RESTORING, FileState.RESTORED, FileState.INDEXED, FileState.FAILED):
        yield files_case(
            "claim_restore",
            f"loser: {state.value} at the version read",
            changed(archived, state=state.value),
            lambda t: cf(t).claim_restore(F, 2, NOW),
        )
    yield files_case("claim_restore", "loser: no item (not created)", None, lambda t: cf(t).claim_restore(F, 0, NOW))
    yield files_case(
        "claim_restore", STALE, changed(archived, state_version=3), lambda t: cf(t).claim_restore(F, 2, NOW)
    )
    yield files_case(
        "claim_restore",
        STALE + " (0 against 1)",
        file_item(FileState.ARCHIVED, 1),
        lambda t: cf(t).claim_restore(F, 0, NOW),
    )


def _unclaim_restore_cases() -> Iterator[Case]:
    restoring = file_item(FileState.RESTORING, 3, **{FileAttr.RESTORE_COUNT: 2, FileAttr.RESTORE_REQUESTED_AT: T})
    yield files_case(
        "unclaim_restore",
        "winner: RESTORING at the claimed version -> ARCHIVED, uncounted",
        restoring,
        lambda t: cf(t).unclaim_restore(F, 3, NOW),
        changed(restoring, state="ARCHIVED", state_version=4, restore_count=1, updated_at=T),
    )
    for state in (FileState.ARCHIVED, FileState.RESTORED):
        yield files_case(
            "unclaim_restore",
            f"loser: {state.value} at the claimed version",
            changed(restoring, state=state.value),
            lambda t: cf(t).unclaim_restore(F, 3, NOW),
        )
    yield files_case(
        "unclaim_restore", "loser: no item (not created)", None, lambda t: cf(t).unclaim_restore(F, 0, NOW)
    )
    yield files_case(
        "unclaim_restore", STALE, changed(restoring, state_version=4), lambda t: cf(t).unclaim_restore(F, 3, NOW)
    )


def _set_lease_cases() -> Iterator[Case]:
    for state in (FileState.RESTORED, FileState.INDEXED):
        item = file_item(state, 5, **{FileAttr.RESTORE_EXPIRY: iso_seconds(NOW + HOUR)})
        yield files_case(
            "set_lease",
            f"winner: {state.value} (version untouched)",
            item,
            lambda t: cf(t).set_lease(F, NOW + 3 * DAY, NOW),
            changed(item, restore_expiry=iso_seconds(NOW + 3 * DAY), updated_at=T),
        )
    for state in (FileState.ARCHIVED, FileState.RESTORING, FileState.FAILED):
        yield files_case(
            "set_lease",
            f"loser: {state.value}",
            file_item(state, 5, **{FileAttr.RESTORE_EXPIRY: iso_seconds(NOW + HOUR)}),
            lambda t: cf(t).set_lease(F, NOW + 3 * DAY, NOW),
        )
    yield files_case("set_lease", "loser: no item (not created)", None, lambda t: cf(t).set_lease(F, NOW + DAY, NOW))


def _mark_probed_cases() -> Iterator[Case]:
    item = file_item(FileState.RESTORING, 2, **{FileAttr.RESTORE_CHECKED_AT: EARLIER})
    yield files_case(
        "mark_probed",
        "winner: any existing item (version untouched)",
        item,
        lambda t: cf(t).mark_probed(F, NOW),
        changed(item, restore_checked_at=T),
    )
    yield files_case("mark_probed", "loser: no item (not created)", None, lambda t: cf(t).mark_probed(F, NOW))


def _claim_index_request_cases() -> Iterator[Case]:
    def claim(t: Tables) -> bool:
        return cf(t).claim_index_request(F, NOW, RETRY_S)

    for path, at in (
        ("never requested", None),
        ("last request exactly retry_s ago", iso_seconds(NOW - RETRY_S)),
        ("last request long ago", EARLIER),
    ):
        item = file_item(FileState.RESTORED, 2, **({FileAttr.INDEX_REQUESTED_AT: at} if at else {}))
        yield files_case("claim_index_request", f"winner: RESTORED, {path}", item, claim, changed(item, **{
            FileAttr.INDEX_REQUESTED_AT: T
        }))  # fmt: skip
    yield files_case(
        "claim_index_request",
        "loser: RESTORED, last request retry_s - 1 s ago",
        file_item(FileState.RESTORED, 2, **{FileAttr.INDEX_REQUESTED_AT: iso_seconds(NOW - RETRY_S + 1)}),
        claim,
    )
    for state in (FileState.ARCHIVED, FileState.RESTORING, FileState.INDEXED, FileState.FAILED):
        yield files_case("claim_index_request", f"loser: {state.value}", file_item(state, 2), claim)
    yield files_case("claim_index_request", "loser: no item (not created)", None, claim)


def _invalidate_cases() -> Iterator[Case]:
    dropped = [FileAttr.DOMAIN, FileAttr.RESTORE_EXPIRY, FileAttr.INDEX_REQUESTED_AT, FileAttr.RESTORE_CHECKED_AT]
    for state in (FileState.INDEXED, FileState.RESTORED):
        item = indexed_item(4, state)
        yield files_case(
            "invalidate",
            f"winner: {state.value} at the version read, domain forgotten",
            item,
            lambda t: cf(t).invalidate(F, 4, NOW),
            changed(item, dropped, state="ARCHIVED", state_version=5, updated_at=T),
        )
    for state in (FileState.ARCHIVED, FileState.RESTORING, FileState.FAILED):
        yield files_case(
            "invalidate",
            f"loser: {state.value} at the version read",
            indexed_item(4, state),
            lambda t: cf(t).invalidate(F, 4, NOW),
        )
    yield files_case("invalidate", "loser: no item (not created)", None, lambda t: cf(t).invalidate(F, 0, NOW))
    yield files_case("invalidate", STALE, indexed_item(4), lambda t: cf(t).invalidate(F, 3, NOW))
    yield files_case("invalidate", STALE + " (0 against 1)", indexed_item(1), lambda t: cf(t).invalidate(F, 0, NOW))


def _claim_index_redrive_cases() -> Iterator[Case]:
    def claim(t: Tables) -> bool:
        return cf(t).claim_index_redrive(F, NOW, LIMIT)

    never = file_item(FileState.RESTORED, 2)
    yield files_case(
        "claim_index_redrive", "winner: never redriven", never, claim, changed(never, index_redrives=1, updated_at=T)
    )
    below = file_item(FileState.RESTORED, 2, **{FileAttr.INDEX_REDRIVES: LIMIT - 1})
    yield files_case(
        "claim_index_redrive",
        "winner: the last redrive below the limit",
        below,
        claim,
        changed(below, index_redrives=LIMIT, updated_at=T),
    )
    for used in (LIMIT, LIMIT + 1):
        yield files_case(
            "claim_index_redrive",
            f"loser: {used} redrives used of {LIMIT}",
            file_item(FileState.RESTORED, 2, **{FileAttr.INDEX_REDRIVES: used}),
            claim,
        )
    yield files_case("claim_index_redrive", "loser: no item (not created)", None, claim)


def _fail_cases() -> Iterator[Case]:
    for state in (FileState.ARCHIVED, FileState.RESTORING, FileState.RESTORED):
        item = file_item(state, 2)
        yield files_case(
            "fail",
            f"winner: {state.value}",
            item,
            lambda t: cf(t).fail(F, "not HDF5", NOW),
            changed(item, state="FAILED", error="not HDF5", state_version=3, updated_at=T),
        )
    item = file_item(FileState.RESTORED)
    yield files_case(
        "fail",
        "winner: the reason cut to 2,000 characters, version from none",
        item,
        lambda t: cf(t).fail(F, LONG, NOW),
        changed(item, state="FAILED", error=LONG[:2000], state_version=1, updated_at=T),
    )
    for state in (FileState.INDEXED, FileState.FAILED):
        yield files_case(
            "fail",
            f"loser: {state.value}",
            file_item(state, 2, **{FileAttr.ERROR: "earlier"}),
            lambda t: cf(t).fail(F, "x", NOW),
        )
    yield files_case("fail", "loser: no item (not created)", None, lambda t: cf(t).fail(F, "x", NOW))


def _jobs_cases() -> Iterator[Case]:
    new = job_item()
    yield jobs_case("create", "winner: a fresh id", None, lambda t: t.jobs.create(new), new)
    yield jobs_case(
        "create", "loser: the id is taken", job_item(owner="bob"), lambda t: t.jobs.create(job_item(owner="mallory"))
    )
    opened = job_item()
    yield jobs_case(
        "transition",
        "winner: OPEN -> COMPLETE sets completed_at",
        opened,
        lambda t: t.jobs.transition(J, JobState.OPEN, JobState.COMPLETE, NOW, done_files=2, failed_files=0),
        changed(opened, state="COMPLETE", completed_at=T, done_files=2, failed_files=0),
    )
    yield jobs_case(
        "transition",
        "winner: OPEN -> CANCELLED sets completed_at",
        opened,
        lambda t: t.jobs.transition(J, JobState.OPEN, JobState.CANCELLED, NOW),
        changed(opened, state="CANCELLED", completed_at=T),
    )
    complete = job_item(JobState.COMPLETE, completed_at=EARLIER)
    yield jobs_case(
        "transition",
        "winner: COMPLETE -> OPEN (reopened) leaves completed_at",
        complete,
        lambda t: t.jobs.transition(J, JobState.COMPLETE, JobState.OPEN, NOW, reopened_at=T),
        changed(complete, state="OPEN", reopened_at=T),
    )
    for state in (JobState.COMPLETE, JobState.CANCELLED):
        yield jobs_case(
            "transition",
            f"loser: {state.value}, not OPEN",
            job_item(state, completed_at=EARLIER),
            lambda t: t.jobs.transition(J, JobState.OPEN, JobState.COMPLETE, NOW, done_files=1),
        )
    yield jobs_case(
        "transition",
        "loser: no job (not created)",
        None,
        lambda t: t.jobs.transition(J, JobState.OPEN, JobState.CANCELLED, NOW),
    )
    yield jobs_case(
        "set_open",
        "winner: OPEN",
        opened,
        lambda t: t.jobs.set_open(J, reduce_requested_at=T),
        changed(opened, reduce_requested_at=T),
    )
    for state in (JobState.COMPLETE, JobState.CANCELLED):
        yield jobs_case(
            "set_open",
            f"loser: {state.value}",
            job_item(state, completed_at=EARLIER),
            lambda t: t.jobs.set_open(J, reduce_requested_at=T),
        )
    yield jobs_case(
        "set_open", "loser: no job (not created)", None, lambda t: t.jobs.set_open(J, reduce_requested_at=T)
    )


def _lease_cases() -> Iterator[Case]:
    ttl_s = 60.0
    until = NOW_MS + int(ttl_s * 1000)
    yield jobs_case(
        "Lease.acquire",
        "winner: no lease item yet",
        None,
        lambda t: launch(t).acquire("a", NOW, ttl_s),
        lease_item("a", until),
    )
    yield jobs_case(
        "Lease.acquire",
        "winner: another holder's lease ended 1 ms ago",
        lease_item("b", NOW_MS - 1),
        lambda t: launch(t).acquire("a", NOW, ttl_s),
        lease_item("a", until),
    )
    yield jobs_case(
        "Lease.acquire",
        "winner: the holder renews its own lease",
        lease_item("a", NOW_MS + 5_000),
        lambda t: launch(t).acquire("a", NOW, ttl_s),
        lease_item("a", until),
    )
    yield jobs_case(
        "Lease.acquire",
        "loser: another holder's lease ends exactly now",
        lease_item("b", NOW_MS),
        lambda t: launch(t).acquire("a", NOW, ttl_s),
    )
    yield jobs_case(
        "Lease.acquire",
        "loser: another holder's lease runs",
        lease_item("b", NOW_MS + 5_000),
        lambda t: launch(t).acquire("a", NOW, ttl_s),
    )
    job = job_item()
    yield jobs_case(
        "Lease.acquire",
        "winner: a lease on a job's item leaves the job's attributes",
        job,
        lambda t: Lease(t.jobs, J).acquire("a", NOW, ttl_s),
        changed(job, lease_holder="a", lease_until_ms=until),
    )
    yield jobs_case(
        "Lease.release",
        "winner: the holder",
        lease_item("a", NOW_MS + 5_000),
        lambda t: launch(t).release("a"),
        {JobAttr.JOB_ID: LAUNCH_LEASE_ID},
    )
    yield jobs_case(
        "Lease.release", "loser: another holder", lease_item("b", NOW_MS + 5_000), lambda t: launch(t).release("a")
    )
    yield jobs_case(
        "Lease.release",
        "loser: another holder, lease ended",
        lease_item("b", NOW_MS - 1),
        lambda t: launch(t).release("a"),
    )
    yield jobs_case("Lease.release", "loser: no lease item (not created)", None, lambda t: launch(t).release("a"))


def _job_files_cases() -> Iterator[Case]:
    waiting = job_file_item(JobFileState.WAITING, **{JobFileAttr.ATTEMPTS: 0})
    yield job_files_case(
        "claim_release",
        "winner: WAITING -> QUEUED, marked pending",
        waiting,
        lambda t: t.job_files.claim_release(J, F, NOW),
        changed(waiting, state="QUEUED", attempts=1, release_pending_at=T, updated_at=T),
    )
    bare = job_file_item(JobFileState.WAITING, **{JobFileAttr.ERROR: "earlier"})
    yield job_files_case(
        "claim_release",
        "winner: attempts counted from none",
        bare,
        lambda t: t.job_files.claim_release(J, F, NOW),
        changed(bare, state="QUEUED", attempts=1, release_pending_at=T, updated_at=T),
    )
    for state in (JobFileState.QUEUED, JobFileState.RUNNING, JobFileState.DONE, JobFileState.FAILED):
        yield job_files_case(
            "claim_release",
            f"loser: {state.value}",
            job_file_item(state, **{JobFileAttr.ATTEMPTS: 1, JobFileAttr.RELEASE_PENDING_AT: EARLIER}),
            lambda t: t.job_files.claim_release(J, F, NOW),
        )
    yield job_files_case(
        "claim_release", "loser: no job-file (not created)", None, lambda t: t.job_files.claim_release(J, F, NOW)
    )
    pending = job_file_item(JobFileState.QUEUED, **{JobFileAttr.ATTEMPTS: 1, JobFileAttr.RELEASE_PENDING_AT: T})
    yield job_files_case(
        "release_sent",
        "winner: the pending mark goes",
        pending,
        lambda t: t.job_files.release_sent(J, F),
        changed(pending, [JobFileAttr.RELEASE_PENDING_AT]),
    )
    yield job_files_case(
        "release_sent", "loser: no job-file (not created)", None, lambda t: t.job_files.release_sent(J, F)
    )
    yield job_files_case(
        "transition",
        "winner: QUEUED -> RUNNING clears the pending mark",
        pending,
        lambda t: t.job_files.transition(J, F, [JobFileState.QUEUED], JobFileState.RUNNING, NOW),
        changed(pending, [JobFileAttr.RELEASE_PENDING_AT], state="RUNNING", updated_at=T),
    )
    running = job_file_item(JobFileState.RUNNING, **{JobFileAttr.ATTEMPTS: 1})
    yield job_files_case(
        "transition",
        "winner: RUNNING -> DONE with its result",
        running,
        lambda t: t.job_files.transition(
            J, F, [JobFileState.QUEUED, JobFileState.RUNNING], JobFileState.DONE, NOW, result_key="results/x.npz"
        ),
        changed(running, state="DONE", result_key="results/x.npz", updated_at=T),
    )
    yield job_files_case(
        "transition",
        "winner: RUNNING -> FAILED, the reason cut to 2,000 characters",
        running,
        lambda t: t.job_files.transition(J, F, [JobFileState.RUNNING], JobFileState.FAILED, NOW, error=LONG),
        changed(running, state="FAILED", error=LONG[:2000], updated_at=T),
    )
    failed = job_file_item(JobFileState.FAILED, **{JobFileAttr.ATTEMPTS: 2, JobFileAttr.RELEASE_PENDING_AT: EARLIER})
    yield job_files_case(
        "transition",
        "winner: FAILED -> QUEUED keeps the pending mark",
        failed,
        lambda t: t.job_files.transition(J, F, [JobFileState.FAILED], JobFileState.QUEUED, NOW),
        changed(failed, state="QUEUED", updated_at=T),
    )
    for state in (JobFileState.WAITING, JobFileState.DONE, JobFileState.FAILED):
        yield job_files_case(
            "transition",
            f"loser: {state.value}, not QUEUED or RUNNING",
            job_file_item(state, **{JobFileAttr.RELEASE_PENDING_AT: EARLIER}),
            lambda t: t.job_files.transition(
                J, F, [JobFileState.QUEUED, JobFileState.RUNNING], JobFileState.DONE, NOW, result_key="r"
            ),
        )
    yield job_files_case(
        "transition",
        "loser: no job-file (not created)",
        None,
        lambda t: t.job_files.transition(J, F, [JobFileState.WAITING], JobFileState.QUEUED, NOW),
    )


def _retry_and_redrive_cases() -> Iterator[Case]:
    """The writes of `datacarousel retry` and of bounded redrives (reduce requests, work items)."""

    def reduce_redrive(t: Tables) -> bool:
        return t.jobs.claim_reduce_redrive(J, NOW, LIMIT)

    for path, used in (("never redriven", None), ("the last redrive below the limit", LIMIT - 1)):
        job = job_item(**({JobAttr.REDUCE_REDRIVES: used} if used is not None else {}))
        yield jobs_case(
            "claim_reduce_redrive",
            f"winner: OPEN, {path}",
            job,
            reduce_redrive,
            changed(job, reduce_redrives=(used or 0) + 1, reduce_requested_at=T),
        )
    yield jobs_case(
        "claim_reduce_redrive",
        f"loser: OPEN, {LIMIT} redrives used",
        job_item(**{JobAttr.REDUCE_REDRIVES: LIMIT, JobAttr.REDUCE_REQUESTED_AT: EARLIER}),
        reduce_redrive,
    )
    yield jobs_case(
        "claim_reduce_redrive", "loser: COMPLETE", job_item(JobState.COMPLETE, completed_at=EARLIER), reduce_redrive
    )
    yield jobs_case("claim_reduce_redrive", "loser: no job (not created)", None, reduce_redrive)

    ended = {
        JobAttr.COMPLETED_AT: EARLIER,
        JobAttr.ERROR: "2 files failed",
        JobAttr.DONE_FILES: 1,
        JobAttr.FAILED_FILES: 1,
        JobAttr.COMPOSITE_KEY: "results/j/composites/x.npz",
        JobAttr.REDUCE_REQUESTED_AT: EARLIER,
    }
    complete = job_item(JobState.COMPLETE, **ended)
    yield jobs_case(
        "reopen",
        "winner: COMPLETE -> OPEN, its end forgotten",
        complete,
        lambda t: t.jobs.reopen(J, NOW),
        changed(complete, list(ended), state="OPEN", reopened_at=T),
    )
    for job_state in (JobState.OPEN, JobState.CANCELLED):
        yield jobs_case(
            "reopen", f"loser: {job_state.value}", job_item(job_state, **ended), lambda t: t.jobs.reopen(J, NOW)
        )
    yield jobs_case("reopen", "loser: no job (not created)", None, lambda t: t.jobs.reopen(J, NOW))

    reducing = job_item(**{JobAttr.REDUCE_REQUESTED_AT: EARLIER})
    yield jobs_case(
        "restart_reduction",
        "winner: OPEN, the reduce request forgotten",
        reducing,
        lambda t: t.jobs.restart_reduction(J, NOW),
        changed(reducing, [JobAttr.REDUCE_REQUESTED_AT], reopened_at=T),
    )
    for job_state in (JobState.COMPLETE, JobState.CANCELLED):
        yield jobs_case(
            "restart_reduction",
            f"loser: {job_state.value}",
            job_item(job_state, **{JobAttr.REDUCE_REQUESTED_AT: EARLIER}),
            lambda t: t.jobs.restart_reduction(J, NOW),
        )
    yield jobs_case(
        "restart_reduction", "loser: no job (not created)", None, lambda t: t.jobs.restart_reduction(J, NOW)
    )

    def work_redrive(t: Tables) -> int | None:
        return t.job_files.claim_redrive(J, F, NOW, LIMIT)

    for state, used in ((JobFileState.QUEUED, None), (JobFileState.RUNNING, LIMIT - 1)):
        item = job_file_item(state, **({JobFileAttr.REDRIVES: used} if used is not None else {}))
        count = (used or 0) + 1
        yield job_files_case(
            "claim_redrive",
            f"winner: {state.value}, {count - 1} redrives used",
            item,
            work_redrive,
            changed(item, redrives=count, updated_at=T),
            returns=count,
        )
    yield job_files_case(
        "claim_redrive",
        f"loser: RUNNING, {LIMIT} redrives used",
        job_file_item(JobFileState.RUNNING, **{JobFileAttr.REDRIVES: LIMIT}),
        work_redrive,
    )
    for state in (JobFileState.WAITING, JobFileState.DONE, JobFileState.FAILED):
        yield job_files_case("claim_redrive", f"loser: {state.value}", job_file_item(state), work_redrive)
    yield job_files_case("claim_redrive", "loser: no job-file (not created)", None, work_redrive)

    failed = job_file_item(
        JobFileState.FAILED,
        **{
            JobFileAttr.ATTEMPTS: 2,
            JobFileAttr.ERROR: "bad file",
            JobFileAttr.REDRIVES: 1,
            JobFileAttr.RELEASE_PENDING_AT: EARLIER,
        },
    )
    forgotten = [JobFileAttr.ERROR, JobFileAttr.REDRIVES, JobFileAttr.RELEASE_PENDING_AT]
    yield job_files_case(
        "retry_failed",
        "winner: FAILED -> WAITING, its reason forgotten",
        failed,
        lambda t: t.job_files.retry_failed(J, F, NOW),
        changed(failed, forgotten, state="WAITING", updated_at=T),
    )
    for state in (JobFileState.WAITING, JobFileState.QUEUED, JobFileState.DONE):
        yield job_files_case(
            "retry_failed",
            f"loser: {state.value}",
            changed(failed, state=state.value),
            lambda t: t.job_files.retry_failed(J, F, NOW),
        )
    yield job_files_case(
        "retry_failed", "loser: no job-file (not created)", None, lambda t: t.job_files.retry_failed(J, F, NOW)
    )

    dropped = [
        FileAttr.ERROR,
        FileAttr.INDEX_REDRIVES,
        FileAttr.DOMAIN,
        FileAttr.RESTORE_EXPIRY,
        FileAttr.INDEX_REQUESTED_AT,
        FileAttr.RESTORE_CHECKED_AT,
    ]
    bad = indexed_item(3, FileState.FAILED, **{FileAttr.ERROR: "not HDF5", FileAttr.INDEX_REDRIVES: 2})
    yield files_case(
        "retry_failed",
        "winner: FAILED -> ARCHIVED, every trace of the last restore and index forgotten",
        bad,
        lambda t: cf(t).retry_failed(F, NOW),
        changed(bad, dropped, state="ARCHIVED", state_version=4, updated_at=T),
    )
    for file_state in (FileState.ARCHIVED, FileState.RESTORED, FileState.INDEXED):
        yield files_case(
            "retry_failed",
            f"loser: {file_state.value}",
            changed(bad, state=file_state.value),
            lambda t: cf(t).retry_failed(F, NOW),
        )
    yield files_case("retry_failed", "loser: no item (not created)", None, lambda t: cf(t).retry_failed(F, NOW))


CASES: list[Case] = [
    *_set_state_cases(),
    *_claim_restore_cases(),
    *_unclaim_restore_cases(),
    *_set_lease_cases(),
    *_mark_probed_cases(),
    *_claim_index_request_cases(),
    *_invalidate_cases(),
    *_claim_index_redrive_cases(),
    *_fail_cases(),
    *_jobs_cases(),
    *_lease_cases(),
    *_job_files_cases(),
    *_retry_and_redrive_cases(),
]


# --- fixtures and helpers ----------------------------------------------------------------------

_CLIENTS: dict[tuple[Any, ...], Any] = {}


@pytest.fixture(autouse=True)
def reused_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fake_aws` makes three boto3 clients per test, about 0.1 s each: most of this file's time. moto
    intercepts the requests of clients made at any time, so each is made once and reused (every test
    still gets fresh, empty moto backends from `fake_aws`)."""
    make = boto3.client

    def client(service: Service, *args: Any, **kwargs: Any) -> Any:
        key = (service, args, tuple(sorted(kwargs.items())))
        if key not in _CLIENTS:
            _CLIENTS[key] = make(service, *args, **kwargs)
        return _CLIENTS[key]

    monkeypatch.setattr(boto3, "client", client)


def make_tables(fake_aws: Any, *schemas: TableSchema) -> Tables:
    """The store's tables, of which only `schemas` are created in moto (each costs some 25 ms)."""
    for schema in schemas:
        fake_aws.table(schema)
    return Tables.from_names(fake_aws.ddb, FILES_TABLE.table_name, JOBS_TABLE.table_name, JOB_FILES_TABLE.table_name)


@pytest.fixture()
def tables(fake_aws: Any) -> Tables:
    return make_tables(fake_aws, FILES_TABLE, JOBS_TABLE, JOB_FILES_TABLE)


def put(ddb: Any, schema: TableSchema, item: Mapping[str, Any]) -> None:
    ddb.put_item(TableName=schema.table_name, Item={k: serialize(v) for k, v in item.items()})


def raw(ddb: Any, schema: TableSchema, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The item as DynamoDB stores it (typed JSON), read consistently; None when absent."""
    response = ddb.get_item(
        TableName=schema.table_name, Key={k: serialize(v) for k, v in key.items()}, ConsistentRead=True
    )
    item = response.get("Item")
    return dict(item) if item else None


def remove(ddb: Any, schema: TableSchema, key: Mapping[str, Any]) -> None:
    ddb.delete_item(TableName=schema.table_name, Key={k: serialize(v) for k, v in key.items()})


# --- every conditional write, winner and loser ---------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conditional_write(fake_aws: Any, case: Case) -> None:
    tables = make_tables(fake_aws, case.schema)
    ddb = tables.files.ddb
    if case.before is not None:
        put(ddb, case.schema, case.before)
    before = raw(ddb, case.schema, case.key)
    result = case.call(tables)
    after = raw(ddb, case.schema, case.key)
    if case.wins:
        assert result == case.returns and result not in (False, None)
        assert after is not None and deserialize(after) == case.after
    else:
        assert result is (None if case.write == "JobFilesTable.claim_redrive" else False)
        assert after == before, "a refused write changed (or created) the item"


# Store methods that write through a conditional UpdateItem / PutItem (found in their source).
_WRITE_CALL = re.compile(r"\b(update|_update|put_item|update_item)\(")
_CLASSES: tuple[type, ...] = (JobsTable, Lease, JobFilesTable, CarouselFiles)


def _conditional_writes() -> dict[str, str]:
    found: dict[str, str] = {}
    for cls in _CLASSES:
        for name, member in vars(cls).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            source = inspect.getsource(member)
            if _WRITE_CALL.search(source):
                found[f"{cls.__name__}.{name}"] = source
    return found


def test_every_conditional_write_has_its_cases() -> None:
    writes = _conditional_writes()
    assert len(writes) >= 17, sorted(writes)  # the detector still finds (at least) the 17
    covered = {c.write for c in CASES}
    assert covered == set(writes), f"without cases: {set(writes) - covered}; unknown: {covered - set(writes)}"
    for write, source in writes.items():
        paths = [c for c in CASES if c.write == write]
        assert any(c.wins for c in paths), f"{write}: no winner case"
        assert any(not c.wins for c in paths), f"{write}: no loser case"
        if "version_is(" in source:
            assert any(c.path.startswith(STALE) for c in paths), f"{write}: checks a version but has no stale case"


# --- batch_put: unconditional puts -----------------------------------------------------------------


def test_batch_put_writes_every_item_exactly_across_batches(tables: Tables) -> None:
    """batch_put is the one unconditional write: new job-files of a fresh job id, 25 a call."""
    items = [
        job_file_item(JobFileState.WAITING, **{JobFileAttr.FILE_NAME: f"f{i:03d}.h5", JobFileAttr.ATTEMPTS: 0})
        for i in range(2 * files_table.BATCH_WRITE_MAX + 3)
    ]
    tables.job_files.put_new(items)
    stored = sorted(tables.job_files.of_job(J), key=lambda i: i[JobFileAttr.FILE_NAME])
    assert stored == items


def test_batch_put_replaces_a_whole_existing_item(tables: Tables) -> None:
    """No condition: a put over an existing key replaces the item (attributes it lacks are gone). Callers
    must hold the keys alone (put_new: a job id nobody else has yet)."""
    old = job_file_item(JobFileState.DONE, **{JobFileAttr.RESULT_KEY: "results/r.npz", JobFileAttr.ATTEMPTS: 1})
    put(tables.job_files.ddb, JOB_FILES_TABLE, old)
    new = job_file_item(JobFileState.WAITING, **{JobFileAttr.ATTEMPTS: 0})
    files_table.batch_put(tables.job_files.ddb, JOB_FILES_TABLE.table_name, [new])
    assert deserialize(raw(tables.job_files.ddb, JOB_FILES_TABLE, JOB_FILE_KEY) or {}) == new


def test_a_submit_refused_for_a_taken_job_id_leaves_that_jobs_files_alone(tables: Tables) -> None:
    from carousel import jobs  # noqa: PLC0415 - only this test needs the submit path
    from carousel.planner import PlannerConfig  # noqa: PLC0415
    from carousel.query import JobQuery  # noqa: PLC0415
    from datacarousel import registry  # noqa: PLC0415
    from datacarousel.errors import BadInput  # noqa: PLC0415

    names = [naming.BasicFusionName.for_orbit(o) for o in (ORBIT, ORBIT + 1)]
    for n in names:
        item = {**file_item(FileState.ARCHIVED), FileAttr.FILE_NAME: n.file_name, FileAttr.ORBIT: n.orbit}
        put(tables.files.ddb, FILES_TABLE, {**item, FileAttr.YEAR_MONTH: n.year_month, FileAttr.MISR_PATH: n.misr_path})
    config = PlannerConfig(window_bytes=10**12, window_files=10)
    definition = registry.get("ComputeRadiance")

    def submit(owner: str, last: int) -> Any:
        query = JobQuery(orbit_min=ORBIT, orbit_max=last)
        return jobs.submit(tables, config, owner=owner, definition=definition, query=query, job_id=J, now=NOW)

    submit("alice", ORBIT)
    assert tables.job_files.transition(J, F, [JobFileState.WAITING], JobFileState.DONE, NOW, result_key="r.npz")
    before = sorted(map(str, tables.job_files.of_job(J)))
    with pytest.raises(BadInput, match="already taken"):
        submit("bob", ORBIT + 1)
    assert sorted(map(str, tables.job_files.of_job(J))) == before


# --- races: claimants that read, then write -------------------------------------------------------


@dataclass
class Claimant:
    """One writer: reads the item (`read`, returning the arguments it will write with), then writes."""

    read: Callable[[], Any]
    write: Callable[[Any], bool]
    seen: Any = None
    won: bool | None = None


def run_interleaving(claimants: Sequence[Claimant], order: Sequence[int]) -> list[bool]:
    """`order`: which claimant takes its next step (read, then write); each index appears twice."""
    steps = [0] * len(claimants)
    for who in order:
        claimant = claimants[who]
        if steps[who] == 0:
            claimant.seen = claimant.read()
        else:
            claimant.won = claimant.write(claimant.seen)
        steps[who] += 1
    assert steps == [2] * len(claimants)
    return [bool(c.won) for c in claimants]


def interleavings(n: int) -> list[tuple[int, ...]]:
    """Every interleaving of `n` claimants' two steps each (6 for two claimants)."""
    return sorted(set(itertools.permutations([i for i in range(n) for _ in range(2)])))


def version_of(tables: Tables) -> int:
    item = tables.files.get(F) or {}
    return int(item.get(FileAttr.STATE_VERSION, 0))


RaceSetup = Callable[[Tables], tuple[list[Claimant], Callable[[list[bool]], None]]]


def race_claim_restore(tables: Tables) -> tuple[list[Claimant], Callable[[list[bool]], None]]:
    """Two carousel steps both see the file ARCHIVED and claim its restore: one RestoreObject."""
    put(tables.files.ddb, FILES_TABLE, file_item(FileState.ARCHIVED, 7, **{FileAttr.RESTORE_COUNT: 1}))

    def claim_at(at: float) -> Callable[[Any], bool]:
        return lambda version: cf(tables).claim_restore(F, version, at)

    claimants = [Claimant(lambda: version_of(tables), claim_at(at)) for at in (NOW, NOW + 1)]

    def check(won: list[bool]) -> None:
        item = tables.files.get(F) or {}
        assert item[FileAttr.STATE] == "RESTORING"
        assert item[FileAttr.STATE_VERSION] == 8 and item[FileAttr.RESTORE_COUNT] == 2, "claimed (and counted) once"
        winner = won.index(True)
        assert item[FileAttr.RESTORE_REQUESTED_AT] == iso_seconds(NOW + winner)

    return claimants, check


def race_launch_lease(tables: Tables) -> tuple[list[Claimant], Callable[[list[bool]], None]]:
    """Two steps both find the launch lease free: one starts workers."""

    def acquire_by(holder: str) -> Callable[[Any], bool]:
        return lambda _seen: launch(tables).acquire(holder, NOW, 60.0)

    claimants = [Claimant(lambda: None, acquire_by(holder)) for holder in ("a", "b")]

    def check(won: list[bool]) -> None:
        item = tables.jobs.get(LAUNCH_LEASE_ID) or {}
        assert item[JobAttr.LEASE_HOLDER] == ("a", "b")[won.index(True)]

    return claimants, check


def race_index_redrive_at_limit(tables: Tables) -> tuple[list[Claimant], Callable[[list[bool]], None]]:
    """Two steps find the same dead-lettered request with one redrive left: it is redriven once."""
    put(tables.files.ddb, FILES_TABLE, file_item(FileState.RESTORED, 2, **{FileAttr.INDEX_REDRIVES: LIMIT - 1}))
    claimants = [Claimant(lambda: None, lambda _seen: cf(tables).claim_index_redrive(F, NOW, LIMIT)) for _ in range(2)]

    def check(_won: list[bool]) -> None:
        assert (tables.files.get(F) or {})[FileAttr.INDEX_REDRIVES] == LIMIT

    return claimants, check


def race_claim_release(tables: Tables) -> tuple[list[Claimant], Callable[[list[bool]], None]]:
    """Two steps release the same waiting job-file: one WorkItem is sent."""
    put(tables.files.ddb, JOB_FILES_TABLE, job_file_item(JobFileState.WAITING, **{JobFileAttr.ATTEMPTS: 0}))
    claimants = [Claimant(lambda: None, lambda _seen: tables.job_files.claim_release(J, F, NOW)) for _ in range(2)]

    def check(_won: list[bool]) -> None:
        item = next(iter(tables.job_files.of_job(J)))
        assert item[JobFileAttr.STATE] == "QUEUED" and item[JobFileAttr.ATTEMPTS] == 1

    return claimants, check


def race_claim_index_request(tables: Tables) -> tuple[list[Claimant], Callable[[list[bool]], None]]:
    """Two steps find the same RESTORED file unrequested: one index request is sent."""
    put(tables.files.ddb, FILES_TABLE, file_item(FileState.RESTORED, 2))
    claimants = [
        Claimant(lambda: None, lambda _seen: cf(tables).claim_index_request(F, NOW, RETRY_S)) for _ in range(2)
    ]

    def check(_won: list[bool]) -> None:
        assert (tables.files.get(F) or {})[FileAttr.INDEX_REQUESTED_AT] == T

    return claimants, check


def race_reduce_redrive_at_limit(tables: Tables) -> tuple[list[Claimant], Callable[[list[bool]], None]]:
    """Two steps find the same job's failed ReduceRequest with one redrive left: it is sent again once."""
    put(tables.jobs.ddb, JOBS_TABLE, job_item(**{JobAttr.REDUCE_REDRIVES: LIMIT - 1}))
    claimants = [Claimant(lambda: None, lambda _seen: tables.jobs.claim_reduce_redrive(J, NOW, LIMIT)) for _ in "ab"]

    def check(_won: list[bool]) -> None:
        assert (tables.jobs.get(J) or {})[JobAttr.REDUCE_REDRIVES] == LIMIT

    return claimants, check


def race_work_redrive_at_limit(tables: Tables) -> tuple[list[Claimant], Callable[[list[bool]], None]]:
    """Two steps find the same job-file's dead-lettered work item with one redrive left: sent again once."""
    put(tables.jobs.ddb, JOB_FILES_TABLE, job_file_item(JobFileState.RUNNING, **{JobFileAttr.REDRIVES: LIMIT - 1}))
    claimants = [
        Claimant(lambda: None, lambda _seen: tables.job_files.claim_redrive(J, F, NOW, LIMIT) is not None) for _ in "ab"
    ]

    def check(_won: list[bool]) -> None:
        assert next(iter(tables.job_files.of_job(J)))[JobFileAttr.REDRIVES] == LIMIT

    return claimants, check


RACES: dict[str, tuple[TableSchema, RaceSetup]] = {
    "claim_restore at one version": (FILES_TABLE, race_claim_restore),
    "launch lease, two holders": (JOBS_TABLE, race_launch_lease),
    "claim_index_redrive at its limit": (FILES_TABLE, race_index_redrive_at_limit),
    "claim_release": (JOB_FILES_TABLE, race_claim_release),
    "claim_index_request": (FILES_TABLE, race_claim_index_request),
    "claim_reduce_redrive at its limit": (JOBS_TABLE, race_reduce_redrive_at_limit),
    "claim_redrive (work item) at its limit": (JOB_FILES_TABLE, race_work_redrive_at_limit),
}


@pytest.mark.parametrize("order", interleavings(2), ids=lambda o: "".join("AB"[i] for i in o))
@pytest.mark.parametrize("race", sorted(RACES))
def test_two_claimants_of_one_claim_exactly_one_wins(fake_aws: Any, race: str, order: tuple[int, ...]) -> None:
    schema, setup = RACES[race]
    claimants, check = setup(make_tables(fake_aws, schema))
    won = run_interleaving(claimants, order)
    assert won.count(True) == 1, f"{race}: {won}"
    check(won)


@given(claimants=st.integers(2, 5), left=st.integers(0, LIMIT), data=st.data())
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_redrives_never_exceed_the_limit_whatever_the_interleaving(
    tables: Tables, claimants: int, left: int, data: st.DataObject
) -> None:
    """n steps redrive one request that has `left` redrives left, interleaved anyhow: min(n, left) win."""
    remove(tables.files.ddb, FILES_TABLE, FILE_KEY)
    put(tables.files.ddb, FILES_TABLE, file_item(FileState.RESTORED, 2, **{FileAttr.INDEX_REDRIVES: LIMIT - left}))
    order = data.draw(st.permutations([i for i in range(claimants) for _ in range(2)]))
    racers = [Claimant(lambda: None, lambda _: cf(tables).claim_index_redrive(F, NOW, LIMIT)) for _ in range(claimants)]
    won = run_interleaving(racers, order)
    assert won.count(True) == min(claimants, left)
    assert (tables.files.get(F) or {})[FileAttr.INDEX_REDRIVES] == LIMIT - left + min(claimants, left)


@given(data=st.data(), claimants=st.integers(3, 4))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_restore_claims_from_one_view_win_once_whatever_the_interleaving(
    tables: Tables, data: st.DataObject, claimants: int
) -> None:
    """Steps that read the file (ARCHIVED) and claim its restore at the version they read, interleaved
    anyhow: the restore is claimed exactly once, and the count and version move by one."""
    remove(tables.files.ddb, FILES_TABLE, FILE_KEY)
    put(tables.files.ddb, FILES_TABLE, file_item(FileState.ARCHIVED, 3))
    order = data.draw(st.permutations([i for i in range(claimants) for _ in range(2)]))

    def read() -> int | None:
        item = tables.files.get(F) or {}
        return int(item[FileAttr.STATE_VERSION]) if item.get(FileAttr.STATE) == "ARCHIVED" else None

    def write(version: int | None) -> bool:
        return version is not None and cf(tables).claim_restore(F, version, NOW)

    won = run_interleaving([Claimant(read, write) for _ in range(claimants)], order)
    assert won.count(True) == 1
    item = tables.files.get(F) or {}
    assert (item[FileAttr.STATE], item[FileAttr.STATE_VERSION], item[FileAttr.RESTORE_COUNT]) == ("RESTORING", 4, 1)


@pytest.mark.parametrize("order", interleavings(2), ids=lambda o: "".join("IC"[i] for i in o))
def test_an_index_built_before_an_invalidation_never_lands(tables: Tables, order: tuple[int, ...]) -> None:
    """index_file reads the state version, builds, then marks INDEXED at that version; the carousel reads
    and invalidates the file (its copy expired). Whatever the interleaving, the file never ends up
    INDEXED on a domain built from a view older than the invalidation."""
    put(tables.files.ddb, FILES_TABLE, file_item(FileState.RESTORED, 5, **{FileAttr.DOMAIN: "/old"}))

    def index_read() -> int:
        return version_of(tables)

    def index_write(version: int) -> bool:
        return tables.files.mark_indexed(
            BF, bucket="archive", key="k", etag="e", size=1, domain="/new", now=NOW_UTC, expected_version=version
        )

    def carousel_read() -> int | None:
        item = tables.files.get(F) or {}
        return int(item[FileAttr.STATE_VERSION]) if item.get(FileAttr.STATE) in ("RESTORED", "INDEXED") else None

    def carousel_write(version: int | None) -> bool:
        return version is not None and cf(tables).invalidate(F, version, NOW)

    index, carousel = Claimant(index_read, index_write), Claimant(carousel_read, carousel_write)
    run_interleaving([index, carousel], order)
    index_read_at, index_wrote_at = _steps(order, 0)
    carousel_wrote_at = _steps(order, 1)[1]
    if carousel.won and index_read_at < carousel_wrote_at < index_wrote_at:
        assert not index.won, "an index built from a view older than the invalidation landed after it"
    winners = [at for at, won in ((index_wrote_at, index.won), (carousel_wrote_at, carousel.won)) if won]
    assert winners, "one of the two always wins"
    item = tables.files.get(F) or {}
    if max(winners) == carousel_wrote_at:
        assert item[FileAttr.STATE] == "ARCHIVED" and FileAttr.DOMAIN not in item
    else:
        assert item[FileAttr.STATE] == "INDEXED" and item[FileAttr.DOMAIN] == "/new"
    assert item[FileAttr.STATE_VERSION] == 5 + len(winners)


def _steps(order: Sequence[int], who: int) -> tuple[int, int]:
    """Positions of claimant `who`'s read and write in `order`."""
    at = [i for i, w in enumerate(order) if w == who]
    return at[0], at[1]


# --- the lease against a model ---------------------------------------------------------------------

LeaseOp = tuple[str, str, int]  # ("acquire" | "release", holder, milliseconds since the previous op)


@given(
    st.lists(
        st.tuples(st.sampled_from(["acquire", "acquire", "release"]), st.sampled_from("abc"), st.integers(0, 90_000)),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_lease_has_one_holder_at_a_time(tables: Tables, ops: list[LeaseOp]) -> None:
    """Acquires and releases by three holders at random times, against a model: a lease is taken only when
    free (none, ended strictly before now, or the holder's own), released only by its holder."""
    remove(tables.jobs.ddb, JOBS_TABLE, LEASE_KEY)
    ttl_s = 60.0
    holder: str | None = None
    until_ms = 0
    now_ms = NOW_MS
    for op, who, step_ms in ops:
        now_ms += step_ms
        if op == "acquire":
            expected = holder is None or until_ms < now_ms or holder == who
            assert launch(tables).acquire(who, now_ms / 1000, ttl_s) is expected, (op, who, now_ms)
            if expected:
                holder, until_ms = who, now_ms + int(ttl_s * 1000)
        else:
            expected = holder == who
            assert launch(tables).release(who) is expected, (op, who)
            if expected:
                holder, until_ms = None, 0
        item = tables.jobs.get(LAUNCH_LEASE_ID)
        if holder is None:
            assert item is None or (JobAttr.LEASE_HOLDER not in item and JobAttr.LEASE_UNTIL_MS not in item)
        else:
            assert item is not None
            assert (item[JobAttr.LEASE_HOLDER], item[JobAttr.LEASE_UNTIL_MS]) == (holder, until_ms)
