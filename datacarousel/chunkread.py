"""Read HDF5 datasets straight from their stored bytes: chunk index + byte ranges + zlib (issue #11).

A BasicFusion orbit stores MISR and MODIS arrays as whole-array (or one-per-band)
gzip-1 chunks without shuffle (BASICFUSION_LAYOUT.md section 1). Reading such a
dataset needs exactly what h5py does internally: fetch the chunk's bytes and
inflate them. This module does that from *any* byte source, so the carousel can
read a restored S3 object with one (or a few parallel) ranged GETs per chunk and
decompress in the client, instead of going through HSDS (which handles
whole-array chunks badly) or through h5py on an fsspec file object (many small
GETs).

Three layers:
- the index (pure metadata, JSON-serialisable, can be stored at index time):
  `DatasetIndex` per dataset, built from an open h5py file by `index_dataset`
  / `index_datasets`, and `radiance_job_paths` lists what the radiance job reads;
- byte sources ("range readers", `(offset, size) -> bytes`): `file_range_reader`,
  `s3_range_reader` (boto3 GetObject with Range), `fsspec_range_reader`;
- decoding: `read_dataset` (one array), `read_datasets` (many, ranges coalesced,
  decoded in a thread pool: zlib releases the GIL), and `stream_chunk` (inflate a
  whole-array chunk piece by piece, hand out the bytes wanted as soon as they are
  inflated, then inflate the rest into a small dropped buffer to check the zlib
  checksum, with the next compressed pieces fetched in parallel while the current
  one inflates).

Integrity: every deflate chunk read is inflated to its end, so its zlib checksum
(adler32 of the uncompressed bytes) and its size are checked, as h5py does; a
chunk that fails raises `CorruptChunk`, a `datacarousel.errors.CorruptData` naming
the dataset, the chunk's byte offset and the reason. Data stored without a filter
(contiguous datasets) carries no checksum in HDF5: only its size is checked.

Only what decodes exactly like HDF5 is taken: contiguous data, or chunks whose
filter pipeline is empty or deflate alone, fixed-size numeric/bytes types, every
chunk allocated and no chunk with a filter skipped. Anything else (shuffle,
fletcher32, szip, scale-offset, partial chunk sets, variable-length types) has
`DatasetIndex.direct == False`; `read_dataset` then raises `NotDirect` and the
caller falls back to h5py (`read_or_fallback` does that for an open dataset).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import types
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from datacarousel.errors import CorruptData

_inflate_lib: types.ModuleType
try:  # ISA-L inflates the same deflate streams about twice as fast as zlib
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - optional speed-up
    _inflate_lib = zlib
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, getattr(_inflate_lib, "error", zlib.error))

log = logging.getLogger(__name__)

RangeReader = Callable[[int, int], bytes]  # (file offset, size) -> exactly `size` bytes
FILTER_DEFLATE = 1
CONTIGUOUS = "contiguous"
CHUNKED = "chunked"
OTHER = "other"
INDEX_VERSION = 1
DEFAULT_COALESCE_GAP = 1024 * 1024  # fetch two ranges at most this far apart with one request
DEFAULT_PART_SIZE = 16 * 1024 * 1024  # large ranges are fetched as parallel parts of this size
DEFAULT_PIECE_SIZE = 8 * 1024 * 1024  # compressed bytes inflated at a time when streaming
DEFAULT_OUT_PIECE = 64 * 1024 * 1024  # uncompressed bytes produced per inflate call at most
VERIFY_PIECE = 4 * 1024 * 1024  # past the bytes wanted: inflated at a time (then dropped) to check the checksum


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


class NotDirect(Exception):
    """The dataset's storage is not one this module decodes; read it with h5py."""


class ShortRead(OSError):
    """A range reader returned fewer bytes than asked for (truncated file or object)."""


class CorruptChunk(CorruptData):
    """A stored chunk fails its integrity check: the deflate stream is broken, its zlib checksum (adler32)
    does not match, or it does not inflate to exactly the size its shape says.

    A `datacarousel.errors.CorruptData` (so a `BadInput`): `path`, `offset` (the chunk's byte offset
    in the file) and `reason` name what failed.
    """


