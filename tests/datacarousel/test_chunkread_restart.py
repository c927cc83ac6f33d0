"""Restart points (issue #22): a deflate chunk inflated in segments, side by side, equals the plain inflate,
on every chunk of a generated orbit and on streams of every kind; and every damage the plain inflate
would notice is noticed."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datacarousel import orbit as readers
from datacarousel.chunkread import restart
from datacarousel.chunkread.errors import CorruptChunk
from workbench.synthetic.generator import generate_orbit

SPAN = restart.WINDOW  # as many points as the streams allow


def _stream(size: int, level: int, seed: int) -> tuple[bytes, bytes]:
    """Data like a radiance array (smooth, noisy low bits) and its zlib stream."""
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(rng.normal(0, 3, size // 4)).astype(np.float32)
    data = smooth.tobytes() + rng.integers(0, 256, size % 4, dtype=np.uint8).tobytes()
    return data, zlib.compress(data, level)


def _reader(raw: bytes) -> restart.RangeRead:
    return lambda offset, size: raw[offset : offset + size]


def _inflate(index: restart.RestartIndex, raw: bytes, workers: int) -> bytes:
    return b"".join(bytes(piece) for piece in restart.inflate_segments(index, _reader(raw), workers=workers))


@pytest.fixture(params=["libdeflate", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both inflaters: libdeflate (stored-block window) and, without it, zlib (the window as dictionary)."""
    if request.param == "zlib":
        monkeypatch.setattr(restart, "_fast", None)
    elif restart._fast is None:
        pytest.skip("libdeflate is not installed")
    return str(request.param)


@pytest.mark.parametrize("level", [1, 6, 9])
@pytest.mark.parametrize("workers", [1, 3])
def test_segments_equal_the_plain_inflate(inflater: str, level: int, workers: int) -> None:
    data, raw = _stream(3_000_000, level, seed=level)
    index = restart.build(raw, SPAN)
    assert len(index.points) >= 3, "the test stream must have byte-aligned block boundaries"
    assert (index.size, index.stored, index.adler) == (len(data), len(raw), zlib.adler32(data))
    assert all(b.out_offset - a.out_offset >= SPAN for a, b in zip(index.points, index.points[1:], strict=False))
    assert _inflate(index, raw, workers) == data


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(0, 400_000),
    level=st.sampled_from([0, 1, 5, 9]),
    seed=st.integers(0, 2**16),
    span=st.sampled_from([SPAN, 3 * SPAN]),
)
@example(size=137_375, level=5, seed=704, span=SPAN)  # a stored final block after a point inside a byte
def test_any_stream_inflates_the_same_in_segments(size: int, level: int, seed: int, span: int) -> None:
    data, raw = _stream(size, level, seed)
    index = restart.build(raw, span)
    assert _inflate(index, raw, 2) == data
    assert restart.RestartIndex.from_bytes(index.to_bytes()) == index


def test_every_deflate_chunk_of_an_orbit_inflates_the_same(tmp_path: Path) -> None:
    """Every deflate chunk of a generated orbit in the real layout: segments equal zlib's inflate."""
    path = generate_orbit(85079, tmp_path, preset="small", seed=2)
    checked = with_points = 0
    with h5py.File(path, "r") as f, path.open("rb") as file:

        def visit(name: str, obj: object) -> None:
            nonlocal checked, with_points
            if not isinstance(obj, h5py.Dataset) or obj.compression != "gzip" or obj.chunks is None:
                return
            for k in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(k)
                file.seek(info.byte_offset)
                raw = file.read(info.size)
                index = restart.build(raw, SPAN)
                assert _inflate(index, raw, 2) == zlib.decompress(raw), name
                checked += 1
                with_points += bool(index.points)

        f.visititems(visit)
    assert checked > 50 and with_points > 5


@settings(max_examples=50, deadline=None)
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_adler32_combine_is_zlibs(a: bytes, b: bytes) -> None:
    assert restart.adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


