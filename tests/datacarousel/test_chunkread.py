"""Direct chunk reads (datacarousel.chunkread) give exactly what h5py gives, or refuse and leave it to h5py."""

from __future__ import annotations

import pickle
import threading
import uuid
import weakref
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import h5pyd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datacarousel import aws, chunkread, hsds
from datacarousel.chunkread import decode, restart
from datacarousel.chunkread import read as read_module
from datacarousel.chunkread.index import _replace
from datacarousel.errors import BadInput, CorruptData
from workbench.synthetic.generator import generate_orbit

SEED = 7
ORBIT = 85079


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (object arrays: same values)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(a.tolist() == b.tolist()) if a.dtype.kind == "O" else a.tobytes() == b.tobytes()


@pytest.fixture(scope="module", params=["tiny", "small"])
def orbit_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic orbit in the real storage layout (whole-array and per-band gzip chunks, contiguous)."""
    return generate_orbit(ORBIT, tmp_path_factory.mktemp(request.param), preset=request.param, seed=SEED)


@pytest.fixture()
def file_reader(orbit_file: Path) -> Iterator[chunkread.RangeReader]:
    read, close = chunkread.file_range_reader(orbit_file)
    yield read
    close()


def job_indexes(path: Path) -> dict[str, chunkread.DatasetIndex]:
    with h5py.File(path, "r") as f:
        return chunkread.index_datasets(f, chunkread.radiance_job_paths(f))


def test_index_covers_every_layout_the_job_reads(orbit_file: Path) -> None:
    indexes = job_indexes(orbit_file)
    layouts = {(i.layout, i.deflate, len(i.chunks) > 1) for i in indexes.values()}
    assert ("chunked", True, False) in layouts  # whole-array gzip chunks (MISR, MODIS 2-D)
    assert ("chunked", True, True) in layouts  # one chunk per band (MODIS RefSB)
    assert ("contiguous", False, False) in layouts  # MISR geometry, BlockCenterTime, CERES
    assert all(i.direct for i in indexes.values()), {p: i.reason for p, i in indexes.items() if not i.direct}
    with h5py.File(orbit_file, "r") as f:
        missing = [p for p in chunkread.radiance_job_paths(f) if p in f and p not in indexes]
    assert missing == []


def test_every_job_dataset_reads_identical_to_h5py(orbit_file: Path, file_reader: chunkread.RangeReader) -> None:
    indexes = job_indexes(orbit_file)
    with h5py.File(orbit_file, "r") as f:
        for path, index in indexes.items():
            assert same(chunkread.read_dataset(index, file_reader), f[path][()]), path


@pytest.mark.parametrize("one_shot", [True, False], ids=["libdeflate", "isal-or-zlib"])
def test_both_inflaters_read_every_chunk_identically_and_refuse_a_flipped_byte(
    orbit_file: Path, file_reader: chunkread.RangeReader, one_shot: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`decode_chunk` inflates a whole chunk with libdeflate when installed (the images install it), else in
    pieces with ISA-L or zlib: the same arrays from both, and a flipped byte is a CorruptChunk in both."""
    if one_shot:
        assert decode._one_shot is not None  # installed here, as in the images
    else:
        monkeypatch.setattr(decode, "_one_shot", None)
    indexes = job_indexes(orbit_file)
    with h5py.File(orbit_file, "r") as f:
        for path, index in indexes.items():
            got = chunkread.read_dataset(index, file_reader)
            assert same(got, f[path][()]), path
            assert got.flags.writeable, path
    index = next(ix for ix in indexes.values() if ix.deflate and ix.chunks)
    chunk = index.chunks[0]
    raw = bytearray(file_reader(chunk.byte_offset, chunk.size))
    for position in (0, len(raw) // 2, len(raw) - 1):  # the zlib header, the stream, the adler32 checksum
        damaged = bytearray(raw)
        damaged[position] ^= 0xFF
        with pytest.raises(chunkread.CorruptChunk):
            decode.decode_chunk(index, bytes(damaged), chunk=chunk)


@pytest.mark.parametrize("workers", [1, 3])
def test_read_datasets_coalesced_and_parallel(
    orbit_file: Path, file_reader: chunkread.RangeReader, workers: int
) -> None:
    indexes = job_indexes(orbit_file)
    stats = chunkread.Stats()
    out = chunkread.read_datasets(indexes.values(), chunkread.counted(file_reader, stats), workers=workers)
    with h5py.File(orbit_file, "r") as f:
        assert sorted(out) == sorted(indexes)
        for path, value in out.items():
            assert same(value, f[path][()]), path
    chunks = sum(len(i.chunks) for i in indexes.values())
    assert 0 < stats.requests < chunks  # neighbouring chunks came in shared requests
    assert stats.fetched_bytes >= sum(i.stored_bytes for i in indexes.values())


def test_leading_ranges_of_whole_and_per_band_chunks(orbit_file: Path, file_reader: chunkread.RangeReader) -> None:
    indexes = job_indexes(orbit_file)
    three_d = [p for p, i in indexes.items() if len(i.shape) == 3]
    assert any("MISR" in p for p in three_d) and any("RefSB" in p for p in three_d)
    with h5py.File(orbit_file, "r") as f:
        for path in three_d:
            index = indexes[path]
            n = index.shape[0]
            for first, last in ((0, 0), (1, n - 2), (n - 1, n - 1), (0, n - 1)):
                if last < first:
                    continue
                want = f[path][first : last + 1]
                got = chunkread.read_leading_range(index, file_reader, first, last, group=3, piece_size=4096)
                assert same(got, want), (path, first, last)
                assert same(chunkread.read_dataset(index, file_reader, leading=slice(first, last + 1)), want)


def test_streaming_hands_out_blocks_early_then_checks_the_whole_chunk(
    orbit_file: Path, file_reader: chunkread.RangeReader
) -> None:
    index = job_indexes(orbit_file)["MISR/AN/Data_Fields/Red_Radiance"]
    chunk = index.chunks[0]
    stats = chunkread.Stats()
    piece = 1024
    rows = chunkread.iter_leading_range(
        index, chunkread.counted(file_reader, stats), 0, 9, group=4, piece_size=piece, ahead=0
    )
    groups = [next(rows)]
    assert stats.fetched_bytes < chunk.size / 4  # 4 of 180 blocks: handed out long before the chunk is read
    groups += list(rows)
    # at most `group` rows at a time (fewer where a row is cut by the end of an inflated piece)
    assert sum(g.shape[0] for g in groups) == 10 and all(1 <= g.shape[0] <= 4 for g in groups)
    assert stats.fetched_bytes == chunk.size  # then the rest was inflated: the zlib checksum was checked
    with h5py.File(orbit_file, "r") as f:
        assert same(np.concatenate(groups), f["MISR/AN/Data_Fields/Red_Radiance"][0:10])
    # verify=False (not used by the job) leaves the rest unread, and so unchecked
    stats = chunkread.Stats()
    reader = chunkread.counted(file_reader, stats)
    head = b"".join(chunkread.stream_chunk(reader, chunk, end=1000, piece_size=piece, verify=False))
    assert len(head) == 1000 and stats.fetched_bytes < chunk.size / 4


def test_streaming_with_read_ahead_and_a_streamer(orbit_file: Path, file_reader: chunkread.RangeReader) -> None:
    index = job_indexes(orbit_file)["MISR/Geolocation/GeoLatitude"]
    streamer = chunkread.piecewise(file_reader)
    got = chunkread.read_leading_range(index, streamer, 5, 150, streamer=True, ahead=3, piece_size=2048, group=7)
    with h5py.File(orbit_file, "r") as f:
        assert same(got, f["MISR/Geolocation/GeoLatitude"][5:151])


def test_index_round_trips_through_json(orbit_file: Path) -> None:
    indexes = job_indexes(orbit_file)
    assert chunkread.loads_index(chunkread.dumps_index(indexes)) == indexes


def test_direct_reads_of_a_file_answer_or_decline(orbit_file: Path, file_reader: chunkread.RangeReader) -> None:
    with h5py.File(orbit_file, "r") as f:
        direct = chunkread.DirectReads.for_h5py(f, file_reader, workers=2)
        granule = sorted(f["MODIS"])[len(f["MODIS"]) // 2]
        paths = [f"MODIS/{granule}/{m}" for m in chunkread.MODIS_GRANULE_DATASETS if f"MODIS/{granule}/{m}" in f]
        got = direct.read_many(paths)
        assert got is not None and all(same(got[p], f[p][()]) for p in paths)
        assert direct.read("MODIS/no_such_granule/SolarZenith") is None
        assert direct.read_many([paths[0], "CERES/nothing"]) is None
        red = "MISR/AN/Data_Fields/Red_Radiance"
        rows = direct.rows(red, 2, 11, 4)
        assert rows is not None
        assert same(np.concatenate(list(rows)), f[red][2:12])
        assert direct.stats.requests > 0 and direct.stats.inflate_s > 0


@pytest.mark.parametrize("budget", [1, 1 << 30])
def test_prefetcher_serves_in_order_skips_and_out_of_order(
    orbit_file: Path, file_reader: chunkread.RangeReader, budget: int
) -> None:
    indexes = job_indexes(orbit_file)
    order = list(indexes)
    stats = chunkread.Stats()
    with (
        h5py.File(orbit_file, "r") as f,
        chunkread.Prefetcher(
            [indexes[p] for p in order], chunkread.counted(file_reader, stats), budget=budget, gap=1 << 20
        ) as pre,
    ):
        asked = order[::2] + order[1:4]  # skip every other one, then go back to early ones
        for p in asked:
            assert same(pre.get(p), f[p][()]), p
    assert stats.requests > 0


def test_prefetcher_serves_two_consumers_side_by_side_without_fetching_twice(
    orbit_file: Path, file_reader: chunkread.RangeReader
) -> None:
    """Two threads, one granule each, ask in turn: the later one's asking releases nothing the earlier still
    needs (one consumer would have released it, and the earlier thread's next dataset be fetched again)."""
    indexes = job_indexes(orbit_file)
    granules = sorted({p.split("/")[1] for p in indexes if p.startswith("MODIS/")})[:2]
    first = [p for p in indexes if p.startswith(f"MODIS/{granules[0]}/")]
    second = [p for p in indexes if p.startswith(f"MODIS/{granules[1]}/")]
    stats = chunkread.Stats()
    ready = [threading.Event(), threading.Event()]
    got: dict[str, bool] = {}
    with (
        h5py.File(orbit_file, "r") as f,
        chunkread.Prefetcher(
            [indexes[p] for p in first + second], chunkread.counted(file_reader, stats), budget=1 << 30, gap=0
        ) as pre,
    ):
        expected = {p: np.asarray(f[p][()]) for p in first + second}

        def consume(paths: list[str], mine: int, other: int) -> None:
            got[paths[0]] = same(pre.get(paths[0]), expected[paths[0]])
            ready[mine].set()
            ready[other].wait(10)  # the other thread has asked for its first dataset too
            for p in paths[1:]:
                got[p] = same(pre.get(p), expected[p])

        threads = [
            threading.Thread(target=consume, args=(first, 0, 1)),
            threading.Thread(target=consume, args=(second, 1, 0)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        planned = len(pre._requests)
    assert len(got) == len(first + second) and all(got.values())
    assert len(first) > 1 and stats.requests == planned  # each planned request fetched once, none again


# --- storage this module does not decode, and broken input ------------------------------------------
@pytest.fixture()
def odd_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(SEED)
    data = rng.normal(size=(6, 40, 30)).astype(np.float32)
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("shuffle", data=data, chunks=(1, 40, 30), compression="gzip", shuffle=True)
        f.create_dataset("fletcher", data=data, chunks=(2, 40, 30), fletcher32=True)
        f.create_dataset("lzf", data=data, chunks=(6, 40, 30), compression="lzf")
        f.create_dataset("partial", shape=(6, 40, 30), dtype="f4", chunks=(1, 40, 30), compression="gzip")
        f["partial"][0] = data[0]
        f.create_dataset("edges", data=data, chunks=(4, 16, 30), compression="gzip", compression_opts=1)
        f.create_dataset("bigendian", data=data.astype(">f4"), chunks=(3, 40, 30), compression="gzip")
        f.create_dataset("never_written", shape=(5,), dtype="i4", fillvalue=-7)
        f.create_dataset("strings", data=np.array([b"a" * 27, b"b" * 27], dtype="S28"))
        f.create_dataset("vlen", data=["x", "yy"], dtype=h5py.string_dtype())
    return path


@pytest.mark.parametrize("name", ["shuffle", "fletcher", "lzf", "partial", "vlen"])
def test_unhandled_storage_falls_back_to_h5py(odd_file: Path, name: str) -> None:
    read, close = chunkread.file_range_reader(odd_file)
    try:
        with h5py.File(odd_file, "r") as f:
            index = chunkread.index_dataset(f[name])
            assert not index.direct and index.reason
            with pytest.raises(chunkread.NotDirect):
                chunkread.read_dataset(index, read)
            assert same(chunkread.read_or_fallback(f[name], read), np.asarray(f[name][()]))
    finally:
        close()


@pytest.mark.parametrize("name", ["edges", "bigendian", "never_written", "strings"])
def test_edge_chunks_byte_order_fill_and_strings(odd_file: Path, name: str) -> None:
    read, close = chunkread.file_range_reader(odd_file)
    try:
        with h5py.File(odd_file, "r") as f:
            index = chunkread.index_dataset(f[name])
            assert index.direct, index.reason
            assert same(chunkread.read_dataset(index, read), f[name][()])
            assert same(chunkread.read_datasets([index], read, workers=2)[index.path], f[name][()])
    finally:
        close()


def test_truncated_file_is_a_short_read(orbit_file: Path, tmp_path: Path) -> None:
    index = job_indexes(orbit_file)["MISR/AN/Data_Fields/NIR_Radiance"]
    cut = tmp_path / "cut.h5"
    cut.write_bytes(orbit_file.read_bytes()[: index.chunks[0].byte_offset + index.chunks[0].size // 2])
    read, close = chunkread.file_range_reader(cut)
    try:
        with pytest.raises(chunkread.ShortRead):
            chunkread.read_dataset(index, read)
    finally:
        close()


def test_corrupt_chunk_is_reported(orbit_file: Path, file_reader: chunkread.RangeReader) -> None:
    index = job_indexes(orbit_file)["MISR/Geolocation/GeoLongitude"]
    chunk = index.chunks[0]

    def flipped(offset: int, size: int) -> bytes:
        data = bytearray(file_reader(offset, size))
        middle = chunk.byte_offset + chunk.size // 2 - offset
        if 0 <= middle < len(data):
            data[middle] ^= 0xFF
        return bytes(data)

    with pytest.raises((chunkread.CorruptChunk, zlib.error)):
        chunkread.read_dataset(index, flipped)
    with pytest.raises(chunkread.CorruptChunk):
        chunkread.read_leading_range(index, flipped, 0, index.shape[0] - 1, piece_size=512)


def stream_index(rows: int = 200, row_bytes: int = 1000, at: int = 100) -> tuple[chunkread.DatasetIndex, bytes]:
    """A whole-array deflate chunk of `rows` rows, stored at byte `at` of a fake file (returned as bytes)."""
    rng = np.random.default_rng(SEED)
    data = rng.integers(0, 8, (rows, row_bytes), dtype=np.uint8)  # compressible, but not trivially
    raw = zlib.compress(data.tobytes(), 1)
    index = chunkread.DatasetIndex(
        path="G/rows", shape=data.shape, dtype="|u1", layout="chunked", chunk_shape=data.shape, deflate=True,
        chunks=(chunkread.Chunk((0, 0), at, len(raw)),),
    )  # fmt: skip
    return index, b"\0" * at + raw


def flip_at(data: bytes, position: int) -> chunkread.RangeReader:
    damaged = bytearray(data)
    damaged[position] ^= 0xFF
    return lambda offset, size: bytes(damaged[offset : offset + size])


@pytest.mark.parametrize("where", ["in_rows_wanted", "past_rows_wanted", "zlib_trailer", "zlib_header"])
@pytest.mark.parametrize(("piece", "streamer", "ahead"), [(64, False, 0), (4096, True, 2), (1 << 20, False, 0)])
def test_streaming_checks_the_whole_chunk(where: str, piece: int, streamer: bool, ahead: int) -> None:
    index, data = stream_index()
    chunk = index.chunks[0]
    wanted_end = 10 * 1000  # rows 0..9 of 200
    position = {
        "in_rows_wanted": chunk.byte_offset + 40,
        "past_rows_wanted": chunk.byte_offset + chunk.size // 2,  # far past the compressed bytes of rows 0..9
        "zlib_trailer": chunk.byte_offset + chunk.size - 1,
        "zlib_header": chunk.byte_offset,
    }[where]
    reader = flip_at(data, position)
    if where == "past_rows_wanted":  # a reader that stops after the rows wanted cannot see it
        stored = reader(chunk.byte_offset, chunk.size)
        assert zlib.decompressobj().decompress(stored, wanted_end) == zlib.decompress(data[100:])[:wanted_end]
    source = chunkread.piecewise(reader) if streamer else reader
    rows = chunkread.iter_leading_range(index, source, 0, 9, group=4, streamer=streamer, ahead=ahead, piece_size=piece)
    with pytest.raises(chunkread.CorruptChunk) as info:
        list(rows)
    assert (info.value.path, info.value.offset) == ("G/rows", chunk.byte_offset) and info.value.reason
    with pytest.raises(chunkread.CorruptChunk):
        chunkread.read_dataset(index, reader)


def test_streaming_rejects_a_chunk_of_the_wrong_size() -> None:
    index, data = stream_index()
    longer = _replace(index, shape=(199, 1000), chunk_shape=(199, 1000))
    with pytest.raises(chunkread.CorruptChunk, match="more than"):
        list(chunkread.iter_leading_range(longer, lambda o, n: data[o : o + n], 0, 5))
    shorter = _replace(index, shape=(201, 1000), chunk_shape=(201, 1000))
    with pytest.raises(chunkread.CorruptChunk, match="200000 bytes, expected 201000"):
        list(chunkread.iter_leading_range(shorter, lambda o, n: data[o : o + n], 0, 5))


def test_rows_through_restart_points_are_those_of_the_plain_inflate_even_past_the_end() -> None:
    index, data = stream_index(rows=400, row_bytes=2000)
    chunk = index.chunks[0]
    points = restart.build(data[chunk.byte_offset :], restart.WINDOW)
    assert len(points.points) >= 4 and points.checks

    def rows(first: int, last: int, **kwargs: Any) -> list[bytes]:
        got = chunkread.iter_leading_range(index, lambda o, n: data[o : o + n], first, last, group=8, **kwargs)
        return [g.tobytes() for g in got]

    for first, last in ((0, 399), (150, 260), (399, 399)):
        assert b"".join(rows(first, last, restart=points, workers=2)) == b"".join(rows(first, last)), (first, last)

    # whole rows inside a segment are handed out in place (views of the inflated bytes, not copied); a row cut
    # by a segment's end is put together in a buffer of its own (memory numpy owns)
    def owner(a: np.ndarray) -> object:
        while isinstance(a.base, np.ndarray):
            a = a.base
        return a.base

    groups = list(chunkread.iter_leading_range(index, lambda o, n: data[o : o + n], 0, 399, group=8,
                                               restart=points, workers=2))  # fmt: skip
    in_place = sum(g.shape[0] for g in groups if owner(g) is not None)
    assert in_place >= 400 - len(points.points) and all(g.shape[0] <= 8 for g in groups)
    for first, last in ((390, 420), (450, 460)):  # rows past the end: the same error either way
        for kwargs in ({}, {"restart": points, "workers": 2}):
            with pytest.raises(ValueError, match="wanted of a chunk of 800000"):
                rows(first, last, **kwargs)


def test_corrupt_chunk_is_corrupt_data_not_a_value_error() -> None:
    exc = chunkread.CorruptChunk("bad checksum", "MISR/x", 1234)
    assert isinstance(exc, CorruptData) and isinstance(exc, BadInput) and not isinstance(exc, ValueError)
    back = pickle.loads(pickle.dumps(exc))
    assert (
        type(back) is chunkread.CorruptChunk
        and str(back) == str(exc) == "MISR/x: corrupt data (chunk at byte 1234): bad checksum"
    )
    assert (back.reason, back.path, back.offset, back.source) == ("bad checksum", "MISR/x", 1234, "")


def test_find_corrupt_chunk_names_the_damaged_chunk(tmp_path: Path) -> None:
    data = np.random.default_rng(SEED).normal(size=(4, 50, 40)).astype(np.float32)
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("bands", data=data, chunks=(1, 50, 40), compression="gzip", compression_opts=1)
        f.create_dataset("plain", data=data)
        info = f["bands"].id.get_chunk_info(2)
    with path.open("r+b") as fh:
        fh.seek(info.byte_offset + info.size - 3)
        byte = fh.read(1)
        fh.seek(info.byte_offset + info.size - 3)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with h5py.File(path, "r") as f:
        with pytest.raises(OSError):
            f["bands"][()]
        found = chunkread.find_corrupt_chunk(f["bands"], "bands")
        assert found is not None and (found.path, found.offset) == ("bands", info.byte_offset)
        assert chunkread.find_corrupt_chunk(f["plain"]) is None  # no filter: nothing to check
        assert np.array_equal(f["bands"][1], data[1])
    with h5py.File(path, "r+") as f:
        f["bands"][2] = data[2]  # rewritten: sound again
    with h5py.File(path, "r") as f:
        assert chunkread.find_corrupt_chunk(f["bands"]) is None


# --- pure planning ------------------------------------------------------------------------------------
spans = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 500)), min_size=1, max_size=40)


@given(spans, st.integers(0, 1000), st.integers(1, 5000))
@settings(max_examples=200, deadline=None)
def test_plan_requests_covers_each_chunk_once(items: list[tuple[int, int]], gap: int, max_request: int) -> None:
    index = chunkread.DatasetIndex(
        path="x", shape=(len(items),), dtype="|u1", layout="chunked", chunk_shape=(1,),
        chunks=tuple(chunkread.Chunk((k,), off, size) for k, (off, size) in enumerate(items)),
    )  # fmt: skip
    requests = chunkread.plan_requests([index], gap=gap, max_request=max_request)
    seen = [c for r in requests for _, c in r.members]
    assert sorted(seen, key=lambda c: c.offset) == list(index.chunks)
    for r in requests:
        assert all(r.start <= c.byte_offset and c.byte_offset + c.size <= r.end for _, c in r.members)
        assert r.end - r.start <= max(max_request, *(c.size for _, c in r.members))
    starts = [r.start for r in requests]
    assert starts == sorted(starts)


# --- through the carousel's services: chunk index from HSDS, bytes from the S3 object in moto ----------
@pytest.mark.integration
def test_hsds_index_and_s3_ranges_read_identical(local_env: Any, tmp_path: Path) -> None:
    path = generate_orbit(ORBIT, tmp_path, preset="tiny", seed=SEED)
    bucket = local_env.env["DC_ARCHIVE_BUCKET"]
    key = f"chunkread-{uuid.uuid4().hex[:8]}/{path.name}"
    s3 = aws.client("s3")
    s3.upload_file(str(path), bucket, key)
    domain = f"{local_env.env['DC_HSDS_FOLDER']}chunkread-{uuid.uuid4().hex[:8]}/{path.name}"
    hsds.ensure_folder(domain.rsplit("/", 1)[0] + "/")
    hsds.link_file(f"s3://{bucket}/{key}", domain)
    reader = chunkread.s3_range_reader(s3, bucket, key)
    streamer = chunkread.s3_range_streamer(s3, bucket, key)
    with h5py.File(path, "r") as f, h5pyd.File(domain, "r") as d:
        direct = 0
        for p in chunkread.radiance_job_paths(f):
            if p not in f:
                continue
            index, uri = chunkread.index_from_hsds(d[p], p)
            if not index.direct:  # datasets HSDS copied (<= 512 elements): read through HSDS
                assert uri is None and same(np.asarray(d[p][()]), f[p][()]), p
                continue
            assert uri == f"s3://{bucket}/{key}"
            assert index == chunkread.index_dataset(f[p], p)  # HSDS and the file agree on every byte range
            assert same(chunkread.read_dataset(index, reader), f[p][()]), p
            if len(index.shape) == 3:
                n = index.shape[0]
                got = chunkread.read_leading_range(index, streamer, 1, n - 1, streamer=True, group=2)
                assert same(got, f[p][1:n]), p
            direct += 1
        assert direct > 20
        reads = chunkread.DirectReads.for_hsds(d, chunkread.s3_uri_opener(s3))
        red = "MISR/AN/Data_Fields/Red_Radiance"
        rows = reads.rows(red, 0, 5, 2)
        assert rows is not None and same(np.concatenate(list(rows)), f[red][0:6])
        assert reads.read("MISR/AN/BlockCenterTime") is None  # HSDS copied it: read through HSDS
        assert reads.stats.requests >= 1


@pytest.mark.parametrize("workers", [1, 3])
def test_read_datasets_into_given_arrays(orbit_file: Path, file_reader: chunkread.RangeReader, workers: int) -> None:
    """Every layout read into the caller's arrays; a granule's two RefSB datasets into one stacked array."""
    indexes = job_indexes(orbit_file)
    given = {path: np.full(i.shape, 7, dtype=np.dtype(i.dtype)) for path, i in indexes.items() if i.shape}
    refsb = sorted(p for p in given if p.endswith("RefSB"))[:2]  # EV_250 then EV_500 of the first day granule
    assert refsb[0].rsplit("/", 3)[0] == refsb[1].rsplit("/", 3)[0]
    first, second = (indexes[p].shape for p in refsb)
    stacked = np.zeros((first[0] + second[0], *first[1:]), dtype=np.float32)
    given[refsb[0]], given[refsb[1]] = stacked[: first[0]], stacked[first[0] :]
    out = chunkread.read_datasets([indexes[p] for p in given], file_reader, workers=workers, out=given)
    with h5py.File(orbit_file, "r") as f:
        for path, value in out.items():
            assert value is given[path] and same(value, f[path][()]), path
        assert same(stacked, np.concatenate([f[refsb[0]][()], f[refsb[1]][()]]))


def test_read_datasets_refuses_an_array_of_another_shape(orbit_file: Path, file_reader: chunkread.RangeReader) -> None:
    index = next(i for i in job_indexes(orbit_file).values() if len(i.chunks) > 1)
    with pytest.raises(ValueError, match="out has shape"):
        chunkread.read_datasets([index], file_reader, out={index.path: np.empty((1, *index.shape))})


def test_read_datasets_holds_one_decoded_chunk_at_a_time(
    orbit_file: Path, file_reader: chunkread.RangeReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk is copied into its dataset's array as soon as it is decoded, and dropped: a dataset of many
    chunks is not held twice (its chunks and its array)."""
    index = next(i for i in job_indexes(orbit_file).values() if len(i.chunks) > 2)
    alive: list[weakref.ref[np.ndarray]] = []
    held_before_decode: list[int] = []
    real_decode = read_module.decode_chunk

    def decode_and_watch(*args: Any, **kwargs: Any) -> np.ndarray:
        held_before_decode.append(sum(ref() is not None for ref in alive))
        a = real_decode(*args, **kwargs)
        alive.append(weakref.ref(a))
        return a

    monkeypatch.setattr(read_module, "decode_chunk", decode_and_watch)
    got = chunkread.read_datasets([index], file_reader, workers=1)[index.path]
    with h5py.File(orbit_file, "r") as f:
        assert same(got, f[index.path][()])
    assert held_before_decode == [0] * len(index.chunks)
