"""The loader's pure decisions: readability from the restore status, skip reasons, batching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacarousel.contract import FileAttr, FileState, IndexRequestAttr
from datacarousel.files_table import iso
from datacarousel.naming import BasicFusionName, archive_key
from loader.core import (
    ListedObject,
    RestoreStatus,
    Skip,
    chunked,
    decide,
    restore_status_from_listing,
    unreadable_reason,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = archive_key(BasicFusionName.for_orbit(85079))


def obj(storage_class: str = "STANDARD", restore: RestoreStatus | None = None, key: str = KEY) -> ListedObject:
    return ListedObject(key=key, size=10, etag="abc", storage_class=storage_class, restore=restore, restore_known=True)


def test_restore_status_from_listing() -> None:
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    status = restore_status_from_listing({"RestoreStatus": {"IsRestoreInProgress": False, "RestoreExpiryDate": expiry}})
    assert status == RestoreStatus(False, expiry)
    assert restore_status_from_listing({}) is None


def test_listing_without_restore_status_needs_a_lookup_only_for_archive_classes() -> None:
    listed = ListedObject.from_listing({"Key": KEY, "Size": 3, "ETag": '"e"', "StorageClass": "DEEP_ARCHIVE"})
    assert listed.etag == "e" and listed.needs_restore_lookup
    assert not ListedObject.from_listing({"Key": KEY, "Size": 3, "ETag": '"e"'}).needs_restore_lookup


@pytest.mark.parametrize(
    ("storage_class", "restore", "expected"),
    [
        ("STANDARD", None, None),
        ("GLACIER_IR", None, None),
        ("DEEP_ARCHIVE", None, Skip.ARCHIVED),
        ("GLACIER", None, Skip.ARCHIVED),
        ("DEEP_ARCHIVE", RestoreStatus(True), Skip.RESTORING),
        ("DEEP_ARCHIVE", RestoreStatus(False, NOW + timedelta(days=1)), None),  # restored: class stays DEEP_ARCHIVE
        ("DEEP_ARCHIVE", RestoreStatus(False, NOW - timedelta(seconds=1)), Skip.EXPIRED),
    ],
)
def test_readability_comes_from_the_restore_status(
    storage_class: str, restore: RestoreStatus | None, expected: Skip | None
) -> None:
    assert unreadable_reason(obj(storage_class, restore), NOW) == expected


def test_decide_skips_bad_names_indexed_and_recently_queued() -> None:
    assert decide(obj(key="P22/readme.txt"), None, NOW).skip is Skip.NOT_BASICFUSION
    assert decide(obj(), None, NOW).queue
    indexed = {FileAttr.STATE: FileState.INDEXED.value, FileAttr.ETAG: "abc"}
    assert decide(obj(), indexed, NOW).skip is Skip.INDEXED
    assert decide(obj(), {**indexed, FileAttr.ETAG: "old"}, NOW).queue, "a new object version is indexed again"
    sent = {IndexRequestAttr.ETAG: "abc", IndexRequestAttr.QUEUED_AT: iso(NOW - timedelta(minutes=5))}
    assert decide(obj(), None, NOW, timedelta(hours=1), sent).skip is Skip.QUEUED
    assert decide(obj(), None, NOW, timedelta(minutes=1), sent).queue, "a stale request is queued again"
    assert decide(obj(), None, NOW, timedelta(hours=1), {**sent, IndexRequestAttr.ETAG: "old"}).queue, "new version"
    assert decide(obj(), indexed, NOW, timedelta(hours=1), sent).skip is Skip.INDEXED, "indexed wins over queued"
    assert decide(obj("DEEP_ARCHIVE", None), None, NOW).skip is Skip.ARCHIVED


@given(st.lists(st.integers(), max_size=60), st.integers(1, 12))
def test_chunked_keeps_order_and_bounds(items: list[int], size: int) -> None:
    chunks = list(chunked(items, size))
    assert [x for c in chunks for x in c] == items
    assert all(0 < len(c) <= size for c in chunks)
    assert all(len(c) == size for c in chunks[:-1])
