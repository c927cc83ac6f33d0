"""An orbit's datasets for any analysis, from a local file, an S3 object or an HSDS domain.

One class, `OrbitReader`, works over anything with h5py's File API (h5py over a
path, h5py over an s3fs file object, h5pyd over an HSDS domain). An analysis only
calls the methods of the `OrbitSource` protocol, so it never knows where the
bytes come from; the job SDK (`datacarousel.job`) opens it for each work item.

MISR radiances and geolocation are stored as one whole-array gzip chunk
(docs/basicfusion-layout.md §1). Slicing such a dataset through HDF5 decompresses
the whole chunk into memory (755 MB per AN band). Where the raw bytes are
reachable (local file, S3 object) the reader instead streams the chunk through
zlib and hands out the daylit block range as soon as it is inflated; it then
inflates the rest of the chunk into a small dropped buffer, so that the chunk's
zlib checksum is checked before the job can finish (as HDF5 checks it). It checks
the filter pipeline first and falls back to one HDF5 slice otherwise.

Integrity: whatever the path, a chunk whose bytes fail their check (deflate stream,
zlib checksum, size) raises `datacarousel.errors.CorruptData` naming the file, the
dataset, the chunk's byte offset and the reason; h5py's own read errors are checked
the same way (`chunkread.find_corrupt_chunk`) before they are raised as they came.

Direct reads (issue #11, docs/read-path.md): by default every opener also gives the reader a
`datacarousel.chunkread.DirectReads`, which reads datasets stored as contiguous data or deflate-only
chunks straight from their bytes (local pread, or ranged GETs of the S3 object, the chunk index
coming from the file's own metadata or, for HSDS, from the linked domain) and inflates them in the
client (ISA-L when installed, several chunks at once on `workers` threads). Anything else (other
filters, datasets HSDS copied, a failed direct index) goes the ordinary h5py/h5pyd way. The job
never knows which path served it; the results are identical (tests/batch_jobs/test_compute_radiance_read_paths.py).
For remote sources the MODIS candidates of the whole orbit are fetched ahead in few coalesced
requests (`chunkread.Prefetcher`), since each request costs a round trip.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import h5py
import h5pyd
import numpy as np
import numpy.typing as npt

from datacarousel import aws, chunkread, hsds_restart_points
from datacarousel.chunkread import restart
from datacarousel.errors import BadInput, CorruptData, TransientError
from datacarousel.hsds import HsdsAccess
from datacarousel.s3files import s3_filesystem

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")
RawRead = Callable[[int, int], bytes]  # (offset, size) -> bytes of the underlying file

STREAM_PIECE = 8 * 1024 * 1024  # compressed bytes fed to zlib at a time
# MISR blocks handed to the job at a time. Four 275 m blocks are 16.8 MB, under glibc's largest mmap threshold
# (32 MiB): a group's buffer is then reused from the heap instead of being a fresh mapping, page-faulted in;
# eight (33.6 MB) cost 0.3-0.5 s more system time and 50-100 MB more peak memory on a full orbit (3
# interleaved runs each, 2026-12-04).
BLOCK_GROUP = 4
S3_BLOCK_SIZE = 4 * 1024 * 1024  # s3fs read-ahead block for HDF5 metadata and small datasets


def default_workers() -> int:
    """Threads for direct reads: the CPUs this process may use (zlib/ISA-L release the GIL)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class MissingData(Exception):
    """A dataset or group the job looks for is not in the file (recorded as a skip, never fatal)."""


