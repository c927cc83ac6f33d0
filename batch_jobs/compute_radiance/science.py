"""The Climate Marble science as pure functions over numpy arrays (no I/O).

Every rule here is stated in docs/compute-radiance.md; the section is named
next to each function. Grids are accumulated as flat arrays of `num_lats * num_lons`
cells (row-major: row 0 north, column 0 at 180°W) with one column per channel:
sums in float64, counts in int64. Nothing loops over pixels or footprints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from batch_jobs.compute_radiance import gridding as gr
from batch_jobs.compute_radiance import native
from batch_jobs.compute_radiance.gridding import (
    Accumulator,
    BoolArray,
    FloatArray,
    IntArray,
    MisrCells,
    PreparedGranule,
)
from batch_jobs.compute_radiance.resize import resize_bilinear
from batch_jobs.compute_radiance.resize import taps as resize_taps

# --- parameters of the original (spec: Parameters) ---------------------------------
SPATIAL_RESOLUTION = 0.5
VZA_MAX = 18.0
MODIS_CATEGORY = "VIS"
MISR_CAMERA = "AN"
CERES_MODE = "ct"
CERES_INSTRUMENT = "FM1"

MODIS_VIS_FIELDS = ("EV_250_Aggr1km_RefSB", "EV_500_Aggr1km_RefSB")
MODIS_VIS_CHANNELS = 7
MODIS_SZA_MAX = 89.0
MODIS_SATURATION_VALUE = -992.0
MODIS_DN_MAX = 32767
MODIS_FILL_MAX = -999.0  # lat/lon at or below this are fill
MODIS_COLUMNS = 1354  # the original's Fortran assumed this width; the project accepts any

MISR_BANDS = ("Blue", "Green", "Red", "NIR")
MISR_BLOCKS = 180
MISR_BLOCK_SHAPE = (128, 512)  # 1.1 km block
MISR_HR_BLOCK_SHAPE = (512, 2048)  # 275 m block
MISR_SZA_MAX = 89.0
MISR_RAD_MAX = 1000.0

CERES_SZA_MAX = 89.0
CERES_RAD_MAX = 1000.0

JD_J2000 = 2451545.0  # 2000-01-01 12:00 UTC


# --- 1. the grid ------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """The global lat/lon grid of spec §1: row 0 north, column 0 at 180°W."""

    resolution: float = SPATIAL_RESOLUTION

    def __post_init__(self) -> None:
        if not 0 < self.resolution <= 90:
            raise ValueError(f"resolution must be in (0, 90] degrees, got {self.resolution}")

    @property
    def per_degree(self) -> float:
        """N: cells per degree (the original's NUM_POINTS = 1 / resolution)."""
        return 1 / self.resolution

    @property
    def num_lats(self) -> int:
        return int(180 / self.resolution)

    @property
    def num_lons(self) -> int:
        return int(360 / self.resolution)

    @property
    def num_cells(self) -> int:
        return self.num_lats * self.num_lons

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_lats, self.num_lons)

    def cell_center_lats(self) -> FloatArray:
        return np.linspace(90 - self.resolution / 2, -90 + self.resolution / 2, self.num_lats)

    def cell_center_lons(self) -> FloatArray:
        return np.linspace(-180 + self.resolution / 2, 180 - self.resolution / 2, self.num_lons)

    def lat_edges(self) -> FloatArray:
        """MISR histogram edges, built exactly as the original (`np.arange(-90, 90.0001, res)`)."""
        return np.arange(-90.0, 90.0001, self.resolution)

    def lon_edges(self) -> FloatArray:
        return np.arange(-180.0, 180.0001, self.resolution)


