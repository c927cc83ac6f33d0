"""Exact fast paths of the gridding rules, and the kernels' summation orders (issue #22).

`science.py` states the rules (docs/compute-radiance.md §1, "Gridding kernels"). The functions here
give the same results, bit for bit, for the grids the job uses (N = 1/resolution an integer power of
two), in fewer passes, in the inputs' precision and with fewer large temporaries. The tests check
them against the rules as written (tests/batch_jobs/test_compute_radiance_gridding.py).

The result bytes depend on the order in which each cell's float64 terms are added, and that order
is kept as it was:
- MODIS: per granule, a cell's terms in pixel order (a stable sort by cell), summed by
  `np.add.reduceat` (the first term, plus numpy's pairwise sum of the others), then added to the grid.
  `segment_blocks` cuts the sorted pixels only where a cell starts, so summing block by block
  gives every cell the very same sum;
- MISR and CERES: per call, a cell's terms in pixel order, summed one after the other from 0 by
  `np.bincount`, then added to the grid. MISR adds a term +0.0 for each sample not taken, which
  changes no sum (s + 0.0 == s for every s but -0.0, and these sums start at +0.0 and add terms > 0).

The MISR 4x4 aggregation (`nanmean_4x4`, spec §4.3) adds a tile's 4 samples of a line left to right, then
its 4 lines, in float32: the order the aggregation has always used, so its bytes are unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from batch_jobs.compute_radiance import native

if TYPE_CHECKING:  # (science imports this module: the grid's type only)
    from batch_jobs.compute_radiance.science import Grid

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.integer]
BoolArray = npt.NDArray[np.bool_]

BLOCK = 1 << 16  # MODIS pixels gridded at a time: every temporary small, in cache and reused


def pow2_per_degree(n: float) -> int | None:
    """N when it is an integer power of two (resolution 1, 0.5, 0.25...): then `x * N` is exact in any precision."""
    return int(n) if 1 <= n <= 2**15 and n == int(n) and int(n) & (int(n) - 1) == 0 else None


def modis_ceres_index_pow2(lat: FloatArray, lon: FloatArray, n: int) -> tuple[IntArray, IntArray, BoolArray]:
    """The MODIS/CERES rule (`science.modis_ceres_index`) for an integer power-of-two N, in the inputs' precision.

    With lat_i = trunc(lat) and lat_f = lat - lat_i of the same sign, lat_i*N + trunc(lat_f*N) =
    trunc(lat*N), and lat*N is exact: row = 90N - trunc(lat*N) - (lat >= 0), col = 180N + trunc(lon*N)
    - (lon < 0) (360N wraps to 0). That lands inside exactly for -90 < lat < 90 and -180 < lon < 180 + 1/N;
    NaN, infinities and fill values (<= -999) fail these tests, as they fail the general rule's.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        inside = np.abs(lat) < 90
        inside &= lon > -180
        inside &= lon < 180 + 1 / n
        row = (lat * n).astype(np.int64)  # truncates toward zero; garbage where not inside
        np.subtract(90 * n, row, out=row)
        row -= lat >= 0
        col = (lon * n).astype(np.int64)
        col += 180 * n
        col -= lon < 0
    col[col == 360 * n] = 0
    return row, col, inside


def _uniform(edges: FloatArray) -> int | None:
    """N when `edges` are e0 + k/N, N a power of two and e0 a multiple of 1/N (the grid's edges)."""
    nbins = len(edges) - 1
    n = pow2_per_degree(1 / (edges[1] - edges[0])) if nbins > 0 else None
    if n is None or float(edges[0]) * n != round(float(edges[0]) * n) or nbins >= 2**24:
        return None
    return n if np.array_equal(edges, edges[0] + np.arange(nbins + 1) / n) else None


def _floor_bins(values: FloatArray, edges: FloatArray, n: int) -> FloatArray:
    """floor(x N) - e0 N, the bin of x where it is one (exact: see `uniform_bin`), in the values' precision,
    with the last-edge rule of `science._histogram_bin` (values on the last edge, to 6 more decimals, go in
    the last bin)."""
    nbins = len(edges) - 1
    with np.errstate(invalid="ignore", over="ignore"):
        t = np.multiply(values, n)
        np.floor(t, out=t)
        t -= float(edges[0]) * n
        beyond = np.greater_equal(t, nbins)  # exactly the values >= the last edge
    if beyond.any():
        at = np.flatnonzero(beyond)
        decimal = int(-np.log10(float(np.min(np.diff(edges))))) + 6
        tail = np.asarray(values[at], dtype=np.float64)
        t[at[np.around(tail, decimal) == np.around(edges[-1], decimal)]] = nbins - 1
    return t


