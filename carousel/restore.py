"""Restore completion reconciliation: S3 events and observed object status -> file states.

S3 restore events (`s3:ObjectRestore:Post`, `:Completed`, `:Delete`) reach the
carousel through SQS: at least once, in any order, and sometimes not at all.
So events are hints. The answer is a function of the *set* of events (not
their order or multiplicity) and of what the carousel saw when it looked at
the objects (HeadObject: `observe_head`); when an observation is present it
wins. A lost completion is recovered by the planner's `ProbeRestore` once the
tier's latency has passed; a duplicated or reordered event changes nothing.

What an observation says, by the object's storage class (HeadObject's
`StorageClass`, absent for STANDARD):

* an archive class (GLACIER, DEEP_ARCHIVE): its `Restore` header decides —
  no header: ARCHIVED (a readable file's copy is gone: it is expired now and
  the planner's `InvalidateExpired` puts it back to ARCHIVED, to be restored
  when needed; never FAILED); `ongoing-request="true"`: RESTORING;
  `ongoing-request="false"` with an expiry in the future: readable until then;
* any other class (STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING,
  GLACIER_IR, ...): readable as is, with no expiry, whatever the file's state
  was — never expired, invalidated, renewed or restored (`READABLE`);
* no such object (HeadObject 404, RestoreObject NoSuchKey): the file is
  FAILED with a reason naming the key and S3's answer (`MISSING`). That cause
  does not change until someone uploads the object again, and a FAILED file
  fails the job-files waiting for it, so its jobs end. Recovering a
  re-uploaded object is not automatic: FAILED is terminal for the carousel
  (reconciliation leaves FAILED files alone, and `carousel.inventory` creates
  items only where none exists, so a second inventory leaves the FAILED item
  as it is); `datacarousel retry FILE` (`carousel.recovery`) puts it back to
  ARCHIVED, its error removed, and the carousel serves it again.

Events alone never change a readable file with no expiry: the carousel only
gives a readable file no expiry when its object is in a non-archive class
(inventory, or an observation), and a restore event is about an archive-class
object; only a look at the object says it moved into an archive class.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from carousel.actions import UpdateFileState
from carousel.model import F_ARCHIVED, F_FAILED, F_INDEXED, F_RESTORED, F_RESTORING, FILE_CODE, FILE_FROM_CODE, Snapshot
from datacarousel import archive
from datacarousel.archive import is_archive_class
from datacarousel.errors import BadInput

# The start of a FAILED file's reason when its archive object is gone.
MISSING_OBJECT = "archive object missing"


class RestoreEventKind(enum.StrEnum):
    INITIATED = "ObjectRestore:Post"
    COMPLETED = "ObjectRestore:Completed"
    EXPIRED = "ObjectRestore:Delete"


# When two events carry the same time, the later stage of a restore's life wins.
_KIND_RANK = {RestoreEventKind.INITIATED: 0, RestoreEventKind.COMPLETED: 1, RestoreEventKind.EXPIRED: 2}


@dataclass(frozen=True)
class RestoreEvent:
    file_name: str
    kind: RestoreEventKind
    event_time: float
    restore_expiry: float | None = None  # COMPLETED events carry it


class ObservedStatus(enum.StrEnum):
    ARCHIVED = "archived"  # archive class, no Restore header: no readable copy, no restore in progress
    ONGOING = "ongoing"  # archive class, ongoing-request="true"
    RESTORED = "restored"  # archive class, ongoing-request="false", expiry-date=...
    READABLE = "readable"  # not an archive class: readable as is, no expiry, nothing to restore
    MISSING = "missing"  # no such object (HeadObject 404, RestoreObject NoSuchKey)


@dataclass(frozen=True)
class ObservedRestore:
    status: ObservedStatus
    observed_at: float
    restore_expiry: float | None = None
    storage_class: str | None = None  # HeadObject's StorageClass (STANDARD when it has none); None: not known
    evidence: str = ""  # MISSING: the object and what S3 answered


def observe_head(head: Mapping[str, Any], observed_at: float) -> ObservedRestore:
    """What a HeadObject answer says: the storage class first (absent = STANDARD), then the `Restore` header.

    An object in a non-archive class is READABLE whatever its `Restore` header says (an object restored and
    then copied over itself into STANDARD keeps the header until its copy expires)."""
    storage_class = str(head.get("StorageClass") or "STANDARD")
    if not is_archive_class(storage_class):
        return ObservedRestore(ObservedStatus.READABLE, observed_at, storage_class=storage_class)
    seen = parse_restore_header(head.get("Restore"), observed_at)
    return dataclasses.replace(seen, storage_class=storage_class)


def object_missing(bucket: str, key: str, answer: str, observed_at: float) -> ObservedRestore:
    """The object is gone: `answer` is what S3 said (e.g. "HeadObject answered HTTP 404 (404)")."""
    return ObservedRestore(ObservedStatus.MISSING, observed_at, evidence=f"s3://{bucket}/{key}: {answer}")


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def readable_now(seen: ObservedRestore, now: float) -> bool:
    """Whether the observed object can be read now (`archive.readable_now`): a non-archive class, or a restored
    copy not yet expired. A missing object, or a restored one whose expiry is not known, is not readable."""
    if seen.status is ObservedStatus.READABLE:
        return archive.readable_now(seen.storage_class, None, _utc(now))
    if seen.status is not ObservedStatus.RESTORED or seen.restore_expiry is None:
        return False
    copy = archive.RestoreStatus(in_progress=False, expiry=_utc(seen.restore_expiry))
    # A restored copy is of an archive-class object (a parsed header alone does not say which class).
    return archive.readable_now(seen.storage_class or "DEEP_ARCHIVE", copy, _utc(now))


def missing_reason(seen: ObservedRestore) -> str:
    """A FAILED file's reason when its archive object is gone (with the evidence)."""
    evidence = seen.evidence or "no such object"
    return f"{MISSING_OBJECT}: {evidence}; nothing to restore until the object is uploaded again"


