"""index_file's adapters (S3, HSDS, BasicFusionFiles) and the message handler that wires them.

The handler is idempotent: a redelivered request finds the domain complete (its
marker names the same object version) and the item already INDEXED, and does
nothing. Transient failures (S3 or HSDS briefly unreachable) are retried with
backoff a few times, then raised as `TransientError` so the message returns to
the queue; an object not restored (yet, or any more) raises `NotReadable`, which
returns the message to the queue too: it is a state of the object, not of the
request. Bad requests raise `BadInput` / `BadFileName` / `MalformedMessage` so
`queue_worker` dead-letters them with the reason: among them every request that
does not name the file's archive object (another bucket, a key outside the
archive prefix or not the one the files table records, a second name for an
orbit the table already has).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import h5py
import h5pyd
from botocore.exceptions import BotoCoreError, ClientError
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from datacarousel import archive, chunkread, hsds, hsds_restart_points, naming
from datacarousel.chunkread import restart
from datacarousel.contract import HSDS_INDEXED_MARKER, FileAttr, FileState
from datacarousel.errors import BadInput, NotReadable, TransientError
from datacarousel.files_table import FilesTable, is_indexed, iso
from datacarousel.hsds_target import HsdsTarget, Marker
from datacarousel.link_source import open_source
from datacarousel.times import utcnow
from index_file.core import (
    HEADER_BYTES,
    check_hdf5,
    check_source,
    domain_is_complete,
    parse_request,
    s3_uri,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")

_MISSING_CODES = archive.NOT_FOUND_CODES | {"NoSuchBucket"}
_ARCHIVED_CODES = frozenset({"InvalidObjectState"})


def with_retries(attempts: int = 4, max_wait: float = 8.0) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Retry on TransientError with exponential backoff, then re-raise the last one."""
    return retry(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=max_wait),
        reraise=True,
    )


@contextlib.contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Translate S3 errors: missing -> BadInput, archived -> NotReadable, 5xx/unreachable -> TransientError."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _MISSING_CODES:
            raise BadInput(f"{what}: no such bucket or key ({code})") from exc
        if code in _ARCHIVED_CODES:
            raise NotReadable(f"{what}: object still archived (not restored); retried later") from exc
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"):
            raise TransientError(f"{what}: S3 answered {code or status}") from exc
        raise
    except BotoCoreError as exc:  # connection refused, timeouts (after botocore's own retries)
        raise TransientError(f"{what}: S3 unreachable: {exc}") from exc


@dataclass(frozen=True)
class SourceObject:
    bucket: str
    key: str
    size: int
    etag: str
    # Until when the bytes can be read: a restored copy's expiry; None for an object in a readable class.
    readable_until: datetime | None = None

    @property
    def uri(self) -> str:
        return s3_uri(self.bucket, self.key)


@with_retries()
def inspect_source(s3: S3Client, bucket: str, key: str, now: datetime) -> SourceObject:
    """HEAD the object: it must exist (BadInput) and be readable now (NotReadable), decided from its restore status."""
    what = s3_uri(bucket, key)
    with s3_errors(what):
        head = s3.head_object(Bucket=bucket, Key=key)
    storage_class = head.get("StorageClass") or "STANDARD"
    restore = archive.parse_restore_header(head.get("Restore")).status
    reason = archive.why_unreadable(storage_class, restore, now)
    if reason is not None:
        raise NotReadable(f"{what}: object still archived ({reason.value}); it cannot be indexed until restored")
    expiry = restore.expiry if archive.is_archive_class(storage_class) and restore is not None else None
    etag = archive.normalize_etag(head.get("ETag"))
    return SourceObject(bucket, key, int(head.get("ContentLength", 0)), etag, expiry)


@with_retries()
def read_header(s3: S3Client, source: SourceObject) -> bytes:
    if source.size == 0:
        return b""
    with s3_errors(source.uri):
        response = s3.get_object(Bucket=source.bucket, Key=source.key, Range=f"bytes=0-{HEADER_BYTES - 1}")
        return bytes(response["Body"].read())