# --- damage: what the plain inflate notices, the segments notice ----------------------------------
@pytest.fixture(scope="module")
def stream() -> tuple[bytes, bytes, restart.RestartIndex]:
    data, raw = _stream(2_000_000, 1, seed=7)
    return data, raw, restart.build(raw, SPAN)


def test_a_flipped_byte_inside_a_segment_is_corrupt(stream: tuple[bytes, bytes, restart.RestartIndex]) -> None:
    _, raw, index = stream
    middle = index.segments()[len(index.points) // 2]
    for at in (middle.byte_lo + 1, (middle.byte_lo + middle.byte_hi) // 2, middle.byte_hi - 1):
        broken = bytearray(raw)
        broken[at] ^= 0x55
        with pytest.raises(CorruptChunk):
            _inflate(index, bytes(broken), 2)


@pytest.mark.parametrize("where", ["header", "trailer"])
def test_a_broken_header_or_checksum_is_corrupt(stream: tuple[bytes, bytes, restart.RestartIndex], where: str) -> None:
    _, raw, index = stream
    broken = bytearray(raw)
    broken[1 if where == "header" else len(raw) - 2] ^= 0x01
    with pytest.raises(CorruptChunk, match="header" if where == "header" else "checksum"):
        _inflate(index, bytes(broken), 2)


def _wrong_window(index: restart.RestartIndex, checks: tuple[int, ...]) -> restart.RestartIndex:
    """`index` with its middle point's window zeroed, with `checks` (the segments' own, or none)."""
    k = len(index.points) // 2
    point = index.points[k]
    wrong = restart.RestartPoint(point.byte_offset, point.out_offset, bytes(restart.WINDOW))
    return restart.RestartIndex(
        index.stored, index.size, index.adler, (*index.points[:k], wrong, *index.points[k + 1 :]), checks
    )


def test_a_point_whose_window_is_not_the_output_before_it_is_corrupt(
    stream: tuple[bytes, bytes, restart.RestartIndex],
) -> None:
    _, raw, index = stream
    tampered = _wrong_window(index, ())
    with pytest.raises(CorruptChunk):
        _inflate(tampered, raw, 2)


def test_points_of_another_stream_or_a_short_read_are_corrupt(
    stream: tuple[bytes, bytes, restart.RestartIndex],
) -> None:
    data, raw, index = stream
    other = zlib.compress(data[::-1], 1)
    with pytest.raises(CorruptChunk):
        _inflate(index, other, 2)
    with pytest.raises(CorruptChunk, match="stored bytes read"):
        _inflate(index, raw[: len(raw) // 2], 2)


def test_a_broken_stream_has_no_points_and_bad_points_do_not_load() -> None:
    _, raw = _stream(500_000, 1, seed=3)
    with pytest.raises(CorruptChunk, match="does not inflate"):
        restart.build(raw[: len(raw) // 2] + bytes(100), SPAN)
    with pytest.raises(ValueError, match="format"):
        restart.RestartIndex.from_bytes(b"something else")
    with pytest.raises(ValueError, match="apart"):
        restart.build(raw, restart.WINDOW - 1)


# --- part of a stream: only the segments that hold it, each checked on its own ----------------------
def _counting_reader(raw: bytes, read: list[int]) -> restart.RangeRead:
    def reader(offset: int, size: int) -> bytes:
        read.append(size)
        return raw[offset : offset + size]

    return reader


def _part(index: restart.RestartIndex, raw: bytes, start: int, end: int, read: list[int] | None = None) -> bytes:
    wanted = index.covering(start, end)
    reader = _counting_reader(raw, read if read is not None else [])
    return b"".join(bytes(p) for p in restart.inflate_segments(index, reader, workers=2, segments=wanted))


def _v1_bytes(index: restart.RestartIndex) -> tuple[bytes, tuple[restart.RestartPoint, ...]]:
    """The points as they were stored before each segment's checksum was kept (format DCRP1: byte-aligned
    points only), and those points."""
    aligned = tuple(p for p in index.points if not p.bits)
    head = {"stored": index.stored, "size": index.size, "adler": index.adler,
            "points": [[p.byte_offset, p.out_offset] for p in aligned]}  # fmt: skip
    text = json.dumps(head).encode()
    body = struct.pack("<I", len(text)) + text + b"".join(p.window for p in aligned)
    return b"DCRP1" + zlib.compress(body), aligned


def test_a_night_of_fill_values_gets_points_inside_bytes_and_inflates_the_same(inflater: str) -> None:
    """Runs of identical blocks (fill values) may have no block boundary on a byte boundary for hundreds of MB:
    points then fall inside a byte, and such segments inflate the same, whole or alone."""
    night = np.full(6_000_000, -9999.0, np.float32).tobytes()
    day, _ = _stream(4_000_000, 1, seed=11)
    data = night + day + night
    raw = zlib.compress(data, 1)
    index = restart.build(raw, 1 << 20)
    assert any(p.bits for p in index.points) and index.points[0].out_offset < len(night)
    assert _inflate(index, raw, 2) == data
    for segment in index.segments():
        if segment.bits_lo or segment.bits_hi:
            got = _part(index, raw, segment.out_lo, segment.out_hi)
            assert got == data[segment.out_lo : segment.out_hi]
    daylit = index.covering(len(night), len(night) + len(day))
    assert sum(g.out_hi - g.out_lo for g in daylit) < len(data) / 2  # most of the nights are skipped


@pytest.mark.parametrize("level", [1, 5])
def test_stored_blocks_after_a_night_keep_their_byte_boundaries(level: int) -> None:
    """A stored block pads to the stream's own byte boundaries, so a segment moved by its bit offset may not
    hold one: nights of fill values (points inside a byte) around incompressible bytes (stored blocks) still
    inflate the same, whole and segment by segment."""
    night = np.full(3_000_000, -9999.0, np.float32).tobytes()
    noise = np.random.default_rng(5).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    data = night + noise + night + noise[:77]
    raw = zlib.compress(data, level)
    index = restart.build(raw, 1 << 20)
    assert any(p.bits for p in index.points) and len(index.points) > 4
    assert _inflate(index, raw, 2) == data
    for segment in index.segments():
        assert _part(index, raw, segment.out_lo, segment.out_hi) == data[segment.out_lo : segment.out_hi]


def test_each_segment_keeps_the_adler32_of_its_output(stream: tuple[bytes, bytes, restart.RestartIndex]) -> None:
    data, _, index = stream
    segments = index.segments()
    assert len(index.checks) == len(segments) > 3
    assert [g.check for g in segments] == [zlib.adler32(data[g.out_lo : g.out_hi]) for g in segments]
    assert restart.RestartIndex.from_bytes(index.to_bytes()) == index
    wrong = (index.checks[0] ^ 1, *index.checks[1:])
    with pytest.raises(ValueError, match="checksum"):
        restart.RestartIndex(index.stored, index.size, index.adler, index.points, wrong)
    with pytest.raises(ValueError, match="checks for"):
        restart.RestartIndex(index.stored, index.size, index.adler, index.points, index.checks[1:])


@settings(max_examples=40, deadline=None)
@given(start=st.integers(0, 2_000_000 - 1), length=st.integers(1, 2_000_000))
def test_any_part_inflates_from_only_the_segments_that_hold_it(
    stream: tuple[bytes, bytes, restart.RestartIndex], start: int, length: int
) -> None:
    data, raw, index = stream
    end = min(start + length, len(data))
    wanted = index.covering(start, end)
    assert wanted[0].out_lo <= start < wanted[0].out_hi and wanted[-1].out_lo < end <= wanted[-1].out_hi
    read: list[int] = []
    assert _part(index, raw, start, end, read) == data[wanted[0].out_lo : wanted[-1].out_hi]
    stored = sum(g.byte_hi - g.read_lo for g in wanted)
    assert stored <= sum(read) <= stored + 6  # only their bytes (the first and last read the header or trailer)


def test_damage_in_a_segment_used_is_corrupt_and_elsewhere_is_not_read(
    stream: tuple[bytes, bytes, restart.RestartIndex],
) -> None:
    data, raw, index = stream
    segments = index.segments()
    middle = segments[len(segments) // 2]
    broken = bytearray(raw)
    broken[(middle.byte_lo + middle.byte_hi) // 2] ^= 0x55
    with pytest.raises(CorruptChunk):
        _part(index, bytes(broken), middle.out_lo, middle.out_hi)
    after = segments[len(segments) // 2 + 1]
    assert _part(index, bytes(broken), after.out_lo, after.out_hi) == data[after.out_lo : after.out_hi]


def test_a_wrong_window_on_the_first_segment_used_fails_its_checksum(
    stream: tuple[bytes, bytes, restart.RestartIndex],
) -> None:
    _, raw, index = stream
    tampered = _wrong_window(index, index.checks)
    point = index.points[len(index.points) // 2]
    with pytest.raises(CorruptChunk, match="checksum"):
        _part(tampered, raw, point.out_offset, point.out_offset + 1)  # no segment before it to compare with


def test_points_stored_without_checks_still_load_and_inflate_whole(
    stream: tuple[bytes, bytes, restart.RestartIndex],
) -> None:
    data, raw, index = stream
    v1, aligned = _v1_bytes(index)
    old = restart.RestartIndex.from_bytes(v1)
    assert old.checks == () and old.points == aligned and len(aligned) >= 2
    assert old.covering(100, 200) == old.segments()  # every segment: only the stream's checksum checks them
    assert _part(old, raw, 100, 200) == data
    for points in (index, old):
        with pytest.raises(ValueError, match="wanted of a chunk"):
            points.covering(len(data) - 10, len(data) + 1)
    with pytest.raises(ValueError, match="checksum per segment"):
        list(restart.inflate_segments(old, _reader(raw), segments=old.segments()[1:2]))


# --- a file's points beside it ------------------------------------------------------------------
def test_a_files_points_round_trip_and_answer_only_for_their_chunk(tmp_path: Path) -> None:
    path = generate_orbit(85079, tmp_path, preset="tiny", seed=3)
    points = restart.build_file(path, min_size=1, span=SPAN)
    assert "MISR/AN/Data_Fields/Red_Radiance" in points and all(not name.startswith("/") for name in points)
    lookup = restart.loads_file(restart.dumps_file(points))
    name, (offset, index) = next(iter(sorted(points.items())))
    assert lookup(name, offset, index.stored) == index
    assert lookup("/" + name, offset, index.stored) == index
    assert lookup(name, offset + 1, index.stored) is None  # another file's chunk: not these points
    assert lookup("MISR/no/such", offset, index.stored) is None
    with pytest.raises(ValueError, match="format"):
        restart.loads_file(b"nothing")


def test_damaged_points_are_not_used_and_never_fail_a_read(tmp_path: Path) -> None:
    path = generate_orbit(85079, tmp_path, preset="tiny", seed=3)
    points = restart.build_file(path, min_size=1, span=SPAN)
    name, (offset, index) = next(iter(sorted(points.items())))
    data = bytearray(restart.dumps_file(points))
    data[-10:] = bytes(10)  # the last chunk's points damaged
    lookup = restart.loads_file(bytes(data))
    last, (last_offset, last_index) = sorted(points.items())[-1]
    assert lookup(last, last_offset, last_index.stored) is None
    assert lookup(name, offset, index.stored) == index  # the others still answer
    (tmp_path / (path.name + restart.SIDECAR_SUFFIX)).write_bytes(b"not points")
    with readers.open_local(path, workers=2) as source:  # a file that is not points: not used, nothing fails
        assert source._direct is not None and not source._direct.segmented("MISR/AN/Data_Fields/Red_Radiance")
        assert len(list(source.misr_radiance("AN", "Red", 0, 3))) > 0
