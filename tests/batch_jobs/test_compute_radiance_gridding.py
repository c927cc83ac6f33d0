"""Issue #22: the fast gridding kernels give the same bytes as the kernels they replaced.

Every test runs twice: with the compiled kernels (native.py, built by the set-up) and with the numpy paths
that run where they are not built.

`_Ref` below is a faithful copy of the gridding kernels of science.py before issue #22 (index rules,
pixel masks, `Accumulator.add` / the old `add_sorted` and the MODIS, MISR and CERES kernels). Every test
compares counts and sums byte for byte (`tobytes()`), on generated orbits (the project's generator
and the test builder, whose files plant exact cell edges, +-90, +-180 and fill values) and on
arrays with edges, NaN, infinities and fill values planted at every boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from batch_jobs.compute_radiance import gridding as gr
from batch_jobs.compute_radiance import native
from batch_jobs.compute_radiance import science as s
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import npz_bytes
from datacarousel import orbit as readers
from tests.batch_jobs.compute_radiance_orbits import build_orbit
from workbench.synthetic.generator import generate_orbit

GRID = s.Grid(0.5)
GRIDS = [s.Grid(0.5), s.Grid(0.25), s.Grid(1.0), s.Grid(0.3)]  # 0.3: no fast path (the rules as written)


@pytest.fixture(autouse=True, scope="module", params=["compiled", "numpy"])
def kernels(request: pytest.FixtureRequest) -> Iterator[str]:
    """The compiled kernels, or none (every caller takes its numpy path); module-scoped (hypothesis)."""
    library = native.KERNELS
    assert library is not None, "the compiled kernels are not built: run `make bootstrap`"
    if request.param == "numpy":
        native.KERNELS = None
    try:
        yield request.param
    finally:
        native.KERNELS = library


# --- today's kernels (before issue #22), copied verbatim ---------------------------------------
class _Ref:
    @staticmethod
    def modis_ceres_index(lat: npt.ArrayLike, lon: npt.ArrayLike, grid: s.Grid) -> tuple[Any, Any, Any]:
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

    @staticmethod
    def histogram_bin(values: Any, edges: Any) -> tuple[Any, Any]:
        nbins = len(edges) - 1
        index = np.digitize(values, edges) - 1
        dedge_min = float(np.min(np.diff(edges)))
        decimal = int(-np.log10(dedge_min)) + 6
        with np.errstate(invalid="ignore"):
            on_edge = (values >= edges[-1]) & (np.around(values, decimal) == np.around(edges[-1], decimal))
        index = np.where(on_edge, nbins - 1, index)
        inside = (index >= 0) & (index < nbins)
        return index.astype(np.int64), inside

    @staticmethod
    def misr_index(lat: npt.ArrayLike, lon: npt.ArrayLike, grid: s.Grid) -> tuple[Any, Any, Any]:
        lat64 = np.asarray(lat, dtype=np.float64)
        lon64 = np.asarray(lon, dtype=np.float64)
        row, row_in = _Ref.histogram_bin(-lat64, grid.lat_edges())
        col, col_in = _Ref.histogram_bin(lon64, grid.lon_edges())
        return row, col, row_in & col_in

    @staticmethod
    def add(acc: s.Accumulator, channel: int, cells: Any, **weights: Any) -> None:
        for name in weights:
            acc._sum(name)
        if len(cells) == 0:
            return
        lo = int(cells.min())
        local = cells - lo
        span = int(local.max()) + 1
        acc._count[channel, lo : lo + span] += np.bincount(local, minlength=span)
        for name, w in weights.items():
            binned = np.bincount(local, weights=np.asarray(w, dtype=np.float64), minlength=span)
            acc._sums[name][channel, lo : lo + span] += binned

    @staticmethod
    def add_sorted(acc: s.Accumulator, cells: Any, taken: Any, **weights: Any) -> None:
        for name in weights:
            acc._sum(name)
        if len(cells) == 0:
            return
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        unique = cells[starts]
        acc._count[:, unique] += np.add.reduceat(taken, starts, axis=1, dtype=np.int64)
        for name, w in weights.items():
            acc._sums[name][:, unique] += np.add.reduceat(w, starts, axis=1)

    @staticmethod
    def modis_pixel_mask(lat: Any, lon: Any, sza: Any, vza: Any, *, grid: s.Grid, vza_max: float) -> tuple[Any, Any]:
        with np.errstate(invalid="ignore"):
            ok = (sza >= 0) & (sza <= s.MODIS_SZA_MAX) & (vza >= 0) & (vza < vza_max)
            ok &= (lat > s.MODIS_FILL_MAX) & (lon > s.MODIS_FILL_MAX)
        pixel = np.flatnonzero(ok.ravel())
        row, col, inside = _Ref.modis_ceres_index(lat.ravel()[pixel], lon.ravel()[pixel], grid)
        return pixel[inside], (row * grid.num_lons + col)[inside]

    @staticmethod
    def modis_refill_saturation(values: Any, ceiling: Any) -> None:
        refill = (values[0] > 0) & (values[1:] == np.float32(s.MODIS_SATURATION_VALUE))
        values[1:] = np.where(refill, ceiling[1:, None], values[1:])

    @staticmethod
    def modis_granule(
        acc: s.Accumulator, *, lat: Any, lon: Any, sza: Any, vza: Any, bands: Any, radiance_scales: Any,
        reflectance_scales: Any, vza_max: float = s.VZA_MAX,
    ) -> int:  # fmt: skip
        grid = acc.grid
        taken, cells = _Ref.modis_pixel_mask(lat, lon, sza, vza, grid=grid, vza_max=vza_max)
        order = np.argsort(cells, kind="stable")
        taken, cells = taken[order], cells[order]
        nch = bands.shape[0]
        values = np.asarray(bands.reshape(nch, -1)[:, taken], dtype=np.float32)
        ceiling = (np.float32(s.MODIS_DN_MAX) * np.asarray(radiance_scales, dtype=np.float32)).astype(np.float32)
        _Ref.modis_refill_saturation(values, ceiling)
        coeff = np.asarray(radiance_scales, dtype=np.float64) / np.asarray(reflectance_scales, dtype=np.float64)
        cos_sza = np.cos(np.radians(sza.ravel()[taken].astype(np.float64)))
        with np.errstate(invalid="ignore"):
            ok = (values > 0) & (values <= ceiling[:, None])
        rad = np.where(ok, values, np.float32(0)).astype(np.float64)
        sol = ok * (cos_sza[None, :] * coeff[:, None])
        _Ref.add_sorted(acc, cells, ok, rad=rad, sol=sol)
        at_pole = lat == -90.0
        if not at_pole.any():
            return 0
        with np.errstate(invalid="ignore"):
            ok_p = at_pole & (sza >= 0) & (sza <= s.MODIS_SZA_MAX) & (vza >= 0) & (vza < vza_max)
            ok_p &= lon > s.MODIS_FILL_MAX
        return int(np.count_nonzero(ok_p))

    @staticmethod
    def misr_cells(mask: Any, lat: Any, lon: Any, grid: s.Grid) -> s.MisrCells:
        pixel = np.flatnonzero(mask.ravel())
        row, col, inside = _Ref.misr_index(lat.ravel()[pixel], lon.ravel()[pixel], grid)
        return s.MisrCells(pixel=pixel[inside], cells=(row * grid.num_lons + col)[inside])

    @staticmethod
    def misr_band(acc: s.Accumulator, channel: int, cells: s.MisrCells, rad_1km: Any) -> None:
        v = np.nan_to_num(rad_1km.ravel()[cells.pixel])
        ok = (v > 0) & (v < s.MISR_RAD_MAX)
        _Ref.add(acc, channel, cells.cells[ok], rad=v[ok])

    @staticmethod
    def ceres_granule(
        acc: s.Accumulator, fp: Mapping[str, Any], *, t0: float, t1: float, vza_max: float = s.VZA_MAX,
        mode: str = s.CERES_MODE,
    ) -> int:  # fmt: skip
        m = s.ceres_mask(fp, t0=t0, t1=t1, vza_max=vza_max, mode=mode)
        row, col, inside = _Ref.modis_ceres_index(fp["lat"], fp["lon"], acc.grid)
        take = m & inside
        cells = (row * acc.grid.num_lons + col)[take]
        _Ref.add(acc, 0, cells, sw=np.asarray(fp["sw"])[take], lw=np.asarray(fp["lw"])[take])
        return int(np.count_nonzero(m & (np.asarray(fp["lat"]) == -90.0)))


def assert_same_bytes(a: s.Accumulator, b: s.Accumulator) -> None:
    assert a._count.tobytes() == b._count.tobytes()
    assert sorted(a._sums) == sorted(b._sums)
    for name in a._sums:
        assert a._sums[name].dtype == b._sums[name].dtype == np.float64
        assert a._sums[name].tobytes() == b._sums[name].tobytes(), name


# --- whole orbits: the job with today's kernels and with the new ones ---------------------------
@pytest.fixture
def old_kernels(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    def use() -> None:
        for name in ("modis_granule", "misr_cells", "misr_band", "ceres_granule"):
            monkeypatch.setattr(s, name, getattr(_Ref, name))
        # the job prepares each granule in a reading thread (modis_prepare) and adds it (modis_add): the old kernel
        # gets the arrays as read
        monkeypatch.setattr(
            s, "modis_prepare", lambda grid, **arrays: s.PreparedGranule(grid, np.ones(7), arrays=arrays)
        )
        monkeypatch.setattr(s, "modis_add", lambda acc, granule: _Ref.modis_granule(acc, **granule.arrays))

    return use


def _run(path: Path) -> tuple[dict[str, np.ndarray], bytes]:
    with readers.open_local(path) as src:
        res = compute_orbit(src)
    return res.arrays(), npz_bytes(res.arrays())


ORBITS: dict[str, Callable[[Path], Path]] = {
    "built": build_orbit,
    "built-seed5-large": lambda d: build_orbit(d, seed=5, rows=120, cols=90, lines=8, samples=32, footprints=3000),
    "tiny-85079-3": lambda d: generate_orbit(85079, d, preset="tiny", seed=3),
    "tiny-40110-7": lambda d: generate_orbit(40110, d, preset="tiny", seed=7),
    "small-85079-1": lambda d: generate_orbit(85079, d, preset="small", seed=1),
}


@pytest.mark.parametrize("orbit", list(ORBITS))
def test_job_result_bytes_equal_todays_kernels(orbit: str, tmp_path: Path, old_kernels: Callable[[], None]) -> None:
    path = ORBITS[orbit](tmp_path)
    new, new_file = _run(path)
    old_kernels()
    old, old_file = _run(path)
    assert sorted(new) == sorted(old)
    for name in new:
        assert new[name].dtype == old[name].dtype and new[name].shape == old[name].shape, name
        assert new[name].tobytes() == old[name].tobytes(), name
    assert new_file == old_file
    assert new["modis_count"].sum() > 0 and new["misr_count"].sum() > 0 and new["ceres_count"].sum() > 0


# --- index rules: the fast paths are the rules, edges included ---------------------------------
def _edge_values(grid: s.Grid, span: float) -> np.ndarray:
    """Every cell edge within +-span, a float32 and a float64 step either side, and the specials."""
    k = np.arange(-int(span / grid.resolution) - 2, int(span / grid.resolution) + 3) * grid.resolution
    near = [k, np.nextafter(k, -np.inf), np.nextafter(k, np.inf)]
    k32 = k.astype(np.float32)
    near += [np.nextafter(k32, np.float32(-np.inf)).astype(np.float64), np.nextafter(k32, np.float32(np.inf))]
    specials = [90, -90, 0.0, -0.0, 180, -180, 180.5, 180.25, -999.0, -9999.0, 1e6, -1e6, 1e7, 3e38, -3e38]
    specials += [math.inf, -math.inf, math.nan, 89.9999999, -89.9999999, 90.0000001, 180.0000001, 179.9999999]
    return np.concatenate([*near, np.array(specials, dtype=np.float64)])


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"res{g.resolution}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_modis_ceres_index_at_every_edge(grid: s.Grid, dtype: type) -> None:
    lat_e, lon_e = _edge_values(grid, 90), _edge_values(grid, 180)
    lat = np.repeat(lat_e, 3)[: 3 * len(lat_e)]
    lon = np.resize(np.random.default_rng(0).permutation(lon_e), len(lat))
    for la_any, lo_any in ((lat, lon), (np.resize(lat, len(lon_e)), lon_e)):
        la: np.ndarray = la_any.astype(dtype)
        lo: np.ndarray = lo_any.astype(dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            row, col, inside = s.modis_ceres_index(la, lo, grid)
            r_row, r_col, r_inside = _Ref.modis_ceres_index(la, lo, grid)
        assert inside.tobytes() == r_inside.tobytes()
        assert row[inside].tobytes() == r_row[inside].tobytes() and col[inside].tobytes() == r_col[inside].tobytes()


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"res{g.resolution}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misr_index_at_every_edge(grid: s.Grid, dtype: type) -> None:
    lon: np.ndarray = _edge_values(grid, 180).astype(dtype)
    lat: np.ndarray = np.resize(_edge_values(grid, 90).astype(dtype), len(lon))
    for la, lo in ((lat, lon), (np.random.default_rng(1).permutation(lat), lon)):
        with np.errstate(invalid="ignore", over="ignore"):
            row, col, inside = s.misr_index(la, lo, grid)
            r_row, r_col, r_inside = _Ref.misr_index(la, lo, grid)
        assert inside.tobytes() == r_inside.tobytes()
        assert row[inside].tobytes() == r_row[inside].tobytes() and col[inside].tobytes() == r_col[inside].tobytes()
        with np.errstate(invalid="ignore", over="ignore"):
            fast = gr.histogram_cells(la, lo, grid.lat_edges(), grid.lon_edges())
        if grid.resolution != 0.3:
            assert fast is not None
            assert fast[1].tobytes() == r_inside.tobytes()
            assert fast[0][r_inside].tobytes() == (r_row * grid.num_lons + r_col)[r_inside].tobytes()
    for edges in (grid.lat_edges(), grid.lon_edges()):
        for v in (lat, lon, -lat):
            v64 = v.astype(np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                index, inside = s._histogram_bin(v, edges)
                r_index, r_inside = _Ref.histogram_bin(v64, edges)
            assert inside.tobytes() == r_inside.tobytes()
            assert index[inside].tobytes() == r_index[inside].tobytes()


special = st.sampled_from([90.0, -90.0, 0.0, -0.0, 45.5, -0.5, 180.0, -180.0, 180.4, 180.5, -999.0, 1e7, math.inf])
any_coord = st.one_of(st.floats(-200, 200, width=32), special, st.just(math.nan))


@settings(max_examples=150, deadline=None)
@given(
    lat=hnp.arrays(np.float32, st.integers(1, 40), elements=any_coord),
    lon_seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from(GRIDS),
    wide=st.booleans(),
)
def test_index_rules_are_todays_rules(lat: np.ndarray, lon_seed: int, grid: s.Grid, wide: bool) -> None:
    lon = np.random.default_rng(lon_seed).permutation(lat).astype(np.float32)
    if wide:
        lat, lon = lat.astype(np.float64), lon.astype(np.float64)
    for rule, ref in ((s.modis_ceres_index, _Ref.modis_ceres_index), (s.misr_index, _Ref.misr_index)):
        with np.errstate(invalid="ignore", over="ignore"):
            row, col, inside = rule(lat, lon, grid)
            r_row, r_col, r_inside = ref(lat, lon, grid)
        assert np.array_equal(inside, r_inside)
        assert np.array_equal(row[inside], r_row[inside]) and np.array_equal(col[inside], r_col[inside])


# --- the kernels on planted arrays: MODIS, MISR, CERES -------------------------------------------
def _edgy(rng: np.random.Generator, shape: tuple[int, ...], span: float, grid: s.Grid) -> np.ndarray:
    """Coordinates within +-span, a third of them exactly on a cell edge or a special value."""
    x = rng.uniform(-span, span, shape)
    edges = _edge_values(grid, span)
    pick = rng.random(shape) < 0.3
    x[pick] = rng.choice(edges, int(pick.sum()))
    return x.astype(np.float32)


def _modis_granule(rng: np.random.Generator, rows: int, cols: int, *, clustered: bool) -> dict[str, Any]:
    rad_s = rng.uniform(0.005, 0.03, 7).astype(np.float32)
    bands = (rng.uniform(-0.05, 1.03, (7, rows, cols)) * (32767 * rad_s)[:, None, None]).astype(np.float32)
    bands[rng.random(bands.shape) < 0.1] = -992.0
    bands[rng.random(bands.shape) < 0.02] = np.nan
    bands[rng.random(bands.shape) < 0.01] = np.inf
    bands[rng.random(bands.shape) < 0.01] = 0.0
    bands[0][rng.random((rows, cols)) < 0.05] = (32767 * rad_s)[0]  # exactly the ceiling
    if clustered:  # a real swath: long runs of pixels in the same cell, many pixels per cell
        r = np.linspace(0, 1, rows)[:, None]
        c = np.linspace(-0.5, 0.5, cols)[None, :]
        lat = (rng.uniform(-70, 60) + 4 * r + 0.3 * c).astype(np.float32)
        lon = (rng.uniform(-170, 170) + 6 * c + 0.1 * r).astype(np.float32)
    else:
        lat, lon = _edgy(rng, (rows, cols), 90, GRID), _edgy(rng, (rows, cols), 180, GRID)
    return {
        "lat": lat,
        "lon": lon,
        # clustered: hundredths of a degree, as MOD03 stores them (the compiled kernel's table); else any value
        "sza": (np.rint(rng.uniform(-5, 95, (rows, cols)) * 100) / (100.0 if clustered else 100.3)).astype(np.float32),
        "vza": rng.uniform(-2, 30, (rows, cols)).astype(np.float32),
        "bands": bands,
        "radiance_scales": rad_s,
        "reflectance_scales": (rad_s / rng.uniform(100, 600, 7)).astype(np.float32),
    }


def _both_modis(granules: list[dict[str, Any]], grid: s.Grid = GRID) -> None:
    new, old = s.Accumulator(grid, 7), s.Accumulator(grid, 7)
    for g in granules:  # several granules: the second adds to sums already there
        assert s.modis_granule(new, **g) == _Ref.modis_granule(old, **g)
    assert_same_bytes(new, old)
    assert new.count.sum() > 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), clustered=st.booleans())
def test_modis_granule_bytes(seed: int, clustered: bool) -> None:
    rng = np.random.default_rng(seed)
    _both_modis([_modis_granule(rng, 60, 50, clustered=clustered) for _ in range(2)])


def test_modis_granule_bytes_many_blocks_and_a_cell_longer_than_a_block() -> None:
    rng = np.random.default_rng(11)
    big = _modis_granule(rng, 600, 400, clustered=True)  # ~40 K pixels taken, ~100 cells: several blocks
    one = _modis_granule(rng, 500, 400, clustered=True)
    one["lat"][:], one["lon"][:], one["sza"][:], one["vza"][:] = 10.2, 20.2, 30.0, 5.0  # 200 K pixels, one cell
    assert one["lat"].size > gr.BLOCK
    _both_modis([big, one, _modis_granule(rng, 300, 200, clustered=False)])
    for res in (0.25, 1.0, 0.3):
        _both_modis([big], s.Grid(res))


def _misr(rng: np.random.Generator, nb: int, shape: tuple[int, int]) -> dict[str, Any]:
    lat = np.linspace(rng.uniform(40, 89), rng.uniform(-89, 0), nb * shape[0])[:, None] + np.zeros(shape[1])
    lon = rng.uniform(-170, 170) + np.linspace(-3, 3, shape[1])[None, :] + np.zeros((nb * shape[0], 1))
    lat, lon = lat.reshape(nb, *shape).astype(np.float32), lon.reshape(nb, *shape).astype(np.float32)
    pick = rng.random(lat.shape) < 0.2
    lat[pick] = _edgy(rng, (int(pick.sum()),), 90, GRID)
    lon[pick] = _edgy(rng, (int(pick.sum()),), 180, GRID)
    rad = rng.uniform(-10, 1100, (4, nb, *shape)).astype(np.float32)
    for value, share in ((np.nan, 0.1), (np.inf, 0.01), (-np.inf, 0.01), (0.0, 0.02), (1000.0, 0.02), (-0.0, 0.01)):
        rad[rng.random(rad.shape) < share] = value
    return {"lat": lat, "lon": lon, "mask": rng.random(lat.shape) < 0.8, "rad": rad}


def _both_misr(m: dict[str, Any], grid: s.Grid = GRID, bands: Iterator[int] | None = None) -> None:
    new, old = s.Accumulator(grid, 4), s.Accumulator(grid, 4)
    c_new, c_old = (
        s.misr_cells(m["mask"], m["lat"], m["lon"], grid),
        _Ref.misr_cells(m["mask"], m["lat"], m["lon"], grid),
    )
    assert c_new.pixel.tobytes() == c_old.pixel.tobytes() and c_new.cells.tobytes() == c_old.cells.tobytes()
    for ch in bands if bands is not None else range(4):
        s.misr_band(new, ch, c_new, m["rad"][ch])
        _Ref.misr_band(old, ch, c_old, m["rad"][ch])
    assert_same_bytes(new, old)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_misr_bytes(seed: int) -> None:
    _both_misr(_misr(np.random.default_rng(seed), 3, (32, 64)))


def test_misr_bytes_band_twice_and_other_grids() -> None:
    m = _misr(np.random.default_rng(3), 20, (64, 128))
    _both_misr(m, bands=iter([0, 1, 1, 3, 0]))  # a channel added to twice: sums already there
    for res in (0.25, 1.0, 0.3):
        _both_misr(m, s.Grid(res))
    _both_misr({**m, "rad": m["rad"].astype(np.float64)})  # radiances not float32: the general path
    m["mask"][:] = False
    _both_misr(m)  # nothing taken


@pytest.mark.parametrize("slab", [1, 777, 4096])
def test_misr_cells_slab_by_slab_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch, slab: int) -> None:
    """misr_cells looks at CELL_SLAB pixels at a time: slabs that cut blocks, lines and runs of pixels."""
    m = _misr(np.random.default_rng(4), 5, (32, 64))
    assert m["mask"].size > 2 * slab
    monkeypatch.setattr(s, "CELL_SLAB", slab)
    for res in (0.5, 0.3):  # the fast rule and the rule as written
        _both_misr(m, s.Grid(res), bands=iter([0]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), wide=st.booleans())
def test_ceres_bytes(seed: int, n: int, wide: bool) -> None:
    rng = np.random.default_rng(seed)
    dt = np.float64 if wide else np.float32
    fp = {
        "time": rng.uniform(0, 1, n),
        "lat": _edgy(rng, (n,), 90, GRID).astype(dt),
        "lon": _edgy(rng, (n,), 180, GRID).astype(dt),
        "sw": rng.uniform(-10, 1100, n).astype(np.float32),
        "lw": rng.uniform(-10, 1100, n).astype(np.float32),
        "mode_flags": rng.integers(0, 2, n),
        "sza": rng.uniform(0, 95, n).astype(np.float32),
        "vza": rng.uniform(0, 30, n).astype(np.float32),
    }
    fp["lat"][rng.random(n) < 0.05] = -90.0
    for grid in (GRID, s.Grid(0.3)):
        new, old = s.Accumulator(grid, 1), s.Accumulator(grid, 1)
        for mode in ("ct", "all"):
            got = s.ceres_granule(new, fp, t0=0.1, t1=0.9, mode=mode)
            assert got == _Ref.ceres_granule(old, fp, t0=0.1, t1=0.9, mode=mode)
        assert_same_bytes(new, old)


@settings(max_examples=60, deadline=None)
@given(cells=hnp.arrays(np.int64, st.integers(0, 400), elements=st.integers(0, 30)), block=st.integers(1, 50))
def test_segment_blocks_never_split_a_cell(cells: np.ndarray, block: int) -> None:
    cells = np.sort(cells)
    starts = gr.segment_starts(cells)
    assert np.array_equal(starts, np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]]) if len(cells) else [])
    covered = 0
    for lo, hi, s0, s1 in gr.segment_blocks(starts, len(cells), block):
        assert lo == covered and lo == starts[s0] and (hi == len(cells) if s1 == len(starts) else hi == starts[s1])
        assert hi - lo <= block or s1 - s0 == 1
        covered = hi
    assert covered == len(cells)


# --- the MISR 4x4 aggregation, block by block into a given array (issue #22, memory) --------------
def _old_misr_aggregate(rad: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """science.misr_aggregate before it went block by block into `out` (275 m input only): the same adds
    in the same order, over the whole stack at once."""

    def sum_4x4(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        line = a[..., 0::4] + a[..., 1::4] + a[..., 2::4] + a[..., 3::4]  # left to right, as `+=` did
        return line[..., 0::4, :] + line[..., 1::4, :] + line[..., 2::4, :] + line[..., 3::4, :]

    total = sum_4x4(np.fmax(rad, np.float32(0)))
    count = sum_4x4((rad >= 0).view(np.uint8))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (total / count).astype(np.float32, copy=False)
    mean[count == 0] = np.nan
    return mean


@pytest.mark.parametrize("seed", [0, 1])
def test_misr_aggregate_block_by_block_gives_the_old_bytes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rad = rng.uniform(-20.0, 900.0, (3, 512, 2048)).astype(np.float32)
    rad[rng.random(rad.shape) < 0.01] = np.nan
    rad[0, :4, :4] = -999.0  # a tile without a value
    rad[1, 4:8, 8:12] = 0.0  # a tile of zeros: counted, mean 0
    rad[2, 100, 7] = np.inf
    rad[2, 200, 9] = -np.inf
    rad[0, 8:12, 40:44] = -0.0  # a tile of -0.0: counted, mean +0.0 (fmax gives +0.0)
    rad[0, 12:16, 40:44] = -0.0
    rad[0, 12, 41] = 3.5  # -0.0 beside a value
    rad[1, 16:20, 60:64] = -np.nan  # NaN with its sign bit set
    out = np.full((3, 128, 512), 7.0, np.float32)
    s.misr_aggregate(rad, out=out)
    old = _old_misr_aggregate(rad)
    assert out.tobytes() == old.tobytes()
    assert s.misr_aggregate(rad).tobytes() == out.tobytes()
    # the job's path: a view of some columns of each block (copied to contiguous bytes first)
    columns = s.misr_aggregate(rad, out=np.full_like(out, 7.0), columns=slice(5, 333))
    assert columns[..., 5:333].tobytes() == old[..., 5:333].tobytes()


@given(
    hnp.arrays(bool, st.tuples(st.integers(1, 6).map(lambda h: 4 * h), st.integers(1, 9).map(lambda w: 4 * w))),
    st.booleans(),
)
def test_count_4x4_is_the_trues_of_each_tile(taken: npt.NDArray[np.bool_], transposed_copy: bool) -> None:
    if transposed_copy:  # a mask that is not C-contiguous counts the same
        taken = np.asfortranarray(taken)
    h, w = taken.shape[0] // 4, taken.shape[1] // 4
    expected = taken.reshape(h, 4, w, 4).sum(axis=(1, 3))
    assert np.array_equal(gr.count_4x4(taken), expected)


def test_count_4x4_counts_a_full_tile_and_an_empty_one() -> None:
    taken = np.zeros((8, 8), bool)
    taken[:4, :4] = True  # 16: the largest count, in the word's top byte
    taken[4:, 4:] = True
    taken[4, 4] = False
    assert gr.count_4x4(taken).tolist() == [[16, 0], [0, 15]]


@given(
    hnp.arrays(np.int32, st.integers(0, 300), elements=st.integers(-50, 18050)),
    hnp.arrays(np.float32, st.integers(0, 50), elements=st.floats(-400, 400, width=32) | st.just(float("nan"))),
)
def test_cos_degrees_is_cos_of_radians_in_float64(centi: npt.NDArray[np.int32], other: npt.NDArray[np.float32]) -> None:
    """Hundredths of a degree (looked up), their neighbours, values outside 0..180, NaN: the same bytes as computed."""
    hundredths = (centi / 100.0).astype(np.float32)
    neighbours = np.nextafter(hundredths, np.float32(np.inf))
    degrees = np.concatenate([hundredths, neighbours, other, np.array([0, 180, np.nan, np.inf, -0.0], np.float32)])
    with np.errstate(invalid="ignore"):  # cos(inf) is NaN, as numpy says
        expected = np.cos(np.radians(degrees.astype(np.float64)))
        assert gr.cos_degrees(degrees).tobytes() == expected.tobytes()
        assert gr.cos_degrees(degrees.astype(np.float64)).tobytes() == expected.tobytes()


def test_cos_degrees_table_holds_every_hundredth_of_a_degree() -> None:
    degrees, cosines = gr._centi_degree_cosines()
    assert len(degrees) == gr.CENTI_DEGREES + 1 and degrees[1] == np.float32(0.01) and degrees[-1] == 180
    assert cosines.tobytes() == np.cos(np.radians(degrees.astype(np.float64))).tobytes()
