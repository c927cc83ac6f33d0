"""A byte flipped in any chunk the radiance job reads is reported as corruption on every read path; no result.

The issue (reliability audit): the direct reader stopped inflating a whole-array MISR chunk after
the last daylit block, so the zlib checksum at the end of the stream was never checked and a
corrupted chunk gave a result. Here one byte of one chunk of a `small` synthetic orbit is flipped
(inside the daylit prefix, past the last daylit block, in the zlib trailer, in MODIS chunks, in a
CERES chunk) and the whole job runs through every read path: direct reads (pread + inflate), h5py
(with the streamed daylit prefix for MISR), and the direct path as it runs on S3 (a streamer, MODIS
prefetched). Each must raise `CorruptData` naming the file, the dataset and the chunk.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from batch_jobs.compute_radiance import result as r
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import Parameters
from batch_jobs.compute_radiance.worker import run_source
from datacarousel import chunkread
from datacarousel import orbit as readers
from datacarousel.errors import BadInput, CorruptData, TransientError
from tests.batch_jobs.compute_radiance_orbits import build_orbit
from workbench.synthetic.generator import generate_orbit

RED = "MISR/AN/Data_Fields/Red_Radiance"
GEO_LAT = "MISR/Geolocation/GeoLatitude"
CERES_SW = "Radiances/SW_Radiance"


def open_streamed(path: Path) -> readers.OrbitReader:
    """The direct path as `readers.open_s3` sets it up (one streamed request per MISR chunk, MODIS
    prefetched in coalesced requests), over the local file instead of an S3 object."""
    h5 = h5py.File(path, "r")
    read, close = chunkread.file_range_reader(path)
    direct = chunkread.DirectReads.for_h5py(h5, read, streamer=chunkread.piecewise(read), workers=2)

    class Closer:
        def close(self) -> None:
            close()

    return readers.OrbitReader(h5, path.name, read, closers=(Closer(),), direct=direct, prefetch_modis=True)


OPENERS: dict[str, Callable[[Path], readers.OrbitReader]] = {
    "direct": lambda p: readers.open_local(p, direct=True, workers=2),
    "h5py": lambda p: readers.open_local(p, direct=False),
    "streamed": open_streamed,
}


def run(opener: Callable[[Path], readers.OrbitReader], path: Path) -> r.OrbitResult:
    with opener(path) as src:
        return compute_orbit(src, Parameters())


@dataclass(frozen=True)
class Orbit:
    path: Path
    first: int  # daylit MISR block range of the job
    last: int
    day_granule: str  # a descending MODIS granule (bands read)
    night_granule: str  # one that is not (only latitude/longitude read)


@pytest.fixture(scope="module")
def orbit(tmp_path_factory: pytest.TempPathFactory) -> Orbit:
    path = generate_orbit(85079, tmp_path_factory.mktemp("corruption"), preset="small", seed=5)
    res = run(OPENERS["h5py"], path)
    with h5py.File(path, "r") as f:
        night = [g for g in sorted(f["MODIS"]) if g not in res.modis_granules_used]
    first, last = res.misr_blocks_used[0], res.misr_blocks_used[-1]
    assert first > 0 and last < 179  # blocks before and after the daylit range exist
    assert res.modis_granules_used and night
    return Orbit(path, first, last, res.modis_granules_used[0], night[0])


def chunk_of(path: Path, dataset: str, index: int = 0) -> tuple[int, bytes]:
    """(file offset, stored bytes) of chunk `index` of `dataset`, from HDF5's own chunk index."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(index)
    with path.open("rb") as fh:
        fh.seek(info.byte_offset)
        return int(info.byte_offset), fh.read(info.size)


def consumed_before(raw: bytes, out_bytes: int) -> int:
    """The compressed bytes zlib has taken (in steps of 256) when its output first reaches `out_bytes`."""
    inflater = zlib.decompressobj()
    produced = 0
    for lo in range(0, len(raw), 256):
        produced += len(inflater.decompress(raw[lo : lo + 256]))
        if produced >= out_bytes:
            return lo
    raise AssertionError(f"the chunk inflates to {produced} < {out_bytes} bytes")


