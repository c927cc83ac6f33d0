"""The loader's AWS side: list the archive (every page), read restore status, send index requests."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from datacarousel.archive import is_not_found, parse_restore_header
from datacarousel.contract import SQS_BATCH_SIZE
from datacarousel.files_table import FilesTable
from datacarousel.messages import IndexRequest
from datacarousel.queue_worker import is_fifo
from loader.core import (
    DECIDE_FILE_ATTRS,
    DECIDE_LEDGER_ATTRS,
    DEFAULT_REQUEUE_AFTER,
    Decision,
    ListedObject,
    LoaderReport,
    Skip,
    chunked,
    decide,
    index_request,
)
from loader.ledger import BATCH_WRITE_MAX, IndexRequestLedger, ledger_item

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2OutputTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 3
LOOKUP_BATCH = 100  # BatchGetItem keys per call
DEFAULT_WORKERS = 16  # parallel AWS calls: 16 keep moto's one server process busy where 8 left a fifth idle
LIST_WORKERS = 4  # folders listed at once


def _listing(s3: S3Client, bucket: str, prefix: str, **extra: Any) -> Iterator[ListObjectsV2OutputTypeDef]:
    """list_objects_v2 pages of 1,000 keys under `prefix`, with each object's restore status."""
    paginator = s3.get_paginator("list_objects_v2")
    yield from paginator.paginate(
        Bucket=bucket,
        Prefix=prefix,
        OptionalObjectAttributes=["RestoreStatus"],
        PaginationConfig={"PageSize": 1000},
        **extra,
    )


def list_pages(s3: S3Client, bucket: str, prefix: str = "") -> Iterator[list[ListedObject]]:
    """Every object under `prefix`, page by page (1,000 keys a page), asking for the restore status."""
    for page in _listing(s3, bucket, prefix):
        yield [ListedObject.from_listing(obj) for obj in page.get("Contents", [])]


def list_folders(s3: S3Client, bucket: str, prefix: str = "") -> tuple[list[str], list[ListedObject]]:
    """The folders one level below `prefix` (the archive keeps one per MISR path) and the objects
    directly under `prefix` (not in a folder), from a delimited listing."""
    folders: list[str] = []
    loose: list[ListedObject] = []
    for page in _listing(s3, bucket, prefix, Delimiter="/"):
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        loose += [ListedObject.from_listing(obj) for obj in page.get("Contents", [])]
    return folders, loose


def list_pages_parallel(
    s3: S3Client, bucket: str, prefix: str = "", *, workers: int = LIST_WORKERS
) -> Iterator[list[ListedObject]]:
    """Every object under `prefix`, as `list_pages` gives them, but with the folders one level down
    listed `workers` at a time.

    One listing is a chain of pages, each waiting for the previous page's continuation token;
    folders are independent chains, so listing them side by side is how S3 is listed fast (and
    moto answers a narrow prefix much faster than a page of a large bucket). Folders come out in
    key order, at most `workers` listed ahead of the consumer.
    """
    folders, loose = list_folders(s3, bucket, prefix)
    yield from chunked(loose, 1000)
    if not folders:
        return

    def whole(folder: str) -> list[list[ListedObject]]:
        return list(list_pages(s3, bucket, folder))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loader-list") as pool:
        remaining = iter(folders)
        ahead: deque[Future[list[list[ListedObject]]]] = deque(
            pool.submit(whole, folder) for folder in islice(remaining, workers)
        )
        while ahead:
            pages = ahead.popleft().result()
            following = next(remaining, None)
            if following is not None:
                ahead.append(pool.submit(whole, following))
            yield from pages


