"""BasicFusionFiles adapter: conditional writes and index-only queries, against the stack's table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carousel.store import CarouselFiles
from datacarousel import aws, naming
from datacarousel.contract import FILES_TABLE, FileAttr, FileState
from datacarousel.files_table import (
    FileMetadata,
    FilesTable,
    iso,
    metadata_is_current,
    serialize,
    year_months_of_orbits,
)
from datacarousel.naming import BasicFusionName
from datacarousel.times import utcnow

FOLDER = "/home/test/basicfusion/"


@given(st.integers(naming.FIRST_ORBIT, naming.LAST_ORBIT), st.integers(0, 3000))
@settings(max_examples=200, deadline=None)
def test_year_months_of_orbits_cover_every_orbit_in_range(first: int, span: int) -> None:
    last = min(first + span, naming.LAST_ORBIT)
    months = year_months_of_orbits(first, last)
    assert months == sorted(set(months))
    for orbit in {first, last, (first + last) // 2}:
        assert BasicFusionName.for_orbit(orbit).year_month in months


@pytest.fixture()
def files(local_env: Any) -> Iterator[FilesTable]:
    """The stack's BasicFusionFiles table; the items a test writes are deleted after it."""
    table = FilesTable(aws.client("dynamodb"), local_env.env["DC_FILES_TABLE"], page_size=2)
    written: list[str] = []
    original = table._update

    def tracking_update(file_name: str, *args: Any, **kwargs: Any) -> bool:
        written.append(file_name)
        return original(file_name, *args, **kwargs)

    table._update = tracking_update  # type: ignore[method-assign]
    yield table
    for file_name in set(written):
        table.ddb.delete_item(TableName=table.table, Key={FileAttr.FILE_NAME: {"S": file_name}})


@pytest.fixture()
def no_scan(files: FilesTable) -> Iterator[list[str]]:
    """Fails any DynamoDB Scan made through the adapter's client."""
    calls: list[str] = []

    def refuse(**kwargs: Any) -> None:
        calls.append("Scan")
        raise AssertionError("a Scan was attempted: every query must use an index")

    files.ddb.meta.events.register("before-call.dynamodb.Scan", refuse)
    yield calls
    files.ddb.meta.events.unregister("before-call.dynamodb.Scan", refuse)


def _meta(name: BasicFusionName, **changes: Any) -> FileMetadata:
    start = name.start
    values: dict[str, Any] = {
        "file_name": name.file_name,
        "orbit": name.orbit,
        "start_time": iso(start),
        "end_time": iso(naming.orbit_end(name.orbit)),
        "year": start.year,
        "month": start.month,
        "day": start.day,
        "year_month": name.year_month,
        "misr_path": name.misr_path,
        "instruments": ("ASTER", "CERES", "MISR", "MODIS", "MOPITT"),
        "modis_day_granules": 11,
        "modis_night_granules": 9,
        "ceres_granules": 2,
        "misr_first_daylit_block": 1,
        "misr_last_daylit_block": 90,
        "size_bytes": 1234,
        "domain": naming.hsds_domain(FOLDER, name),
    }
    values.update(changes)
    return FileMetadata(**values)


def _index(files: FilesTable, name: BasicFusionName, etag: str = "e1") -> None:
    assert files.mark_indexed(
        name,
        bucket="b",
        key=naming.archive_key(name),
        etag=etag,
        size=1234,
        domain=naming.hsds_domain(FOLDER, name),
        now=utcnow(),
        expected_version=None,
    )


@pytest.mark.integration
def test_mark_indexed_is_conditional_on_the_version_read(files: FilesTable) -> None:
    name = BasicFusionName.for_orbit(70003)
    _index(files, name)
    item = files.get(name.file_name)
    assert item is not None and item[FileAttr.STATE_VERSION] == 1
    kw: dict[str, Any] = {"bucket": "b", "key": "k", "etag": "e2", "size": 1, "domain": "/d", "now": utcnow()}
    assert not files.mark_indexed(name, expected_version=None, **kw), "the item exists already"
    assert not files.mark_indexed(name, expected_version=7, **kw), "a stale version must not overwrite"
    assert files.mark_indexed(name, expected_version=1, **kw)
    item = files.get(name.file_name)
    assert item is not None and item[FileAttr.STATE_VERSION] == 2 and item[FileAttr.ETAG] == "e2"