def modis_ceres_index(lat: npt.ArrayLike, lon: npt.ArrayLike, grid: Grid) -> tuple[IntArray, IntArray, BoolArray]:
    """The MODIS/CERES index rule of spec §1 (truncation toward zero).

    Returns `(row, col, inside)`; `row`/`col` are only meaningful where `inside`
    (a sample outside the grid, NaN, or a fill value is not inside). For N = 1/resolution an
    integer power of two and float inputs, `gridding.modis_ceres_index_pow2` gives the same answer.
    """
    lat_a, lon_a = np.asarray(lat), np.asarray(lon)
    n2 = gr.pow2_per_degree(grid.per_degree)
    exact = (np.float32, np.float64)  # float16 could not hold 180 + 1/N
    if n2 is not None and lat_a.dtype in exact and lon_a.dtype in exact:
        return gr.modis_ceres_index_pow2(lat_a, lon_a, n2)
    lat64 = np.asarray(lat, dtype=np.float64)
    lon64 = np.asarray(lon, dtype=np.float64)
    n = grid.per_degree
    finite = np.isfinite(lat64) & np.isfinite(lon64) & (np.abs(lat64) < 1e6) & (np.abs(lon64) < 1e6)
    lat_s = np.where(finite, lat64, 0.0)
    lon_s = np.where(finite, lon64, 0.0)
    lat_i = np.trunc(lat_s)
    lat_f = lat_s - lat_i
    row_f = (90 - lat_i) * n - np.trunc(lat_f * n)
    row_f = row_f - (lat_s >= 0)
    lon_i = np.trunc(lon_s)
    lon_f = lon_s - lon_i
    col_f = (180 + lon_i) * n + np.trunc(lon_f * n)
    col_f = col_f - (lon_s < 0)
    col_f = np.where(col_f == 360 * n, 0.0, col_f)
    row = np.trunc(row_f).astype(np.int64)
    col = np.trunc(col_f).astype(np.int64)
    inside = finite & (row >= 0) & (row < grid.num_lats) & (col >= 0) & (col < grid.num_lons)
    return row, col, inside


def _histogram_bin(values: FloatArray, edges: FloatArray) -> tuple[IntArray, BoolArray]:
    """Bin i holds [edge_i, edge_i+1); the last bin also holds its right edge (scipy's binned_statistic_dd).

    `index` is only meaningful where `inside`. `Grid`'s edges take an exact fast path (`gridding.uniform_bin`).
    """
    nbins = len(edges) - 1
    fast = gr.uniform_bin(values, edges)
    if fast is not None:
        index, inside, values, last = fast
    else:
        values = np.asarray(values, dtype=np.float64)
        index, last = np.digitize(values, edges) - 1, float(edges[-1])
        inside = (index >= 0) & (index < nbins)
    with np.errstate(invalid="ignore"):
        beyond = np.greater_equal(values, last)  # only these can sit on the last edge
    if beyond.any():
        at = np.flatnonzero(beyond)
        dedge_min = float(np.min(np.diff(edges)))
        decimal = int(-np.log10(dedge_min)) + 6
        tail = np.asarray(values[at], dtype=np.float64)
        on_edge = at[np.around(tail, decimal) == np.around(edges[-1], decimal)]
        index[on_edge] = nbins - 1
        inside[on_edge] = True
    return index.astype(np.int64, copy=False), inside


def misr_index(lat: npt.ArrayLike, lon: npt.ArrayLike, grid: Grid) -> tuple[IntArray, IntArray, BoolArray]:
    """The MISR index rule of spec §1: histogram binning of (-lat, lon) on the grid edges.

    float32 coordinates stay float32 (compared with edges exact in float32: the same answers).
    """
    lat_a, lon_a = np.asarray(lat), np.asarray(lon)
    lat_a = lat_a if lat_a.dtype.kind == "f" else lat_a.astype(np.float64)
    lon_a = lon_a if lon_a.dtype.kind == "f" else lon_a.astype(np.float64)
    row, row_in = _histogram_bin(np.negative(lat_a), grid.lat_edges())
    col, col_in = _histogram_bin(lon_a, grid.lon_edges())
    row_in &= col_in
    return row, col, row_in


