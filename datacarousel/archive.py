"""Is this archive object readable now? The one answer the loader, index_file, the carousel and the job SDK share.

What S3 says about an object, and what it means:

* its storage class: an object in an archive class (`ARCHIVE_CLASSES`: Glacier Flexible Retrieval and
  Deep Archive) must be restored before a GET succeeds; any other class (STANDARD, STANDARD_IA,
  INTELLIGENT_TIERING, GLACIER_IR, ...) is readable as is. A restored object keeps its archive class;
* its `Restore` header (HeadObject) — `parse_restore_header`: no header, never restored (or its copy is
  gone); `ongoing-request="true"`, restoring; `ongoing-request="false", expiry-date="..."`, a restored
  copy readable until that date — and *not after it*: an expired copy is not readable;
* a 404 / NoSuchKey / NotFound answer (`NOT_FOUND_CODES`, `is_not_found`): no such object.

`readable_now(storage_class, restore, now)` puts these together (`why_unreadable` says why not).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from botocore.exceptions import ClientError

# Storage classes whose objects must be restored before a GET succeeds.
# (GLACIER_IR is instantly readable; Intelligent-Tiering archive tiers are not used here.)
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
# The error codes S3 answers for an object (or a key) that does not exist.
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def error_code(exc: ClientError) -> str:
    """The error code of an AWS answer ("" when it has none)."""
    return str(exc.response.get("Error", {}).get("Code", "") or "")


def is_not_found(exc: ClientError) -> bool:
    """Whether S3 answered that there is no such object."""
    return error_code(exc) in NOT_FOUND_CODES


def is_archive_class(storage_class: str | None) -> bool:
    """Whether an object of this storage class (None or "" = STANDARD) must be restored to be read."""
    return (storage_class or "STANDARD").strip().upper() in ARCHIVE_CLASSES


def normalize_etag(etag: str | None) -> str:
    """An ETag without its quotes ("" when there is none)."""
    return (etag or "").strip('"')


@dataclass(frozen=True)
class RestoreStatus:
    """The restore state of an archived object (from its `Restore` header or a listing's `RestoreStatus`)."""

    in_progress: bool
    expiry: datetime | None = None  # a finished restore's copy is readable until then


@dataclass(frozen=True)
class RestoreHeader:
    """What a `Restore` header says. `status` is None when there is no header (never restored, or the
    copy is gone) or when it cannot be understood; `problem` says what is wrong with it ("" when nothing):
    not understood, or a finished restore without a (readable) expiry date."""

    status: RestoreStatus | None
    problem: str = ""


_ONGOING_RE = re.compile(r'ongoing-request\s*=\s*"(?P<ongoing>true|false)"', re.IGNORECASE)
_EXPIRY_RE = re.compile(r'expiry-date\s*=\s*"(?P<expiry>[^"]+)"', re.IGNORECASE)


def parse_restore_header(value: str | None) -> RestoreHeader:
    """`ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"` -> RestoreStatus(False, 2012-12-21)."""
    if value is None or not value.strip():
        return RestoreHeader(None)
    ongoing = _ONGOING_RE.search(value)
    if ongoing is None:
        return RestoreHeader(None, f"unrecognised Restore header {value[:200]!r}")
    in_progress = ongoing["ongoing"].lower() == "true"
    match = _EXPIRY_RE.search(value)
    if match is None:
        problem = "" if in_progress else f"Restore header without expiry-date: {value[:200]!r}"
        return RestoreHeader(RestoreStatus(in_progress), problem)
    try:
        expiry = parsedate_to_datetime(match["expiry"]).astimezone(UTC)
    except (TypeError, ValueError) as exc:
        return RestoreHeader(RestoreStatus(in_progress), f"bad expiry-date in Restore header {value[:200]!r}: {exc}")
    return RestoreHeader(RestoreStatus(in_progress, expiry))


class Unreadable(enum.StrEnum):
    """Why an object cannot be read now."""

    ARCHIVED = "archived"  # in an archive class, never restored (or the restored copy is gone)
    RESTORING = "restore-in-progress"
    EXPIRED = "restore-expired"  # the restored copy's expiry has passed


def why_unreadable(storage_class: str | None, restore: RestoreStatus | None, now: datetime) -> Unreadable | None:
    """None when an object of this storage class and restore status can be read at `now`; else why not.

    A finished restore with no known expiry is taken as readable (S3 always gives one)."""
    if not is_archive_class(storage_class):
        return None
    if restore is None:
        return Unreadable.ARCHIVED
    if restore.in_progress:
        return Unreadable.RESTORING
    if restore.expiry is not None and restore.expiry <= now:
        return Unreadable.EXPIRED
    return None


def readable_now(storage_class: str | None, restore: RestoreStatus | None, now: datetime) -> bool:
    """Whether a GET of the object succeeds at `now`: a non-archive class, or a restored copy not expired."""
    return why_unreadable(storage_class, restore, now) is None
