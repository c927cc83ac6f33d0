"""What one planning step asks the world to do.

Each action is small, explicit and idempotent to apply; an adapter maps it to
one S3 / SQS call plus one DynamoDB conditional write:

| action | S3 / SQS / HSDS call | DynamoDB conditional write |
|---|---|---|
| `UpdateFileState` | - | file at `expected_version`: new state and expiry (FAILED: and its reason) |
| `RequestRestore` | `RestoreObject(Days, Tier)` | file ARCHIVED at `expected_version` -> RESTORING |
| `RenewLease` | `RestoreObject(Days)` again (request fee only) | file: new restore_expiry |
| `ProbeRestore` | `HeadObject`: storage class, `Restore` header or 404, to `reconcile` | file: restore_checked_at |
| `QueueIndex` | `IndexRequest` on the index queue | file: index_requested_at |
| `Release` | `WorkItem` on the work queue | job-file WAITING -> QUEUED |
| `FailJobFile` | - | job-file WAITING/QUEUED -> FAILED, reason (the file's) |
| `InvalidateExpired` | delete the HSDS domain | file -> ARCHIVED; job-files of `requeue` QUEUED -> WAITING |
| `CompleteJob` | - | job OPEN -> COMPLETE |
| `CancelJob` | - | job OPEN -> CANCELLED |

Every write bumps `state_version`; RequestRestore also sets restore_requested_at and
restore_count + 1; InvalidateExpired also removes the domain and the expiry.

A conditional write that fails means somebody else moved the item first: the
adapter drops the action and the next step plans again from fresh state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from datacarousel.contract import FileState, RestoreTier


@dataclass(frozen=True)
class UpdateFileState:
    """Reconciliation result: the file's state (and restore expiry) as S3 says it is.

    `restore_expiry` None: no expiry (no copy, or an object readable as is); `reason`: why a file
    becomes FAILED (its archive object is gone: the key and S3's answer), recorded as its error.
    """

    file_name: str
    expected_version: int
    from_state: FileState
    to_state: FileState
    restore_expiry: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RequestRestore:
    file_name: str
    key: str
    size_bytes: int
    tier: RestoreTier
    days: int
    expected_version: int


@dataclass(frozen=True)
class RenewLease:
    file_name: str
    key: str
    days: int
    tier: RestoreTier


@dataclass(frozen=True)
class ProbeRestore:
    """A restore outlived its tier's latency: look at the object (its completion event may be lost)."""

    file_name: str
    key: str


@dataclass(frozen=True)
class QueueIndex:
    file_name: str
    key: str
    size_bytes: int


@dataclass(frozen=True)
class Release:
    """Dispatch one WorkItem: the job may now run on this file."""

    job_id: str
    file_name: str
    key: str
    domain: str


@dataclass(frozen=True)
class FailJobFile:
    job_id: str
    file_name: str
    reason: str


@dataclass(frozen=True)
class InvalidateExpired:
    """The restored copy expired: drop the HSDS domain, back to ARCHIVED, queued work waits again."""

    file_name: str
    domain: str
    expected_version: int
    requeue: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompleteJob:
    job_id: str
    done: int
    failed: int


@dataclass(frozen=True)
class CancelJob:
    job_id: str


Action = (
    UpdateFileState
    | RequestRestore
    | RenewLease
    | ProbeRestore
    | QueueIndex
    | Release
    | FailJobFile
    | InvalidateExpired
    | CompleteJob
    | CancelJob
)

A = TypeVar("A")


@dataclass(frozen=True)
class Plan:
    """The actions of one step, in the order an adapter should apply them, plus the window it saw."""

    actions: tuple[Action, ...]
    now: float
    window_bytes: int  # staged or restoring, after this step's restores
    window_files: int
    restore_requests: int  # RestoreObject calls this step (restores + renewals)

    def of(self, kind: type[A]) -> list[A]:
        return [a for a in self.actions if isinstance(a, kind)]

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)