class OrbitSource(Protocol):
    """What the job asks of an orbit file."""

    name: str
    threads: int  # how many reads the job may run at once (the reader's decoding threads)

    def groups(self) -> set[str]: ...
    def modis_granules(self) -> list[str]: ...
    def modis_latlon(self, granule: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def modis_angles(self, granule: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def modis_bands(
        self, granule: str, fields: tuple[str, ...]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def misr_block_center_times(self, camera: str) -> npt.NDArray[Any]: ...
    def misr_geolocation(self, first: int, last: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def misr_geometry(self, camera: str, first: int, last: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]: ...
    def misr_radiance(self, camera: str, band: str, first: int, last: int) -> Iterator[npt.NDArray[np.float32]]: ...
    def misr_bands_at_once(self, camera: str) -> int: ...
    def ceres_granules(self) -> list[str]: ...
    def ceres_instrument(self, granule: str, instrument: str) -> dict[str, npt.NDArray[Any]]: ...
    def close(self) -> None: ...


def _sensor_zenith_name(camera: str) -> str:
    """`AN` -> `AnZenith` (the original's camera-name rule)."""
    return camera[0] + camera[1:].lower() + "Zenith"


CERES_DATASETS = {
    "time": "Time_and_Position/Time_of_observation",
    "lat": "Time_and_Position/Latitude",
    "lon": "Time_and_Position/Longitude",
    "sw": "Radiances/SW_Radiance",
    "lw": "Radiances/LW_Radiance",
    "mode_flags": "Radiances/Radiance_Mode_Flags",
    "sza": "Viewing_Angles/Solar_Zenith",
    "vza": "Viewing_Angles/Viewing_Zenith",
}


class OrbitReader:
    """`OrbitSource` over an h5py-like File; `raw_read` enables streaming of whole-array gzip chunks."""

    def __init__(
        self,
        h5file: Any,
        name: str,
        raw_read: RawRead | None = None,
        *,
        closers: tuple[Any, ...] = (),
        direct: chunkread.DirectReads | None = None,
        prefetch_modis: bool = False,
    ) -> None:
        self._f = h5file
        self.name = name
        self._raw_read = raw_read
        self._closers = closers
        self._direct = direct
        self._prefetch_modis = prefetch_modis and direct is not None
        self._prefetcher: chunkread.Prefetcher | None = None
        self._prefetched: set[str] = set()
        self.threads = direct.workers if direct is not None else 1

    # -- direct reads (None: read the ordinary way) --
    def _direct_read(
        self, paths: list[str], out: list[npt.NDArray[Any]] | None = None
    ) -> list[npt.NDArray[Any]] | None:
        """The datasets `paths`, read directly (into the arrays `out`, one per path, if given), or None."""
        if self._direct is None:
            return None
        try:
            if self._prefetcher is not None and all(p in self._prefetched for p in paths):
                into: list[npt.NDArray[Any] | None] = list(out) if out is not None else [None] * len(paths)
                return [self._prefetcher.get(p, o) for p, o in zip(paths, into, strict=True)]
            if len(paths) == 1 and out is None:
                one = self._direct.read(paths[0])
                return None if one is None else [one]
            many = self._direct.read_many(paths, None if out is None else dict(zip(paths, out, strict=True)))
        except chunkread.CorruptChunk as exc:
            raise self._corrupt(exc) from exc
        except chunkread.ShortRead as exc:
            raise BadInput(f"{self.name}: truncated data: {exc}") from exc
        return None if many is None else [many[p] for p in paths]

    def _corrupt(self, exc: CorruptData) -> CorruptData:
        """`exc` as a `CorruptData` that also names this file."""
        return CorruptData(exc.reason, exc.path, exc.offset, self.name)

    def _start_modis_prefetch(self, granules: list[str]) -> None:
        """Remote sources: fetch every granule's candidates ahead, in time order, in few requests."""
        if not self._prefetch_modis or self._prefetcher is not None or self._direct is None:
            return
        order = sorted(granules, key=_granule_sort_key)
        indexes = []
        for g in order:
            for m in chunkread.MODIS_GRANULE_DATASETS:
                index = self._direct.index(f"MODIS/{g}/{m}")
                if index is not None and index.direct:
                    indexes.append(index)
        if indexes:
            self._prefetcher = chunkread.Prefetcher(
                indexes, self._direct.reader, fetchers=self._direct.workers, decoders=self._direct.workers,
                stats=self._direct.stats,
            )  # fmt: skip
            self._prefetched = {i.path for i in indexes}

    # -- plumbing --
    def _dataset(self, path: str) -> Any:
        try:
            obj = self._f[path]
        except KeyError as exc:
            raise MissingData(path) from exc
        if not hasattr(obj, "shape"):
            raise MissingData(f"{path} is not a dataset")
        return obj

    def _read(self, path: str, selection: Any = ()) -> npt.NDArray[Any]:
        got = self._direct_read([path])
        if got is not None:
            return got[0] if selection == () else np.asarray(got[0][selection])
        return self._h5_read(self._dataset(path), selection)

    def _h5_read(self, ds: Any, selection: Any = ()) -> npt.NDArray[Any]:
        """`ds[selection]` through h5py/h5pyd; a read error caused by a damaged chunk raises `CorruptData`."""
        try:
            return np.asarray(ds[selection])
        except OSError as exc:  # HDF5 says only "filter returned failure": look at the chunks themselves
            corrupt = None
            if isinstance(ds, h5py.Dataset):
                try:
                    corrupt = chunkread.find_corrupt_chunk(ds, str(ds.name).lstrip("/"))
                except Exception as check_exc:  # the check itself failed: the original error stands
                    log.debug("%s: chunk check after a read error failed: %s", ds.name, check_exc)
            if corrupt is None:
                raise
            raise self._corrupt(corrupt) from exc

    def _children(self, path: str) -> list[str]:
        try:
            group = self._f[path]
        except KeyError:
            return []
        return sorted(group.keys())

    def groups(self) -> set[str]:
        return set(self._f.keys())

    # -- MODIS --
    def modis_granules(self) -> list[str]:
        granules = self._children("MODIS")
        self._start_modis_prefetch(granules)
        return granules

    def modis_latlon(self, granule: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        base = f"MODIS/{granule}/_1KM/Geolocation"
        got = self._direct_read([f"{base}/Latitude", f"{base}/Longitude"])
        if got is not None:
            return got[0], got[1]
        return self._read(f"{base}/Latitude"), self._read(f"{base}/Longitude")

    def modis_angles(self, granule: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        return self._read(f"MODIS/{granule}/SolarZenith"), self._read(f"MODIS/{granule}/SensorZenith")

    def modis_bands(
        self, granule: str, fields: tuple[str, ...]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The bands of `fields` (each a (bands, R, C) dataset) stacked in one float32 array, and their scales.

        Each dataset's chunks are copied into its part of the stacked array as they are decoded: no concatenation
        (a 77 MB copy on a full orbit's granule), and what is held at once is the stacked array and the chunks
        being decoded, not every decoded chunk beside a copy (~155 -> ~100 MB).
        """
        paths = [f"MODIS/{granule}/_1KM/Data_Fields/{f}" for f in fields]
        datasets = [self._dataset(p) for p in paths]  # all or nothing
        rad_scales, ref_scales = [], []
        for ds in datasets:
            try:
                rs = np.asarray(ds.attrs["radiance_scales"], dtype=np.float32).ravel()
                fs = np.asarray(ds.attrs["reflectance_scales"], dtype=np.float32).ravel()
            except KeyError as exc:
                raise MissingData(f"{ds.name}: attribute {exc}") from exc
            if len(ds.shape) != 3:
                raise MissingData(f"{ds.name}: shape {ds.shape}, expected (bands, rows, columns)")
            n = ds.shape[0]
            if len(rs) < n or len(fs) < n:
                raise MissingData(f"{ds.name}: scale attributes shorter than the band count {n}")
            rad_scales.append(rs[:n])
            ref_scales.append(fs[:n])
        if len({tuple(ds.shape[1:]) for ds in datasets}) > 1:
            shapes = ", ".join(str(ds.shape) for ds in datasets)
            raise MissingData(f"MODIS/{granule}: band arrays of different sizes: {shapes}")
        bands = np.empty((sum(ds.shape[0] for ds in datasets), *datasets[0].shape[1:]), dtype=np.float32)
        bounds = np.cumsum([0] + [ds.shape[0] for ds in datasets])
        parts = [bands[lo:hi] for lo, hi in itertools.pairwise(bounds)]
        if self._direct_read(paths, parts) is None:
            for ds, part in zip(datasets, parts, strict=True):
                part[...] = self._h5_read(ds)
        return bands, np.concatenate(rad_scales), np.concatenate(ref_scales)

    # -- MISR --
    def misr_block_center_times(self, camera: str) -> npt.NDArray[Any]:
        return self._read(f"MISR/{camera}/BlockCenterTime")

    def _block_range(self, path: str, first: int, last: int) -> Iterator[npt.NDArray[Any]]:
        """Blocks first..last (inclusive) of a (180, h, w) dataset, in groups of BLOCK_GROUP, read once."""
        ds = self._dataset(path)
        rows = self._direct.rows(path, first, last, BLOCK_GROUP) if self._direct is not None else None
        if rows is not None:
            yield from prefetched(self._translated(rows), depth=2)
            return
        plan = self._stream_plan(ds)
        if plan is None:
            data = self._h5_read(ds, np.s_[first : last + 1])
            for start in range(0, data.shape[0], BLOCK_GROUP):
                yield data[start : start + BLOCK_GROUP]
            return
        byte_offset, size = plan
        assert self._raw_read is not None
        stream = _stream_blocks(
            self._raw_read, byte_offset=byte_offset, size=size, shape=tuple(ds.shape), dtype=np.dtype(ds.dtype),
            first=first, last=last, path=path,
        )  # fmt: skip
        # inflate the next blocks (and, after the last, the rest of the chunk) while the job aggregates these
        yield from prefetched(self._translated(stream), depth=2)

    def _translated(self, rows: Iterator[npt.NDArray[Any]]) -> Iterator[npt.NDArray[Any]]:
        try:
            yield from rows
        except chunkread.CorruptChunk as exc:
            raise self._corrupt(exc) from exc
        except chunkread.ShortRead as exc:
            raise BadInput(f"{self.name}: MISR chunk truncated: {exc}") from exc

    def _stream_plan(self, ds: Any) -> tuple[int, int] | None:
        """(file offset, compressed size) of a whole-array deflate-only chunk, or None if streaming does not apply."""
        if self._raw_read is None or not hasattr(ds, "id") or not hasattr(ds.id, "get_chunk_info"):
            return None
        try:
            if ds.chunks != ds.shape or ds.compression != "gzip" or ds.shuffle or ds.fletcher32 or ds.scaleoffset:
                return None
            if ds.dtype.byteorder not in ("<", "=", "|") or ds.dtype.kind not in "fiu":
                return None
            if ds.id.get_num_chunks() != 1:
                return None
            info = ds.id.get_chunk_info(0)
        except Exception:  # any doubt: read through HDF5
            return None
        if info.filter_mask != 0 or info.byte_offset is None:
            return None
        return int(info.byte_offset), int(info.size)

    def misr_geolocation(self, first: int, last: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        lat = np.concatenate(list(self._block_range("MISR/Geolocation/GeoLatitude", first, last)))
        lon = np.concatenate(list(self._block_range("MISR/Geolocation/GeoLongitude", first, last)))
        return lat, lon

    def misr_geometry(self, camera: str, first: int, last: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        sza = self._read("MISR/Solar_Geometry/SolarZenith", np.s_[first : last + 1])
        vza = self._read(f"MISR/{camera}/Sensor_Geometry/{_sensor_zenith_name(camera)}", np.s_[first : last + 1])
        return sza, vza

    def misr_radiance(self, camera: str, band: str, first: int, last: int) -> Iterator[npt.NDArray[np.float32]]:
        return self._block_range(f"MISR/{camera}/Data_Fields/{band}_Radiance", first, last)

    def misr_bands_at_once(self, camera: str) -> int:
        """How many bands to read side by side: one when each band's chunk is itself inflated on every thread
        (restart points; the file's points cover all its large chunks, so the red band answers for the four),
        else as many as there are threads."""
        if self._direct is not None and self._direct.segmented(f"MISR/{camera}/Data_Fields/Red_Radiance"):
            return 1
        return self.threads

    # -- CERES --
    def ceres_granules(self) -> list[str]:
        return self._children("CERES")

    def ceres_instrument(self, granule: str, instrument: str) -> dict[str, npt.NDArray[Any]]:
        base = f"CERES/{granule}/{instrument}"
        if instrument not in self._children(f"CERES/{granule}"):
            raise MissingData(base)
        got = self._direct_read([f"{base}/{path}" for path in CERES_DATASETS.values()])
        if got is not None:
            return dict(zip(CERES_DATASETS, got, strict=True))
        return {key: self._read(f"{base}/{path}") for key, path in CERES_DATASETS.items()}

    def close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.close()
        for obj in (self._f, *self._closers):
            try:
                obj.close()
            except Exception as exc:  # closing must not hide the job's own outcome
                log.debug("close %s: %s", self.name, exc)

    def root_attribute(self, name: str) -> Any:
        """A root attribute of the file, None if it has none (e.g. the synthetic generator's marker)."""
        return self._f.attrs.get(name)

    def __enter__(self) -> OrbitReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _granule_sort_key(name: str) -> tuple[int, str]:
    return (0, name) if name.startswith("granule_") else (1, name)


def _stream_blocks(
    raw_read: RawRead,
    *,
    byte_offset: int,
    size: int,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    first: int,
    last: int,
    path: str = "",
) -> Iterator[npt.NDArray[Any]]:
    """Inflate a whole-array chunk piece by piece; yield blocks first..last, BLOCK_GROUP at a time, as they come.

    After the last block the rest of the chunk is inflated into a small dropped buffer, so the zlib
    checksum at its end is checked: the iterator raises `chunkread.CorruptChunk` (or `ShortRead`)
    after its last blocks if the chunk is damaged; exhaust it before using them.
    """
    index = chunkread.DatasetIndex(
        path=path, shape=shape, dtype=dtype.str, layout=chunkread.CHUNKED, chunk_shape=shape, deflate=True,
        chunks=(chunkread.Chunk((0,) * len(shape), byte_offset, size),),
    )  # fmt: skip

    def read(offset: int, n: int) -> bytes:
        data = raw_read(offset, n)
        if len(data) != n:
            raise chunkread.ShortRead(f"{path}: {len(data)} of {n} bytes at offset {offset}: the file is truncated")
        return data

    return chunkread.iter_leading_range(index, read, first, last, group=BLOCK_GROUP, ahead=0, piece_size=STREAM_PIECE)


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield `items`, produced by a background thread up to `depth` ahead (zlib and HDF5 reads overlap numpy work).

    An exception in the producer is raised in the consumer; closing the consumer stops the producer.
    The same read-ahead thread as chunkread's (`chunkread.read_ahead`), always with at least one slot.
    """
    return chunkread.read_ahead(items, max(depth, 1), name="prefetch")


# --- openers --------------------------------------------------------------------------
def _translate_open_error(where: str, exc: Exception) -> Exception:
    text = str(exc)
    lowered = text.lower()
    if any(s in lowered for s in ("truncated", "signature", "not an hdf5", "unable to open file", "eof")):
        return BadInput(f"{where}: not a readable HDF5 file ({text})")
    return TransientError(f"{where}: {text}")


def open_local(
    path: str | Path, *, direct: bool = True, workers: int | None = None, restart_points: bool = True
) -> OrbitReader:
    """h5py over a local file; `direct`: datasets read by pread + inflate on `workers` threads (default: the CPUs).

    With `restart_points` and a file of them beside it (ORBIT.h5.restart-points: `chunkread.restart.build_file`
    and `dumps_file`), its large whole-array chunks are inflated in segments side by side."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise _translate_open_error(str(path), exc) from exc
    fd = os.open(path, os.O_RDONLY)

    def raw_read(offset: int, size: int) -> bytes:
        return os.pread(fd, size, offset)

    class _Fd:
        def close(self) -> None:
            os.close(fd)

    direct_reads = None
    if direct:
        points = _restart_points_beside(path) if restart_points else None
        direct_reads = chunkread.DirectReads.for_h5py(
            h5, raw_read, workers=workers or default_workers(), restart_points=points
        )
    return OrbitReader(h5, path.name, raw_read, closers=(_Fd(),), direct=direct_reads)


def _restart_points_beside(path: Path) -> Callable[[str, int, int], restart.RestartIndex | None] | None:
    """The lookup of ORBIT.h5.restart-points beside `path`, or None (none there, or not such a file: logged)."""
    sidecar = path.with_name(path.name + restart.SIDECAR_SUFFIX)
    try:
        return restart.loads_file(sidecar.read_bytes()) if sidecar.is_file() else None
    except (OSError, ValueError) as exc:
        log.warning("%s: not used, inflating front to back: %s", sidecar, exc)
        return None


def split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise BadInput(f"{url!r} is not an s3://bucket/key URL")
    bucket, key = url[5:].split("/", 1)
    if not bucket or not key:
        raise BadInput(f"{url!r} is not an s3://bucket/key URL")
    return bucket, key


def open_s3(
    url: str, fs: Any | None = None, *, direct: bool = True, workers: int | None = None, s3: S3Client | None = None
) -> OrbitReader:
    """h5py over an s3fs file object (h5py has no ros3 driver here); raw reads go by byte range.

    `direct`: the chunk index comes from the file's metadata (read through h5py), the data by ranged
    GetObject calls of `s3` (a boto3 client; default `datacarousel.aws.client("s3")`), inflated here.
    """
    bucket, key = split_s3_url(url)
    fs = fs or s3_filesystem(default_block_size=S3_BLOCK_SIZE)
    path = f"{bucket}/{key}"
    try:
        fobj = fs.open(path, "rb", block_size=S3_BLOCK_SIZE, cache_type="blockcache")
    except FileNotFoundError as exc:
        raise BadInput(f"{url}: no such object") from exc
    except PermissionError as exc:
        raise BadInput(f"{url}: not readable (still archived, or access denied): {exc}") from exc
    except OSError as exc:
        raise TransientError(f"{url}: {exc}") from exc
    try:
        h5 = h5py.File(fobj, "r")
    except OSError as exc:
        fobj.close()
        raise _translate_open_error(url, exc) from exc

    def raw_read(offset: int, size: int) -> bytes:
        return bytes(fs.cat_file(path, start=offset, end=offset + size))

    direct_reads = None
    if direct:
        client = s3 if s3 is not None else _s3_client()
        direct_reads = chunkread.DirectReads.for_h5py(
            h5, chunkread.s3_range_reader(client, bucket, key), workers=workers or default_workers(),
            streamer=chunkread.s3_range_streamer(client, bucket, key),
        )  # fmt: skip
    return OrbitReader(h5, key.rsplit("/", 1)[-1], raw_read, closers=(fobj,), direct=direct_reads,
                       prefetch_modis=direct)  # fmt: skip


def _s3_client() -> S3Client:
    return aws.client("s3")


def open_hsds(
    domain: str,
    access: HsdsAccess | None = None,
    *,
    direct: bool = True,
    workers: int | None = None,
    s3: S3Client | None = None,
) -> OrbitReader:
    """h5pyd over an HSDS domain, as `access` (None: HS_ENDPOINT / HS_USERNAME / HS_PASSWORD, resolved here;
    a missing one raises `ConfigError`).

    `direct`: HSDS serves the metadata and the chunk index of the linked domain; the bytes of linked
    datasets are read from the S3 object the domain links to (ranged GETs with `s3`, default
    `datacarousel.aws.client("s3")`) and inflated here, not by the HSDS data nodes (which handle
    whole-array chunks badly: docs/read-path.md). Datasets HSDS holds itself are read through HSDS.
    Large whole-array chunks with restart points in the domain (`hsds_restart_points`, written by
    index_file) are inflated in segments side by side, as `open_local` does with a file's sidecar.
    """
    kwargs = HsdsAccess.given(access).h5pyd_kwargs()
    try:
        h5 = h5pyd.File(domain, "r", **kwargs)
    except (FileNotFoundError, OSError) as exc:
        text = str(exc)
        if isinstance(exc, FileNotFoundError) or "404" in text or "not found" in text.lower():
            raise BadInput(f"HSDS domain {domain}: not found") from exc
        if "403" in text or "401" in text:
            raise BadInput(f"HSDS domain {domain}: access denied ({text})") from exc
        raise TransientError(f"HSDS domain {domain}: {text}") from exc
    direct_reads = None
    if direct:
        client = s3 if s3 is not None else _s3_client()
        direct_reads = chunkread.DirectReads.for_hsds(h5, chunkread.s3_uri_opener(client),
                                                      workers=workers or default_workers(),
                                                      restart_points=hsds_restart_points.load(h5))  # fmt: skip
    return OrbitReader(h5, domain.rsplit("/", 1)[-1], direct=direct_reads, prefetch_modis=direct)
