"""The gridding kernels compiled from kernels.c, and the calls that use them (issue #22).

numpy runs the job's per-pixel rules one operation at a time, each a pass over memory with a temporary;
kernels.c runs each rule in one pass, with the same IEEE operations in the same order, so every result
is the same, byte for byte (tests/batch_jobs/test_compute_radiance_native.py compares them). The library
is built by `python -m batch_jobs.compute_radiance.native` (the set-up and the image build run it) into
a file named after a hash of the source and flags: a library built from other source is never loaded.
Where none is built (no C compiler), `KERNELS` is None and every caller takes its numpy path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SOURCE = Path(__file__).with_name("kernels.c")
# -ffp-contract=off: no fused multiply-add (numpy rounds every product); no -ffast-math; no -march: the
# image runs on whatever instance Batch picks.
# -fno-trapping-math lets a loop with float tests run without branches (no result changes: nothing reads the flags).
FLAGS = (
    *("-O3", "-std=c11", "-ffp-contract=off", "-fno-trapping-math"),
    *("-fPIC", "-shared", "-Wall", "-Wextra", "-Werror"),
)

_index = ctypes.c_ssize_t
_pointer = ctypes.c_void_p
_float = ctypes.c_float
_int64 = ctypes.c_int64
_int32 = ctypes.c_int32
_double = ctypes.c_double
# The kernels' C signatures (kernels.c), argument by argument.
# fmt: off
SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "nanmean_4x4": (None, [_pointer, _index, _index, _index, _pointer, _index]),
    "misr_cells": (_index, [_pointer, _pointer, _pointer, _index, _float, _float, _float, _float, _float, _float,
                            _pointer, _index]),
    "misr_band": (None, [_pointer, _pointer, _index, _float, _pointer, _pointer]),
    "misr_geometry": (None, [_pointer, _pointer, _index, _index, _index, _index, _index, _pointer, _pointer, _pointer,
                             _pointer, _pointer, _pointer, _pointer, _pointer, _double, _double, _pointer, _pointer]),
    "modis_take": (None, [_pointer, _pointer, _pointer, _pointer, _index, _float, _float, _float, _int32, _int32,
                          _pointer, _pointer]),
    "modis_sort": (_index, [_pointer, _index, _index, _int64, _index, _pointer, _pointer, _index, _pointer, _pointer,
                            _pointer, _pointer, _pointer, _pointer, _index, _pointer, _pointer, _pointer]),
    "modis_sums": (None, [_pointer, _pointer, _index, _index, _pointer, _index, _pointer, _pointer, _pointer,
                          _pointer]),
}
# fmt: on


def library_path(directory: Path | None = None) -> Path:
    """Where the library built from today's source and flags is (or would be)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + "\0".join(FLAGS).encode()).hexdigest()[:16]
    return (directory or SOURCE.parent) / f"_kernels-{digest}.so"