def _hsds_io(exc: BaseException, what: str) -> BaseException:
    """h5pyd raises OSError(errno=HTTP status) or requests' errors: 5xx/unreachable are transient."""
    status = getattr(exc, "errno", None)
    if isinstance(status, int) and (status >= 500 or status in (408, 429)):
        return TransientError(f"{what}: HSDS answered {status}")
    name = type(exc).__name__
    if "Connection" in name or "Timeout" in name or isinstance(exc, ConnectionError | TimeoutError):
        return TransientError(f"{what}: HSDS unreachable: {exc}")
    return exc


@dataclass(frozen=True)
class DomainRoot:
    """What a request needs of its domain's root attributes, read in one open: whether the domain exists, its
    completion marker (None when missing), and whether it records its restart points."""

    exists: bool
    marker: Marker | None = None
    restart_points: bool = False


@with_retries()
def read_domain_root(target: HsdsTarget, domain: str) -> DomainRoot:
    """`DomainRoot` of `domain` (a missing domain: exists False)."""
    try:
        if not hsds.domain_exists(domain, access=target.access):
            return DomainRoot(exists=False)
        with h5pyd.File(domain, "r", **target.access.h5pyd_kwargs()) as f:
            marker = Marker.of(f)
            points = hsds_restart_points.recorded(f)
    except TransientError:
        raise
    except Exception as exc:
        if getattr(exc, "errno", None) in (404, 410):
            return DomainRoot(exists=False)
        raise _hsds_io(exc, f"read the root attributes of {domain}") from exc
    return DomainRoot(exists=True, marker=marker, restart_points=points)


@with_retries()
def write_marker(target: HsdsTarget, domain: str, marker: Marker) -> None:
    """Write the marker on the domain root, then flush: only now is the domain complete and durable."""
    try:
        with h5pyd.File(domain, "a", **target.access.h5pyd_kwargs()) as f:
            f.attrs[HSDS_INDEXED_MARKER] = marker.to_json()
        hsds.flush_domain(domain, access=target.access)
    except TransientError:
        raise
    except Exception as exc:
        raise _hsds_io(exc, f"write marker of {domain}") from exc


@with_retries()
def link(
    target: HsdsTarget, source: SourceObject, domain: str, inspect: Callable[[h5py.File], Any] | None = None
) -> hsds.LinkResult:
    try:
        return hsds.link_file(source.uri, domain, access=target.access, inspect=inspect)
    except (NotReadable, TransientError, BadInput):
        raise
    except Exception as exc:
        raise _hsds_io(exc, f"link {source.uri}") from exc


@dataclass(frozen=True)
class RestartPointsPolicy:
    """Which chunks get restart points when a file is linked (`chunkread.restart`), and how far apart."""

    min_size: int = restart.MIN_CHUNK  # inflated bytes of a whole-array chunk at least; 0: no points at all
    span: int = restart.DEFAULT_SPAN
    workers: int = 1  # chunks built at a time (each holds its stored bytes: up to ~250 MB for a MISR band)

    @property
    def enabled(self) -> bool:
        return self.min_size > 0


@with_retries()
def add_restart_points(
    s3: S3Client,
    target: HsdsTarget,
    source: SourceObject,
    domain: str,
    policy: RestartPointsPolicy,
    *,
    chunks: Mapping[str, tuple[int, int]] | None = None,
) -> int:
    """Build the restart points of `source`'s large whole-array chunks (`chunks`, as `restart.whole_chunks`
    gives them; None: found by opening the source) and store them in `domain` (`hsds_restart_points`);
    returns how many chunks got points. One zlib pass over each such chunk, its bytes read by range."""
    if not policy.enabled:
        return 0
    what = f"restart points of {source.uri}"
    with s3_errors(what):
        if chunks is None:
            with open_source(source.uri, None) as (fin, _):
                chunks = restart.whole_chunks(fin, policy.min_size)
        reader = chunkread.s3_range_reader(s3, source.bucket, source.key)
        points = restart.build_chunks(reader, chunks, span=policy.span, workers=policy.workers) if chunks else {}
    try:  # saved even when no chunk has points: the domain then says it was looked at (and is not again)
        hsds_restart_points.save(domain, restart.dumps_file(points), target.access)
    except (TransientError, BadInput):
        raise
    except Exception as exc:
        raise _hsds_io(exc, f"write {what} into {domain}") from exc
    return len(points)