def flipped(raw: bytes, at: int) -> bytes:
    data = bytearray(raw)
    data[at] ^= 0xFF
    return bytes(data)


def prefix(raw: bytes, end: int) -> bytes | None:
    """The first `end` uncompressed bytes as a reader that stops there gets them (None: it fails)."""
    try:
        return zlib.decompressobj().decompress(raw, end)
    except zlib.error:
        return None


def row_bytes(path: Path, dataset: str) -> int:
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        return int(np.prod(ds.shape[1:])) * ds.dtype.itemsize


# --- where to flip: (dataset, chunk number, position in the chunk's stored bytes) ------------------------
def in_daylit_prefix(orbit: Orbit, dataset: str) -> tuple[int, int]:
    row = row_bytes(orbit.path, dataset)
    offset, raw = chunk_of(orbit.path, dataset)
    at = consumed_before(raw, (orbit.first + orbit.last) // 2 * row)
    end = (orbit.last + 1) * row
    assert prefix(flipped(raw, at), end) != prefix(raw, end)  # a reader stopping after the last block sees it
    return offset, at


def past_last_daylit_block(orbit: Orbit, dataset: str) -> tuple[int, int]:
    row = row_bytes(orbit.path, dataset)
    offset, raw = chunk_of(orbit.path, dataset)
    end = (orbit.last + 1) * row
    at = (consumed_before(raw, end) + 512 + len(raw) - 4) // 2  # between the last daylit block and the trailer
    assert prefix(flipped(raw, at), end) == prefix(raw, end)  # invisible to a reader stopping after the last block
    return offset, at


def in_trailer(orbit: Orbit, dataset: str, chunk: int = 0) -> tuple[int, int]:
    offset, raw = chunk_of(orbit.path, dataset, chunk)
    return offset, len(raw) - 2  # the adler32 of the uncompressed bytes


def in_the_middle(orbit: Orbit, dataset: str, chunk: int = 0) -> tuple[int, int]:
    offset, raw = chunk_of(orbit.path, dataset, chunk)
    return offset, len(raw) // 2


CASES: dict[str, tuple[Callable[[Orbit], str], Callable[[Orbit, str], tuple[int, int]]]] = {
    "misr_radiance_in_daylit_prefix": (lambda o: RED, in_daylit_prefix),
    "misr_radiance_past_last_daylit_block": (lambda o: RED, past_last_daylit_block),
    "misr_radiance_zlib_trailer": (lambda o: RED, in_trailer),
    "misr_geolocation_past_last_daylit_block": (lambda o: GEO_LAT, past_last_daylit_block),
    "modis_refsb_band_chunk": (
        lambda o: f"MODIS/{o.day_granule}/_1KM/Data_Fields/EV_500_Aggr1km_RefSB",
        lambda o, d: in_the_middle(o, d, 2),
    ),
    "modis_latitude_of_a_night_granule_trailer": (
        lambda o: f"MODIS/{o.night_granule}/_1KM/Geolocation/Latitude",
        in_trailer,
    ),
}


@pytest.fixture()
def copy_of(orbit: Orbit, tmp_path: Path) -> Iterator[Callable[[], Path]]:
    made: list[Path] = []

    def copy() -> Path:
        path = tmp_path / f"{len(made)}" / orbit.path.name
        path.parent.mkdir()
        shutil.copyfile(orbit.path, path)
        made.append(path)
        return path

    yield copy
    for path in made:  # 85 MB each: do not leave them behind
        path.unlink()


def flip_in_file(path: Path, file_offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(file_offset)
        byte = fh.read(1)
        fh.seek(file_offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def assert_reported(path: Path, dataset: str, chunk_offset: int) -> None:
    for label, opener in OPENERS.items():
        with pytest.raises(CorruptData) as info:
            run(opener, path)
        exc = info.value
        assert isinstance(exc, BadInput), label  # poison: dead-lettered, never retried
        assert (exc.source, exc.path, exc.offset) == (path.name, dataset, chunk_offset), (label, str(exc))
        assert exc.reason and dataset in str(exc) and str(chunk_offset) in str(exc), (label, str(exc))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the job may aggregate corrupted blocks before the check
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_flipped_byte_is_reported_on_every_read_path(orbit: Orbit, copy_of: Callable[[], Path], case: str) -> None:
    dataset_of, where = CASES[case]
    dataset = dataset_of(orbit)
    chunk_offset, at = where(orbit, dataset)
    path = copy_of()
    flip_in_file(path, chunk_offset + at)
    assert_reported(path, dataset, chunk_offset)


def test_a_flipped_byte_in_a_deflated_ceres_chunk_is_reported(orbit: Orbit, copy_of: Callable[[], Path]) -> None:
    """BasicFusion stores CERES contiguous and uncompressed (no checksum to check); a CERES array
    stored as a deflate chunk is checked like any other."""
    path = copy_of()
    with h5py.File(path, "r+") as f:
        granule = sorted(f["CERES"])[0]
        fm1 = f[f"CERES/{granule}/FM1"]
        for name in readers.CERES_DATASETS.values():
            data, attrs = fm1[name][()], dict(fm1[name].attrs)
            del fm1[name]
            ds = fm1.create_dataset(name, data=data, chunks=data.shape, compression="gzip", compression_opts=1)
            ds.attrs.update(attrs)
    counts = {int(run(opener, path).ceres.count.sum()) for opener in OPENERS.values()}
    assert len(counts) == 1 and counts.pop() > 0  # the rewritten orbit reads the same on every path
    dataset = f"CERES/{granule}/FM1/{CERES_SW}"
    chunk_offset, at = in_the_middle(Orbit(path, 0, 0, "", ""), dataset)
    flip_in_file(path, chunk_offset + at)
    assert_reported(path, dataset, chunk_offset)


def test_the_streamed_direct_path_gives_the_h5py_result(orbit: Orbit) -> None:
    want = run(OPENERS["h5py"], orbit.path).arrays()
    got = run(open_streamed, orbit.path).arrays()
    for name, value in want.items():
        assert np.array_equal(got[name], value), name


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_ceres_arrays_of_different_lengths_have_their_own_reason(tmp_path: Path, opener: str) -> None:
    path = build_orbit(tmp_path)
    with h5py.File(path, "r+") as f:
        granule = sorted(f["CERES"])[1]
        radiances = f[f"CERES/{granule}/FM1/Radiances"]
        shorter = radiances["SW_Radiance"][:-7]
        del radiances["SW_Radiance"]
        radiances.create_dataset("SW_Radiance", data=shorter)
    res = run(OPENERS[opener], path)
    skips = [s for s in res.skipped if s.instrument == "CERES" and s.item == granule]
    assert [s.reason for s in skips] == [r.CERES_LENGTHS_DIFFER], res.skipped
    assert "sw" in skips[0].detail and r.CERES_WITHOUT_FM1 not in res.reasons()
    assert res.ceres.count.sum() > 0  # the other group still counts


class _FailingReader:
    """A reader whose every read fails the way HDF5 and HSDS fail: an OSError and some words."""

    name = "TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5"

    def __init__(self, text: str) -> None:
        self.text = text

    def __enter__(self) -> _FailingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, attribute: str) -> Callable[..., None]:
        def fail(*args: object, **kwargs: object) -> None:
            raise OSError(self.text)

        return fail


@pytest.mark.parametrize(
    "text",
    ["Can't read data (filter returned failure during read)", "inflate() failed: checksum", "unexpected EOF", "503"],
)
def test_a_read_error_without_a_damaged_chunk_is_transient_whatever_its_words(text: str) -> None:
    """Only a chunk found damaged (CorruptData) is evidence against the file; words in an error message are
    not (an HSDS 503 and a zlib message look alike): the failure is retried, and surfaces as transient."""
    with pytest.raises(TransientError, match="read failed"):
        run_source(_FailingReader(text), Parameters())  # type: ignore[arg-type]
