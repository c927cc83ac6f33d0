"""index_file stores a file's restart points in its domain, and the carousel path reads bands with them.

Against the embedded environment (real HSDS, the stack's bucket and table): a linked domain gets an
unlinked dataset of points named by a root attribute (the domain's tree stays the file's), the reader of
the domain finds them and inflates each large chunk in segments side by side, with the plain read's bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import h5py
import h5pyd
import numpy as np
import pytest

from datacarousel import aws, hsds, hsds_restart_points
from datacarousel import orbit as readers
from datacarousel.chunkread import restart
from datacarousel.contract import HSDS_RESTART_POINTS, FileAttr
from datacarousel.files_table import FilesTable
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key, hsds_domain
from index_file import adapters
from index_file.adapters import HsdsTarget, IndexFileHandler, RestartPointsPolicy, read_domain_root
from workbench.synthetic.generator import generate_orbit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORBIT = 62101
PREFIX = "restart-points-test/"
BAND = "MISR/AN/Data_Fields/Red_Radiance"


@pytest.fixture(scope="module")
def indexed(local_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A tiny orbit indexed with points for every whole-array chunk of 150 kB or more (its MISR bands), 32 KiB apart."""
    env = local_env.env
    s3 = aws.client("s3")
    files = FilesTable(aws.client("dynamodb"), env["DC_FILES_TABLE"])
    target = HsdsTarget(hsds.HsdsAccess.resolve(environ=env), env["DC_HSDS_FOLDER"])
    bucket = env["DC_ARCHIVE_BUCKET"]
    path = generate_orbit(ORBIT, tmp_path_factory.mktemp("rp"), preset="tiny")
    name = BasicFusionName.parse(path.name)
    key = archive_key(name, PREFIX)
    s3.upload_file(str(path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    body = IndexRequest(bucket=bucket, key=key, size=head["ContentLength"], etag=head["ETag"].strip('"')).to_json()
    policy = RestartPointsPolicy(min_size=150_000, span=restart.WINDOW, workers=2)
    handler = IndexFileHandler(s3, files, target, archive_bucket=bucket, archive_prefix=PREFIX, restart_points=policy)
    outcome = handler.handle(body)
    domain = hsds_domain(target.folder, name)
    yield {"path": path, "domain": domain, "target": target, "outcome": outcome}
    files.ddb.delete_item(TableName=files.table, Key={FileAttr.FILE_NAME: {"S": name.file_name}})
    hsds.delete_domain(domain, target.access)


def test_the_points_are_in_the_domain_unlinked_and_the_marker_follows(indexed: dict[str, Any]) -> None:
    assert indexed["outcome"].linked
    with (
        h5pyd.File(indexed["domain"], "r", **indexed["target"].access.h5pyd_kwargs()) as linked,
        h5py.File(indexed["path"], "r") as source,
    ):
        assert HSDS_RESTART_POINTS in linked.attrs
        lookup = hsds_restart_points.load(linked)
        assert lookup is not None
        chunk = source[BAND].id.get_chunk_info(0)
        points = lookup(BAND, chunk.byte_offset, chunk.size)
        assert points is not None and points.points, "at least one point: two segments"
        assert lookup(BAND, chunk.byte_offset + 1, chunk.size) is None, "points of a chunk elsewhere are not these"
        assert set(linked) == set(source), "the domain's tree stays the file's"
    assert read_domain_root(indexed["target"], indexed["domain"]).marker is not None


def test_the_carousel_path_inflates_bands_in_segments_with_the_same_bytes(
    indexed: dict[str, Any], segmented_inflations: list[restart.RestartIndex]
) -> None:
    with readers.open_local(indexed["path"], direct=False) as plain:
        blocks = len(plain.misr_block_center_times("AN"))
        want = np.concatenate(list(plain.misr_radiance("AN", "Red", 0, blocks - 1)))
    with readers.open_hsds(indexed["domain"], indexed["target"].access, workers=2) as src:
        assert src.misr_bands_at_once("AN") == 1, "one band at a time, each on every thread"
        got = np.concatenate(list(src.misr_radiance("AN", "Red", 0, blocks - 1)))
    assert got.tobytes() == want.tobytes()
    assert segmented_inflations, "the band was inflated in segments"


def _points_dataset_id(target: HsdsTarget, domain: str) -> str | None:
    with h5pyd.File(domain, "r", **target.access.h5pyd_kwargs()) as f:
        value = f.attrs.get(HSDS_RESTART_POINTS) if HSDS_RESTART_POINTS in f.attrs else None
    return None if value is None else str(value)


@pytest.fixture()
def request_for_another_orbit(local_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An index request for a tiny orbit of its own (not yet indexed), and what handling it needs."""
    env = local_env.env
    s3, files = aws.client("s3"), FilesTable(aws.client("dynamodb"), env["DC_FILES_TABLE"])
    target = HsdsTarget(hsds.HsdsAccess.resolve(environ=env), env["DC_HSDS_FOLDER"])
    bucket = env["DC_ARCHIVE_BUCKET"]
    path = generate_orbit(ORBIT + 1, tmp_path_factory.mktemp("backfill"), preset="tiny")
    name = BasicFusionName.parse(path.name)
    key = archive_key(name, PREFIX)
    s3.upload_file(str(path), bucket, key)
    head = s3.head_object(Bucket=bucket, Key=key)
    body = IndexRequest(bucket=bucket, key=key, size=head["ContentLength"], etag=head["ETag"].strip('"')).to_json()
    domain = hsds_domain(target.folder, name)

    def handle(policy: RestartPointsPolicy) -> Any:
        return IndexFileHandler(s3, files, target, archive_bucket=bucket, archive_prefix=PREFIX,
                                restart_points=policy).handle(body)  # fmt: skip

    yield {"path": path, "domain": domain, "target": target, "handle": handle}
    files.ddb.delete_item(TableName=files.table, Key={FileAttr.FILE_NAME: {"S": name.file_name}})
    hsds.delete_domain(domain, target.access)


def test_a_domain_indexed_without_points_gets_them_on_its_next_request_once(
    request_for_another_orbit: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = request_for_another_orbit
    target, domain = r["target"], r["domain"]
    first = r["handle"](RestartPointsPolicy(min_size=0))  # as index_file indexed before it built points
    assert first.linked and not first.points_added and _points_dataset_id(target, domain) is None
    marker = read_domain_root(target, domain).marker

    again = r["handle"](RestartPointsPolicy(min_size=150_000, span=restart.WINDOW))
    assert not again.linked and again.points_added, "complete, so not linked again; but its points are added"
    assert read_domain_root(target, domain).marker == marker
    stored = _points_dataset_id(target, domain)
    with h5pyd.File(domain, "r", **target.access.h5pyd_kwargs()) as linked, h5py.File(r["path"], "r") as source:
        lookup = hsds_restart_points.load(linked)
        chunk = source[BAND].id.get_chunk_info(0)
        assert lookup is not None and lookup(BAND, chunk.byte_offset, chunk.size) is not None

    opened: list[str] = []
    real_file = h5pyd.File

    def counted(name: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(name)
        return real_file(name, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(h5pyd, "File", counted)
        third = r["handle"](RestartPointsPolicy(min_size=150_000, span=restart.WINDOW))
    assert not third.linked and not third.points_added and _points_dataset_id(target, domain) == stored
    assert opened == [domain], "marker and points read in one open of the domain"


def test_a_file_without_large_chunks_records_that_it_has_none(
    request_for_another_orbit: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = request_for_another_orbit
    target, domain = r["target"], r["domain"]
    policy = RestartPointsPolicy(min_size=10**12)  # no chunk is this large

    def opened_again(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the link found the chunks while it had the file open: not opened a second time")

    with monkeypatch.context() as patched:
        patched.setattr(adapters, "open_source", opened_again)
        assert r["handle"](policy).points_added
    with h5pyd.File(domain, "r", **target.access.h5pyd_kwargs()) as linked, h5py.File(r["path"], "r") as source:
        lookup = hsds_restart_points.load(linked)
        chunk = source[BAND].id.get_chunk_info(0)
        assert lookup is not None and lookup(BAND, chunk.byte_offset, chunk.size) is None
    assert not r["handle"](policy).points_added, "looked at once: not again"
