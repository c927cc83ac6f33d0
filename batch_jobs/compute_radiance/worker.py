"""Adapters around the job: open a source, run, write the result durably (S3 or a local path), idempotently.

A work item's result key is `naming.result_key(job_id, name)`. Before computing, the
worker looks for the key: a result written with the same parameters from the same
source object (same ETag) is kept and the work is skipped. Otherwise it computes
and puts the file (deterministic bytes: a rerun overwrites with identical content).
The queue drain deletes the message only after `handle` returns, i.e. after the put.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from batch_jobs.compute_radiance import readers
from batch_jobs.compute_radiance.description import DEFINITION
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.reduce import reduce_job
from batch_jobs.compute_radiance.result import OrbitResult, Parameters, npz_bytes
from datacarousel import aws
from datacarousel.errors import BadInput, MalformedMessage, NotReadable, TransientError
from datacarousel.messages import ReduceRequest, WorkItem, parse_job_message
from datacarousel.naming import BasicFusionName, result_key

log = logging.getLogger(__name__)

META_PARAMETERS = "cr-parameters-digest"
META_SOURCE_ETAG = "cr-source-etag"
READER_CHOICES = ("s3", "hsds", "auto")
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


@dataclass(frozen=True)
class Outcome:
    key: str
    computed: bool  # False when an identical result was already there
    skipped_reasons: tuple[str, ...] = ()


def open_source(
    *, file: str | None = None, s3_url: str | None = None, domain: str | None = None
) -> readers.OrbitReader:
    given = [x for x in (file, s3_url, domain) if x]
    if len(given) != 1:
        raise BadInput("give exactly one of --file, --s3, --domain")
    if file:
        return readers.open_local(file)
    if s3_url:
        return readers.open_s3(s3_url)
    assert domain is not None
    return readers.open_hsds(domain)


_CORRUPT_MARKERS = ("inflate", "truncated", "corrupt", "checksum", "filter", "signature", "eof")


def run_source(source: readers.OrbitReader, parameters: Parameters) -> OrbitResult:
    with source:
        try:
            return compute_orbit(source, parameters)
        except OSError as exc:  # HDF5 opened the file but could not read a dataset
            text = str(exc)
            if any(marker in text.lower() for marker in _CORRUPT_MARKERS):
                raise BadInput(f"{source.name}: corrupt or truncated data: {text}") from exc
            raise TransientError(f"{source.name}: read failed: {text}") from exc


def write_output(data: bytes, out: str, name: BasicFusionName, s3: Any | None = None) -> str:
    """Write a result to a local path / directory or to `s3://bucket/key` (a key ending in '/' is a prefix)."""
    if out.startswith("s3://"):
        bucket, key = readers.split_s3_url(out if not out.endswith("/") else out + name.result_name)
        if s3 is None:
            s3 = aws.client("s3")
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"
    path = Path(out)
    if path.is_dir() or out.endswith("/"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / name.result_name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return str(path)


class WorkItemHandler:
    """`handle(body)` for `queue_worker.drain`: one WorkItem -> one result object in the results bucket."""

    def __init__(
        self,
        s3: Any,
        results_bucket: str,
        defaults: Parameters,
        reader: str = "s3",
        s3_fs: Any | None = None,
    ) -> None:
        if reader not in READER_CHOICES:
            raise ValueError(f"reader must be one of {READER_CHOICES}")
        self.s3 = s3
        self.results_bucket = results_bucket
        self.defaults = defaults
        self.reader = reader
        self.s3_fs = s3_fs

    def __call__(self, body: str) -> None:
        message = parse_job_message(body)
        if isinstance(message, ReduceRequest):
            if message.job_definition != DEFINITION.name:
                raise BadInput(f"a {message.job_definition} reduce request reached {DEFINITION.name}'s worker")
            reduced = reduce_job(self.s3, self.results_bucket, message.job_id)
            log.info(
                "job %s: reduced: %d keys written, %d in all", message.job_id, len(reduced.written), len(reduced.keys)
            )
            return
        self.handle_item(message)

    def handle_item(self, item: WorkItem) -> Outcome:
        name = BasicFusionName.parse(item.file_name)
        try:
            params = self.defaults.with_overrides(item.parameters)
        except ValueError as exc:
            raise MalformedMessage(f"work item {item.job_id}/{item.file_name}: bad parameters: {exc}") from exc
        key = result_key(item.job_id, name)
        etag = self._source_etag(item)
        if self._already_done(key, params, etag):
            log.info("job %s file %s: result already at %s, skipped", item.job_id, item.file_name, key)
            return Outcome(key, computed=False)
        started = time.monotonic()
        use_hsds = self.reader == "hsds" or (self.reader == "auto" and bool(item.domain))
        if use_hsds:
            if not item.domain:
                raise BadInput(f"work item {item.file_name}: no HSDS domain to read")
            source = readers.open_hsds(item.domain)
        else:
            source = readers.open_s3(f"s3://{item.bucket}/{item.key}", fs=self.s3_fs)
        result = run_source(source, params)
        data = npz_bytes(result.arrays())
        try:
            self.s3.put_object(
                Bucket=self.results_bucket,
                Key=key,
                Body=data,
                ContentType="application/octet-stream",
                Metadata={META_PARAMETERS: params.digest(), META_SOURCE_ETAG: etag},
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"result put to s3://{self.results_bucket}/{key} failed: {exc}") from exc
        reasons = tuple(sorted(result.reasons()))
        log.info(
            "job %s file %s: wrote s3://%s/%s (%d bytes) in %.1f s; skipped reasons: %s",
            item.job_id, item.file_name, self.results_bucket, key, len(data), time.monotonic() - started,
            ", ".join(reasons) or "none",
        )  # fmt: skip
        return Outcome(key, computed=True, skipped_reasons=reasons)

    def _source_etag(self, item: WorkItem) -> str:
        try:
            head = self.s3.head_object(Bucket=item.bucket, Key=item.key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                if item.domain and self.reader != "s3":
                    return ""  # reading from HSDS; the S3 object is not needed
                raise BadInput(f"s3://{item.bucket}/{item.key}: no such object") from exc
            if code in ("403", "AccessDenied", "InvalidObjectState"):
                raise BadInput(f"s3://{item.bucket}/{item.key}: not readable: {code}") from exc
            raise TransientError(f"head s3://{item.bucket}/{item.key}: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"head s3://{item.bucket}/{item.key}: {exc}") from exc
        storage_class = str(head.get("StorageClass", "STANDARD"))
        restore = str(head.get("Restore", ""))
        if storage_class in ARCHIVE_CLASSES and 'ongoing-request="false"' not in restore:
            # not readable yet (or the restored copy expired): retry later, SQS redrive limits the retries
            raise NotReadable(f"s3://{item.bucket}/{item.key} is archived ({storage_class}) and not restored")
        return str(head.get("ETag", "")).strip('"')

    def _already_done(self, key: str, params: Parameters, etag: str) -> bool:
        try:
            head = self.s3.head_object(Bucket=self.results_bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise TransientError(f"head s3://{self.results_bucket}/{key}: {exc}") from exc
        meta = head.get("Metadata", {})
        return bool(etag) and meta.get(META_PARAMETERS) == params.digest() and meta.get(META_SOURCE_ETAG) == etag


def load_manifest(location: str, s3: Any | None = None) -> list[Any]:
    """A manifest: a JSON list of work items, from `s3://bucket/key` or a local path."""
    if location.startswith("s3://"):
        bucket, key = readers.split_s3_url(location)
        if s3 is None:
            s3 = aws.client("s3")
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    else:
        text = Path(location).read_text(encoding="utf-8")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"manifest {location}: not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise BadInput(f"manifest {location}: expected a JSON list of work items")
    return items
