"""Decoding one stored chunk: inflate it and check its integrity.

Every deflate chunk is inflated to its end, so its zlib checksum (adler32) and its size are checked
as h5py checks them; a failure raises `CorruptChunk`. `decode_chunk` turns a chunk's bytes into an
array, in one call of libdeflate (the fastest inflater of `bench/bench_floor.py`, byte-identical to
zlib on every chunk the job reads) into a buffer of the chunk's size, which becomes the array; without
libdeflate, ISA-L or zlib in pieces. `stream_chunk` inflates a whole-array chunk piece by piece
(ISA-L or zlib: libdeflate has no streaming interface) and hands out the bytes wanted as soon as they
are inflated (memory stays small for chunks of hundreds of MB).
"""

from __future__ import annotations

import time
import types
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from datacarousel.chunkread.errors import CorruptChunk
from datacarousel.chunkread.index import CHUNKED, Chunk, DatasetIndex
from datacarousel.chunkread.readahead import read_ahead
from datacarousel.chunkread.sources import RangeReader, RangeStreamer, Stats, piecewise

_inflate_lib: types.ModuleType
try:  # ISA-L inflates the same deflate streams about twice as fast as zlib
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - optional speed-up
    _inflate_lib = zlib
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, getattr(_inflate_lib, "error", zlib.error))
_one_shot: types.ModuleType | None
try:  # libdeflate: a whole chunk in one call, about 10% faster than ISA-L here and no copy of the output
    import deflate as _one_shot
except ImportError:  # pragma: no cover - optional speed-up
    _one_shot = None

DEFAULT_PIECE_SIZE = 8 * 1024 * 1024  # compressed bytes inflated at a time when streaming
# Uncompressed bytes produced per inflate call at most. Below glibc's largest mmap threshold (32 MiB), a
# piece's buffer is reused from the heap once one was freed; at 64 MiB every piece was a fresh mapping,
# page-faulted in 4 KiB at a time: on a full orbit 1.0 M minor faults and 3.1 s of system time, against
# 0.4 M and 1.6 s at 16 MiB (job wall 9.6 -> 7.9 s, 2 interleaved runs each, 2026-12-04).
DEFAULT_OUT_PIECE = 16 * 1024 * 1024
VERIFY_PIECE = 4 * 1024 * 1024  # past the bytes wanted: inflated at a time (then dropped) to check the checksum


def decode_chunk(
    index: DatasetIndex, raw: bytes | memoryview, stats: Stats | None = None, chunk: Chunk | None = None
) -> npt.NDArray[Any]:
    """One stored chunk (or the contiguous data) as an array of the chunk's (or dataset's) shape.

    A deflate chunk is inflated to its end: its zlib checksum and size are checked before the array is
    returned; any failure raises `CorruptChunk` naming the dataset and `chunk`'s byte offset. Data stored
    without a filter has no checksum: only its size can be checked.
    """
    shape = index.chunk_shape if index.layout == CHUNKED and index.chunk_shape is not None else index.shape
    dtype = np.dtype(index.dtype)
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    offset = None if chunk is None else chunk.byte_offset
    if not index.deflate:
        if len(raw) != want:
            raise CorruptChunk(f"{len(raw)} bytes stored, expected {want}", index.path, offset)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    started = time.perf_counter()
    try:
        if _one_shot is not None:  # libdeflate's buffer becomes the array (writable, no copy)
            return np.frombuffer(_inflate_whole(raw, want), dtype=dtype).reshape(shape)
        out = np.empty(shape, dtype=dtype)
        got = inflate_into(raw, out.reshape(-1).view(np.uint8))
    except CorruptChunk as exc:
        raise CorruptChunk(exc.reason, index.path, offset) from exc
    finally:
        if stats is not None:
            stats.add(inflate_s=time.perf_counter() - started)
    if got != want:
        raise CorruptChunk(f"the chunk inflates to {got} bytes, expected {want}", index.path, offset)
    return out


def _inflate_whole(raw: bytes | memoryview, want: int) -> bytearray:
    """libdeflate inflates the whole stream into a buffer of `want` bytes, checking the zlib checksum. A stream
    that is broken, longer than `want` or fails its checksum raises DeflateError, which says no more: the
    reason names all three."""
    assert _one_shot is not None
    try:
        data: bytearray = _one_shot.zlib_decompress(raw, want)
    except _one_shot.DeflateError as exc:
        raise CorruptChunk(
            "the stream does not inflate (truncated or broken, longer than the chunk, or its checksum does not match)"
        ) from exc
    if len(data) != want:
        raise CorruptChunk(f"the chunk inflates to {len(data)} bytes, expected {want}")
    return data


IN_PIECE = 4 * 1024 * 1024
OUT_PIECE = 8 * 1024 * 1024


def inflate_into(raw: bytes | memoryview, out: npt.NDArray[np.uint8]) -> int:
    """Inflate a zlib stream straight into `out` (writable, no second full-size copy); returns the bytes written.

    Raises CorruptChunk if the stream is broken (including a zlib checksum that does not match), longer
    than `out`, or does not end.
    """
    inflater = _inflate_lib.decompressobj()
    view = memoryview(raw)
    pos = 0
    try:
        for lo in range(0, len(view), IN_PIECE):
            data: bytes | memoryview = view[lo : lo + IN_PIECE]
            while data:
                produced = inflater.decompress(data, OUT_PIECE)
                n = len(produced)
                if pos + n > out.nbytes:
                    raise CorruptChunk(f"the stream inflates to more than {out.nbytes} bytes")
                out[pos : pos + n] = np.frombuffer(produced, dtype=np.uint8)
                pos += n
                data = inflater.unconsumed_tail
                if inflater.eof or (not produced and not data):
                    break
            if inflater.eof:
                break
    except _INFLATE_ERRORS as exc:
        raise CorruptChunk(f"the stream does not inflate: {exc}") from exc
    if not inflater.eof:
        raise CorruptChunk("the deflate stream does not end where it should (truncated or corrupt)")
    return pos


