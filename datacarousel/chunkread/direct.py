"""One file's direct reads: a lazily built, cached chunk index plus a byte source.

What `datacarousel.orbit` holds per open file: each method returns None when a dataset cannot be
read directly, so the caller reads it the ordinary way (h5py / h5pyd) instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import h5py
import numpy.typing as npt

from datacarousel.chunkread.index import DatasetIndex, _replace, index_dataset, index_from_hsds
from datacarousel.chunkread.read import iter_leading_range, read_dataset, read_datasets
from datacarousel.chunkread.restart import RestartIndex
from datacarousel.chunkread.sources import (
    DEFAULT_COALESCE_GAP,
    RangeReader,
    RangeStreamer,
    Stats,
    counted,
    counted_streamer,
    piecewise,
    s3_range_reader,
    s3_range_streamer,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class DirectReads:
    """Direct reads of one file's datasets: a lazily built chunk index plus a byte source.

    `indexer(path)` gives the `DatasetIndex` of a path (None if there is no such dataset); the
    answers are cached. Every method returns None when the dataset cannot be read directly, so the
    caller reads it the ordinary way (h5py / h5pyd) instead.
    """

    def __init__(
        self,
        indexer: Callable[[str], DatasetIndex | None],
        reader: RangeReader,
        streamer: RangeStreamer | None = None,
        *,
        workers: int = 2,
        gap: int = DEFAULT_COALESCE_GAP,
        stats: Stats | None = None,
        restart_points: Callable[[str, int, int], RestartIndex | None] | None = None,
    ) -> None:
        self._indexer = indexer
        self._restart_points = restart_points  # (path, chunk byte offset, stored size) -> points, or None
        self._cache: dict[str, DatasetIndex | None] = {}
        self._lock = threading.Lock()
        self.stats = stats if stats is not None else Stats()
        self.reader = counted(reader, self.stats)
        self.streamer = counted_streamer(streamer, self.stats) if streamer is not None else None
        self.workers = max(1, workers)
        self.gap = gap

    @classmethod
    def for_h5py(cls, h5file: h5py.File, reader: RangeReader, **kwargs: Any) -> DirectReads:
        """Index from the open h5py file's own metadata."""

        def indexer(path: str) -> DatasetIndex | None:
            obj = h5file.get(path)
            return index_dataset(obj, path) if isinstance(obj, h5py.Dataset) else None

        return cls(indexer, reader, **kwargs)

    @classmethod
    def for_hsds(
        cls, domain: Any, open_uri: Callable[[str], tuple[RangeReader, RangeStreamer | None] | None], **kwargs: Any
    ) -> DirectReads:
        """Index from a linked HSDS domain (h5pyd File): HSDS serves the metadata, the bytes come from
        the object it links to, through `open_uri(file_uri)` (None: that URI cannot be read directly)."""
        sources: dict[str, tuple[RangeReader, RangeStreamer | None] | None] = {}

        def indexer(path: str) -> DatasetIndex | None:
            try:
                obj = domain[path]
            except KeyError:
                return None
            if not hasattr(obj, "shape"):
                return None
            index, uri = index_from_hsds(obj, path)
            if uri is None:
                return index
            if uri not in sources:
                sources[uri] = open_uri(uri)
            if sources[uri] is None or len(sources) > 1:  # one file per domain; anything else: through HSDS
                return _replace(index, reason=f"bytes in {uri}, not readable directly")
            return index

        def reader(offset: int, size: int) -> bytes:
            (source,) = (s for s in sources.values() if s is not None)
            return source[0](offset, size)

        def streamer(offset: int, size: int, piece: int) -> Iterator[bytes]:
            (source,) = (s for s in sources.values() if s is not None)
            if source[1] is None:
                return piecewise(source[0])(offset, size, piece)
            return source[1](offset, size, piece)

        return cls(indexer, reader, streamer, **kwargs)

    def index(self, path: str) -> DatasetIndex | None:
        with self._lock:
            if path not in self._cache:
                self._cache[path] = self._indexer(path)
            return self._cache[path]

    def _direct(self, path: str) -> DatasetIndex | None:
        index = self.index(path)
        return index if index is not None and index.direct else None

    def read(self, path: str) -> npt.NDArray[Any] | None:
        index = self._direct(path)
        if index is None:
            return None
        return read_dataset(index, self.reader, stats=self.stats)

    def read_many(
        self, paths: Sequence[str], out: Mapping[str, npt.NDArray[Any]] | None = None
    ) -> dict[str, npt.NDArray[Any]] | None:
        """All of `paths` at once (coalesced, `workers` threads), or None if any one is not direct; `out` as
        `read_datasets` takes it."""
        indexes = [self._direct(p) for p in paths]
        if any(i is None for i in indexes):
            return None
        return read_datasets([i for i in indexes if i is not None], self.reader, workers=self.workers, gap=self.gap,
                             stats=self.stats, out=out)  # fmt: skip

    def _restart(self, path: str, index: DatasetIndex) -> RestartIndex | None:
        if self._restart_points is None or len(index.chunks) != 1:
            return None
        return self._restart_points(path, index.chunks[0].byte_offset, index.chunks[0].size)

    def segmented(self, path: str) -> bool:
        """Whether `rows` of `path` inflate its chunk in segments side by side (it has restart points)."""
        index = self._direct(path)
        return index is not None and self.workers > 1 and self._restart(path, index) is not None

    def rows(self, path: str, first: int, last: int, group: int) -> Iterator[npt.NDArray[Any]] | None:
        """Rows first..last of the first axis, `group` at a time, streamed (see `iter_leading_range`)."""
        index = self._direct(path)
        if index is None or len(index.shape) < 1:
            return None
        restart = self._restart(path, index)
        if restart is not None:  # segments read by range, side by side
            return iter_leading_range(
                index, self.reader, first, last, group=group, stats=self.stats, restart=restart, workers=self.workers
            )
        if self.streamer is not None:
            return iter_leading_range(index, self.streamer, first, last, group=group, streamer=True, stats=self.stats)
        return iter_leading_range(index, self.reader, first, last, group=group, stats=self.stats)


def s3_uri_opener(s3: S3Client) -> Callable[[str], tuple[RangeReader, RangeStreamer | None] | None]:
    """`open_uri` for `DirectReads.for_hsds`: `s3://bucket/key` -> ranged GETs with this boto3 client."""

    def open_uri(uri: str) -> tuple[RangeReader, RangeStreamer | None] | None:
        if not uri.startswith("s3://") or "/" not in uri[5:]:
            return None
        bucket, key = uri[5:].split("/", 1)
        return s3_range_reader(s3, bucket, key), s3_range_streamer(s3, bucket, key)

    return open_uri
