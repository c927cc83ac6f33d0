"""The loader's decisions, as pure functions: which listed objects are readable now, and which to queue.

Readability comes from the restore status, never from the storage class alone:
a restored Deep Archive object keeps its `DEEP_ARCHIVE` class. An object in an
archive class is readable only while a finished restore has not expired; any
other object is readable as is (`datacarousel.archive`, shared with index_file,
the carousel and the job SDK).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from datacarousel.archive import RestoreStatus, Unreadable, is_archive_class, normalize_etag, why_unreadable
from datacarousel.contract import FileAttr, FileState, IndexRequestAttr
from datacarousel.errors import BadFileName
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName
from datacarousel.times import parse_iso

DEFAULT_REQUEUE_AFTER = timedelta(hours=6)

T = TypeVar("T")


def restore_status_from_listing(obj: Mapping[str, Any]) -> RestoreStatus | None:
    """The `RestoreStatus` that list_objects_v2 returns with OptionalObjectAttributes=["RestoreStatus"]."""
    raw = obj.get("RestoreStatus")
    if not raw:
        return None
    expiry = raw.get("RestoreExpiryDate")
    if isinstance(expiry, datetime):
        expiry = expiry.astimezone(UTC)
    return RestoreStatus(in_progress=bool(raw.get("IsRestoreInProgress")), expiry=expiry)


@dataclass(frozen=True)
class ListedObject:
    """One archive object as the loader sees it."""

    key: str
    size: int
    etag: str
    storage_class: str = "STANDARD"
    restore: RestoreStatus | None = None
    restore_known: bool = False  # True once `restore` was read from the object (listing or HEAD)

    @property
    def archived_class(self) -> bool:
        return is_archive_class(self.storage_class)

    @property
    def needs_restore_lookup(self) -> bool:
        """An archive-class object whose restore status the listing did not give."""
        return self.archived_class and not self.restore_known

    @classmethod
    def from_listing(cls, obj: Mapping[str, Any]) -> ListedObject:
        restore = restore_status_from_listing(obj)
        return cls(
            key=obj["Key"],
            size=int(obj.get("Size", 0)),
            etag=normalize_etag(obj.get("ETag")),
            storage_class=obj.get("StorageClass") or "STANDARD",
            restore=restore,
            restore_known=restore is not None,
        )


class Skip(enum.StrEnum):
    """Why the loader did not queue an object."""

    ARCHIVED = Unreadable.ARCHIVED.value  # in an archive class, never restored (or the restore copy is gone)
    RESTORING = Unreadable.RESTORING.value
    EXPIRED = Unreadable.EXPIRED.value
    NOT_BASICFUSION = "not-a-basicfusion-name"
    INDEXED = "already-indexed"
    QUEUED = "already-queued"
    DUPLICATE = "duplicate-file-name"  # another key of this listing holds the same file name
    VANISHED = "vanished"  # deleted between the listing and its HEAD


def unreadable_reason(obj: ListedObject, now: datetime) -> Skip | None:
    """None when the object can be read now (`archive.why_unreadable`); else why not."""
    why = why_unreadable(obj.storage_class, obj.restore, now)
    return None if why is None else Skip(why.value)


def parse_name(key: str) -> BasicFusionName | None:
    try:
        return BasicFusionName.parse(key)
    except BadFileName:
        return None


def _parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


# The attributes `already_done` reads from each table.
DECIDE_FILE_ATTRS = (FileAttr.STATE, FileAttr.ETAG)
DECIDE_LEDGER_ATTRS = (IndexRequestAttr.ETAG, IndexRequestAttr.QUEUED_AT)


def already_done(
    obj: ListedObject,
    item: Mapping[str, Any] | None,
    sent: Mapping[str, Any] | None,
    now: datetime,
    requeue_after: timedelta,
) -> Skip | None:
    """Skip.INDEXED when BasicFusionFiles shows this object version indexed (`item`); Skip.QUEUED
    when the loader's ledger shows a request for it sent less than `requeue_after` ago (`sent`).

    A request older than that is assumed lost (dead-lettered, its file failed) and is sent again.
    """
    if item is not None and item.get(FileAttr.STATE) == FileState.INDEXED.value and item.get(FileAttr.ETAG) == obj.etag:
        return Skip.INDEXED
    if sent is not None and sent.get(IndexRequestAttr.ETAG) == obj.etag:
        queued_at = _parse_iso(sent.get(IndexRequestAttr.QUEUED_AT))
        if queued_at is not None and queued_at > now - requeue_after:
            return Skip.QUEUED
    return None


@dataclass(frozen=True)
class Decision:
    obj: ListedObject
    name: BasicFusionName | None
    skip: Skip | None

    @property
    def queue(self) -> bool:
        return self.skip is None


def decide(
    obj: ListedObject,
    item: Mapping[str, Any] | None,
    now: datetime,
    requeue_after: timedelta = DEFAULT_REQUEUE_AFTER,
    sent: Mapping[str, Any] | None = None,
) -> Decision:
    """Queue the object, or say why not. `obj` must have a known restore status if archived;
    `item` is its BasicFusionFiles item, `sent` its ledger item (None: none)."""
    name = parse_name(obj.key)
    if name is None:
        return Decision(obj, None, Skip.NOT_BASICFUSION)
    reason = unreadable_reason(obj, now) or already_done(obj, item, sent, now, requeue_after)
    return Decision(obj, name, reason)


def index_request(bucket: str, obj: ListedObject) -> IndexRequest:
    return IndexRequest(bucket=bucket, key=obj.key, size=obj.size, etag=obj.etag)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    if size <= 0:
        raise ValueError("chunk size must be positive")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class LoaderReport:
    """What one loader run listed, queued and skipped (and why)."""

    bucket: str
    prefix: str
    dry_run: bool
    listed: int = 0
    queued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    send_failed: int = 0
    queued_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0
    max_keys_kept: int = 1000

    def add_queued(self, key: str) -> None:
        self.queued += 1
        if len(self.queued_keys) < self.max_keys_kept:
            self.queued_keys.append(key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "dry_run": self.dry_run,
            "listed": self.listed,
            "queued": self.queued,
            "skipped": dict(sorted(self.skipped.items())),
            "send_failed": self.send_failed,
            "queued_keys": self.queued_keys,
            "queued_keys_truncated": self.queued > len(self.queued_keys),
            "seconds": round(self.seconds, 3),
            "keys_per_second": round(self.listed / self.seconds, 1) if self.seconds > 0 else None,
        }