@pytest.mark.integration
def test_record_metadata_is_idempotent_and_never_overwrites_newer_state(files: FilesTable) -> None:
    name = BasicFusionName.for_orbit(70004)
    _index(files, name)
    meta = _meta(name)
    assert files.record_metadata(meta, utcnow()) == "written"
    first = files.get(name.file_name)
    assert files.record_metadata(meta, utcnow() + timedelta(hours=1)) == "unchanged"
    assert files.get(name.file_name) == first
    assert first is not None and first[FileAttr.INSTRUMENTS] == list(meta.instruments)
    assert first[FileAttr.MODIS_DAY_GRANULES] == 11 and first[FileAttr.STATE] == FileState.INDEXED.value
    # The carousel invalidates the file: metadata from the old domain must not land on it.
    files.ddb.update_item(
        TableName=files.table,
        Key={FileAttr.FILE_NAME: {"S": name.file_name}},
        UpdateExpression="SET #s = :a REMOVE #d",
        ExpressionAttributeNames={"#s": FileAttr.STATE, "#d": FileAttr.DOMAIN},
        ExpressionAttributeValues={":a": {"S": FileState.ARCHIVED.value}},
    )
    assert files.record_metadata(_meta(name, ceres_granules=3), utcnow()) == "conflict"
    item = files.get(name.file_name)
    assert item is not None and item[FileAttr.STATE] == FileState.ARCHIVED.value
    assert item[FileAttr.CERES_GRANULES] == 2


@pytest.mark.integration
def test_queries_use_indexes_only(files: FilesTable, no_scan: list[str]) -> None:
    # Orbits around the 2015.11 / 2015.12 boundary, on two MISR paths among others.
    orbits = [*range(84845, 84857), 84900, 85133]
    names = [BasicFusionName.for_orbit(o) for o in orbits]
    for name in names:
        _index(files, name)
        assert files.record_metadata(_meta(name), utcnow()) == "written"
    mine = {n.file_name for n in names}

    def pick(items: Iterator[dict[str, Any]]) -> list[int]:
        return [i[FileAttr.ORBIT] for i in items if i[FileAttr.FILE_NAME] in mine]

    by_month: dict[str, list[int]] = {}
    for name in names:
        by_month.setdefault(name.year_month, []).append(name.orbit)
    assert len(by_month) >= 2
    for ym, expected in by_month.items():
        assert pick(files.by_year_month(ym)) == sorted(expected)
    path = BasicFusionName.for_orbit(84900).misr_path  # 85133 is on the same path
    assert pick(files.by_misr_path(path)) == sorted(n.orbit for n in names if n.misr_path == path)
    assert pick(files.by_orbits(84848, 84900)) == [*range(84848, 84857), 84900]
    assert pick(files.by_state(FileState.INDEXED, orbits=(84845, 85133))) == sorted(orbits)
    assert pick(files.by_state("RESTORED", orbits=(84845, 85133))) == []
    with pytest.raises(ValueError):
        list(files.by_state("NOPE"))
    with pytest.raises(ValueError):
        list(files.by_year_month("2015-12"))
    assert no_scan == []


@pytest.mark.integration
def test_the_scan_guard_works(files: FilesTable, no_scan: list[str]) -> None:
    with pytest.raises(AssertionError, match="Scan"):
        files.ddb.scan(TableName=files.table)
    assert no_scan == ["Scan"]


@pytest.mark.integration
def test_get_many_reads_in_batches(files: FilesTable) -> None:
    names = [BasicFusionName.for_orbit(o) for o in range(71000, 71150)]
    for name in names[::3]:
        _index(files, name)
    found = files.get_many([n.file_name for n in names] + ["missing.h5"])
    assert set(found) == {n.file_name for n in names[::3]}
    assert all(item[FileAttr.DOMAIN] and item[FileAttr.ORBIT] for item in found.values())
    # With attributes: only those and the name (what the loader reads, and all it pays for).
    few = files.get_many([n.file_name for n in names], attributes=[FileAttr.STATE, FileAttr.ETAG])
    assert set(few) == set(found)
    assert all(set(item) == {FileAttr.FILE_NAME, FileAttr.STATE, FileAttr.ETAG} for item in few.values())
    assert {item[FileAttr.ETAG] for item in few.values()} == {"e1"}


def _indexed(indexed_at: str, recorded_at: str | None = None, **extra: str) -> dict[str, str]:
    item = {"state": "INDEXED", "indexed_at": indexed_at, **extra}
    if recorded_at is not None:
        item["metadata_recorded_at"] = recorded_at
    return item


DAY1, DAY2, DAY3 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"


@pytest.mark.parametrize(
    ("item", "domain", "current"),
    [
        (None, None, False),
        ({"state": "RESTORED"}, None, False),
        (_indexed(DAY2), None, False),  # never recorded
        (_indexed(DAY2, DAY1), None, False),  # re-indexed since it was recorded
        (_indexed(DAY2, DAY2), None, True),
        (_indexed(DAY2, DAY3, domain="/a"), "/b", False),  # recorded for another domain
        (_indexed(DAY2, DAY3, domain="/a"), "/a", True),
    ],
)
def test_metadata_is_current_only_for_the_current_index(item: Any, domain: str | None, current: bool) -> None:
    assert metadata_is_current(item, domain) is current


