"""Read-ahead of many datasets in few requests, for stores where each request is expensive (S3).

`Prefetcher` coalesces the chunks of the datasets a job will ask for, in that order, fetches them
ahead on background threads within a memory budget, and decodes each dataset when asked for it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy.typing as npt

from datacarousel.chunkread.decode import decode_chunk
from datacarousel.chunkread.index import Chunk, DatasetIndex, _check
from datacarousel.chunkread.read import Assembly, _Request
from datacarousel.chunkread.sources import RangeReader, Stats


class Prefetcher:
    """Fetch the chunks of many datasets ahead, in the order they will be asked for, with few requests.

    The chunks are grouped into coalesced requests (`gap`, `max_request`, as `plan_requests`), kept
    in the order of `indexes`. Background threads fetch requests ahead of the consumer, holding at
    most `budget` compressed bytes. `get(path)` waits for the request holding the dataset and
    inflates it (its chunks in parallel on `decoders` threads). A request's bytes are released once
    all its datasets were taken, or once every consumer asked for a dataset of a later request (so
    datasets never asked for, e.g. the angles of a night granule, cost only their transfer). Several
    threads may consume side by side (one granule each, as the radiance job does): each thread's
    latest request is its position, and only requests below the lowest position are released.
    Meant for stores where each request is expensive (a GET is 20-100 ms on S3, more on moto).
    """

    def __init__(
        self,
        indexes: Sequence[DatasetIndex],
        reader: RangeReader,
        *,
        fetchers: int = 2,
        decoders: int = 2,
        budget: int = 384 * 1024 * 1024,
        gap: int = 8 * 1024 * 1024,
        max_request: int = 128 * 1024 * 1024,
        stats: Stats | None = None,
    ) -> None:
        for index in indexes:
            _check(index)
        self._by_path = {i.path: i for i in indexes}
        self._requests = self._plan(indexes, gap, max_request)
        self._where = {path: k for k, r in enumerate(self._requests) for path, _ in r.members}
        self._reader = reader
        self._stats = stats
        self._budget = budget
        self._data: dict[int, Future[bytes]] = {}
        self._taken: dict[int, set[str]] = {k: set() for k in range(len(self._requests))}
        self._cond = threading.Condition()
        self._in_flight = 0
        self._next = 0
        self._released = 0  # requests below this index are released
        self._positions: dict[int, int] = {}  # consumer thread -> the request it asked for last
        self._fetch_pool = ThreadPoolExecutor(max_workers=max(1, fetchers), thread_name_prefix="prefetch")
        self._decode_pool = ThreadPoolExecutor(max_workers=max(1, decoders), thread_name_prefix="inflate")
        self._closed = False
        with self._cond:
            self._schedule()

    @staticmethod
    def _plan(indexes: Sequence[DatasetIndex], gap: int, max_request: int) -> list[_Request]:
        """Coalesce neighbours in file order, but only between datasets that are also neighbours in `indexes`."""
        requests: list[_Request] = []
        current: _Request | None = None
        for index in indexes:
            for chunk in sorted(index.chunks, key=lambda c: c.byte_offset):
                start, end = chunk.byte_offset, chunk.byte_offset + chunk.size
                if (
                    current is not None
                    and current.end <= start <= current.end + gap
                    and end - current.start <= max_request
                ):
                    current.end = end
                else:
                    current = _Request(start, end)
                    requests.append(current)
                current.members.append((index.path, chunk))
        return requests

    def _schedule(self) -> None:  # with self._cond held
        self._next = max(self._next, self._released)
        while self._next < len(self._requests) and not self._closed:
            if self._next in self._data:  # fetched on demand already
                self._next += 1
                continue
            req = self._requests[self._next]
            size = req.end - req.start
            if self._in_flight and self._in_flight + size > self._budget:
                break
            self._in_flight += size
            self._data[self._next] = self._fetch_pool.submit(self._reader, req.start, size)
            self._next += 1

    def _release_below(self, k: int) -> None:  # with self._cond held
        while self._released < k:
            self._drop(self._released)
            self._released += 1

    def _drop(self, k: int) -> None:
        future = self._data.pop(k, None)
        if future is not None:
            future.cancel()
            req = self._requests[k]
            self._in_flight -= req.end - req.start

    def get(self, path: str, out: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """The dataset `path` (one of the indexes given), decoded (into `out` if given: of its shape)."""
        k = self._where[path]
        with self._cond:
            self._positions[threading.get_ident()] = k
            self._release_below(min(self._positions.values()))
            future = self._data.get(k)
            if future is None:  # released already (asked for out of order): fetch on demand
                req = self._requests[k]
                future = self._fetch_pool.submit(self._reader, req.start, req.end - req.start)
                self._data[k] = future
                self._in_flight += req.end - req.start
        raw = memoryview(future.result())
        req = self._requests[k]
        index = self._by_path[path]
        chunks = [c for p, c in req.members if p == path]
        # a dataset may span two requests (very large ones): fetch the other parts directly
        rest = [c for c in index.chunks if c not in chunks]

        assembly = Assembly(index, out)

        def decode(chunk: Chunk) -> None:
            if chunk in chunks:
                lo = chunk.byte_offset - req.start
                assembly.add(chunk, decode_chunk(index, raw[lo : lo + chunk.size], self._stats, chunk))
            else:
                raw_chunk = self._reader(chunk.byte_offset, chunk.size)
                assembly.add(chunk, decode_chunk(index, raw_chunk, self._stats, chunk))

        todo = chunks + rest
        if len(todo) > 1:
            list(self._decode_pool.map(decode, todo))
        else:
            for chunk in todo:
                decode(chunk)
        with self._cond:
            self._taken[k].add(path)
            if {p for p, _ in req.members} <= self._taken[k] and k == self._released:
                self._release_below(k + 1)
            self._schedule()
        return assembly.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for k in list(self._data):
                self._drop(k)
        self._fetch_pool.shutdown(wait=True, cancel_futures=True)
        self._decode_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