def _power_of_two_grid(lat_edges: FloatArray, lon_edges: FloatArray) -> tuple[int, int, int, int] | None:
    """(N of the latitude edges, N of the longitude edges, bins of each) when both are power-of-two edges
    (`_uniform`) and the cells number below 2**24 (exact in float32); else None: the rule as written applies."""
    n, n_lon = _uniform(lat_edges), _uniform(lon_edges)
    nlat, nlon = len(lat_edges) - 1, len(lon_edges) - 1
    if n is None or n_lon is None or nlat * nlon >= 2**24:
        return None
    return n, n_lon, nlat, nlon


def histogram_cells(
    lat: FloatArray, lon: FloatArray, lat_edges: FloatArray, lon_edges: FloatArray
) -> tuple[IntArray, BoolArray] | None:
    """The MISR rule (`science.misr_index`) as flat cells `row * num_lons + col` and `inside`, or None
    when the edges are not a power-of-two grid. Computed in the coordinates' precision (float32 or
    float64): bins and cells are integers below 2**24, exact in both."""
    grid = _power_of_two_grid(lat_edges, lon_edges)
    if grid is None or lat.dtype != lon.dtype or lat.dtype not in (np.float32, np.float64):
        return None
    n, n_lon, nlat, nlon = grid
    row = _floor_bins(np.negative(lat), lat_edges, n)
    col = _floor_bins(lon, lon_edges, n_lon)
    with np.errstate(invalid="ignore", over="ignore"):
        inside = np.greater_equal(row, 0)
        inside &= row < nlat
        inside &= col >= 0
        inside &= col < nlon
        row *= nlon
        row += col
        cells = row.astype(np.int64)
    return cells, inside


def histogram_cells_native(
    mask: BoolArray, lat: FloatArray, lon: FloatArray, lat_edges: FloatArray, lon_edges: FloatArray
) -> IntArray | None:
    """The pixels of `mask` inside the grid and their cells, as `histogram_cells` over the pixels taken gives
    them, in one pass (`native.misr_cells`), as runs (first pixel, pixels, cell); None where that cannot run
    (then `histogram_cells`)."""
    grid = _power_of_two_grid(lat_edges, lon_edges)
    if grid is None:
        return None
    n, n_lon, nlat, nlon = grid
    lat_bins = (float(n), float(lat_edges[0]) * n, float(nlat))
    lon_bins = (float(n_lon), float(lon_edges[0]) * n_lon, float(nlon))
    return native.misr_cells(np.ravel(mask), np.ravel(lat), np.ravel(lon), lat_bins, lon_bins)


def uniform_bin(values: FloatArray, edges: FloatArray) -> tuple[IntArray, BoolArray, FloatArray, float] | None:
    """`np.digitize(values, edges) - 1` and `edges[0] <= values < edges[-1]` for edges e0 + k/N, N a power of two
    and e0 a multiple of 1/N (the grid's edges); None for other edges.

    The bin of x is floor((x - e0) N) = floor(x N) - e0 N, and that is computed exactly: x N is exact
    (a power of two), floor is exact, and e0 N is an integer. Returns (index, inside, the values as
    compared, the last edge); `index` is only meaningful where `inside`.
    """
    nbins = len(edges) - 1
    n = _uniform(edges)
    if n is None:
        return None
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        t = np.multiply(values, n)  # exact
        np.floor(t, out=t)
        t -= float(edges[0]) * n  # an integer below 2**24: exact where inside
        inside = np.greater_equal(t, 0)
        inside &= t < nbins
        index = t.astype(np.int64)
    return index, inside, values, float(edges[-1])


def modis_sort_native(
    *, lat: FloatArray, lon: FloatArray, sza: FloatArray, vza: FloatArray, bands: npt.NDArray[Any],
    ceiling: npt.NDArray[np.float32], grid: Grid, limits: tuple[float, float, float],
) -> native.SortedGranule | None:  # fmt: skip
    """A granule's pixels taken in cell order with their values and cosines (`native.modis_sort`), what
    `native.modis_sums` turns into `science.modis_granule`'s sums; None where that cannot run."""
    n = pow2_per_degree(grid.per_degree)
    if n is None:
        return None
    return native.modis_sort(
        lat=np.ravel(lat), lon=np.ravel(lon), sza=np.ravel(sza), vza=np.ravel(vza), bands=bands, ceiling=ceiling,
        cols=int(np.shape(sza)[-1]) if np.ndim(sza) else 1, per_degree=n, num_lons=grid.num_lons,
        num_cells=grid.num_cells, limits=limits, cosine_table=_centi_degree_cosines(), scratch=SCRATCH.get,
    )  # fmt: skip


