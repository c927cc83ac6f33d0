"""BasicFusionFiles adapter: conditional writes and index-only queries, against the stack's table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datacarousel import aws, naming
from datacarousel.contract import FileAttr, FileState
from datacarousel.files_table import FileMetadata, FilesTable, iso, metadata_is_current, utcnow, year_months_of_orbits
from datacarousel.naming import BasicFusionName

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
