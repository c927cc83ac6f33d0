"""Inventory: register every archive object as a BasicFusionFiles item.

Lists the archive bucket (every page) and creates one item per BasicFusion
object with the metadata its name gives (orbit, start/end time, year, month,
day, year-month, MISR path) plus size, bucket and key. The write is a
conditional create (`attribute_not_exists(file_name)`): a second run, or an
item another worker made first, is left exactly as it is. Objects whose name
is not a BasicFusion name are counted and skipped.

State: an object in an archive class (DEEP_ARCHIVE, GLACIER) is ARCHIVED; an
object in any other class is readable as is, so it starts RESTORED (no
expiry: nothing to restore, nothing to renew).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from carousel.store import iso_seconds
from datacarousel import naming
from datacarousel.archive import is_archive_class
from datacarousel.contract import FileAttr, FileState
from datacarousel.errors import BadFileName
from datacarousel.files_table import FilesTable, identity_attributes, serialize
from datacarousel.naming import BasicFusionName
from datacarousel.times import iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8


@dataclass
class InventoryReport:
    listed: int = 0
    created: int = 0
    existing: int = 0
    skipped: int = 0
    skipped_keys: list[str] = field(default_factory=list)  # the first few, for the operator
    total_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def inventory_item(
    name: BasicFusionName, *, bucket: str, key: str, size: int, storage_class: str, now: float
) -> dict[str, Any]:
    """The item a new archive object gets (pure)."""
    start, end = name.start, naming.orbit_end(name.orbit)
    archived = is_archive_class(storage_class)
    return {
        FileAttr.FILE_NAME: name.file_name,
        **identity_attributes(name),
        FileAttr.START_TIME: iso(start),
        FileAttr.END_TIME: iso(end),
        FileAttr.YEAR: start.year,
        FileAttr.MONTH: start.month,
        FileAttr.DAY: start.day,
        FileAttr.SIZE: int(size),
        FileAttr.BUCKET: bucket,
        FileAttr.KEY: key,
        FileAttr.STATE: (FileState.ARCHIVED if archived else FileState.RESTORED).value,
        FileAttr.STATE_VERSION: 0,
        FileAttr.RESTORE_COUNT: 0,
        FileAttr.UPDATED_AT: iso_seconds(now),
    }


def list_objects(s3: S3Client, bucket: str, prefix: str = "", page_size: int = 1000) -> Iterator[Mapping[str, Any]]:
    """Every object under `prefix` (all pages of `page_size` keys)."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        yield from page.get("Contents", [])


def create_if_absent(files: FilesTable, item: Mapping[str, Any]) -> bool:
    """Conditional put: True if created, False if an item of that name was there."""
    try:
        files.ddb.put_item(
            TableName=files.table,
            Item={k: serialize(v) for k, v in item.items()},
            ConditionExpression="attribute_not_exists(#n0)",
            ExpressionAttributeNames={"#n0": FileAttr.FILE_NAME},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def run(
    s3: S3Client,
    files: FilesTable,
    *,
    bucket: str,
    prefix: str = "",
    now: float,
    workers: int = DEFAULT_WORKERS,
    page_size: int = 1000,
) -> InventoryReport:
    report = InventoryReport()
    items: list[dict[str, Any]] = []
    for obj in list_objects(s3, bucket, prefix, page_size):
        report.listed += 1
        key = str(obj["Key"])
        try:
            name = BasicFusionName.parse(key)
        except BadFileName as exc:
            report.skipped += 1
            if len(report.skipped_keys) < 20:
                report.skipped_keys.append(key)
            log.warning("inventory: skipped %s: %s", key, exc)
            continue
        size = int(obj.get("Size", 0))
        report.total_bytes += size
        items.append(
            inventory_item(
                name, bucket=bucket, key=key, size=size, storage_class=str(obj.get("StorageClass", "")), now=now
            )
        )
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for created in pool.map(lambda item: create_if_absent(files, item), items):
            if created:
                report.created += 1
            else:
                report.existing += 1
    log.info(
        "inventory of s3://%s/%s: listed=%d created=%d existing=%d skipped=%d",
        bucket,
        prefix,
        report.listed,
        report.created,
        report.existing,
        report.skipped,
    )
    return report