# --- conditional writes, in process (moto's mock_aws): winner, loser, stale version ------------------
# The integration tests above show the writes against the stack's table; these pin every path of
# their conditions: a winning write leaves exactly the expected item, a refused one leaves the raw
# item (DynamoDB's typed JSON) byte for byte as it was, or still absent.

NAME = BasicFusionName.for_orbit(63502)
DOMAIN = naming.hsds_domain(FOLDER, NAME)
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
LATER = WHEN + timedelta(days=2)


@pytest.fixture()
def fake_files(fake_aws: Any) -> FilesTable:
    return FilesTable(fake_aws.ddb, fake_aws.table(FILES_TABLE))


def _raw(files: FilesTable) -> dict[str, Any] | None:
    response = files.ddb.get_item(
        TableName=files.table, Key={FileAttr.FILE_NAME: {"S": NAME.file_name}}, ConsistentRead=True
    )
    return response.get("Item")


def _put(files: FilesTable, item: dict[str, Any]) -> None:
    files.ddb.put_item(TableName=files.table, Item={k: serialize(v) for k, v in item.items()})


def _seed(state: FileState, version: int | None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        FileAttr.FILE_NAME: NAME.file_name,
        FileAttr.ORBIT: NAME.orbit,
        FileAttr.YEAR_MONTH: NAME.year_month,
        FileAttr.MISR_PATH: NAME.misr_path,
        FileAttr.STATE: state.value,
        FileAttr.BUCKET: "archive",
        FileAttr.KEY: naming.archive_key(NAME),
        FileAttr.SIZE: 1234,
        FileAttr.RESTORE_COUNT: 1,
        FileAttr.RESTORE_EXPIRY: iso(LATER),
        FileAttr.UPDATED_AT: "2025-12-01T00:00:00Z",
        **extra,
    }
    if version is not None:
        item[FileAttr.STATE_VERSION] = version
    return item


def _indexed_by(item: dict[str, Any] | None, version: int, *, readable_until: datetime | None) -> dict[str, Any]:
    """What a winning mark_indexed (etag e2, domain DOMAIN, at WHEN) leaves of `item`."""
    out = dict(item or {})
    out.update({
        FileAttr.FILE_NAME: NAME.file_name,
        FileAttr.ORBIT: NAME.orbit,
        FileAttr.YEAR_MONTH: NAME.year_month,
        FileAttr.MISR_PATH: NAME.misr_path,
        FileAttr.STATE: "INDEXED",
        FileAttr.BUCKET: "archive",
        FileAttr.KEY: naming.archive_key(NAME),
        FileAttr.ETAG: "e2",
        FileAttr.SIZE: 1234,
        FileAttr.DOMAIN: DOMAIN,
        FileAttr.INDEXED_AT: iso(WHEN),
        FileAttr.UPDATED_AT: iso(WHEN),
        FileAttr.STATE_VERSION: version,
    })  # fmt: skip
    out.pop(FileAttr.RESTORE_EXPIRY, None)
    if readable_until is not None:
        out[FileAttr.RESTORE_EXPIRY] = iso(readable_until)
    return out


MARK_INDEXED = [
    # (case, item before, expected_version, readable_until, version after: None = refused)
    ("None: a new item", None, None, LATER, 1),
    ("None: a new item of a readable class (no expiry)", None, None, None, 1),
    ("0: an inventoried item that never had a version", _seed(FileState.RESTORED, None), 0, LATER, 1),
    ("0: an item at version 0, its old expiry dropped", _seed(FileState.RESTORED, 0), 0, None, 1),
    ("N: the version read", _seed(FileState.RESTORED, 3, metadata_recorded_at="x"), 3, LATER, 4),
    ("N: re-indexed (INDEXED before) at the version read", _seed(FileState.INDEXED, 3, etag="e1"), 3, LATER, 4),
    ("loser, None: the item exists", _seed(FileState.ARCHIVED, None), None, LATER, None),
    ("loser, 0: no item (not created)", None, 0, LATER, None),
    ("loser, N: no item (not created)", None, 3, LATER, None),
    ("loser, 0: stale (item at 1)", _seed(FileState.RESTORED, 1), 0, LATER, None),
    ("loser, N: stale (item one ahead)", _seed(FileState.RESTORED, 4), 3, LATER, None),
    ("loser, N: version ahead of the item", _seed(FileState.RESTORED, 2), 3, LATER, None),
    ("loser, N: FAILED at the version read", _seed(FileState.FAILED, 3, error="bad"), 3, LATER, None),
    ("loser, 0: FAILED, never versioned", _seed(FileState.FAILED, None, error="bad"), 0, LATER, None),
]


