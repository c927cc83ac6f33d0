"""The chunk index of a dataset: where its stored bytes are and how to decode them.

Pure metadata (JSON-serialisable, so it can be stored at index time), built from an open h5py
file (`index_dataset`, `index_datasets`) or from a linked HSDS domain (`index_from_hsds`). A
dataset whose storage does not decode exactly like HDF5 gets a `reason` and is not `direct`.
`radiance_job_paths` lists what the radiance job reads, so those can be indexed up front.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any

import h5py
import numpy as np

from datacarousel.chunkread.errors import NotDirect

FILTER_DEFLATE = 1
CONTIGUOUS = "contiguous"
CHUNKED = "chunked"
OTHER = "other"
INDEX_VERSION = 1


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

    @property
    def whole_deflate_chunk(self) -> bool:
        """The whole dataset is one deflate stream (MISR bands, MODIS 2-D arrays): streamed, worth restart points."""
        return self.layout == CHUNKED and len(self.chunks) == 1 and self.chunk_shape == self.shape and self.deflate

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
    """Every dataset the ComputeRadiance job may read (docs/compute-radiance.md, docs/basicfusion-layout.md section 9).

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


def chunk_grid(index: DatasetIndex) -> list[tuple[int, ...]]:
    """Logical offsets of every chunk the dataset should have (for checks and tests)."""
    if index.layout != CHUNKED or index.chunk_shape is None:
        return [(0,) * len(index.shape)]
    return list(product(*(range(0, n, c) for n, c in zip(index.shape, index.chunk_shape, strict=True))))


def _check(index: DatasetIndex) -> None:
    if not index.direct:
        raise NotDirect(f"{index.path}: {index.reason}")
