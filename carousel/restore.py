"""Restore completion reconciliation: S3 events and observed object status -> file states.

S3 restore events (`s3:ObjectRestore:Post`, `:Completed`, `:Delete`) reach the
carousel through SQS: at least once, in any order, and sometimes not at all.
So events are hints. The answer is a function of the *set* of events (not
their order or multiplicity) and of the observed `Restore` header of the
objects the carousel probed; when a probe is present it wins. A lost
completion is recovered by the planner's `ProbeRestore` once the tier's
latency has passed; a duplicated or reordered event changes nothing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import numpy as np

from carousel.actions import UpdateFileState
from carousel.model import F_ARCHIVED, F_FAILED, F_INDEXED, F_RESTORED, F_RESTORING, FILE_CODE, FILE_FROM_CODE, Snapshot
from datacarousel.errors import BadInput


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
    ARCHIVED = "archived"  # no Restore header: no readable copy, no restore in progress
    ONGOING = "ongoing"  # ongoing-request="true"
    RESTORED = "restored"  # ongoing-request="false", expiry-date=...


@dataclass(frozen=True)
class ObservedRestore:
    status: ObservedStatus
    observed_at: float
    restore_expiry: float | None = None


_HEADER_RE = re.compile(r'ongoing-request="(?P<ongoing>true|false)"(?:\s*,\s*expiry-date="(?P<expiry>[^"]+)")?')


def parse_restore_header(header: str | None, observed_at: float) -> ObservedRestore:
    """Parse HeadObject's `Restore` value (`None` when the object carries no such header)."""
    if header is None or not header.strip():
        return ObservedRestore(ObservedStatus.ARCHIVED, observed_at)
    match = _HEADER_RE.search(header)
    if match is None:
        raise BadInput(f"unrecognised Restore header {header[:200]!r}")
    if match["ongoing"] == "true":
        return ObservedRestore(ObservedStatus.ONGOING, observed_at)
    if match["expiry"] is None:
        raise BadInput(f"Restore header without expiry-date: {header[:200]!r}")
    try:
        expiry = parsedate_to_datetime(match["expiry"]).timestamp()
    except (TypeError, ValueError) as exc:
        raise BadInput(f"bad expiry-date in Restore header {header[:200]!r}: {exc}") from exc
    return ObservedRestore(ObservedStatus.RESTORED, observed_at, expiry)


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
        # Expire it now; the planner's InvalidateExpired removes the domain and requeues work.
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
        if name in observed:
            seen = observed[name]
            status, new_expiry = seen.status, seen.restore_expiry
        else:
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
            )
        )
    return tuple(updates)


def apply_updates(snapshot: Snapshot, updates: Iterable[UpdateFileState], now: float) -> Snapshot:
    """The snapshot after the updates (what the adapter's conditional writes produce)."""
    files = snapshot.files
    rows, states, expiries, versions, updated = [], [], [], [], []
    for update in updates:
        i = files.position[update.file_name]
        if int(files.version[i]) != update.expected_version:
            continue  # conditional write would fail
        rows.append(i)
        states.append(FILE_CODE[update.to_state])
        expiries.append(np.nan if update.restore_expiry is None else update.restore_expiry)
        versions.append(update.expected_version + 1)
        updated.append(now)
    if not rows:
        return snapshot
    return snapshot.replace(
        files=files.replace_rows(rows, state=states, expiry=expiries, version=versions, updated_at=updated)
    )