@dataclass(frozen=True)
class Chunk:
    """One stored chunk: its logical offset (element coordinates) and where its bytes are."""

    offset: tuple[int, ...]
    byte_offset: int
    size: int


@dataclass(frozen=True)
class DatasetIndex:
    """Where a dataset's bytes are and how to decode them (all that a direct read needs)."""

    path: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype string with byte order, e.g. "<f4", "|S28"
    layout: str  # CONTIGUOUS, CHUNKED or OTHER
    chunk_shape: tuple[int, ...] | None = None
    deflate: bool = False  # the filter pipeline is deflate alone (else empty)
    chunks: tuple[Chunk, ...] = ()
    reason: str = ""  # why `direct` is False
    fill: bytes = b""  # fill value bytes, for contiguous datasets never written

    @property
    def direct(self) -> bool:
        return not self.reason

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def stored_bytes(self) -> int:
        return sum(c.size for c in self.chunks)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
            "chunk_shape": None if self.chunk_shape is None else list(self.chunk_shape),
            "deflate": self.deflate,
            "chunks": [[list(c.offset), c.byte_offset, c.size] for c in self.chunks],
            "reason": self.reason,
            "fill": self.fill.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetIndex:
        return cls(
            path=str(data["path"]),
            shape=tuple(int(n) for n in data["shape"]),
            dtype=str(data["dtype"]),
            layout=str(data["layout"]),
            chunk_shape=None if data.get("chunk_shape") is None else tuple(int(n) for n in data["chunk_shape"]),
            deflate=bool(data.get("deflate", False)),
            chunks=tuple(Chunk(tuple(int(n) for n in o), int(b), int(s)) for o, b, s in data.get("chunks", ())),
            reason=str(data.get("reason", "")),
            fill=bytes.fromhex(str(data.get("fill", ""))),
        )


def dumps_index(indexes: Mapping[str, DatasetIndex]) -> str:
    """The chunk index of a file as compact JSON (to store next to the file's record)."""
    return json.dumps({"version": INDEX_VERSION, "datasets": [i.to_json() for i in indexes.values()]},
                      separators=(",", ":"))  # fmt: skip


def loads_index(text: str) -> dict[str, DatasetIndex]:
    data = json.loads(text)
    if data.get("version") != INDEX_VERSION:
        raise ValueError(f"chunk index version {data.get('version')!r}, expected {INDEX_VERSION}")
    return {i.path: i for i in (DatasetIndex.from_json(d) for d in data["datasets"])}


