"""Whole datasets (or a leading range of rows) read directly: chunks fetched, decoded and assembled.

`read_dataset` reads one dataset, `read_datasets` many at once (byte ranges coalesced into few
requests, chunks inflated in a thread pool: zlib releases the GIL), `iter_leading_range` streams
rows of a whole-array chunk as they are inflated. `read_or_fallback` and `find_corrupt_chunk` work
on an open h5py dataset: the first reads it directly when it can, the second tells a damaged chunk
from any other h5py read error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from datacarousel.chunkread.decode import DEFAULT_PIECE_SIZE, IN_PIECE, decode_chunk, stream_chunk
from datacarousel.chunkread.errors import CorruptChunk
from datacarousel.chunkread.index import CHUNKED, CONTIGUOUS, Chunk, DatasetIndex, _check, _replace, index_dataset
from datacarousel.chunkread.restart import RestartIndex, inflate_segments
from datacarousel.chunkread.sources import (
    DEFAULT_COALESCE_GAP,
    DEFAULT_PART_SIZE,
    RangeReader,
    RangeStreamer,
    Stats,
    _reader_of,
    read_range,
)

log = logging.getLogger(__name__)


class Assembly:
    """A dataset's array, filled chunk by chunk as each is decoded (so a dataset's decoded chunks are not all
    held beside its array), optionally in the caller's array `out` (of the dataset's shape; any dtype numpy
    casts to), which is then the result.

    A dataset stored as one piece (contiguous, or one chunk of its whole shape) is that piece, without a copy,
    unless `out` is given. The array keeps the stored byte order, as h5py's `ds.dtype` of a big-endian
    dataset is big-endian. Chunks go to disjoint parts of the array: `add` may be called from several threads.
    """

    def __init__(self, index: DatasetIndex, out: npt.NDArray[Any] | None = None) -> None:
        if out is not None and tuple(out.shape) != tuple(index.shape):
            raise ValueError(f"{index.path}: out has shape {out.shape}, the dataset {index.shape}")
        self.index = index
        self._piece: npt.NDArray[Any] | None = None
        one_piece = index.layout == CONTIGUOUS or (len(index.chunks) == 1 and index.chunk_shape == index.shape)
        self._out = out if out is not None or one_piece else np.empty(index.shape, dtype=np.dtype(index.dtype))

    def add(self, chunk: Chunk, a: npt.NDArray[Any]) -> None:
        index = self.index
        if self._out is None:
            self._piece = a
        elif index.layout == CONTIGUOUS or index.chunk_shape is None:
            self._out[...] = a
        else:
            dest = tuple(slice(o, min(o + c, n)) for o, c, n in zip(chunk.offset, index.chunk_shape, index.shape,
                                                                     strict=True))  # fmt: skip
            self._out[dest] = a[tuple(slice(0, s.stop - s.start) for s in dest)]

    def result(self) -> npt.NDArray[Any]:
        if self._out is not None:
            if self.index.layout == CONTIGUOUS and not self.index.chunks:  # never written: the fill value
                self._out[...] = np.frombuffer(self.index.fill, dtype=self.index.dtype)[0]
            return self._out
        if self._piece is None:  # contiguous, never written
            return np.full(self.index.shape, np.frombuffer(self.index.fill, dtype=self.index.dtype)[0],
                           dtype=self.index.dtype)  # fmt: skip
        return self._piece


def read_dataset(
    index: DatasetIndex,
    reader: RangeReader,
    *,
    executor: Executor | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    leading: slice | None = None,
    stats: Stats | None = None,
) -> npt.NDArray[Any]:
    """The whole dataset (or `leading`, a step-1 slice of the first axis) decoded like h5py would.

    With an executor, chunks are fetched and inflated in parallel, and a large chunk is fetched as
    parallel parts. `leading` reads only the chunks that overlap it (for MODIS per-band arrays).
    """
    _check(index)
    chunks = list(index.chunks)
    if leading is not None:
        start, stop, step = leading.indices(index.shape[0] if index.shape else 0)
        if step != 1:
            raise ValueError("leading slice must have step 1")
        base = _row_floor(index, start)
        part = read_dataset(_only_rows(index, start, stop), reader, executor=executor, part_size=part_size,
                            stats=stats)  # fmt: skip
        return part[start - base : stop - base]

    assembly = Assembly(index)

    def one(chunk: Chunk) -> None:
        raw = read_range(reader, chunk.byte_offset, chunk.size, executor=None, part_size=part_size)
        assembly.add(chunk, decode_chunk(index, raw, stats, chunk))

    if executor is None or len(chunks) <= 1:
        if len(chunks) == 1 and executor is not None:
            raw = read_range(reader, chunks[0].byte_offset, chunks[0].size, executor=executor, part_size=part_size)
            assembly.add(chunks[0], decode_chunk(index, raw, stats, chunks[0]))
        else:
            for c in chunks:
                one(c)
    else:
        list(executor.map(one, chunks))
    return assembly.result()


def _row_floor(index: DatasetIndex, start: int) -> int:
    if index.layout != CHUNKED or index.chunk_shape is None:
        return 0
    return (start // index.chunk_shape[0]) * index.chunk_shape[0]


def _only_rows(index: DatasetIndex, start: int, stop: int) -> DatasetIndex:
    """The index restricted to the chunk rows that overlap [start, stop) of the first axis (re-based at 0)."""
    if index.layout != CHUNKED or index.chunk_shape is None:
        return index
    c0 = index.chunk_shape[0]
    lo = (start // c0) * c0
    hi = min(index.shape[0], -(-stop // c0) * c0) if stop > start else lo
    kept = tuple(Chunk((c.offset[0] - lo, *c.offset[1:]), c.byte_offset, c.size) for c in index.chunks
                 if lo <= c.offset[0] < hi)  # fmt: skip
    return _replace(index, shape=(hi - lo, *index.shape[1:]), chunks=kept)


@dataclass
class _Request:
    start: int
    end: int
    members: list[tuple[str, Chunk]] = field(default_factory=list)


def plan_requests(
    indexes: Iterable[DatasetIndex], *, gap: int = DEFAULT_COALESCE_GAP, max_request: int = 64 * 1024 * 1024
) -> list[_Request]:
    """Group the chunks of several datasets into as few byte ranges as possible.

    Chunks closer than `gap` bytes are fetched together (the gap bytes are read and dropped),
    as long as the merged request stays below `max_request`; a single chunk is never split here.
    """
    spans = sorted(((c.byte_offset, c.byte_offset + c.size, i.path, c) for i in indexes for c in i.chunks),
                   key=lambda s: s[0])  # fmt: skip
    requests: list[_Request] = []
    for start, end, path, chunk in spans:
        last = requests[-1] if requests else None
        if last is not None and start - last.end <= gap and max(end, last.end) - last.start <= max_request:
            last.end = max(last.end, end)
        else:
            last = _Request(start, end)
            requests.append(last)
        last.members.append((path, chunk))
    return requests


def read_datasets(
    indexes: Iterable[DatasetIndex],
    reader: RangeReader,
    *,
    workers: int = 1,
    gap: int = DEFAULT_COALESCE_GAP,
    max_request: int = 64 * 1024 * 1024,
    stats: Stats | None = None,
    out: Mapping[str, npt.NDArray[Any]] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Several datasets at once: byte ranges coalesced, fetched and inflated in `workers` threads.

    Every coalesced range is one request; once fetched, each chunk in it is inflated as its own task,
    so one request holding several chunks still uses every worker, and is copied into its dataset's
    array as soon as it is inflated. `out` maps paths to arrays of their datasets' shapes to read into
    (parts of one larger array, for example). Raises `NotDirect` before any read if one of the datasets
    cannot be read directly.
    """
    todo = list(indexes)
    for index in todo:
        _check(index)
    by_path = {i.path: i for i in todo}
    requests = plan_requests(todo, gap=gap, max_request=max_request)
    given = out or {}
    assemblies = {i.path: Assembly(i, given.get(i.path)) for i in todo}

    def fetch(req: _Request) -> bytes:
        return reader(req.start, req.end - req.start)

    def decode(path: str, chunk: Chunk, raw: memoryview) -> None:
        assemblies[path].add(chunk, decode_chunk(by_path[path], raw, stats, chunk))

    def members(req: _Request, raw: bytes) -> Iterator[tuple[str, Chunk, memoryview]]:
        view = memoryview(raw)
        for path, chunk in req.members:
            lo = chunk.byte_offset - req.start
            yield path, chunk, view[lo : lo + chunk.size]

    if workers <= 1:
        for req in requests:
            for path, chunk, raw in members(req, fetch(req)):
                decode(path, chunk, raw)
    else:
        requests.sort(key=lambda r: r.end - r.start, reverse=True)  # long ones first
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunkread") as pool:
            fetches = {pool.submit(fetch, req): req for req in requests}
            decodes = []
            for done in as_completed(fetches):
                for path, chunk, raw in members(fetches[done], done.result()):
                    decodes.append(pool.submit(decode, path, chunk, raw))
            for f in decodes:
                f.result()
    return {path: assembly.result() for path, assembly in assemblies.items()}