# --- 3. MODIS ---------------------------------------------------------------------
def modis_pixel_mask(
    lat: FloatArray, lon: FloatArray, sza: FloatArray, vza: FloatArray, *, grid: Grid, vza_max: float
) -> tuple[IntArray, IntArray]:
    """Spec §3.2: flat indices of the pixels taken and their flat cell indices (in pixel order)."""
    pixel, cells, _ = _modis_taken(lat, lon, sza, vza, grid=grid, vza_max=vza_max)
    return pixel, cells


def _modis_taken(
    lat: FloatArray, lon: FloatArray, sza: FloatArray, vza: FloatArray, *, grid: Grid, vza_max: float
) -> tuple[IntArray, IntArray, int]:
    """`modis_pixel_mask` and the pixels at latitude -90 it dropped (spec §7).

    The angle tests run first (into two buffers, no temporary per test), the index rule on the
    pixels they keep; its range test drops the fill values (lat or lon <= -999) too.
    """
    sza, vza = np.asarray(sza), np.asarray(vza)
    ok = gr.SCRATCH.get("modis_ok", sza.shape, bool)
    test = gr.SCRATCH.get("modis_test", sza.shape, bool)
    with np.errstate(invalid="ignore"):
        np.greater_equal(sza, 0, out=ok)
        ok &= np.less_equal(sza, MODIS_SZA_MAX, out=test)
        ok &= np.greater_equal(vza, 0, out=test)
        ok &= np.less(vza, vza_max, out=test)
    pixel = np.flatnonzero(ok)
    lat_t, lon_t = np.take(np.ravel(lat), pixel), np.take(np.ravel(lon), pixel)
    with np.errstate(invalid="ignore"):
        minus_90 = int(np.count_nonzero((lat_t == -90.0) & (lon_t > MODIS_FILL_MAX)))
    row, col, inside = modis_ceres_index(lat_t, lon_t, grid)
    row *= grid.num_lons
    row += col
    if inside.all():
        return pixel, row, minus_90
    return np.compress(inside, pixel), np.compress(inside, row), minus_90


