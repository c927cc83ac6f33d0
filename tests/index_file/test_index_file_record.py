"""index_file's write of INDEXED against the carousel's own writes (in-process fakes: moto's `mock_aws`).

The carousel owns ARCHIVED and FAILED: an index built while the carousel invalidated the file never
lands (the expiry race), a FAILED file is never overwritten, and an INDEXED item of an archive class
always carries the expiry of the copy that was read, so the carousel expires it in time.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from carousel import inventory
from carousel.store import CarouselFiles, to_seconds
from datacarousel.archive import parse_restore_header
from datacarousel.contract import FILES_TABLE, FileAttr, FileState
from datacarousel.files_table import FilesTable
from datacarousel.hsds import HsdsAccess
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key
from index_file import adapters
from index_file.adapters import HsdsTarget, IndexFileHandler

ARCHIVE, PREFIX = "dc-archive", "bf/"
NAME = BasicFusionName.for_orbit(85081)
KEY = archive_key(NAME, PREFIX)
BODY = b"\x89HDF\r\n\x1a\n" + bytes(4096)


class ReachedHsds(Exception):
    """The handler went on to read the domain: the request was not dropped."""


@pytest.fixture()
def world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A DEEP_ARCHIVE object whose restore completed, its item RESTORED with no expiry yet; HSDS
    stands for a domain already complete for this object, with its restart points (linking is index_file's
    other tests')."""
    s3 = fake_aws.s3
    s3.create_bucket(Bucket=ARCHIVE)
    s3.put_object(Bucket=ARCHIVE, Key=KEY, Body=BODY, StorageClass="DEEP_ARCHIVE")
    s3.restore_object(Bucket=ARCHIVE, Key=KEY, RestoreRequest={"Days": 3})
    files = FilesTable(fake_aws.ddb, fake_aws.table(FILES_TABLE))
    assert inventory.run(s3, files, bucket=ARCHIVE, prefix=PREFIX, now=time.time()).created == 1
    carousel = CarouselFiles(files)
    assert carousel.set_state(NAME.file_name, 0, FileState.RESTORED, None, time.time())
    root = adapters.DomainRoot(exists=True, marker=None, restart_points=True)
    monkeypatch.setattr(adapters, "read_domain_root", lambda target, domain: root)
    monkeypatch.setattr(adapters, "domain_is_complete", lambda marker, **_: True)
    target = HsdsTarget(HsdsAccess("http+unix://%2Ftmp%2Fno-hsds.sock", "u", "p"), "/home/u/bf/")
    handler = IndexFileHandler(s3, files, target, archive_bucket=ARCHIVE, archive_prefix=PREFIX)
    expiry = parse_restore_header(s3.head_object(Bucket=ARCHIVE, Key=KEY)["Restore"]).status
    assert expiry is not None and expiry.expiry is not None
    return {"files": files, "carousel": carousel, "handler": handler, "expiry": expiry.expiry.timestamp()}


def _item(world: dict[str, Any]) -> dict[str, Any]:
    item = world["files"].get(NAME.file_name)
    assert item is not None
    return dict(item)


def _request() -> str:
    return IndexRequest(bucket=ARCHIVE, key=KEY, size=len(BODY)).to_json()


def test_an_indexed_archive_object_carries_the_expiry_of_the_copy_read(world: dict[str, Any]) -> None:
    outcome = world["handler"].handle(_request())
    item = _item(world)
    assert outcome.recorded and item[FileAttr.STATE] == FileState.INDEXED.value
    assert to_seconds(item[FileAttr.RESTORE_EXPIRY]) == world["expiry"] // 1


def test_an_index_racing_the_carousels_invalidation_never_lands(world: dict[str, Any]) -> None:
    """The carousel invalidates the file (its copy expired) between index_file's read and its write:
    the file stays ARCHIVED with no expiry, never INDEXED with a copy nobody renews or expires."""
    files: FilesTable = world["files"]
    original = files.mark_indexed
    raced: list[bool] = []

    def invalidated_first(*args: Any, **kwargs: Any) -> bool:
        if not raced:
            version = int(_item(world)[FileAttr.STATE_VERSION])
            raced.append(world["carousel"].invalidate(NAME.file_name, version, time.time()))
        return original(*args, **kwargs)

    files.mark_indexed = invalidated_first  # type: ignore[method-assign]
    outcome = world["handler"].handle(_request())
    item = _item(world)
    assert raced == [True]
    assert not outcome.recorded
    assert item[FileAttr.STATE] == FileState.ARCHIVED.value
    assert FileAttr.RESTORE_EXPIRY not in item and FileAttr.DOMAIN not in item


@pytest.mark.parametrize("state", [FileState.FAILED, FileState.ARCHIVED])
def test_a_request_for_a_file_the_carousel_holds_is_dropped_untouched(
    world: dict[str, Any], state: FileState, monkeypatch: pytest.MonkeyPatch
) -> None:
    carousel: CarouselFiles = world["carousel"]
    if state is FileState.FAILED:
        assert carousel.fail(NAME.file_name, "indexing failed: not an HDF5 file", time.time())
    else:
        assert carousel.invalidate(NAME.file_name, int(_item(world)[FileAttr.STATE_VERSION]), time.time())
    before = _item(world)

    def no_hsds(*args: Any, **kwargs: Any) -> None:
        raise ReachedHsds(args)

    monkeypatch.setattr(adapters, "read_domain_root", no_hsds)
    outcome = world["handler"].handle(_request())
    assert (outcome.linked, outcome.recorded) == (False, False)
    assert _item(world) == before


def test_a_failed_file_is_never_marked_indexed_even_by_a_writer_that_read_it_before(world: dict[str, Any]) -> None:
    """The table's own condition: a write at the version read before the carousel failed the file is refused."""
    files: FilesTable = world["files"]
    version = int(_item(world)[FileAttr.STATE_VERSION])
    assert world["carousel"].fail(NAME.file_name, "indexing failed: bad", time.time())
    before = _item(world)
    written = files.mark_indexed(
        NAME,
        bucket=ARCHIVE,
        key=KEY,
        etag="e",
        size=1,
        domain="/d",
        now=adapters.utcnow(),
        expected_version=int(before[FileAttr.STATE_VERSION]),
    )
    assert version < int(before[FileAttr.STATE_VERSION])
    assert not written and _item(world) == before


def test_restart_points_that_cannot_be_added_never_keep_a_complete_domain_unrecorded(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A complete domain without restart points gets them on its next request; when that fails (here HSDS
    goes away while they are added), the file is recorded INDEXED all the same: points only speed reads up."""

    def hsds_down(*args: Any, **kwargs: Any) -> int:
        raise OSError("Connection Error")

    root = adapters.DomainRoot(exists=True, marker=None, restart_points=False)
    monkeypatch.setattr(adapters, "read_domain_root", lambda target, domain: root)
    monkeypatch.setattr(adapters, "add_restart_points", hsds_down)
    outcome = world["handler"].handle(_request())
    assert outcome.recorded and not outcome.points_added
    assert _item(world)[FileAttr.STATE] == FileState.INDEXED.value
    assert "restart points not added" in caplog.text