def iter_leading_range(
    index: DatasetIndex,
    source: RangeReader | RangeStreamer,
    first: int,
    last: int,
    *,
    group: int = 8,
    streamer: bool = False,
    ahead: int = 2,
    piece_size: int = DEFAULT_PIECE_SIZE,
    stats: Stats | None = None,
    restart: RestartIndex | None = None,
    workers: int = 1,
) -> Iterator[npt.NDArray[Any]]:
    """Rows first..last (inclusive) of the first axis, `group` rows at a time (MISR blocks).

    A whole-array deflate chunk is inflated in one pass: the groups are yielded as soon as they are
    inflated, then the rest of the chunk is inflated (and dropped) so that its zlib checksum and size
    are checked; memory stays at `group` rows plus a few compressed pieces. The last group is
    yielded before that check: a consumer must exhaust the iterator (which raises `CorruptChunk`
    if the chunk is damaged) before it uses what it got. Other layouts are read whole (through
    `read_dataset`, each chunk checked) and cut into groups. `source`: see `stream_chunk`.
    With the chunk's `restart` points, its segments are inflated by `workers` threads side by side
    (`restart.inflate_segments`, each reading its own byte range; the same checks) instead — only the
    segments that hold the rows when the points keep a checksum per segment (each checked before use).
    """
    _check(index)
    dtype = np.dtype(index.dtype)
    row_shape = index.shape[1:]
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    if not index.whole_deflate_chunk:
        reader: RangeReader = _reader_of(source) if streamer else source  # type: ignore[arg-type,assignment]
        data = read_dataset(index, reader, leading=slice(first, last + 1), stats=stats)
        for lo in range(0, data.shape[0], group):
            yield data[lo : lo + group]
        return
    end = (last + 1) * row_bytes
    total_rows = last - first + 1
    chunk = index.chunks[0]
    pieces: Iterator[bytes | memoryview]
    if restart is not None and restart.size == index.nbytes and restart.stored <= chunk.size:
        whole: RangeReader = _reader_of(source) if streamer else source  # type: ignore[arg-type,assignment]

        def read(offset: int, size: int) -> bytes:
            return whole(chunk.byte_offset + offset, size)

        wanted = restart.covering(first * row_bytes, end)  # with per-segment checks: only those holding the rows
        skipped = wanted[0].out_lo
        segments = inflate_segments(
            restart, read, workers=workers, path=index.path, chunk_offset=chunk.byte_offset, segments=wanted
        )
        pieces = _between(segments, first * row_bytes - skipped, end - skipped)
    else:
        pieces = stream_chunk(
            source, chunk, start=first * row_bytes, end=end, total=index.nbytes, piece_size=piece_size,
            ahead=ahead, streamer=streamer, stats=stats, path=index.path,
        )  # fmt: skip
    yield from _rows(
        pieces, dtype, row_shape, group=group, total_rows=total_rows, what=f"{index.path}: rows {first}..{last}"
    )