def parse_restore_header(header: str | None, observed_at: float) -> ObservedRestore:
    """Parse HeadObject's `Restore` value (`None` when the object carries no such header) with
    `archive.parse_restore_header`; BadInput when it is not understood or a finished restore has no expiry."""
    parsed = archive.parse_restore_header(header)
    if parsed.status is None:
        if parsed.problem:
            raise BadInput(parsed.problem)
        return ObservedRestore(ObservedStatus.ARCHIVED, observed_at)
    if parsed.status.in_progress:
        return ObservedRestore(ObservedStatus.ONGOING, observed_at)
    if parsed.problem or parsed.status.expiry is None:
        raise BadInput(parsed.problem or f"Restore header without expiry-date: {str(header)[:200]!r}")
    return ObservedRestore(ObservedStatus.RESTORED, observed_at, parsed.status.expiry.timestamp())


def _latest(events: Iterable[RestoreEvent]) -> dict[str, RestoreEvent]:
    """Per file, the event latest in (time, stage, expiry): independent of order and duplicates."""
    best: dict[str, RestoreEvent] = {}
    for event in events:
        key = (event.event_time, _KIND_RANK[event.kind], event.restore_expiry or 0.0)
        current = best.get(event.file_name)
        if current is None or key > (current.event_time, _KIND_RANK[current.kind], current.restore_expiry or 0.0):
            best[event.file_name] = event
    return best


def _target(
    state: int, expiry: float, status: ObservedStatus, new_expiry: float | None, now: float, *, observed: bool
) -> tuple[int, float]:
    """The (state, expiry) a file should have given what S3 says; FAILED files are left alone."""
    readable = state in (F_RESTORED, F_INDEXED)
    if status is ObservedStatus.MISSING:
        return F_FAILED, np.nan  # terminal: nothing to restore, index or read until it is uploaded again
    if status is ObservedStatus.READABLE:
        return (state if readable else F_RESTORED), np.nan  # readable as is, for ever: no expiry
    if status is ObservedStatus.RESTORED and new_expiry is not None:
        if readable and not observed and not np.isnan(expiry):
            new_expiry = max(expiry, new_expiry)  # an old completion event never undoes a renewal
        if new_expiry > now:
            return (state if readable else F_RESTORED), new_expiry
        status = ObservedStatus.ARCHIVED  # the copy came and went
    if status is ObservedStatus.ONGOING:
        return (F_RESTORING, np.nan) if state == F_ARCHIVED else (state, expiry)
    # No readable copy now.
    if state == F_RESTORING:
        return F_ARCHIVED, np.nan  # the request never took, or its copy expired unseen: it may be issued again
    if readable:
        # Expire it now; the planner's InvalidateExpired removes the domain and requeues work. A file with
        # no expiry (its object was in a non-archive class) whose object moved into an archive class goes
        # the same way: back to ARCHIVED, restored when a job needs it.
        return state, now if np.isnan(expiry) else min(expiry, now)
    return state, expiry