def _head_restore(s3: S3Client, bucket: str, obj: ListedObject) -> ListedObject | None:
    """The object with its restore status read from HEAD (`Restore` header); None if it is gone."""
    try:
        head = s3.head_object(Bucket=bucket, Key=obj.key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    return replace(
        obj,
        restore=parse_restore_header(head.get("Restore")).status,
        restore_known=True,
        storage_class=head.get("StorageClass") or obj.storage_class,
    )


def resolve_restore_status(
    s3: S3Client, bucket: str, objects: Sequence[ListedObject], pool: Executor
) -> list[ListedObject | None]:
    """Fill in the restore status of archive-class objects the listing left without one (HEAD, in parallel).

    AWS returns it in the listing when asked (OptionalObjectAttributes); moto does not,
    and AWS omits it for never-restored objects, so those get a HEAD each.
    """
    lookups = {i: pool.submit(_head_restore, s3, bucket, o) for i, o in enumerate(objects) if o.needs_restore_lookup}
    return [lookups[i].result() if i in lookups else o for i, o in enumerate(objects)]


def send_index_requests(sqs: SQSClient, queue_url: str, requests: Sequence[IndexRequest]) -> list[IndexRequest]:
    """Send up to 10 requests in one SendMessageBatch (retrying failed entries); returns those sent."""
    if len(requests) > SQS_BATCH_SIZE:
        raise ValueError(f"at most {SQS_BATCH_SIZE} messages a batch")
    fifo = is_fifo(queue_url)
    pending = {str(i): r for i, r in enumerate(requests)}
    sent: list[IndexRequest] = []
    for attempt in range(1, SEND_ATTEMPTS + 1):
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for entry_id, request in pending.items():
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": entry_id, "MessageBody": request.to_json()}
            if fifo:
                # One group per file: files are independent, and one slow file never blocks another.
                entry["MessageGroupId"] = request.key[-128:]
                entry["MessageDeduplicationId"] = request.deduplication_id()
            entries.append(entry)
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for ok in response.get("Successful", []):
            sent.append(pending.pop(ok["Id"]))
        failed = response.get("Failed", [])
        if not failed:
            break
        log.warning("send attempt %d: %d of %d index requests failed: %s", attempt, len(failed), len(entries), failed)
        if any(f.get("SenderFault") for f in failed):
            break  # our fault: retrying the same entries cannot help
        time.sleep(0.2 * 2**attempt)
    return sent


@dataclass
class _Run:
    """One loader run: its clients, settings and report."""

    s3: S3Client
    sqs: SQSClient
    files: FilesTable
    ledger: IndexRequestLedger
    bucket: str
    queue_url: str
    pool: Executor
    now: datetime
    requeue_after: timedelta
    report: LoaderReport
    seen: set[str] = field(default_factory=set)

    def decide_page(self, page: list[ListedObject]) -> list[Decision]:
        present: list[ListedObject] = []
        for obj in resolve_restore_status(self.s3, self.bucket, page, self.pool):
            if obj is None:
                self.report.skipped[Skip.VANISHED.value] += 1
            else:
                present.append(obj)
        first = [decide(o, None, self.now, self.requeue_after) for o in present]
        readable = [d.name.file_name for d in first if d.queue and d.name is not None]
        batches = list(chunked(readable, LOOKUP_BATCH))
        items: dict[str, dict[str, Any]] = {}
        sent: dict[str, dict[str, Any]] = {}
        # Only what `decide` reads: moto (and the network) pay per attribute returned. Both tables'
        # lookups are submitted before either is read (Executor.map submits at once), so they overlap.
        in_files = self.pool.map(partial(self.files.get_many, attributes=DECIDE_FILE_ATTRS), batches)
        in_ledger = self.pool.map(partial(self.ledger.get_many, attributes=DECIDE_LEDGER_ATTRS), batches)
        for found in in_files:
            items.update(found)
        for found in in_ledger:
            sent.update(found)
        decisions = [self._final(d, items, sent) for d in first]
        for d in decisions:
            if d.skip is not None:
                self.report.skipped[d.skip.value] += 1
                if d.skip is Skip.NOT_BASICFUSION:
                    log.warning("s3://%s/%s: not a BasicFusion file name, not queued", self.bucket, d.obj.key)
        return decisions

    def _final(
        self, first: Decision, items: Mapping[str, Mapping[str, Any]], sent: Mapping[str, Mapping[str, Any]]
    ) -> Decision:
        name = first.name
        if not first.queue or name is None:
            return first
        if name.file_name in self.seen:
            return Decision(first.obj, name, Skip.DUPLICATE)
        self.seen.add(name.file_name)
        return decide(first.obj, items.get(name.file_name), self.now, self.requeue_after, sent.get(name.file_name))

    def queue(self, decisions: list[Decision]) -> None:
        """Send first, then record the requests in the ledger: a crash in between only means a repeat
        request later, which index_file absorbs (it is idempotent); never a file that is never queued."""
        names = {d.obj.key: d.name for d in decisions if d.name is not None}
        batches = list(chunked([index_request(self.bucket, d.obj) for d in decisions], SQS_BATCH_SIZE))
        results = self.pool.map(lambda batch: send_index_requests(self.sqs, self.queue_url, batch), batches)
        sent: list[IndexRequest] = []
        for batch, ok in zip(batches, results, strict=True):
            self.report.send_failed += len(batch) - len(ok)
            sent += ok
        entries = [ledger_item(r, names[r.key], self.now, self.requeue_after) for r in sent]
        list(self.pool.map(self.ledger.record, chunked(entries, BATCH_WRITE_MAX)))
        for request in sent:
            self.report.add_queued(request.key)


def run(
    s3: S3Client,
    sqs: SQSClient,
    files: FilesTable,
    ledger: IndexRequestLedger,
    *,
    bucket: str,
    queue_url: str,
    prefix: str = "",
    dry_run: bool = False,
    now: datetime,
    requeue_after: timedelta = DEFAULT_REQUEUE_AFTER,
    workers: int = DEFAULT_WORKERS,
) -> LoaderReport:
    """List `bucket/prefix`, queue an index request for every readable object not yet indexed or queued."""
    report = LoaderReport(bucket=bucket, prefix=prefix, dry_run=dry_run)
    started = time.monotonic()
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loader") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="loader-send") as sender,
    ):
        state = _Run(s3, sqs, files, ledger, bucket, queue_url, pool, now, requeue_after, report)
        sending: Future[None] | None = None
        for page in list_pages_parallel(s3, bucket, prefix):
            report.listed += len(page)
            to_queue = [d for d in state.decide_page(page) if d.queue]
            if dry_run:
                for d in to_queue:
                    report.add_queued(d.obj.key)
                continue
            # The next page is decided while this one is sent and recorded (one page in flight:
            # deciding touches only `skipped` and `seen`, sending only `queued` and `send_failed`).
            if sending is not None:
                sending.result()
            sending = sender.submit(state.queue, to_queue)
        if sending is not None:
            sending.result()
    report.seconds = time.monotonic() - started
    log.info(
        "loader s3://%s/%s: listed=%d queued=%d skipped=%s send_failed=%d dry_run=%s in %.1f s",
        bucket,
        prefix,
        report.listed,
        report.queued,
        dict(report.skipped),
        report.send_failed,
        dry_run,
        report.seconds,
    )
    return report