@pytest.mark.parametrize(
    ("before", "expected_version", "readable_until", "version_after"),
    [case[1:] for case in MARK_INDEXED],
    ids=[case[0] for case in MARK_INDEXED],
)
def test_mark_indexed_condition(
    fake_files: FilesTable,
    before: dict[str, Any] | None,
    expected_version: int | None,
    readable_until: datetime | None,
    version_after: int | None,
) -> None:
    if before is not None:
        _put(fake_files, before)
    raw_before = _raw(fake_files)
    written = fake_files.mark_indexed(
        NAME,
        bucket="archive",
        key=naming.archive_key(NAME),
        etag="e2",
        size=1234,
        domain=DOMAIN,
        now=WHEN,
        expected_version=expected_version,
        readable_until=readable_until,
    )
    if version_after is None:
        assert written is False
        assert _raw(fake_files) == raw_before, "a refused mark_indexed changed (or created) the item"
    else:
        assert written is True
        assert fake_files.get(NAME.file_name) == _indexed_by(before, version_after, readable_until=readable_until)


def _recorded(item: dict[str, Any] | None, meta: FileMetadata, at: datetime) -> dict[str, Any]:
    return {**(item or {}), **meta.attributes(), FileAttr.METADATA_AT: iso(at), FileAttr.UPDATED_AT: iso(at)}


def test_record_metadata_written_on_a_missing_item_creates_it_indexed(fake_files: FilesTable) -> None:
    meta = _meta(NAME)
    assert fake_files.record_metadata(meta, WHEN) == "written"
    expected = {FileAttr.FILE_NAME: NAME.file_name, FileAttr.STATE: "INDEXED", FileAttr.STATE_VERSION: 1}
    assert fake_files.get(NAME.file_name) == _recorded(expected, meta, WHEN)


def test_record_metadata_written_then_unchanged_byte_for_byte(fake_files: FilesTable) -> None:
    indexed = _seed(FileState.INDEXED, 2, domain=DOMAIN, etag="e1", indexed_at=iso(WHEN - timedelta(hours=1)))
    _put(fake_files, indexed)
    meta = _meta(NAME)
    assert fake_files.record_metadata(meta, WHEN) == "written"
    assert fake_files.get(NAME.file_name) == _recorded(indexed, meta, WHEN), "state, version, etag untouched"
    raw = _raw(fake_files)
    assert fake_files.record_metadata(meta, LATER) == "unchanged"
    assert _raw(fake_files) == raw


def test_record_metadata_is_written_again_for_a_new_index(fake_files: FilesTable) -> None:
    """Identical metadata recorded before the file was indexed again: recorded again (fresh timestamp)."""
    meta = _meta(NAME)
    old = _recorded(_seed(FileState.INDEXED, 4, domain=DOMAIN, indexed_at=iso(LATER)), meta, WHEN)
    _put(fake_files, old)
    assert fake_files.record_metadata(meta, LATER) == "written"
    assert fake_files.get(NAME.file_name) == _recorded(old, meta, LATER)


@pytest.mark.parametrize(
    "before",
    [
        _seed(FileState.ARCHIVED, 5),  # invalidated: its domain is gone
        _seed(FileState.INDEXED, 5, domain="/home/test/basicfusion/another.h5"),
        _seed(FileState.RESTORED, 5, domain=DOMAIN),
        _seed(FileState.FAILED, 5, domain=DOMAIN, error="bad"),
    ],
    ids=["ARCHIVED, no domain", "INDEXED on another domain", "RESTORED", "FAILED"],
)
def test_record_metadata_conflict_leaves_the_item_byte_for_byte(fake_files: FilesTable, before: dict[str, Any]) -> None:
    _put(fake_files, before)
    raw = _raw(fake_files)
    assert fake_files.record_metadata(_meta(NAME), WHEN) == "conflict"
    assert _raw(fake_files) == raw


def test_record_metadata_loses_to_an_invalidation_between_its_read_and_its_write(
    fake_files: FilesTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The condition is checked at the write: metadata read for a domain the carousel drops meanwhile never lands."""
    _put(fake_files, _seed(FileState.INDEXED, 5, domain=DOMAIN, indexed_at=iso(WHEN)))
    read = fake_files.get

    def read_then_invalidated(file_name: str) -> dict[str, Any] | None:
        item = read(file_name)
        monkeypatch.setattr(fake_files, "get", read)
        assert CarouselFiles(fake_files).invalidate(NAME.file_name, 5, WHEN.timestamp())
        return item

    monkeypatch.setattr(fake_files, "get", read_then_invalidated)
    assert fake_files.record_metadata(_meta(NAME), LATER) == "conflict"
    item = fake_files.get(NAME.file_name)
    assert item is not None and item[FileAttr.STATE] == "ARCHIVED" and FileAttr.MODIS_DAY_GRANULES not in item