def reconcile(
    snapshot: Snapshot,
    events: Iterable[RestoreEvent],
    observed: Mapping[str, ObservedRestore],
    now: float,
) -> tuple[UpdateFileState, ...]:
    """The file-state updates that events and observations call for (empty when nothing changes)."""
    files = snapshot.files
    position = files.position
    latest = _latest(e for e in events if e.file_name in position)
    updates: list[UpdateFileState] = []
    for name in sorted(set(latest) | {n for n in observed if n in position}):
        i = position[name]
        state, expiry = int(files.state[i]), float(files.expiry[i])
        if state == F_FAILED:
            continue
        reason = None
        if name in observed:
            seen = observed[name]
            status, new_expiry = seen.status, seen.restore_expiry
            if status is ObservedStatus.MISSING:
                reason = missing_reason(seen)
        else:
            if state in (F_RESTORED, F_INDEXED) and np.isnan(expiry):
                continue  # not archived (no expiry): only a look at the object can say it moved into an archive class
            event = latest[name]
            requested = files.requested_at[i]
            if not np.isnan(requested) and event.event_time < requested:
                continue  # from an earlier restore of this object
            if event.kind is RestoreEventKind.INITIATED:
                status, new_expiry = ObservedStatus.ONGOING, None
            elif event.kind is RestoreEventKind.COMPLETED:
                status, new_expiry = ObservedStatus.RESTORED, event.restore_expiry
            else:
                status, new_expiry = ObservedStatus.ARCHIVED, None
        to_state, to_expiry = _target(state, expiry, status, new_expiry, now, observed=name in observed)
        same_expiry = (np.isnan(to_expiry) and np.isnan(expiry)) or to_expiry == expiry
        if to_state == state and same_expiry:
            continue
        updates.append(
            UpdateFileState(
                file_name=name,
                expected_version=int(files.version[i]),
                from_state=FILE_FROM_CODE[state],
                to_state=FILE_FROM_CODE[to_state],
                restore_expiry=None if np.isnan(to_expiry) else float(to_expiry),
                reason=reason,
            )
        )
    return tuple(updates)


def claimed(snapshot: Snapshot, file_name: str, claimed_version: int, now: float) -> Snapshot:
    """The snapshot as a won restore claim left file `file_name`: RESTORING at `claimed_version`, requested now.

    The step reconciles what it observes after a refused RestoreObject against this (the claim moved the
    item on from the version the plan saw)."""
    i = snapshot.files.position[file_name]
    files = snapshot.files.replace_rows(
        [i], state=[F_RESTORING], version=[claimed_version], requested_at=[now], expiry=[np.nan]
    )
    return snapshot.replace(files=files)


def apply_updates(snapshot: Snapshot, updates: Iterable[UpdateFileState], now: float) -> Snapshot:
    """The snapshot after the updates (what the adapter's conditional writes produce)."""
    files = snapshot.files
    rows, states, expiries, versions, updated, errors = [], [], [], [], [], []
    for update in updates:
        i = files.position[update.file_name]
        if int(files.version[i]) != update.expected_version:
            continue  # conditional write would fail
        rows.append(i)
        states.append(FILE_CODE[update.to_state])
        expiries.append(np.nan if update.restore_expiry is None else update.restore_expiry)
        versions.append(update.expected_version + 1)
        updated.append(now)
        errors.append(update.reason or files.errors[i])
    if not rows:
        return snapshot
    return snapshot.replace(
        files=files.replace_rows(
            rows, state=states, expiry=expiries, version=versions, updated_at=updated, errors=errors
        )
    )