@dataclass
class IndexOutcome:
    """What one request did (for logs and tests)."""

    file_name: str
    domain: str
    linked: bool  # False: the domain was already complete for this object version
    recorded: bool  # False: the table already said INDEXED for this version and domain
    seconds: float
    points_added: bool = False  # restart points stored (on a new link, or on a domain indexed without them)


def not_indexable(item: Mapping[str, Any] | None) -> str | None:
    """Why the files table forbids marking this file INDEXED now (None: it allows it).

    The carousel owns ARCHIVED (no copy it knows of: it requests indexing again after its next
    restore) and FAILED (only an operator's `datacarousel retry` undoes it); index_file moves a
    file only from no item, RESTORING, RESTORED or INDEXED (another object version or domain).
    """
    state = None if item is None else str(item.get(FileAttr.STATE, ""))
    if state == FileState.ARCHIVED.value:
        return "the carousel holds it ARCHIVED (its copy expired or was never restored); it asks again after a restore"
    if state == FileState.FAILED.value:
        return f"it is FAILED ({item.get(FileAttr.ERROR, '') if item else ''}); `datacarousel retry` undoes that"
    return None


class IndexFileHandler:
    """`handle(body)` for `queue_worker.drain`: one index request, done durably or not at all."""

    def __init__(
        self,
        s3: S3Client,
        files: FilesTable,
        target: HsdsTarget,
        clock: Callable[[], datetime] = utcnow,
        *,
        archive_bucket: str,
        archive_prefix: str = "",
        restart_points: RestartPointsPolicy = RestartPointsPolicy(),
    ):
        if not archive_bucket:
            raise ValueError("archive_bucket must not be empty")
        self.s3 = s3
        self.files = files
        self.target = target
        self.clock = clock
        self.archive_bucket = archive_bucket
        self.archive_prefix = archive_prefix
        self.restart_points = restart_points
        self.outcomes: list[IndexOutcome] = []

    def __call__(self, body: str) -> None:
        self.handle(body)

    def handle(self, body: str) -> IndexOutcome:
        started = time.monotonic()
        request, name = parse_request(body)
        domain = naming.hsds_domain(self.target.folder, name)
        item = self._table(lambda: self.files.get(name.file_name), name)
        check_source(request, name, archive_bucket=self.archive_bucket, archive_prefix=self.archive_prefix, item=item)
        self._check_one_name_per_orbit(name)
        refusal = not_indexable(item)
        if refusal is not None:  # a stale request: nothing to build, and the message is done
            log.warning("%s: request dropped: %s", name.file_name, refusal)
            outcome = IndexOutcome(name.file_name, domain, False, False, time.monotonic() - started)
            self.outcomes.append(outcome)
            return outcome
        source = inspect_source(self.s3, request.bucket, request.key, self.clock())
        if request.etag and request.etag != source.etag:
            log.info("%s: object changed since it was queued (etag %s -> %s)", source.uri, request.etag, source.etag)
        root = read_domain_root(self.target, domain)
        marker = root.marker
        linked = points_added = False
        if not domain_is_complete(marker, source=source.uri, etag=source.etag):
            check_hdf5(read_header(self.s3, source), source.size)
            if marker is None and root.exists:
                log.warning("%s: domain has no completion marker (interrupted run): rebuilding", domain)
            log.info("linking %s -> %s", source.uri, domain)
            result = link(self.target, source, domain, inspect=self._chunks_worth_points)
            points_added = self._add_restart_points(source, domain, result.inspected)
            marker = Marker(source.uri, source.etag, source.size, result.datasets, iso(self.clock()))
            write_marker(self.target, domain, marker)
            linked = True
        elif self.restart_points.enabled and not root.restart_points:
            points_added = self._backfill_restart_points(source, domain)
        recorded = self._record(name, source, domain, item)
        outcome = IndexOutcome(name.file_name, domain, linked, recorded, time.monotonic() - started, points_added)
        self.outcomes.append(outcome)
        log.info(
            "indexed %s -> %s (linked=%s recorded=%s) in %.2f s", source.uri, domain, linked, recorded, outcome.seconds
        )
        return outcome

    def _chunks_worth_points(self, h5file: h5py.File) -> dict[str, tuple[int, int]]:
        """The source's chunks that get restart points, found while `link` has the file open (not opened twice)."""
        return restart.whole_chunks(h5file, self.restart_points.min_size) if self.restart_points.enabled else {}

    def _add_restart_points(
        self, source: SourceObject, domain: str, chunks: Mapping[str, tuple[int, int]] | None = None
    ) -> bool:
        """Build and store the file's restart points (none when the policy says so); whether they were stored.
        Built once per domain: a later change of the policy applies to domains linked after it."""
        if not self.restart_points.enabled:
            return False
        started = time.monotonic()
        with_points = add_restart_points(self.s3, self.target, source, domain, self.restart_points, chunks=chunks)
        log.info("%s: restart points of %d chunks in %.1f s", domain, with_points, time.monotonic() - started)
        return True

    def _backfill_restart_points(self, source: SourceObject, domain: str) -> bool:
        """A complete domain without restart points (linked before index_file built them) gets them on its next
        request (its file restored again), so that it reads as fast as a new one.

        Points only speed reads up: whatever fails here is logged, and the complete domain is recorded all the same.
        Two requests at once may both add them: the domain names the last set, the other stays unlinked.
        """
        try:
            log.info("%s: complete but indexed without restart points: adding them", domain)
            return self._add_restart_points(source, domain)
        except Exception as exc:
            log.warning("%s: restart points not added (reads inflate front to back): %s: %s", domain,
                        type(exc).__name__, exc)  # fmt: skip
            return False

    def _table(self, read: Callable[[], T], name: naming.BasicFusionName) -> T:
        try:
            return read()
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"{name.file_name}: cannot read {self.files.table}: {exc}") from exc

    def _check_one_name_per_orbit(self, name: naming.BasicFusionName) -> None:
        """A second name for an orbit the table already has (another start time) would become a phantom
        item of its own: refused."""
        items = self._table(lambda: list(self.files.by_orbits(name.orbit, name.orbit)), name)
        others = sorted(str(i[FileAttr.FILE_NAME]) for i in items if i.get(FileAttr.FILE_NAME) != name.file_name)
        if others:
            raise BadInput(f"{name.file_name}: the files table holds orbit {name.orbit} as {others[0]}")

    def _record(self, name: naming.BasicFusionName, source: SourceObject, domain: str, item: Any) -> bool:
        """State INDEXED with the copy's expiry, conditional on the state version read before linking.

        A write that lost to another writer looks again, and writes only if the file is still in a
        state index_file may move from (see `not_indexable`): an index built before the carousel
        invalidated or failed the file never lands.
        """
        for _attempt in range(3):
            if is_indexed(item, etag=source.etag, domain=domain):
                return False
            refusal = not_indexable(item)
            if refusal is not None:
                log.warning("%s: not marked INDEXED: %s", name.file_name, refusal)
                return False
            expected = None if item is None else int(item.get(FileAttr.STATE_VERSION, 0) or 0)
            try:
                written = self.files.mark_indexed(
                    name,
                    bucket=source.bucket,
                    key=source.key,
                    etag=source.etag,
                    size=source.size,
                    domain=domain,
                    readable_until=source.readable_until,
                    now=self.clock(),
                    expected_version=expected,
                )
            except (ClientError, BotoCoreError) as exc:
                raise TransientError(f"{name.file_name}: cannot update {self.files.table}: {exc}") from exc
            if written:
                return True
            item = self.files.get(name.file_name)  # someone else wrote meanwhile: look again
        raise TransientError(f"{name.file_name}: its item keeps changing while being marked INDEXED; retry later")