CENTI_DEGREES = 18000  # hundredths of a degree in 0..180: the values MOD03's int16 angles can take


@functools.cache
def _centi_degree_cosines() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Every hundredth of a degree in 0..180 as float32 (the nearest to k / 100, as BasicFusion writes MOD03's
    int16 x 0.01) and the cosine of each, computed as `cos_degrees` computes any other value."""
    degrees = (np.arange(CENTI_DEGREES + 1) / 100.0).astype(np.float32)
    return degrees, np.cos(np.radians(degrees.astype(np.float64)))


def cos_degrees(degrees: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """`np.cos(np.radians(degrees.astype(np.float64)))`, the same bytes, for float32 angles mostly in hundredths
    of a degree (MODIS angles are: MOD03 stores int16 x 0.01): those are looked up in a table of the same
    function's values (0.5 ms instead of 12 ms for a granule's 760 k pixels taken, 2026-12-04); any other
    value (not a hundredth, outside 0..180, NaN) is computed."""
    if degrees.dtype != np.float32:
        return np.cos(np.radians(degrees.astype(np.float64)))
    table_degrees, table_cos = _centi_degree_cosines()
    with np.errstate(invalid="ignore"):
        k = np.rint(np.multiply(degrees, np.float32(100))).astype(np.int32)  # NaN or huge: any k, then clipped
    np.clip(k, 0, CENTI_DEGREES, out=k)
    out = np.take(table_cos, k)
    other = np.flatnonzero(np.take(table_degrees, k) != degrees)
    if len(other):
        out[other] = np.cos(np.radians(degrees[other].astype(np.float64)))
    return out


def segment_starts(cells: IntArray) -> IntArray:
    """Where each run of equal cells starts in `cells` (sorted: one run per cell)."""
    if len(cells) == 0:
        return np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(cells[1:] != cells[:-1])
    starts += 1
    return np.concatenate(([0], starts))


def segment_blocks(starts: IntArray, size: int, samples: int = BLOCK) -> Iterator[tuple[int, int, int, int]]:
    """Blocks of at most `samples` samples cut where a segment starts: (first sample, end, first segment, end).

    A segment longer than `samples` is a block of its own: no segment is ever split.
    """
    bounds = np.append(starts, size)
    first, nseg = 0, len(starts)
    while first < nseg:
        end = int(np.searchsorted(bounds, bounds[first] + samples, side="right")) - 1
        end = min(max(end, first + 1), nseg)
        yield int(bounds[first]), int(bounds[end]), first, end
        first = end


def where_taken(values: npt.NDArray[Any], ok: BoolArray, out: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """`np.where(ok, values, 0)` as float64 into `out` (`values` may be overwritten).

    float32 values: an AND of their bits with 0 or all ones (from `ok`) gives exactly the value or
    +0.0 (no test on NaN), then an exact widening to float64.
    """
    if values.dtype != np.float32:
        np.copyto(out, 0.0)
        np.copyto(out, values, where=ok)
        return out
    mask = np.negative(ok.view(np.int8))  # 0 or -1 (all ones once widened)
    np.bitwise_and(values.view(np.int32), mask, out=values.view(np.int32))
    np.copyto(out, values)  # float32 to float64: exact
    return out


class Scratch(threading.local):
    """Buffers reused from call to call (per thread): a large temporary is page-faulted in once, not per call."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, str], npt.NDArray[Any]] = {}

    def get(self, name: str, shape: int | tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        return self._sized(name, shape, dtype, zeros=False)

    def zeros(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        """A read-only array of zeros, made once per thread and size: an operand where a scalar 0 would
        take numpy's slower loop (`np.fmax(a, zeros)` runs 2.5x faster than `np.fmax(a, 0)`, numpy 2.4)."""
        return self._sized("", shape, dtype, zeros=True)  # ("" is no scratch's name: never written)

    def _sized(self, name: str, shape: int | tuple[int, ...], dtype: npt.DTypeLike, *, zeros: bool) -> npt.NDArray[Any]:
        dt = np.dtype(dtype)
        size = int(np.prod(shape))
        key = (name, dt.str)
        buf = self.buffers.get(key)
        if buf is None or buf.size < size:
            buf = self.buffers[key] = (np.zeros if zeros else np.empty)(max(size, 1), dtype=dt)
            buf.flags.writeable = not zeros
        return buf[:size].reshape(shape)

    def clear(self) -> None:
        self.buffers.clear()


SCRATCH = Scratch()


# --- the MISR 4x4 aggregation (science.misr_aggregate) -----------------------------------------
def nanmean_4x4(rad: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
    """One (4h, 4w) block's 4x4 nanmean of the values >= 0 into `out` (h, w) (either may be a view of columns).

    A view of some columns is first copied into a contiguous buffer: numpy 2.4 runs a ufunc over such a view
    by copying it through small buffers, once per ufunc; one copy, then the test and the fmax over contiguous
    bytes: 0.77 instead of 1.14 ms a block of the job's columns, the same arithmetic.
    """
    if native.nanmean_4x4(rad, out):  # one pass, reading the columns in place
        return
    h, w = rad.shape
    kept = SCRATCH.get("misr_kept", (h, w), np.float32)
    if not rad.flags.c_contiguous:
        np.copyto(kept, rad)
        rad = kept
    taken = np.greater_equal(rad, np.float32(0), out=SCRATCH.get("misr_taken", (h, w), bool))
    np.fmax(rad, SCRATCH.zeros((h, w), np.float32), out=kept)  # NaN and negatives add nothing...
    total = sum_4x4(kept)
    count = count_4x4(taken)  # ...and are not counted
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(total, count, out=out, dtype=np.float32)  # count <= 16: exact in float32, as total / count
    out[count == 0] = np.nan


def sum_4x4(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Sums of 4x4 tiles in a's dtype: 4 samples of a line, then 4 lines, each added left to right.
    Strided adds: far faster than a reduction over a length-4 axis."""
    line = a[..., 0::4] + a[..., 1::4]
    line += a[..., 2::4]
    line += a[..., 3::4]
    total = line[..., 0::4, :] + line[..., 1::4, :]
    total += line[..., 2::4, :]
    total += line[..., 3::4, :]
    return total


def count_4x4(taken: BoolArray) -> npt.NDArray[np.uint32]:
    """Trues in each 4x4 tile of a C-contiguous (4h, 4w) mask, as (h, w) uint32.

    Each uint32 of the mask's bytes holds a tile line's 4 flags; adding 4 lines' words (contiguous adds)
    leaves per-byte counts <= 4, and multiplying by 0x01010101 sums the 4 bytes into the top one (<= 16:
    no carry between bytes). A third of the time of strided byte adds (2026-12-04: 0.13 vs 0.43 ms a block).
    """
    words = np.ascontiguousarray(taken).view(np.uint8).view(np.uint32)
    count = words[0::4] + words[1::4]
    count += words[2::4]
    count += words[3::4]
    count *= np.uint32(0x01010101)
    count >>= np.uint32(24)
    return count


# --- what the kernels hand each other (science.py's re-exports) -------------------------------
@dataclass(frozen=True)
class PreparedGranule:
    """A descending granule ready to be added to an accumulator of `grid` (`modis_add`): its pixels taken in cell
    order (`sorted`, by the compiled kernels: about a fifth of the granule's memory), or else its arrays as read
    (`arrays`, modis_granule's keywords), for the numpy path."""

    grid: Grid
    coeff: FloatArray
    sorted: native.SortedGranule | None = None
    arrays: Mapping[str, Any] | None = None


class MisrCells:
    """The pixels a set of blocks contributes (after the geometry test) and their cells.

    Held as arrays (`pixel`, flat indices into (nb, 128, 512), and `cells`) or as `runs` (k, 3): first pixel,
    pixels, cell, for pixels side by side in one cell (a block line crosses a few cells: runs of tens of
    pixels, a thirtieth of the arrays' memory); either is derived from the other when first asked for.
    """

    def __init__(self, pixel: IntArray | None = None, cells: IntArray | None = None, *, runs: IntArray | None = None):
        if (pixel is None) != (cells is None) or (pixel is None and runs is None):
            raise ValueError("MisrCells takes pixel and cells, or runs (or both, of the same pixels)")
        self._buffers: dict[str, npt.NDArray[Any]] = {}
        if runs is not None:
            self.runs = runs
        if pixel is not None and cells is not None:
            self.pixel, self.cells = pixel, cells

    @cached_property
    def pixel(self) -> IntArray:
        first, pixels = self.runs[:, 0], self.runs[:, 1]
        starts = np.cumsum(pixels) - pixels  # where each run starts among the pixels
        return np.repeat(first - starts, pixels) + np.arange(int(pixels.sum()), dtype=np.int64)

    @cached_property
    def cells(self) -> IntArray:
        return np.repeat(self.runs[:, 2], self.runs[:, 1])

    @cached_property
    def runs(self) -> IntArray:
        pixel, cells = np.asarray(self.pixel, dtype=np.int64), np.asarray(self.cells, dtype=np.int64)
        if len(pixel) == 0:
            return np.zeros((0, 3), np.int64)
        starts = np.flatnonzero((pixel[1:] != pixel[:-1] + 1) | (cells[1:] != cells[:-1])) + 1
        starts = np.concatenate(([0], starts))
        return np.column_stack((pixel[starts], np.diff(np.append(starts, len(pixel))), cells[starts]))

    @cached_property
    def all_counts(self) -> IntArray:
        """Pixels per cell (`np.bincount(cells)`): the same for every band."""
        if "cells" in self.__dict__:
            return np.bincount(self.cells)
        return np.bincount(self.runs[:, 2], weights=self.runs[:, 1]).astype(np.int64)  # counts < 2**53: exact

    def scratch(self, name: str, n: int, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        """A buffer of n items reused by every band (page-faulted in once)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != (n,) or buf.dtype != np.dtype(dtype):
            buf = self._buffers[name] = np.empty(n, dtype=dtype)
        return buf


# --- accumulation (science.py's re-export: `science.Accumulator`) ------------------------------
@dataclass
class Accumulator:
    """Per-cell, per-channel sums (float64) and counts (int64) on a flat grid.

    Stored channel-major (each channel's cells contiguous); `count` and `sum(name)` are
    (num_cells, channels) views. `add` bins only the span of cells a batch touches.
    """

    grid: Grid
    channels: int
    _sums: dict[str, FloatArray] = field(default_factory=dict)
    _count: IntArray = field(init=False)

    def __post_init__(self) -> None:
        self._count = np.zeros((self.channels, self.grid.num_cells), dtype=np.int64)

    @property
    def count(self) -> IntArray:
        return self._count.T

    def _sum(self, name: str) -> FloatArray:
        if name not in self._sums:
            self._sums[name] = np.zeros((self.channels, self.grid.num_cells), dtype=np.float64)
        return self._sums[name]

    def sum(self, name: str) -> FloatArray:
        return self._sum(name).T

    def add(self, channel: int, cells: IntArray, **weights: npt.ArrayLike) -> None:
        """Add one sample per entry of `cells` to `channel` (np.bincount: no loop over samples)."""
        for name in weights:
            self._sum(name)
        if len(cells) == 0:
            return
        lo = int(cells.min())
        local = cells - lo
        span = int(local.max()) + 1
        self._count[channel, lo : lo + span] += np.bincount(local, minlength=span)
        for name, w in weights.items():
            binned = np.bincount(local, weights=np.asarray(w, dtype=np.float64), minlength=span)
            self._sums[name][channel, lo : lo + span] += binned

    def add_segments(self, unique: IntArray, counts: IntArray, **sums: FloatArray) -> None:
        """Add per-cell counts and sums (channels, len(unique)) of every channel to the distinct cells `unique`."""
        for name in sums:
            self._sum(name)
        if len(unique) == 0:
            return
        self._count[:, unique] += counts
        for name, s in sums.items():
            self._sums[name][:, unique] += s

    def add_binned(self, channel: int, counts: IntArray, **sums: FloatArray) -> None:
        """Add `np.bincount` results (cells 0 .. len - 1) to `channel`."""
        for name in sums:
            self._sum(name)
        self._count[channel, : len(counts)] += counts
        for name, s in sums.items():
            self._sums[name][channel, : len(s)] += s

    def grid_array(self, name: str | None = None) -> npt.NDArray[np.generic]:
        """(num_lats, num_lons, channels) array of a sum (by name) or of the count (name None)."""
        data = self._count if name is None else self._sum(name)
        return np.ascontiguousarray(
            data.reshape(self.channels, self.grid.num_lats, self.grid.num_lons).transpose(1, 2, 0)
        )
