"""HDF5 writing in the BasicFusion storage layout, deterministic and multi-threaded.

Compressed datasets are written chunk by chunk with `write_direct_chunk`: the
chunks are deflated (zlib level 1, what HDF5's gzip filter at level 1 writes, no
shuffle) in a thread pool while the main thread keeps creating datasets, and
every HDF5 call happens in the main thread in a fixed order, so identical input
gives identical bytes. `track_times=False` keeps timestamps out of the file.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import product
from typing import Any

import h5py
import numpy as np

GZIP_LEVEL = 1
Attrs = Mapping[str, Any]


def _deflate(block: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(block).tobytes(), GZIP_LEVEL)


def set_attrs(obj: h5py.HLObject, attrs: Attrs) -> None:
    """Attributes as the C writer stores them: strings fixed-length, numbers with the given dtype."""
    for key, value in attrs.items():
        if isinstance(value, str):
            obj.attrs.create(key, np.bytes_(value.encode("ascii")))
        elif isinstance(value, bytes):
            obj.attrs.create(key, np.bytes_(value))
        else:
            obj.attrs.create(key, value)


class ChunkedWriter:
    """Writes datasets; deflates in `workers` threads; bounds memory held by pending chunks."""

    def __init__(self, workers: int = 2, max_pending_bytes: int = 1_500_000_000) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="deflate")
        self._pending: deque[tuple[h5py.Dataset, list[tuple[tuple[int, ...], Future[bytes]]], int]] = deque()
        self._pending_bytes = 0
        self._max_pending = max_pending_bytes
        self._reuse: dict[str, list[Future[bytes]]] = {}
        self._templates: dict[str, tuple[tuple[int, ...], np.dtype[Any], tuple[int, ...]]] = {}
        self.raw_bytes = 0  # uncompressed bytes of every dataset written
        self.compressed_raw_bytes = 0  # uncompressed bytes of the gzip datasets
        self.compressed_bytes = 0  # their deflated size

    def __enter__(self) -> ChunkedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def has_template(self, key: str) -> bool:
        return key in self._reuse

    def gzip(
        self,
        parent: h5py.Group,
        name: str,
        data: np.ndarray | None,
        chunks: tuple[int, ...] | None = None,
        *,
        attrs: Attrs | None = None,
        reuse: str | None = None,
    ) -> h5py.Dataset:
        """A gzip-1, unshuffled, chunked dataset (chunk = whole array unless given).

        `reuse`: a key; the first dataset written under a key is deflated, later ones with the same
        key get the same deflated chunks and may pass `data=None` (used in the "full" preset for
        families no analysis reads, see docs/synthetic-data.md).
        """
        if data is None:
            if reuse is None or reuse not in self._templates:
                raise ValueError(f"{name}: no data and no template {reuse!r}")
            shape, dtype, template_chunks = self._templates[reuse]
            chunks = chunks or template_chunks
        else:
            shape, dtype = data.shape, data.dtype
        chunks = chunks or shape
        if any(n % c for n, c in zip(shape, chunks, strict=True)):
            raise ValueError(f"{name}: chunks {chunks} do not tile {shape}")
        dset = parent.create_dataset(
            name,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            compression="gzip",
            compression_opts=GZIP_LEVEL,
            shuffle=False,
            track_times=False,
        )
        if attrs:
            set_attrs(dset, attrs)
        offsets = list(_chunk_offsets(shape, chunks))
        cached = self._reuse.get(reuse) if reuse else None
        if cached is not None and reuse is not None and self._templates[reuse] == (shape, dtype, chunks):
            futures = cached
            held = 0
        else:
            if data is None:
                raise ValueError(f"{name}: template {reuse!r} has another shape")
            futures = [self._pool.submit(_deflate, data[_slices(o, chunks, shape)]) for o in offsets]
            held = data.nbytes
            if reuse:
                self._reuse[reuse] = futures
                self._templates[reuse] = (shape, dtype, chunks)
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.raw_bytes += nbytes
        self.compressed_raw_bytes += nbytes
        self._pending.append((dset, list(zip(offsets, futures, strict=True)), held))
        self._pending_bytes += held
        self._drain(self._max_pending)
        return dset

    def plain(self, parent: h5py.Group, name: str, data: np.ndarray, attrs: Attrs | None = None) -> h5py.Dataset:
        """A contiguous, uncompressed dataset."""
        dset = parent.create_dataset(name, data=data, track_times=False)
        if attrs:
            set_attrs(dset, attrs)
        self.raw_bytes += data.nbytes
        return dset

    def fixed_strings(
        self, parent: h5py.Group, name: str, values: list[bytes], size: int, attrs: Attrs | None = None
    ) -> h5py.Dataset:
        """A contiguous 1-D dataset of NULLTERM fixed-length strings (`size` bytes each, e.g. S28)."""
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(size)
        tid.set_strpad(h5py.h5t.STR_NULLTERM)
        space = h5py.h5s.create_simple((len(values),))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)
        dsid = h5py.h5d.create(parent.id, name.encode(), tid, space, dcpl=dcpl)
        dset = h5py.Dataset(dsid)
        dset[...] = np.array(values, dtype=f"S{size}")
        if attrs:
            set_attrs(dset, attrs)
        self.raw_bytes += size * len(values)
        return dset

    def flush(self) -> None:
        self._drain(0)

    def forget(self, key: str) -> None:
        """Drop a reuse template (frees its deflated chunks once written)."""
        self._reuse.pop(key, None)
        self._templates.pop(key, None)

    def _drain(self, limit: int) -> None:
        # Decided on byte counts only, never on which thread finished first: the order of HDF5
        # calls (and so every byte of the file) must not depend on timing.
        while self._pending and (limit == 0 or self._pending_bytes > limit):
            dset, chunks, held = self._pending.popleft()
            for offset, future in chunks:
                payload = future.result()
                dset.id.write_direct_chunk(offset, payload)
                self.compressed_bytes += len(payload)
            self._pending_bytes -= held


def _chunk_offsets(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    ranges = [range(0, n, c) for n, c in zip(shape, chunks, strict=True)]
    yield from product(*ranges)


def _slices(offset: tuple[int, ...], chunks: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(o, min(o + c, n)) for o, c, n in zip(offset, chunks, shape, strict=True))
