"""Byte sources of direct reads: where a chunk's stored bytes come from.

A range reader is `(offset, size) -> bytes` (a local file by pread, an S3 object by ranged
GetObject, an fsspec path); a range streamer is one request whose bytes come in pieces (so a
whole-array chunk can be inflated while it arrives, and closing it early stops the transfer).
`Stats` and `counted` / `counted_streamer` record where the time of the requests goes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from datacarousel.chunkread.errors import ShortRead

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RangeReader = Callable[[int, int], bytes]  # (file offset, size) -> exactly `size` bytes
RangeStreamer = Callable[[int, int, int], Iterator[bytes]]  # (offset, size, piece) -> the bytes, in pieces
DEFAULT_COALESCE_GAP = 1024 * 1024  # fetch two ranges at most this far apart with one request
DEFAULT_PART_SIZE = 16 * 1024 * 1024  # large ranges are fetched as parallel parts of this size


@dataclass
class Stats:
    """Where the time of direct reads goes (thread-safe counters; seconds are summed over threads)."""

    requests: int = 0
    fetched_bytes: int = 0
    fetch_s: float = 0.0
    inflate_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, fetched: int = 0, fetch_s: float = 0.0, inflate_s: float = 0.0) -> None:
        with self._lock:
            self.requests += requests
            self.fetched_bytes += fetched
            self.fetch_s += fetch_s
            self.inflate_s += inflate_s

    def as_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "fetched_bytes": self.fetched_bytes, "fetch_s": self.fetch_s,
                "inflate_s": self.inflate_s}  # fmt: skip


def counted(reader: RangeReader, stats: Stats) -> RangeReader:
    """`reader`, with every call counted in `stats`."""

    def read(offset: int, size: int) -> bytes:
        started = time.perf_counter()
        data = reader(offset, size)
        stats.add(requests=1, fetched=len(data), fetch_s=time.perf_counter() - started)
        return data

    return read


def counted_streamer(streamer: RangeStreamer, stats: Stats) -> RangeStreamer:
    """`streamer`, with every call (one request) and the bytes it yields counted in `stats`."""

    def stream(offset: int, size: int, piece: int) -> Iterator[bytes]:
        stats.add(requests=1)
        pieces = streamer(offset, size, piece)
        try:
            while True:
                started = time.perf_counter()
                try:
                    data = next(pieces)
                except StopIteration:
                    return
                stats.add(fetched=len(data), fetch_s=time.perf_counter() - started)
                yield data
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    return stream


def file_range_reader(path: str | os.PathLike[str]) -> tuple[RangeReader, Callable[[], None]]:
    """A range reader over a local file (os.pread, thread-safe) and its closer."""
    fd = os.open(path, os.O_RDONLY)

    def read(offset: int, size: int) -> bytes:
        data = os.pread(fd, size, offset)
        while len(data) < size:  # pread may return short on some file systems
            more = os.pread(fd, size - len(data), offset + len(data))
            if not more:
                raise ShortRead(f"{path}: {len(data)} of {size} bytes at {offset}")
            data += more
        return data

    return read, lambda: os.close(fd)


def s3_range_reader(s3: S3Client, bucket: str, key: str) -> RangeReader:
    """A range reader over an S3 object: one GetObject with a Range header per call (boto3 clients are thread-safe)."""

    def read(offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        rsp = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}")
        data: bytes = rsp["Body"].read()
        if len(data) != size:
            raise ShortRead(f"s3://{bucket}/{key}: {len(data)} of {size} bytes at {offset}")
        return data

    return read


def fsspec_range_reader(fs: Any, path: str) -> RangeReader:
    """A range reader over an fsspec filesystem path (`cat_file` with start/end)."""

    def read(offset: int, size: int) -> bytes:
        data = bytes(fs.cat_file(path, start=offset, end=offset + size))
        if len(data) != size:
            raise ShortRead(f"{path}: {len(data)} of {size} bytes at {offset}")
        return data

    return read


def read_range(
    reader: RangeReader, offset: int, size: int, *, executor: Executor | None = None, part_size: int = DEFAULT_PART_SIZE
) -> bytes:
    """`size` bytes at `offset`; with an executor, a large range is fetched as parallel parts."""
    if executor is None or size <= part_size:
        return reader(offset, size)
    starts = range(offset, offset + size, part_size)
    parts = [executor.submit(reader, s, min(part_size, offset + size - s)) for s in starts]
    return b"".join(p.result() for p in parts)


def piecewise(reader: RangeReader) -> RangeStreamer:
    """A streamer that asks `reader` for one piece at a time (local files: one pread per piece)."""

    def stream(offset: int, size: int, piece: int) -> Iterator[bytes]:
        for lo in range(offset, offset + size, piece):
            yield reader(lo, min(piece, offset + size - lo))

    return stream


def s3_range_streamer(s3: S3Client, bucket: str, key: str, stats: Stats | None = None) -> RangeStreamer:
    """One GetObject per call, its body read in pieces (closing early stops the transfer)."""

    def stream(offset: int, size: int, piece: int) -> Iterator[bytes]:
        started = time.perf_counter()
        rsp = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}")
        body = rsp["Body"]
        if stats is not None:
            stats.add(requests=1, fetch_s=time.perf_counter() - started)
        got = 0
        try:
            while got < size:
                started = time.perf_counter()
                data = body.read(min(piece, size - got))
                if stats is not None:
                    stats.add(fetched=len(data), fetch_s=time.perf_counter() - started)
                if not data:
                    raise ShortRead(f"s3://{bucket}/{key}: {got} of {size} bytes at {offset}")
                got += len(data)
                yield data
        finally:
            body.close()

    return stream


def _reader_of(streamer: RangeStreamer) -> RangeReader:
    def read(offset: int, size: int) -> bytes:
        return b"".join(streamer(offset, size, max(size, 1)))

    return read