# --------------------------------------------------------------------------- the index
def index_dataset(ds: h5py.Dataset, path: str | None = None) -> DatasetIndex:
    """The `DatasetIndex` of an open h5py dataset (reads only metadata); `path` names it (default: its HDF5 name)."""
    path = path if path is not None else (ds.name or "")
    shape = tuple(int(n) for n in ds.shape) if ds.shape is not None else ()
    dt = ds.dtype
    base = DatasetIndex(path=path, shape=shape, dtype=dt.str, layout=OTHER)
    if dt.kind not in "fiuSb" or dt.hasobject or dt.fields is not None or dt.subdtype is not None:
        return _replace(base, reason=f"type {dt} is not fixed-size numeric or bytes")
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if offset is None:  # never written: every element is the fill value
            fill = np.zeros((), dtype=dt)
            dcpl.get_fill_value(fill)
            return _replace(base, layout=CONTIGUOUS, fill=fill.tobytes())
        size = int(ds.id.get_storage_size())
        if size != base.nbytes:
            return _replace(base, layout=CONTIGUOUS, reason=f"contiguous storage {size} B != {base.nbytes} B")
        return _replace(base, layout=CONTIGUOUS, chunks=(Chunk((0,) * len(shape), int(offset), size),))
    if layout != h5py.h5d.CHUNKED:
        return _replace(base, reason="compact or virtual layout")
    chunk_shape = tuple(int(n) for n in ds.chunks)
    filters = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    if filters not in ([], [FILTER_DEFLATE]):
        return _replace(base, layout=CHUNKED, chunk_shape=chunk_shape, reason=f"filters {filters} (only deflate)")
    chunks: list[Chunk] = []
    masked = 0

    def take(info: Any) -> None:
        nonlocal masked
        if info.filter_mask:
            masked += 1
        chunks.append(Chunk(tuple(int(n) for n in info.chunk_offset), int(info.byte_offset), int(info.size)))

    if hasattr(ds.id, "chunk_iter"):
        ds.id.chunk_iter(take)
    else:  # older HDF5
        for i in range(ds.id.get_num_chunks()):
            take(ds.id.get_chunk_info(i))
    expected = int(np.prod([-(-n // c) for n, c in zip(shape, chunk_shape, strict=True)], dtype=np.int64))
    reason = ""
    if masked:
        reason = f"{masked} chunks with skipped filters"
    elif len(chunks) != expected:
        reason = f"{len(chunks)} of {expected} chunks allocated"
    chunks.sort(key=lambda c: c.offset)
    return _replace(base, layout=CHUNKED, chunk_shape=chunk_shape, deflate=bool(filters), chunks=tuple(chunks),
                    reason=reason)  # fmt: skip


def _replace(base: DatasetIndex, **changes: Any) -> DatasetIndex:
    values = {k: getattr(base, k) for k in DatasetIndex.__dataclass_fields__}
    values.update(changes)
    return DatasetIndex(**values)


def index_from_hsds(ds: Any, path: str | None = None) -> tuple[DatasetIndex, str | None]:
    """The `DatasetIndex` of an h5pyd dataset of a linked domain, and the URI of the file holding its bytes.

    HSDS keeps, for a linked (`hsload --link`) dataset, the layout `H5D_CHUNKED_REF` (chunk index ->
    [byte offset, size] in `file_uri`) or `H5D_CONTIGUOUS_REF` (offset, size), and the filter list:
    all a direct read needs. Datasets HSDS copied (512 elements or fewer) come back not direct.
    """
    path = path if path is not None else str(ds.name)
    shape = tuple(int(n) for n in ds.shape)
    dt = np.dtype(ds.dtype)
    base = DatasetIndex(path=path, shape=shape, dtype=dt.str, layout=OTHER)
    layout = dict(ds.id.layout or {})
    cls = layout.get("class")
    if dt.kind not in "fiuSb" or dt.hasobject or dt.fields is not None or dt.subdtype is not None:
        return _replace(base, reason=f"type {dt} is not fixed-size numeric or bytes"), None
    filters = [int(f.get("id", -1)) for f in (ds.id.filters or [])]
    if cls == "H5D_CONTIGUOUS_REF":
        size = int(layout["size"])
        if filters or size != base.nbytes:
            return _replace(base, layout=CONTIGUOUS, reason=f"contiguous {size} B, filters {filters}"), None
        return _replace(base, layout=CONTIGUOUS, chunks=(Chunk((0,) * len(shape), int(layout["offset"]), size),)), str(
            layout["file_uri"]
        )
    if cls != "H5D_CHUNKED_REF":
        return _replace(base, reason=f"HSDS layout {cls} (not linked in place)"), None
    chunk_shape = tuple(int(n) for n in layout["dims"])
    if filters not in ([], [FILTER_DEFLATE]):
        return _replace(base, layout=CHUNKED, chunk_shape=chunk_shape, reason=f"filters {filters} (only deflate)"), None
    chunks = sorted(
        (
            Chunk(tuple(int(i) * c for i, c in zip(key.split("_"), chunk_shape, strict=True)), int(v[0]), int(v[1]))
            for key, v in layout.get("chunks", {}).items()
        ),
        key=lambda c: c.offset,
    )
    expected = int(np.prod([-(-n // c) for n, c in zip(shape, chunk_shape, strict=True)], dtype=np.int64))
    reason = "" if len(chunks) == expected else f"{len(chunks)} of {expected} chunks allocated"
    index = _replace(base, layout=CHUNKED, chunk_shape=chunk_shape, deflate=bool(filters), chunks=tuple(chunks),
                     reason=reason)  # fmt: skip
    return index, str(layout["file_uri"])


def index_datasets(h5file: h5py.File, paths: Iterable[str]) -> dict[str, DatasetIndex]:
    """`DatasetIndex` of each path that exists and is a dataset (missing ones are left out)."""
    out: dict[str, DatasetIndex] = {}
    for path in paths:
        obj = h5file.get(path)
        if isinstance(obj, h5py.Dataset):
            out[path] = index_dataset(obj, path)
    return out


MODIS_GRANULE_DATASETS = (
    "_1KM/Geolocation/Latitude",
    "_1KM/Geolocation/Longitude",
    "SolarZenith",
    "SensorZenith",
    "_1KM/Data_Fields/EV_250_Aggr1km_RefSB",
    "_1KM/Data_Fields/EV_500_Aggr1km_RefSB",
)
CERES_INSTRUMENT_DATASETS = (
    "Time_and_Position/Time_of_observation",
    "Time_and_Position/Latitude",
    "Time_and_Position/Longitude",
    "Radiances/SW_Radiance",
    "Radiances/LW_Radiance",
    "Radiances/Radiance_Mode_Flags",
    "Viewing_Angles/Solar_Zenith",
    "Viewing_Angles/Viewing_Zenith",
)
MISR_BANDS = ("Blue", "Green", "Red", "NIR")


def radiance_job_paths(h5file: h5py.File, camera: str = "AN", instrument: str = "FM1") -> list[str]:
    """Every dataset the ComputeRadiance job may read (COMPUTE_RADIANCE.md, BASICFUSION_LAYOUT.md section 9).

    Candidates for every granule (which granules are descending is known only from the data),
    so the list can be indexed once, when the file is indexed.
    """
    paths: list[str] = []
    for group, members in (("MODIS", MODIS_GRANULE_DATASETS),):
        for g in sorted(h5file.get(group, {})):
            paths += [f"{group}/{g}/{m}" for m in members]
    zenith = camera[0] + camera[1:].lower() + "Zenith"
    paths += [
        f"MISR/{camera}/BlockCenterTime",
        "MISR/Solar_Geometry/SolarZenith",
        f"MISR/{camera}/Sensor_Geometry/{zenith}",
        "MISR/Geolocation/GeoLatitude",
        "MISR/Geolocation/GeoLongitude",
        *(f"MISR/{camera}/Data_Fields/{b}_Radiance" for b in MISR_BANDS),
    ]
    for g in sorted(h5file.get("CERES", {})):
        paths += [f"CERES/{g}/{instrument}/{m}" for m in CERES_INSTRUMENT_DATASETS]
    return paths


# --------------------------------------------------------------------------- byte sources
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


def s3_range_reader(s3: Any, bucket: str, key: str) -> RangeReader:
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


# --------------------------------------------------------------------------- decoding
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
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1).view(np.uint8)
    offset = None if chunk is None else chunk.byte_offset
    if not index.deflate:
        if len(raw) != want:
            raise CorruptChunk(f"{len(raw)} bytes stored, expected {want}", index.path, offset)
        flat[:] = np.frombuffer(raw, dtype=np.uint8)
        return out
    started = time.perf_counter()
    try:
        got = inflate_into(raw, flat)
    except CorruptChunk as exc:
        raise CorruptChunk(exc.reason, index.path, offset) from exc
    finally:
        if stats is not None:
            stats.add(inflate_s=time.perf_counter() - started)
    if got != want:
        raise CorruptChunk(f"the chunk inflates to {got} bytes, expected {want}", index.path, offset)
    return out


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


def _check(index: DatasetIndex) -> None:
    if not index.direct:
        raise NotDirect(f"{index.path}: {index.reason}")


def _native(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """As h5py does, keep the stored byte order (h5py's `ds.dtype` of a big-endian dataset is big-endian)."""
    return a


def _assemble(index: DatasetIndex, pieces: Sequence[tuple[Chunk, npt.NDArray[Any]]]) -> npt.NDArray[Any]:
    if index.layout == CONTIGUOUS:
        if not pieces:  # never written
            return np.full(index.shape, np.frombuffer(index.fill, dtype=index.dtype)[0], dtype=index.dtype)
        return pieces[0][1]
    assert index.chunk_shape is not None
    if len(pieces) == 1 and index.chunk_shape == index.shape:
        return pieces[0][1]
    out = np.empty(index.shape, dtype=np.dtype(index.dtype))
    for chunk, a in pieces:
        dest = tuple(slice(o, min(o + c, n)) for o, c, n in zip(chunk.offset, index.chunk_shape, index.shape,
                                                                 strict=True))  # fmt: skip
        out[dest] = a[tuple(slice(0, s.stop - s.start) for s in dest)]
    return _native(out)


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

    def one(chunk: Chunk) -> tuple[Chunk, npt.NDArray[Any]]:
        raw = read_range(reader, chunk.byte_offset, chunk.size, executor=None, part_size=part_size)
        return chunk, decode_chunk(index, raw, stats, chunk)

    if executor is None or len(chunks) <= 1:
        if len(chunks) == 1 and executor is not None:
            raw = read_range(reader, chunks[0].byte_offset, chunks[0].size, executor=executor, part_size=part_size)
            pieces = [(chunks[0], decode_chunk(index, raw, stats, chunks[0]))]
        else:
            pieces = [one(c) for c in chunks]
    else:
        pieces = list(executor.map(one, chunks))
    return _assemble(index, pieces)


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
) -> dict[str, npt.NDArray[Any]]:
    """Several datasets at once: byte ranges coalesced, fetched and inflated in `workers` threads.

    Every coalesced range is one request; once fetched, each chunk in it is inflated as its own task,
    so one request holding several chunks still uses every worker. Raises `NotDirect` before any
    read if one of the datasets cannot be read directly.
    """
    todo = list(indexes)
    for index in todo:
        _check(index)
    by_path = {i.path: i for i in todo}
    requests = plan_requests(todo, gap=gap, max_request=max_request)
    decoded: dict[str, list[tuple[Chunk, npt.NDArray[Any]]]] = {i.path: [] for i in todo}

    def fetch(req: _Request) -> bytes:
        return reader(req.start, req.end - req.start)

    def decode(path: str, chunk: Chunk, raw: memoryview) -> tuple[str, Chunk, npt.NDArray[Any]]:
        return path, chunk, decode_chunk(by_path[path], raw, stats, chunk)

    def members(req: _Request, raw: bytes) -> Iterator[tuple[str, Chunk, memoryview]]:
        view = memoryview(raw)
        for path, chunk in req.members:
            lo = chunk.byte_offset - req.start
            yield path, chunk, view[lo : lo + chunk.size]

    if workers <= 1:
        for req in requests:
            for path, chunk, raw in members(req, fetch(req)):
                decoded[path].append(decode(path, chunk, raw)[1:])
    else:
        requests.sort(key=lambda r: r.end - r.start, reverse=True)  # long ones first
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunkread") as pool:
            fetches = {pool.submit(fetch, req): req for req in requests}
            decodes = []
            for done in as_completed(fetches):
                for path, chunk, raw in members(fetches[done], done.result()):
                    decodes.append(pool.submit(decode, path, chunk, raw))
            for f in decodes:
                path, chunk, a = f.result()
                decoded[path].append((chunk, a))
    return {path: _assemble(by_path[path], sorted(decoded[path], key=lambda p: p[0].offset)) for path in by_path}


# --------------------------------------------------------------------------- streaming
RangeStreamer = Callable[[int, int, int], Iterator[bytes]]  # (offset, size, piece) -> the bytes, in pieces


def piecewise(reader: RangeReader) -> RangeStreamer:
    """A streamer that asks `reader` for one piece at a time (local files: one pread per piece)."""

    def stream(offset: int, size: int, piece: int) -> Iterator[bytes]:
        for lo in range(offset, offset + size, piece):
            yield reader(lo, min(piece, offset + size - lo))

    return stream


def s3_range_streamer(s3: Any, bucket: str, key: str, stats: Stats | None = None) -> RangeStreamer:
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


def _read_ahead(items: Iterator[bytes], depth: int) -> Iterator[bytes]:
    """`items`, produced by a background thread up to `depth` ahead (I/O overlaps the consumer's inflate)."""
    if depth <= 0:
        yield from items
        return
    slots: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((0, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((1, None))
        except BaseException as exc:  # raised in the consumer
            slots.put((2, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="chunkread-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(0.05)


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

    def corrupt(reason: str) -> CorruptChunk:
        return CorruptChunk(reason, path, chunk.byte_offset)

    size = chunk.size
    pieces: Iterator[bytes]
    if streamer:
        pieces = source(chunk.byte_offset, size, piece_size)  # type: ignore[call-arg,assignment]
    else:
        pieces = piecewise(source)(chunk.byte_offset, size, piece_size)  # type: ignore[arg-type]
    inflater = _inflate_lib.decompressobj()
    position = 0  # uncompressed bytes inflated so far

    def inflate(data: bytes) -> bytes:
        """The next output of `data` (b"": what zlib still holds): the bytes wanted, or VERIFY_PIECE past `end`."""
        nonlocal position
        if end is None:
            limit = DEFAULT_OUT_PIECE
        elif position < end:
            limit = max(1, min(DEFAULT_OUT_PIECE, end - position))
        else:
            limit = VERIFY_PIECE
        started = time.perf_counter()
        produced = inflater.decompress(data, limit)
        if stats is not None:
            stats.add(inflate_s=time.perf_counter() - started)
        position += len(produced)
        if total is not None and position > total:
            raise corrupt(f"the stream inflates to more than {total} bytes")
        return produced

    def wanted(produced: bytes) -> bytes:
        lo = max(start - (position - len(produced)), 0)
        hi = len(produced) if end is None else min(end - (position - len(produced)), len(produced))
        if hi <= lo:
            return b""
        return produced if (lo == 0 and hi == len(produced)) else produced[lo:hi]

    feed = _read_ahead(iter(pieces), ahead)
    try:
        for compressed in feed:
            data = compressed
            while data and not inflater.eof:
                if not verify and end is not None and position >= end:
                    return  # the bytes wanted are out; the rest (and the checksum) is not read
                produced = inflate(data)
                data = inflater.unconsumed_tail
                part = wanted(produced)
                if part:
                    yield part
            if inflater.eof:
                break  # bytes after the end of the stream are ignored, as HDF5 does
        while not inflater.eof and (verify or end is None or position < end):  # zlib may still hold output
            produced = inflate(b"")
            if not produced:
                break
            part = wanted(produced)
            if part:
                yield part
        if end is not None and position < end:
            raise corrupt(f"the stream ends after {position} bytes, {end} wanted (truncated or corrupt)")
        if verify and not inflater.eof:
            raise corrupt("the deflate stream does not end where it should (truncated or corrupt)")
        if verify and total is not None and position != total:
            raise corrupt(f"the stream inflates to {position} bytes, expected {total}")
    except _INFLATE_ERRORS as exc:
        raise corrupt(f"the stream does not inflate: {exc}") from exc
    finally:
        close = getattr(feed, "close", None)
        if close is not None:
            close()


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
) -> Iterator[npt.NDArray[Any]]:
    """Rows first..last (inclusive) of the first axis, `group` rows at a time (MISR blocks).

    A whole-array deflate chunk is inflated in one pass: the groups are yielded as soon as they are
    inflated, then the rest of the chunk is inflated (and dropped) so that its zlib checksum and size
    are checked; memory stays at `group` rows plus a few compressed pieces. The last group is
    yielded before that check: a consumer must exhaust the iterator (which raises `CorruptChunk`
    if the chunk is damaged) before it uses what it got. Other layouts are read whole (through
    `read_dataset`, each chunk checked) and cut into groups. `source`: see `stream_chunk`.
    """
    _check(index)
    dtype = np.dtype(index.dtype)
    row_shape = index.shape[1:]
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    whole_chunk = index.layout == CHUNKED and len(index.chunks) == 1 and index.chunk_shape == index.shape
    if not (whole_chunk and index.deflate):
        reader: RangeReader = _reader_of(source) if streamer else source  # type: ignore[arg-type,assignment]
        data = read_dataset(index, reader, leading=slice(first, last + 1), stats=stats)
        for lo in range(0, data.shape[0], group):
            yield data[lo : lo + group]
        return
    end = (last + 1) * row_bytes
    total_rows = last - first + 1
    done_rows = 0  # rows handed out so far
    buf = np.empty(0, dtype=np.uint8)
    fill = 0
    pieces = stream_chunk(
        source, index.chunks[0], start=first * row_bytes, end=end, total=index.nbytes, piece_size=piece_size,
        ahead=ahead, streamer=streamer, stats=stats, path=index.path,
    )  # fmt: skip
    for piece in pieces:
        src = np.frombuffer(piece, dtype=np.uint8)
        while src.size:
            if fill == buf.size:  # a fresh, writable group buffer: each byte is copied once
                rows = min(group, total_rows - done_rows)
                buf, fill = np.empty(rows * row_bytes, dtype=np.uint8), 0
            n = min(src.size, buf.size - fill)
            buf[fill : fill + n] = src[:n]
            fill += n
            src = src[n:]
            if fill == buf.size:
                rows = buf.size // row_bytes
                done_rows += rows
                yield buf.view(dtype).reshape(rows, *row_shape)


def _reader_of(streamer: RangeStreamer) -> RangeReader:
    def read(offset: int, size: int) -> bytes:
        return b"".join(streamer(offset, size, max(size, 1)))

    return read


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


def chunk_grid(index: DatasetIndex) -> list[tuple[int, ...]]:
    """Logical offsets of every chunk the dataset should have (for checks and tests)."""
    if index.layout != CHUNKED or index.chunk_shape is None:
        return [(0,) * len(index.shape)]
    return list(product(*(range(0, n, c) for n, c in zip(index.shape, index.chunk_shape, strict=True))))


# --------------------------------------------------------------------------- one file's direct reads
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
    ) -> None:
        self._indexer = indexer
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

    def read_many(self, paths: Sequence[str]) -> dict[str, npt.NDArray[Any]] | None:
        """All of `paths` at once (coalesced, `workers` threads), or None if any one is not direct."""
        indexes = [self._direct(p) for p in paths]
        if any(i is None for i in indexes):
            return None
        return read_datasets([i for i in indexes if i is not None], self.reader, workers=self.workers, gap=self.gap,
                             stats=self.stats)  # fmt: skip

    def rows(self, path: str, first: int, last: int, group: int) -> Iterator[npt.NDArray[Any]] | None:
        """Rows first..last of the first axis, `group` at a time, streamed (see `iter_leading_range`)."""
        index = self._direct(path)
        if index is None or len(index.shape) < 1:
            return None
        if self.streamer is not None:
            return iter_leading_range(index, self.streamer, first, last, group=group, streamer=True, stats=self.stats)
        return iter_leading_range(index, self.reader, first, last, group=group, stats=self.stats)


def s3_uri_opener(s3: Any) -> Callable[[str], tuple[RangeReader, RangeStreamer | None] | None]:
    """`open_uri` for `DirectReads.for_hsds`: `s3://bucket/key` -> ranged GETs with this boto3 client."""

    def open_uri(uri: str) -> tuple[RangeReader, RangeStreamer | None] | None:
        if not uri.startswith("s3://") or "/" not in uri[5:]:
            return None
        bucket, key = uri[5:].split("/", 1)
        return s3_range_reader(s3, bucket, key), s3_range_streamer(s3, bucket, key)

    return open_uri


class Prefetcher:
    """Fetch the chunks of many datasets ahead, in the order they will be asked for, with few requests.

    The chunks are grouped into coalesced requests (`gap`, `max_request`, as `plan_requests`), kept
    in the order of `indexes`. Background threads fetch requests ahead of the consumer, holding at
    most `budget` compressed bytes. `get(path)` waits for the request holding the dataset and
    inflates it (its chunks in parallel on `decoders` threads). A request's bytes are released once
    all its datasets were taken, or once the consumer asks for a dataset of a later request (so
    datasets never asked for, e.g. the angles of a night granule, cost only their transfer).
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

    def get(self, path: str) -> npt.NDArray[Any]:
        """The dataset `path` (one of the indexes given), decoded."""
        k = self._where[path]
        with self._cond:
            self._release_below(k)
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

        def decode(chunk: Chunk) -> tuple[Chunk, npt.NDArray[Any]]:
            if chunk in chunks:
                lo = chunk.byte_offset - req.start
                return chunk, decode_chunk(index, raw[lo : lo + chunk.size], self._stats, chunk)
            return chunk, decode_chunk(index, self._reader(chunk.byte_offset, chunk.size), self._stats, chunk)

        todo = chunks + rest
        pieces = list(self._decode_pool.map(decode, todo)) if len(todo) > 1 else [decode(todo[0])]
        with self._cond:
            self._taken[k].add(path)
            if {p for p, _ in req.members} <= self._taken[k] and k == self._released:
                self._release_below(k + 1)
            self._schedule()
        return _assemble(index, sorted(pieces, key=lambda p: p[0].offset))

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