def modis_radiance_ceiling(radiance_scales: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """`32767 * radiance_scales[b]`, in float32 as the original's Fortran compared it."""
    return (np.float32(MODIS_DN_MAX) * np.asarray(radiance_scales, dtype=np.float32)).astype(np.float32)


def modis_insolation_coeff(radiance_scales: npt.ArrayLike, reflectance_scales: npt.ArrayLike) -> FloatArray:
    rs = np.asarray(radiance_scales, dtype=np.float64)
    fs = np.asarray(reflectance_scales, dtype=np.float64)
    return rs / fs


def modis_refill_saturation(values: npt.NDArray[np.float32], ceiling: npt.NDArray[np.float32]) -> None:
    """Spec §3.3, in place on (channels, n): channels 2.. with value -992 where channel 1 > 0 get the ceiling."""
    refill = values[1:] == np.float32(MODIS_SATURATION_VALUE)
    refill &= values[0] > 0
    np.copyto(values[1:], ceiling[1:, None], where=refill)


def modis_granule(
    acc: Accumulator,
    *,
    lat: FloatArray,
    lon: FloatArray,
    sza: FloatArray,
    vza: FloatArray,
    bands: npt.NDArray[np.float32],
    radiance_scales: npt.ArrayLike,
    reflectance_scales: npt.ArrayLike,
    vza_max: float = VZA_MAX,
) -> int:
    """Add one descending granule (spec §3) to `acc` (sums 'rad' and 'sol'). Returns samples at lat -90 dropped.

    `bands` is (channels, R, C) in channel order; scales have one entry per channel. The same as
    `modis_add(acc, modis_prepare(acc.grid, ...))`, which the job splits between a reading thread and the
    gridding one.
    """
    granule = modis_prepare(
        acc.grid, lat=lat, lon=lon, sza=sza, vza=vza, bands=bands, radiance_scales=radiance_scales,
        reflectance_scales=reflectance_scales, vza_max=vza_max,
    )  # fmt: skip
    return modis_add(acc, granule)


def modis_prepare(
    grid: Grid,
    *,
    lat: FloatArray,
    lon: FloatArray,
    sza: FloatArray,
    vza: FloatArray,
    bands: npt.NDArray[np.float32],
    radiance_scales: npt.ArrayLike,
    reflectance_scales: npt.ArrayLike,
    vza_max: float = VZA_MAX,
) -> PreparedGranule:
    """What of a granule (spec §3) `modis_add` needs: the angle tests, index rule, saturation refill and radiance
    tests done, the pixels taken sorted by cell (compiled kernels); or the arrays themselves (numpy path)."""
    coeff = modis_insolation_coeff(radiance_scales, reflectance_scales)
    limits = (MODIS_SZA_MAX, vza_max, MODIS_FILL_MAX)
    ceiling = modis_radiance_ceiling(radiance_scales)
    done = gr.modis_sort_native(lat=lat, lon=lon, sza=sza, vza=vza, bands=bands, ceiling=ceiling, grid=grid,
                                limits=limits)  # fmt: skip
    if done is not None:
        return PreparedGranule(grid, coeff, sorted=done)
    arrays = {"lat": lat, "lon": lon, "sza": sza, "vza": vza, "bands": bands, "radiance_scales": radiance_scales,
              "reflectance_scales": reflectance_scales, "vza_max": vza_max}  # fmt: skip
    return PreparedGranule(grid, coeff, arrays=arrays)


def modis_add(acc: Accumulator, granule: PreparedGranule) -> int:
    """Add a prepared granule to `acc`; returns the samples at lat -90 dropped. Granules are added in the order of
    the calls (each cell's sum is the grid's plus the granule's)."""
    if granule.grid != acc.grid:
        raise ValueError(f"a granule prepared for {granule.grid} added to an accumulator of {acc.grid}")
    if granule.sorted is not None:
        counts, rad, sol = native.modis_sums(granule.sorted, granule.coeff)
        acc.add_segments(granule.sorted.cells, counts, rad=rad, sol=sol)
        return granule.sorted.minus_90
    assert granule.arrays is not None
    return _modis_granule_numpy(acc, **granule.arrays)


def _modis_granule_numpy(
    acc: Accumulator,
    *,
    lat: FloatArray,
    lon: FloatArray,
    sza: FloatArray,
    vza: FloatArray,
    bands: npt.NDArray[np.float32],
    radiance_scales: npt.ArrayLike,
    reflectance_scales: npt.ArrayLike,
    vza_max: float,
) -> int:
    """modis_granule in numpy. The pixels taken are sorted by cell (stable: pixel order within a cell) and each
    cell's terms are summed with `np.add.reduceat`, block by block; blocks end only where a cell's pixels end, so
    every cell gets the sum of all its terms in the same order (docs/compute-radiance.md, "Gridding kernels"):
    the same bytes, with every temporary small and reused."""
    ceiling = modis_radiance_ceiling(radiance_scales)
    coeff = modis_insolation_coeff(radiance_scales, reflectance_scales)
    taken, cells, minus_90 = _modis_taken(lat, lon, sza, vza, grid=acc.grid, vza_max=vza_max)
    order = np.argsort(cells, kind="stable")  # sort the pixels by cell once, for all channels
    taken, cells = np.take(taken, order), np.take(cells, order)
    starts = gr.segment_starts(cells)
    nch = bands.shape[0]
    flat = bands.reshape(nch, -1)
    sza_flat = np.ravel(sza)
    counts = np.empty((nch, len(starts)), dtype=np.int64)
    rad, sol = np.empty((nch, len(starts))), np.empty((nch, len(starts)))
    for lo, hi, s0, s1 in gr.segment_blocks(starts, len(cells)):
        m = hi - lo
        scratch = gr.SCRATCH if m <= gr.BLOCK else gr.Scratch()  # a longer cell gets buffers of its own
        out = scratch.get("modis_values", (nch, m), flat.dtype)
        values = np.take(flat, taken[lo:hi], axis=1, out=out, mode="clip")  # valid indices: "clip" is not buffered
        values = values.astype(np.float32, copy=False)
        modis_refill_saturation(values, ceiling)
        ok = np.greater(values, 0, out=scratch.get("modis_ok_v", (nch, m), bool))
        ok &= np.less_equal(values, ceiling[:, None], out=scratch.get("modis_test_v", (nch, m), bool))
        at = starts[s0:s1] - lo
        counts[:, s0:s1] = np.add.reduceat(ok.view(np.int8), at, axis=1, dtype=np.int32)
        w = gr.where_taken(values, ok, out=scratch.get("modis_w", (nch, m), np.float64))  # the same terms
        rad[:, s0:s1] = np.add.reduceat(w, at, axis=1)
        cos_sza = gr.cos_degrees(np.take(sza_flat, taken[lo:hi]))
        np.multiply(cos_sza[None, :], coeff[:, None], out=w)
        np.multiply(ok, w, out=w)  # ok * (cos * coeff), as the spec's mask times the insolation
        sol[:, s0:s1] = np.add.reduceat(w, at, axis=1)
    acc.add_segments(cells[starts], counts, rad=rad, sol=sol)
    return minus_90


# --- 4. MISR ----------------------------------------------------------------------
MASK_BLOCKS = 4  # blocks of the geometry mask computed at a time (see misr_geometry_mask)


def misr_geometry_mask(
    sza_blocks: FloatArray,
    vza_blocks: FloatArray,
    vza_max: float = VZA_MAX,
    block_shape: tuple[int, int] = MISR_BLOCK_SHAPE,
) -> BoolArray:
    """Spec §4.3: (nb, 8, 32) angles -> (nb, 128, 512) mask of pixels taken (values < 0 are NaN; NaN fails).

    `block_shape` is the 1.1 km block shape (128 x 512 in real files; smaller in shrunken synthetic files).
    Computed MASK_BLOCKS blocks at a time: every output pixel is the same arithmetic on its own block, and
    the float64 temporaries stay small enough to be reused from the heap instead of page-faulted in (130
    daylit blocks at once: 0.6 s, mostly page faults; a few at a time: 0.2 s, 2026-12-04).
    """
    sza = np.where(np.asarray(sza_blocks) < 0, np.nan, sza_blocks)
    vza = np.where(np.asarray(vza_blocks) < 0, np.nan, vza_blocks)
    enlarged = sza.ndim == 3 and block_shape[0] >= sza.shape[1] and block_shape[1] >= sza.shape[2]
    if enlarged and vza.shape == sza.shape:  # the same arithmetic in one pass a block (native.misr_geometry)
        taps = (resize_taps(sza.shape[1], block_shape[0]), resize_taps(sza.shape[2], block_shape[1]))
        sza64, vza64 = (np.ascontiguousarray(a, dtype=np.float64) for a in (sza, vza))
        done = native.misr_geometry(sza64, vza64, block_shape, taps, (MISR_SZA_MAX, vza_max))
        if done is not None:
            return done
    mask = np.empty((*sza.shape[:-2], *block_shape), dtype=bool)
    flat_sza, flat_vza = sza.reshape(-1, *sza.shape[-2:]), vza.reshape(-1, *vza.shape[-2:])
    flat_mask = mask.reshape(-1, *block_shape)
    for lo in range(0, flat_mask.shape[0], MASK_BLOCKS):
        rs = resize_bilinear(flat_sza[lo : lo + MASK_BLOCKS], block_shape)
        rv = resize_bilinear(flat_vza[lo : lo + MASK_BLOCKS], block_shape)
        with np.errstate(invalid="ignore"):
            np.logical_and(rs < MISR_SZA_MAX, rv < vza_max, out=flat_mask[lo : lo + MASK_BLOCKS])
    return mask


def misr_aggregate(
    rad: npt.NDArray[np.float32],
    block_shape: tuple[int, int] = MISR_BLOCK_SHAPE,
    out: npt.NDArray[np.float32] | None = None,
    columns: slice | None = None,
) -> npt.NDArray[np.float32]:
    """Spec §4.3: 275 m (..., 512, 2048) -> 1.1 km (..., 128, 512): values < 0 are NaN, 4x4 nanmean (all-NaN stays NaN).

    A block already at the 1.1 km `block_shape` is returned unchanged (the original did the same), or
    copied into `out`. `out` (contiguous float32, the result's shape): written in place of a new array,
    so that a band's blocks land in one array without pieces and a concatenation. Blocks are
    aggregated one at a time: a block's temporaries (a few MB) stay in cache and on the heap.
    `columns` (1.1 km columns, step 1): only these are aggregated, the others are NaN — the job passes the
    columns its geometry test takes any pixel of (the swath covers about two thirds of a block's width); a
    block already at 1.1 km is returned or copied whole.
    """
    h, w = rad.shape[-2:]
    same_size = (h, w) == tuple(block_shape)
    if not same_size and (h, w) != (4 * block_shape[0], 4 * block_shape[1]):
        raise ValueError(f"MISR radiance block {h}x{w} is neither {block_shape} nor four times it")
    shape = (*rad.shape[:-2], *block_shape)
    if out is not None and (out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous):
        raise ValueError(f"out must be a contiguous float32 array of shape {shape}")
    if same_size:
        if out is None:
            return rad
        out[...] = rad
        return out
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    first, stop, step = (columns or slice(None)).indices(block_shape[1])
    if step != 1:
        raise ValueError(f"columns must be a slice of step 1, got {columns}")
    stop = max(first, stop)
    out[..., :first] = np.nan
    out[..., stop:] = np.nan
    blocks_in, blocks_out = rad.reshape(-1, h, w), out.reshape(-1, *block_shape)
    for k in range(blocks_in.shape[0]):
        if stop > first:
            gr.nanmean_4x4(blocks_in[k, :, 4 * first : 4 * stop], blocks_out[k, :, first:stop])
    return out


def taken_columns(mask: BoolArray) -> slice:
    """The 1.1 km columns of a (nb, h, w) geometry mask that hold any pixel taken, as one slice (maybe empty)."""
    taken = np.flatnonzero(np.any(mask, axis=tuple(range(mask.ndim - 1))))
    return slice(int(taken[0]), int(taken[-1]) + 1) if len(taken) else slice(0, 0)


CELL_SLAB = 1 << 20  # pixels of the mask looked at a time by misr_cells


def misr_cells(mask: BoolArray, lat: FloatArray, lon: FloatArray, grid: Grid) -> MisrCells:
    """Cells (MISR rule) of the pixels taken; pixels outside the grid are left out.

    Computed CELL_SLAB pixels of the mask at a time into arrays of the final size: each pixel's cell is
    the same arithmetic, and the temporaries (coordinates taken, bins) are a slab's, not the orbit's
    (about 130 MB less at once on a full orbit, while the bands are being inflated).
    """
    runs = gr.histogram_cells_native(mask, lat, lon, grid.lat_edges(), grid.lon_edges())  # one pass
    if runs is not None:
        return MisrCells(runs=runs)
    flat_mask, flat_lat, flat_lon = np.ravel(mask), np.ravel(lat), np.ravel(lon)
    taken = int(np.count_nonzero(flat_mask))
    pixel, cells = np.empty(taken, dtype=np.int64), np.empty(taken, dtype=np.int64)
    inside = np.empty(taken, dtype=bool)
    done = 0
    for lo in range(0, flat_mask.size, CELL_SLAB):
        slab = np.flatnonzero(flat_mask[lo : lo + CELL_SLAB])
        k = len(slab)
        lat_t, lon_t = np.take(flat_lat[lo : lo + CELL_SLAB], slab), np.take(flat_lon[lo : lo + CELL_SLAB], slab)
        np.add(slab, lo, out=pixel[done : done + k])
        fast = gr.histogram_cells(lat_t, lon_t, grid.lat_edges(), grid.lon_edges())  # the same rule, fewer passes
        if fast is not None:
            cells[done : done + k], inside[done : done + k] = fast
        else:
            row, col, inside[done : done + k] = misr_index(lat_t, lon_t, grid)
            np.add(row * grid.num_lons, col, out=cells[done : done + k])
        done += k
    if inside.all():
        return MisrCells(pixel=pixel, cells=cells)
    return MisrCells(pixel=np.compress(inside, pixel), cells=np.compress(inside, cells))


def misr_band(acc: Accumulator, channel: int, cells: MisrCells, rad_1km: npt.NDArray[np.float32]) -> None:
    """Spec §4.3 last step: NaN -> 0 and 0 < rad < 1000 counts, for one band over the pixels taken.

    Each cell's sum is its terms added one after the other from 0 (`np.bincount`), as before; the
    samples not taken add a term +0.0, which changes no such sum (all terms are > 0).
    """
    done = native.misr_band(np.ravel(rad_1km), cells.runs, len(cells.all_counts), MISR_RAD_MAX)
    if done is not None:  # the same counts and sums in one pass
        acc.add_binned(channel, done[0], rad=done[1])
        return
    n = len(cells.pixel)
    v = np.take(np.ravel(rad_1km), cells.pixel, out=cells.scratch("v", n, rad_1km.dtype), mode="clip")
    ok = cells.scratch("ok", n, bool)
    with np.errstate(invalid="ignore"):
        np.greater(v, 0, out=ok)
        ok &= np.less(v, MISR_RAD_MAX, out=cells.scratch("test", n, bool))
    w = gr.where_taken(v, ok, out=cells.scratch("w", n, np.float64))
    np.logical_not(ok, out=ok)
    dropped = np.bincount(np.compress(ok, cells.cells), minlength=len(cells.all_counts))
    sums = np.asarray(np.bincount(cells.cells, weights=w), dtype=np.float64)  # float64 already: no copy
    acc.add_binned(channel, cells.all_counts - dropped, rad=sums)


# --- 5. CERES ---------------------------------------------------------------------
CERES_FIELDS = ("time", "lat", "lon", "sw", "lw", "mode_flags", "sza", "vza")


def ceres_mask(
    fp: Mapping[str, npt.NDArray[Any]], *, t0: float, t1: float, vza_max: float = VZA_MAX, mode: str = CERES_MODE
) -> BoolArray:
    """Spec §5.1-2: footprints taken. `fp` holds the FM1 arrays by the names of CERES_FIELDS."""
    sw, lw, time_jd = fp["sw"], fp["lw"], fp["time"]
    with np.errstate(invalid="ignore"):
        m = (time_jd >= t0) & (time_jd <= t1) & (sw > 0) & (sw < CERES_RAD_MAX)
        m &= (fp["vza"] < vza_max) & (fp["sza"] <= CERES_SZA_MAX)
        if mode == "ct":
            m &= fp["mode_flags"] == 0
        elif mode == "all":
            m &= (lw > 0) & (lw < CERES_RAD_MAX)
        else:
            raise ValueError(f"CERES mode must be 'ct' or 'all', got {mode!r}")
    return np.asarray(m, dtype=bool)


def ceres_granule(
    acc: Accumulator,
    fp: Mapping[str, npt.NDArray[Any]],
    *,
    t0: float,
    t1: float,
    vza_max: float = VZA_MAX,
    mode: str = CERES_MODE,
) -> int:
    """Add one CERES FM1 group (spec §5) to `acc` (sums 'sw' and 'lw', channel 0). Returns footprints at -90 dropped."""
    m = ceres_mask(fp, t0=t0, t1=t1, vza_max=vza_max, mode=mode)
    row, col, inside = modis_ceres_index(fp["lat"], fp["lon"], acc.grid)
    take = m & inside
    cells = (row * acc.grid.num_lons + col)[take]
    acc.add(0, cells, sw=np.asarray(fp["sw"])[take], lw=np.asarray(fp["lw"])[take])
    return int(np.count_nonzero(m & (np.asarray(fp["lat"]) == -90.0)))
