"""Restart points (issue #22): a deflate chunk inflated in segments, side by side, equals the plain inflate,
on every chunk of a generated orbit and on streams of every kind; and every damage the plain inflate
would notice is noticed."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
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


def test_a_point_whose_window_is_not_the_output_before_it_is_corrupt(
    stream: tuple[bytes, bytes, restart.RestartIndex],
) -> None:
    _, raw, index = stream
    k = len(index.points) // 2
    point = index.points[k]
    wrong = restart.RestartPoint(point.byte_offset, point.out_offset, bytes(restart.WINDOW))
    tampered = restart.RestartIndex(
        index.stored, index.size, index.adler, (*index.points[:k], wrong, *index.points[k + 1 :])
    )
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