def stream_chunk(
    source: RangeReader | RangeStreamer,
    chunk: Chunk,
    *,
    start: int = 0,
    end: int | None = None,
    total: int | None = None,
    piece_size: int = DEFAULT_PIECE_SIZE,
    ahead: int = 0,
    streamer: bool = False,
    stats: Stats | None = None,
    verify: bool = True,
    path: str = "",
) -> Iterator[bytes]:
    """Inflate one deflate chunk piece by piece; yield the uncompressed bytes [start, end) in order.

    A zlib stream cannot be entered in the middle, but the bytes wanted are yielded as soon as they
    are inflated. With `verify` (the default) the generator then inflates the rest of the stream into
    pieces of at most VERIFY_PIECE bytes that are dropped, so that the zlib checksum (adler32, at the
    very end) is checked as h5py checks it, and the stream must end after exactly `total` bytes (the
    chunk's uncompressed size, when given). Any failure raises `CorruptChunk` (naming `path` and the
    chunk's byte offset), possibly after the last bytes wanted were yielded: a consumer must read the
    generator to its end before it trusts (or uses) anything it got. `verify=False` stops reading
    compressed bytes once `end` is reached, leaving what was yielded unchecked.

    `source` is a range reader (one call per piece), or, with `streamer=True`, a `RangeStreamer` (one
    request for the whole chunk, read in pieces). With `ahead` > 0 a background thread reads up to
    `ahead` pieces ahead while this one inflates.
    """
    if end is not None and total is not None and end > total:
        raise ValueError(f"bytes up to {end} wanted of a chunk of {total}")

    pieces: Iterator[bytes]
    if streamer:
        pieces = source(chunk.byte_offset, chunk.size, piece_size)  # type: ignore[call-arg,assignment]
    else:
        pieces = piecewise(source)(chunk.byte_offset, chunk.size, piece_size)  # type: ignore[arg-type]
    state = _ChunkInflation(chunk, start=start, end=end, total=total, stats=stats, path=path)
    inflater = state.inflater
    feed = read_ahead(iter(pieces), ahead)
    try:
        for compressed in feed:
            data = compressed
            while data and not inflater.eof:
                if not verify and end is not None and state.position >= end:
                    return  # the bytes wanted are out; the rest (and the checksum) is not read
                produced = state.inflate(data)
                data = inflater.unconsumed_tail
                part = state.wanted(produced)
                if part:
                    yield part
            if inflater.eof:
                break  # bytes after the end of the stream are ignored, as HDF5 does
        yield from state.drain(verify)
        state.check_end(verify)
    except _INFLATE_ERRORS as exc:
        raise state.corrupt(f"the stream does not inflate: {exc}") from exc
    finally:
        close = getattr(feed, "close", None)
        if close is not None:
            close()


class _ChunkInflation:
    """The inflate state of one `stream_chunk` call: the zlib stream, how far it got, and the bytes wanted."""

    def __init__(
        self, chunk: Chunk, *, start: int, end: int | None, total: int | None, stats: Stats | None, path: str
    ) -> None:
        self.chunk = chunk
        self.start = start
        self.end = end
        self.total = total
        self.stats = stats
        self.path = path
        self.inflater = _inflate_lib.decompressobj()
        self.position = 0  # uncompressed bytes inflated so far

    def corrupt(self, reason: str) -> CorruptChunk:
        return CorruptChunk(reason, self.path, self.chunk.byte_offset)

    def inflate(self, data: bytes) -> bytes:
        """The next output of `data` (b"": what zlib still holds): the bytes wanted, or VERIFY_PIECE past `end`."""
        end = self.end
        if end is None:
            limit = DEFAULT_OUT_PIECE
        elif self.position < end:
            limit = max(1, min(DEFAULT_OUT_PIECE, end - self.position))
        else:
            limit = VERIFY_PIECE
        started = time.perf_counter()
        produced: bytes = self.inflater.decompress(data, limit)
        if self.stats is not None:
            self.stats.add(inflate_s=time.perf_counter() - started)
        self.position += len(produced)
        if self.total is not None and self.position > self.total:
            raise self.corrupt(f"the stream inflates to more than {self.total} bytes")
        return produced

    def wanted(self, produced: bytes) -> bytes:
        lo = max(self.start - (self.position - len(produced)), 0)
        hi = len(produced) if self.end is None else min(self.end - (self.position - len(produced)), len(produced))
        if hi <= lo:
            return b""
        return produced if (lo == 0 and hi == len(produced)) else produced[lo:hi]

    def drain(self, verify: bool) -> Iterator[bytes]:
        """The bytes wanted of what zlib still holds once every compressed piece was fed."""
        end = self.end
        while not self.inflater.eof and (verify or end is None or self.position < end):  # zlib may still hold output
            produced = self.inflate(b"")
            if not produced:
                break
            part = self.wanted(produced)
            if part:
                yield part

    def check_end(self, verify: bool) -> None:
        """Raise `CorruptChunk` if the stream gave fewer bytes than wanted or (`verify`) did not end as it should."""
        end, position = self.end, self.position
        if end is not None and position < end:
            raise self.corrupt(f"the stream ends after {position} bytes, {end} wanted (truncated or corrupt)")
        if verify and not self.inflater.eof:
            raise self.corrupt("the deflate stream does not end where it should (truncated or corrupt)")
        if verify and self.total is not None and position != self.total:
            raise self.corrupt(f"the stream inflates to {position} bytes, expected {self.total}")