def _rows(
    pieces: Iterable[bytes | memoryview],
    dtype: np.dtype[Any],
    row_shape: tuple[int, ...],
    *,
    group: int,
    total_rows: int,
    what: str,
) -> Iterator[npt.NDArray[Any]]:
    """The rows the inflated `pieces` make (`total_rows` of `row_shape`), at most `group` at a time.

    Whole rows inside one piece are handed out as they are (read-only views of the inflated bytes: a band's
    restart-point segments hold tens of rows each); rows cut by a piece's end, or pieces smaller than a row
    (streamed, not segmented), are put together in a buffer of their own, each byte copied once.
    """
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    done_rows = 0  # rows handed out so far
    buf = np.empty(0, dtype=np.uint8)
    fill = 0
    for piece in pieces:
        src = np.frombuffer(piece, dtype=np.uint8)
        while src.size:
            if fill and fill % row_bytes == 0 and src.size >= row_bytes:
                rows = fill // row_bytes  # the buffer's whole rows, before the rows read in place
                done_rows += rows
                yield buf[:fill].view(dtype).reshape(rows, *row_shape)
                buf, fill = np.empty(0, dtype=np.uint8), 0
            if done_rows == total_rows:  # (the pieces end where the rows asked for end)
                raise ValueError(f"{what}: more bytes than those rows")
            if fill == 0 and src.size >= row_bytes:
                rows = min(src.size // row_bytes, group, total_rows - done_rows)
                done_rows += rows
                yield src[: rows * row_bytes].view(dtype).reshape(rows, *row_shape)
                src = src[rows * row_bytes :]
                continue
            if fill == buf.size:  # a fresh group buffer
                buf, fill = np.empty(min(group, total_rows - done_rows) * row_bytes, dtype=np.uint8), 0
            n = min(src.size, buf.size - fill)
            to_row_end = row_bytes - fill % row_bytes
            if src.size - to_row_end >= row_bytes:  # whole rows follow in this piece: copy only up to them
                n = min(n, to_row_end)
            buf[fill : fill + n] = src[:n]
            fill += n
            src = src[n:]
            if fill == buf.size:
                rows = fill // row_bytes
                done_rows += rows
                yield buf.view(dtype).reshape(rows, *row_shape)
                buf, fill = np.empty(0, dtype=np.uint8), 0


def _between(pieces: Iterator[memoryview], start: int, end: int) -> Iterator[memoryview]:
    """The bytes [start, end) of the output `pieces` make; every piece is still taken (its checks run)."""
    position = 0
    for piece in pieces:
        lo, hi = max(start - position, 0), min(end - position, len(piece))
        if lo < hi:
            yield piece[lo:hi]
        position += len(piece)


def read_leading_range(
    index: DatasetIndex, source: RangeReader | RangeStreamer, first: int, last: int, **kwargs: Any
) -> npt.NDArray[Any]:
    """Rows first..last (inclusive) of the first axis as one array (see `iter_leading_range`)."""
    parts = list(iter_leading_range(index, source, first, last, **kwargs))
    if not parts:
        return np.empty((0, *index.shape[1:]), dtype=np.dtype(index.dtype))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def read_or_fallback(ds: h5py.Dataset, reader: RangeReader | None, **kwargs: Any) -> npt.NDArray[Any]:
    """`ds[()]` through `read_dataset` when the storage allows it and a reader is given, else through h5py."""
    if reader is not None:
        index = index_dataset(ds)
        if index.direct:
            return read_dataset(index, reader, **kwargs)
        log.debug("%s: read with h5py (%s)", ds.name, index.reason)
    return np.asarray(ds[()])


def find_corrupt_chunk(ds: h5py.Dataset, path: str | None = None) -> CorruptChunk | None:
    """The first stored chunk of an h5py dataset that fails its integrity check, as a `CorruptChunk`; None if none does.

    Tells a damaged chunk from any other error after h5py failed to read a dataset (HDF5 says only
    "filter returned failure"): each chunk's stored bytes are read through HDF5 itself
    (`read_direct_chunk`, so any h5py file object works) and inflated to their end, as `stream_chunk`
    does, into a small dropped buffer. Storage this module does not decode (other filters) and data
    stored without a filter (nothing to check) give None.
    """
    index = index_dataset(ds, path)
    if not index.direct or not index.deflate or index.chunk_shape is None:
        return None
    chunk_bytes = int(np.prod(index.chunk_shape, dtype=np.int64)) * np.dtype(index.dtype).itemsize
    for chunk in index.chunks:
        raw = memoryview(ds.id.read_direct_chunk(chunk.offset)[1])

        def read(offset: int, size: int, raw: memoryview = raw, base: int = chunk.byte_offset) -> bytes:
            return bytes(raw[offset - base : offset - base + size])

        try:
            for _ in stream_chunk(read, chunk, end=0, total=chunk_bytes, path=index.path, piece_size=IN_PIECE):
                pass
        except CorruptChunk as exc:
            return exc
    return None