def build(directory: Path | None = None, compiler: str | None = None) -> Path:
    """Compile kernels.c (once: an existing library of this source is kept). Raises OSError without a compiler."""
    target = library_path(directory)
    if target.exists():
        return target
    cc = compiler or os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise OSError(f"no C compiler {cc!r} to build {SOURCE.name}: install gcc (Debian: apt install gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # built aside, then renamed: never half a file
        partial = Path(tmp) / target.name
        command = [cc, *FLAGS, "-o", str(partial), str(SOURCE), "-lm"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise OSError(f"{cc} could not build {SOURCE.name}: {result.stderr.strip()}")
        partial.replace(target)
    return target


def load(path: Path | None = None) -> ctypes.CDLL | None:
    """The library built from today's source, with its functions' signatures; None if it is not built."""
    path = path or library_path()
    if not path.exists():
        return None
    library = ctypes.CDLL(str(path))
    for name, (restype, argtypes) in SIGNATURES.items():
        function = getattr(library, name)
        function.restype, function.argtypes = restype, argtypes
    return library


KERNELS = load()


def _address(a: npt.NDArray[Any]) -> int:
    return int(a.ctypes.data)


def _contiguous(a: npt.NDArray[Any], dtype: npt.DTypeLike) -> bool:
    return a.dtype == np.dtype(dtype) and a.flags.c_contiguous


# --- MISR ------------------------------------------------------------------------------------------
def nanmean_4x4(rad: npt.NDArray[Any], out: npt.NDArray[Any]) -> bool:
    """gridding.nanmean_4x4 of one (4h, 4w) block into out (h, w), each of float32 rows of unit stride (views
    of some columns too: read in place, no copy). False (nothing done) without the library or for other arrays."""
    h, w = out.shape
    if (
        KERNELS is None
        or rad.dtype != np.float32
        or out.dtype != np.float32
        or rad.shape != (4 * h, 4 * w)
        or rad.strides[1] != 4
        or out.strides[1] != 4
        or rad.strides[0] % 4
        or out.strides[0] % 4
        or not out.flags.writeable
    ):
        return False
    KERNELS.nanmean_4x4(_address(rad), rad.strides[0] // 4, h, w, _address(out), out.strides[0] // 4)
    return True


def misr_cells(
    mask: npt.NDArray[Any], lat: npt.NDArray[Any], lon: npt.NDArray[Any], lat_bins: tuple[float, float, float],
    lon_bins: tuple[float, float, float],
) -> npt.NDArray[np.int64] | None:  # fmt: skip
    """gridding.histogram_cells over the pixels of `mask` that are inside, as runs (k, 3): first pixel, pixels, cell
    (pixels side by side in one cell), for flat float32 coordinates and bins (n, e0 * n, number of bins) of a
    power-of-two grid. None where the numpy path must run: no library, other arrays, or a value on or past a
    last edge (the rule's last-edge test)."""
    if KERNELS is None or not (_contiguous(mask, np.bool_) and _contiguous(lat, np.float32)):
        return None
    if not _contiguous(lon, np.float32) or not mask.size == lat.size == lon.size:
        return None
    taken = int(np.count_nonzero(mask))
    for capacity in (max(1024, taken // 8), taken):  # runs are tens of pixels long; at most one a pixel
        runs = np.empty((capacity, 3), np.int64)
        found = KERNELS.misr_cells(
            _address(mask), _address(lat), _address(lon), mask.size, *lat_bins, *lon_bins, _address(runs), capacity
        )
        if found != -2:
            break
    return None if found < 0 else runs[:found].copy()


def misr_band(rad: npt.NDArray[Any], runs: npt.NDArray[Any], num_cells: int, rad_max: float) -> (
    tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None
):  # fmt: skip
    """Per cell 0 .. num_cells - 1: the count of values in (0, rad_max) at the pixels of `runs` (misr_cells'), and
    their float64 sum in pixel order (science.misr_band's `np.bincount`s). None without the library or for other
    arrays."""
    if KERNELS is None or not _contiguous(rad, np.float32) or not _contiguous(runs, np.int64) or runs.shape[1:] != (3,):
        return None
    if len(runs) and (runs[-1, 0] + runs[-1, 1] > rad.size or runs[:, 2].max() >= num_cells):
        return None  # (runs are in pixel order: the last ends last)
    counts, sums = np.zeros(num_cells, np.int64), np.zeros(num_cells, np.float64)
    KERNELS.misr_band(_address(rad), _address(runs), len(runs), rad_max, _address(sums), _address(counts))
    return counts, sums


Taps = tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]  # resize.taps: lo, hi (int64), weight (float64)


def misr_geometry(
    sza: npt.NDArray[Any], vza: npt.NDArray[Any], block_shape: tuple[int, int], taps: tuple[Taps, Taps],
    limits: tuple[float, float],
) -> npt.NDArray[np.bool_] | None:  # fmt: skip
    """science.misr_geometry_mask: (nb, h, w) float64 angle grids (negatives already NaN) -> (nb, *block_shape)
    mask, with the row and column `taps` of resize_bilinear and `limits` (sza max, vza max). None without the
    library or for other arrays."""
    if KERNELS is None or not (_contiguous(sza, np.float64) and _contiguous(vza, np.float64)):
        return None
    if sza.ndim != 3 or vza.shape != sza.shape:
        return None
    nb, h, w = sza.shape
    (r_lo, r_hi, r_t), (c_lo, c_hi, c_t) = ((np.ascontiguousarray(a) for a in t) for t in taps)
    oh, ow = block_shape
    if len(r_lo) != oh or len(c_lo) != ow or max(r_hi.max(initial=0), r_lo.max(initial=0)) >= h:
        return None
    if max(c_hi.max(initial=0), c_lo.max(initial=0)) >= w:
        return None
    r_rest, c_rest = 1 - r_t, 1 - c_t  # as numpy computes the other tap's weight
    mask = np.empty((nb, oh, ow), dtype=np.bool_)
    scratch = np.empty(oh * (w + 2 * ow), dtype=np.float64)
    KERNELS.misr_geometry(
        _address(sza), _address(vza), nb, h, w, oh, ow, _address(r_lo), _address(r_hi), _address(r_t),
        _address(r_rest), _address(c_lo), _address(c_hi), _address(c_t), _address(c_rest), *limits,
        _address(scratch), _address(mask),
    )  # fmt: skip
    return mask


# --- MODIS -----------------------------------------------------------------------------------------
# modis_take's statistics, as kernels.c's enum numbers them
MODIS_TAKEN, MODIS_MINUS_90, MODIS_LOW_CELL, MODIS_HIGH_CELL, MODIS_STATS = range(5)


@dataclass(frozen=True)
class SortedGranule:
    """A MODIS granule's pixels taken, in cell order (`modis_sort`): what `modis_sums` needs, about a fifth of the
    granule's memory. `values` (channels, taken): each value taken, or +0.0; `cell_end`: where each cell's
    pixels end."""

    minus_90: int
    cells: npt.NDArray[np.int64]
    cell_end: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]
    cosines: npt.NDArray[np.float64]


def modis_sort(
    *,
    lat: npt.NDArray[Any],
    lon: npt.NDArray[Any],
    sza: npt.NDArray[Any],
    vza: npt.NDArray[Any],
    bands: npt.NDArray[Any],
    ceiling: npt.NDArray[np.float32],
    cols: int,
    per_degree: int,
    num_lons: int,
    num_cells: int,
    limits: tuple[float, float, float],
    cosine_table: tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]],
    scratch: Callable[[str, int, npt.DTypeLike], npt.NDArray[Any]],
) -> SortedGranule | None:
    """The first two passes of science.modis_granule over one granule (the angle tests and index rule, then the
    pixels taken in cell order with their values and cosines).

    The arrays are flat, `bands` (channels, pixels), `cols` pixels to a swath line; `limits` is (sza max, vza max,
    fill max); `per_degree` an integer power of two; `cosine_table` the hundredths of a degree in 0..180 (float32)
    and their cosines; `scratch(name, n, dtype)` a reusable buffer. None where the numpy path must run: no library,
    other arrays, or a solar zenith taken that is not a hundredth of a degree (gridding.cos_degrees computes those).
    """
    nch, npix = len(bands), sza.size
    if KERNELS is None or not all(_contiguous(a, np.float32) for a in (lat, lon, sza, vza, bands)):
        return None
    if not lat.size == lon.size == vza.size == npix or bands.size != nch * npix or nch == 0 or cols < 1:
        return None
    if num_cells >= 2**31:
        return None
    cell_of = scratch("modis_cell_of", npix, np.int32)
    stats = np.zeros(MODIS_STATS, np.int64)
    KERNELS.modis_take(
        _address(lat), _address(lon), _address(sza), _address(vza), npix, *limits, per_degree, num_lons,
        _address(cell_of), _address(stats),
    )  # fmt: skip
    taken, minus_90 = int(stats[MODIS_TAKEN]), int(stats[MODIS_MINUS_90])
    if taken == 0:
        nothing = np.zeros(0, np.int64)
        return SortedGranule(minus_90, nothing, nothing, np.zeros((nch, 0), np.float32), np.zeros(0, np.float64))
    low, span = int(stats[MODIS_LOW_CELL]), int(stats[MODIS_HIGH_CELL] - stats[MODIS_LOW_CELL]) + 1
    max_cells = min(span, taken)
    unique, cell_end = np.empty(max_cells, np.int64), np.empty(max_cells, np.int64)
    values, cosines = np.empty((nch, taken), np.float32), np.empty(taken, np.float64)
    table_degrees, table_cos = (np.ascontiguousarray(t) for t in cosine_table)  # kept alive through the call
    ceiling32 = np.ascontiguousarray(ceiling, np.float32)
    ends, runs = scratch("modis_ends", span, np.int64), scratch("modis_runs", 3 * cols, np.int64)
    ncells = KERNELS.modis_sort(
        _address(cell_of), npix, cols, low, span, _address(ends), _address(bands), nch, _address(sza),
        _address(table_degrees), _address(table_cos), _address(ceiling32), _address(values), _address(cosines), taken,
        _address(runs), _address(unique), _address(cell_end),
    )  # fmt: skip
    if ncells < 0:
        return None
    return SortedGranule(minus_90, unique[:ncells].copy(), cell_end[:ncells].copy(), values, cosines)


def modis_sums(
    granule: SortedGranule, coeff: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per distinct cell and channel of a sorted granule: count, radiance sum, insolation sum (`coeff` per channel),
    each (channels, cells), each sum as np.add.reduceat adds it."""
    nch, taken = granule.values.shape
    ncells = len(granule.cells)
    coeff64 = np.ascontiguousarray(coeff, np.float64)
    if coeff64.shape != (nch,) or len(granule.cosines) != taken or len(granule.cell_end) != ncells:
        raise ValueError(f"coefficients {coeff64.shape} or a granule's arrays do not match its {nch} channels")
    if KERNELS is None:  # a sorted granule is made only where the library is
        raise OSError("the gridding kernels are not loaded")
    counts, rad, sol = np.empty((nch, ncells), np.int64), np.empty((nch, ncells)), np.empty((nch, ncells))
    KERNELS.modis_sums(
        _address(granule.values), _address(granule.cosines), taken, nch, _address(granule.cell_end), ncells,
        _address(coeff64), _address(counts), _address(rad), _address(sol),
    )  # fmt: skip
    return counts, rad, sol


def main(argv: list[str] | None = None) -> int:
    """`python -m batch_jobs.compute_radiance.native [DIRECTORY]`: build the library (next to the source by default)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        sys.stdout.write(f"{build(Path(args[0]) if args else None)}\n")
    except OSError as error:
        sys.stderr.write(f"error: {' '.join(str(error).split())}\n")  # one line, even for a compiler's report
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
