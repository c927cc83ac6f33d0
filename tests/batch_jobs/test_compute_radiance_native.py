"""Issue #22: the compiled gridding kernels (native.py, kernels.c) — built, loaded, and the numpy paths' bytes.

test_compute_radiance_gridding.py runs every kernel test with and without the library; here are the
cases a compiled kernel gets wrong most easily (a limit that is not a float32, the exact boundaries,
numpy's pairwise summation past 8 and 128 terms, a view read in place), the inputs it hands back to the
numpy path, and the build: keyed by the source, one line and exit 2 without a compiler.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batch_jobs.compute_radiance import gridding as gr
from batch_jobs.compute_radiance import native
from batch_jobs.compute_radiance import science as s
from batch_jobs.compute_radiance.resize import taps as resize_taps

F32 = np.float32


def both(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> tuple[Any, Any]:
    """run() with the compiled kernels, then with the numpy paths."""
    assert native.KERNELS is not None, "the compiled kernels are not built: run `make bootstrap`"
    compiled = run()
    with monkeypatch.context() as m:
        m.setattr(native, "KERNELS", None)
        return compiled, run()


def grids(acc: s.Accumulator) -> list[bytes]:
    return [acc.grid_array().tobytes(), *(acc.grid_array(name).tobytes() for name in sorted(acc._sums))]


# --- the library --------------------------------------------------------------------------------
def test_the_setup_built_the_library_of_todays_source() -> None:
    assert native.KERNELS is not None
    assert native.library_path().exists()
    assert native.library_path().name.startswith("_kernels-") and native.library_path().suffix == ".so"


def test_a_library_is_named_after_its_source_and_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    source = tmp_path / "kernels.c"
    shutil.copy(native.SOURCE, source)
    monkeypatch.setattr(native, "SOURCE", source)
    built = native.build(tmp_path / "lib")
    assert built == native.library_path(tmp_path / "lib") and built.exists()
    stamp = built.stat().st_mtime_ns
    assert native.build(tmp_path / "lib") == built and built.stat().st_mtime_ns == stamp  # not rebuilt
    library = native.load(built)
    assert library is not None and all(hasattr(library, name) for name in native.SIGNATURES)
    source.write_text(source.read_text() + "\n/* changed */\n")
    assert native.library_path(tmp_path / "lib") != built  # a library of other source is never loaded
    assert native.load(native.library_path(tmp_path / "lib")) is None
    assert list((tmp_path / "lib").iterdir()) == [built]  # nothing half-built left beside it


def test_no_compiler_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(OSError, match="no C compiler 'no-such-compiler'"):
        native.build(tmp_path)
    assert native.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no C compiler") and "apt install gcc" in err and err.count("\n") == 1


def test_a_source_that_does_not_compile_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    broken = tmp_path / "kernels.c"
    broken.write_text("int f(void) { return }\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    with pytest.raises(OSError, match=r"could not build kernels\.c"):
        native.build(tmp_path)
    assert not list(tmp_path.glob("_kernels-*"))


# --- MODIS --------------------------------------------------------------------------------------
def _granule(rng: np.random.Generator, rows: int, cols: int, *, vza_max: float) -> dict[str, Any]:
    """A swath with every boundary planted: the angle limits as float32 (and a step either side), the
    -90 latitude with and without a fill longitude, the longitude edges, the ceiling and saturation."""
    r = np.linspace(0, 1, rows)[:, None]
    c = np.linspace(-0.5, 0.5, cols)[None, :]
    lat = (rng.uniform(-60, 60) + 3 * r + 0.2 * c + np.zeros_like(c)).astype(F32)
    lon = (rng.uniform(-170, 170) + 5 * c + 0.1 * r).astype(F32)
    sza = (np.rint(rng.uniform(-1, 92, (rows, cols)) * 100) / 100.0).astype(F32)
    vza = rng.uniform(-1, 1.2 * vza_max, (rows, cols)).astype(F32)
    v32 = F32(vza_max)
    planted = {
        "vza": [v32, np.nextafter(v32, F32(0)), np.nextafter(v32, F32(99)), F32(0), F32(-0.0), F32(np.nan)],
        "sza": [F32(89), F32(89.01), F32(0), F32(-0.0), F32(np.nan), F32(88.99)],
        "lat": [F32(-90), F32(90), F32(-89.99), np.nextafter(F32(90), F32(0)), F32(0), F32(-0.0), F32(np.nan)],
        "lon": [F32(-180), F32(180), F32(180.5), F32(180.25), np.nextafter(F32(-180), F32(0)), F32(-999), F32(-998)],
    }
    arrays = {"lat": lat, "lon": lon, "sza": sza, "vza": vza}
    for name, values in planted.items():
        pick = rng.random((rows, cols)) < 0.04
        arrays[name][pick] = rng.choice(np.array(values, dtype=F32), int(pick.sum()))
    rad_s = rng.uniform(0.005, 0.03, 7).astype(F32)
    ceiling = (F32(32767) * rad_s).astype(F32)
    bands = (rng.uniform(-0.05, 1.03, (7, rows, cols)) * ceiling[:, None, None]).astype(F32)
    for value, share in ((-992.0, 0.08), (np.nan, 0.02), (0.0, 0.02), (-0.0, 0.01), (np.inf, 0.01)):
        bands[rng.random(bands.shape) < share] = value
    at_ceiling = rng.random(bands.shape) < 0.03
    bands[at_ceiling] = np.broadcast_to(ceiling[:, None, None], bands.shape)[at_ceiling]
    above = rng.random(bands.shape) < 0.01
    bands[above] = np.nextafter(np.broadcast_to(ceiling[:, None, None], bands.shape), F32(np.inf))[above]
    return {**arrays, "bands": bands, "radiance_scales": rad_s, "reflectance_scales": rng.uniform(4e-5, 6e-5, 7)}


@pytest.mark.parametrize("resolution", [1.0, 0.5, 0.25, 1 / 16])
@pytest.mark.parametrize("vza_max", [18.0, 17.3, 0.07])  # 17.3 and 0.07: no float32 is either
def test_modis_granule_compiled_gives_the_numpy_bytes(
    monkeypatch: pytest.MonkeyPatch, resolution: float, vza_max: float
) -> None:
    rng = np.random.default_rng(int(resolution * 64) + int(vza_max * 10))
    granules = [_granule(rng, 120, 90, vza_max=vza_max) for _ in range(3)]
    grid = s.Grid(resolution)

    def run() -> tuple[list[int], list[bytes]]:
        acc = s.Accumulator(grid, 7)
        dropped = [s.modis_granule(acc, **g, vza_max=vza_max) for g in granules]
        return dropped, grids(acc)

    assert all(_native_modis(g, grid, vza_max) is not None for g in granules)  # compiled, not handed back
    compiled, numpy = both(monkeypatch, run)
    assert compiled == numpy
    assert sum(compiled[0]) > 0  # latitude -90 planted where the angles take it


def _native_modis(g: dict[str, Any], grid: s.Grid, vza_max: float = 18.0) -> Any:
    return gr.modis_sort_native(
        lat=g["lat"], lon=g["lon"], sza=g["sza"], vza=g["vza"], bands=g["bands"],
        ceiling=s.modis_radiance_ceiling(g["radiance_scales"]), grid=grid,
        limits=(s.MODIS_SZA_MAX, vza_max, s.MODIS_FILL_MAX),
    )  # fmt: skip


@pytest.mark.parametrize("pixels", [1, 2, 7, 8, 9, 15, 16, 17, 128, 129, 130, 136, 137, 300, 1000, 4099])
def test_modis_one_cell_of_n_pixels_sums_as_numpy_pairs(monkeypatch: pytest.MonkeyPatch, pixels: int) -> None:
    """numpy adds a cell's terms as the first plus its pairwise sum of the rest: one by one below 8, in 8
    partial sums up to 128, halves beyond; values of very different sizes make any other order show."""
    rng = np.random.default_rng(pixels)
    g = _granule(rng, 1, pixels, vza_max=18.0)
    g["lat"][:], g["lon"][:], g["sza"][:], g["vza"][:] = F32(10.2), F32(20.2), F32(30.0), F32(5.0)
    g["bands"][:] = rng.choice([1e-3, 1.0, 7.3, 300.0], g["bands"].shape) * rng.uniform(0.5, 1, g["bands"].shape)
    done = _native_modis(g, s.Grid())
    assert done is not None and done.cells.tolist() == [s.Grid().num_lons * 159 + 400]  # one cell, compiled

    def run() -> list[bytes]:
        acc = s.Accumulator(s.Grid(), 7)
        s.modis_granule(acc, **g)
        return grids(acc)

    compiled, numpy = both(monkeypatch, run)
    assert compiled == numpy


def test_modis_prepared_in_other_threads_then_added_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job prepares granules in reading threads (a sorted granule: its pixels taken, a fraction of its
    memory) and adds them in granule order: the bytes of modis_granule one after the other."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    rng = np.random.default_rng(17)
    granules = [_granule(rng, 80, 60, vza_max=18.0) for _ in range(4)]
    grid = s.Grid()

    def run() -> list[bytes]:
        with ThreadPoolExecutor(3) as pool:
            prepared = list(pool.map(lambda g: s.modis_prepare(grid, **g), granules))
        acc = s.Accumulator(grid, 7)
        for granule in prepared:
            s.modis_add(acc, granule)
        return grids(acc)

    def one_by_one() -> list[bytes]:
        acc = s.Accumulator(grid, 7)
        for g in granules:
            s.modis_granule(acc, **g)
        return grids(acc)

    prepared = s.modis_prepare(grid, **granules[0])
    assert prepared.sorted is not None and prepared.arrays is None  # compiled: only what the sums need is kept
    assert prepared.sorted.values.shape[1] == np.count_nonzero(prepared.sorted.cosines) < granules[0]["sza"].size
    compiled, numpy = both(monkeypatch, run)
    assert compiled == numpy == one_by_one()
    with pytest.raises(ValueError, match="prepared for"):
        s.modis_add(s.Accumulator(s.Grid(0.25), 7), prepared)


def test_modis_hands_back_what_it_does_not_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    """A solar zenith taken that is not a hundredth of a degree, bands that are not float32 or not contiguous,
    a grid that is not a power of two: the numpy path runs, with the same bytes."""
    rng = np.random.default_rng(5)
    g = _granule(rng, 40, 30, vza_max=18.0)
    assert _native_modis(g, s.Grid()) is not None
    odd_zenith = {**g, "sza": g["sza"].copy()}
    odd_zenith["sza"][g["sza"] == F32(30.0)] = F32(30.001)
    odd_zenith["sza"][5, 5], odd_zenith["vza"][5, 5], odd_zenith["lat"][5, 5] = F32(30.001), F32(1), F32(1)
    wide = {**g, "bands": g["bands"].astype(np.float64)}
    strided = {**g, "bands": np.asfortranarray(g["bands"])}
    for case, grid in ((odd_zenith, s.Grid()), (wide, s.Grid()), (strided, s.Grid()), (g, s.Grid(0.3))):
        assert _native_modis(case, grid) is None

        def run(case: dict[str, Any] = case, grid: s.Grid = grid) -> list[bytes]:
            acc = s.Accumulator(grid, 7)
            s.modis_granule(acc, **case)
            return grids(acc)

        compiled, numpy = both(monkeypatch, run)
        assert compiled == numpy


# --- MISR ---------------------------------------------------------------------------------------
def _misr(rng: np.random.Generator, nb: int = 4, shape: tuple[int, int] = (16, 64)) -> dict[str, Any]:
    lat = np.linspace(rng.uniform(30, 80), rng.uniform(-80, -20), nb * shape[0])[:, None] + np.zeros(shape[1])
    lon = rng.uniform(-170, 170) + np.linspace(-4, 4, shape[1])[None, :] + np.zeros((nb * shape[0], 1))
    rad = rng.uniform(-10, 1100, (nb, *shape)).astype(F32)
    for value, share in ((np.nan, 0.05), (0.0, 0.02), (1000.0, 0.02), (-0.0, 0.01), (np.inf, 0.01)):
        rad[rng.random(rad.shape) < share] = value
    rad[rng.random(rad.shape) < 0.02] = np.nextafter(F32(1000), F32(0))
    return {
        "mask": rng.random((nb, *shape)) < 0.7,
        "lat": lat.reshape(nb, *shape).astype(F32),
        "lon": lon.reshape(nb, *shape).astype(F32),
        "rad": rad,
    }


def _misr_run(m: dict[str, Any], grid: s.Grid) -> Callable[[], tuple[bytes, bytes, list[bytes]]]:
    def run() -> tuple[bytes, bytes, list[bytes]]:
        acc = s.Accumulator(grid, 4)
        cells = s.misr_cells(m["mask"], m["lat"], m["lon"], grid)
        for channel in (0, 1, 1):  # a channel added to twice: sums already there
            s.misr_band(acc, channel, cells, m["rad"])
        return cells.pixel.tobytes(), cells.cells.tobytes(), grids(acc)

    return run


@pytest.mark.parametrize("resolution", [1.0, 0.5, 0.25, 1 / 16])
def test_misr_cells_and_band_compiled_give_the_numpy_bytes(monkeypatch: pytest.MonkeyPatch, resolution: float) -> None:
    m = _misr(np.random.default_rng(int(resolution * 64)))
    grid = s.Grid(resolution)
    assert gr.histogram_cells_native(m["mask"], m["lat"], m["lon"], grid.lat_edges(), grid.lon_edges()) is not None
    compiled, numpy = both(monkeypatch, _misr_run(m, grid))
    assert compiled == numpy


def test_misr_cells_on_a_last_edge_and_more_runs_than_first_thought(monkeypatch: pytest.MonkeyPatch) -> None:
    """A longitude of exactly 180 is the rule's last-edge test (the numpy path); pixels alternating between
    two cells make a run of every pixel (more than the kernel's first guess of an eighth: it runs again)."""
    rng = np.random.default_rng(9)
    m = _misr(rng)
    edge = {**m, "lon": m["lon"].copy()}
    edge["lon"][0, 0, 0], edge["mask"] = F32(180), edge["mask"].copy()
    edge["mask"][0, 0, 0] = True
    grid = s.Grid()
    assert gr.histogram_cells_native(edge["mask"], edge["lat"], edge["lon"], grid.lat_edges(), grid.lon_edges()) is None
    alternating = {**m, "mask": np.ones_like(m["mask"]), "lon": np.zeros_like(m["lon"])}
    alternating["lon"][..., 1::2] = F32(5.0)
    runs = gr.histogram_cells_native(
        alternating["mask"], alternating["lat"], alternating["lon"], grid.lat_edges(), grid.lon_edges()
    )
    assert runs is not None and len(runs) == alternating["mask"].size > 1024
    for case in (edge, alternating):
        compiled, numpy = both(monkeypatch, _misr_run(case, grid))
        assert compiled == numpy


def test_misr_cells_runs_and_arrays_are_one_set_of_pixels() -> None:
    m = _misr(np.random.default_rng(2))
    m["mask"][:] = False
    m["mask"][..., 10:50] = True  # as the geometry test takes them: the middle of every line
    m["lon"][:] = np.linspace(19.5, 20.5, 64, dtype=F32)  # 1.1 km pixels: tens to a cell
    cells = s.misr_cells(m["mask"], m["lat"], m["lon"], s.Grid())
    again = s.MisrCells(pixel=cells.pixel, cells=cells.cells)
    assert again.runs.tobytes() == cells.runs.tobytes()
    assert s.MisrCells(runs=again.runs).pixel.tobytes() == cells.pixel.tobytes()
    assert cells.all_counts.tobytes() == np.bincount(cells.cells).tobytes()
    assert np.all(cells.runs[:, 1] >= 1) and len(cells.runs) < len(cells.pixel) / 4  # runs of several pixels
    with pytest.raises(ValueError, match="pixel and cells, or runs"):
        s.MisrCells(pixel=cells.pixel)


def test_misr_band_refuses_runs_past_the_band() -> None:
    runs = np.array([[0, 4, 3], [10, 6, 2]], dtype=np.int64)
    rad = np.ones(16, F32)
    assert native.misr_band(rad, runs, 4, 1000.0) is not None
    assert native.misr_band(rad[:15], runs, 4, 1000.0) is None  # the last run ends past the band
    assert native.misr_band(rad, runs, 3, 1000.0) is None  # a cell past the sums


@pytest.mark.parametrize("columns", [slice(None), slice(5, 333), slice(0, 300)])
def test_misr_aggregate_compiled_reads_views_in_place(monkeypatch: pytest.MonkeyPatch, columns: slice) -> None:
    """Blocks wider than the kernel's 256 tiles at a time, views of some columns (rows far apart), the
    values the 4x4 nanmean treats apart (-0.0, NaN of either sign, infinities, negatives)."""
    rng = np.random.default_rng(3)
    rad = rng.uniform(-20.0, 900.0, (2, 512, 2048)).astype(F32)
    for value, share in ((np.nan, 0.02), (-np.nan, 0.01), (-0.0, 0.02), (np.inf, 0.005), (-np.inf, 0.005)):
        rad[rng.random(rad.shape) < share] = value
    rad[0, :8, :64] = -0.0
    rad[1, :4, :4] = -1.0

    def run() -> bytes:
        out = np.full((2, 128, 512), 7.0, F32)
        return s.misr_aggregate(rad, out=out, columns=columns).tobytes()

    compiled, numpy = both(monkeypatch, run)
    assert compiled == numpy
    out = np.empty((128, 512), F32)
    assert native.nanmean_4x4(rad[0], out)
    assert not native.nanmean_4x4(rad[0].astype(np.float64), out)  # other types: the numpy path
    assert not native.nanmean_4x4(rad[0][:, ::2], out[:, :256])  # not unit stride


@pytest.mark.parametrize(("grid_shape", "block_shape"), [((8, 32), (128, 512)), ((2, 4), (16, 32)), ((3, 5), (7, 11))])
def test_misr_geometry_compiled_gives_the_numpy_mask(
    monkeypatch: pytest.MonkeyPatch, grid_shape: tuple[int, int], block_shape: tuple[int, int]
) -> None:
    """Angles around both limits (exactly 89 and vza_max over a whole block: the enlargement gives them back
    exactly), NaN, negatives (NaN too), infinities, a block without a finite value, one with a single one."""
    rng = np.random.default_rng(grid_shape[0])
    nb = 12
    sza = rng.uniform(80, 95, (nb, *grid_shape)).astype(F32)
    vza = rng.uniform(-3, 30, (nb, *grid_shape)).astype(F32)
    for a in (sza, vza):
        for value, share in ((np.nan, 0.05), (-1.0, 0.05), (np.inf, 0.02), (-np.inf, 0.02)):
            a[rng.random(a.shape) < share] = value
    sza[0], vza[0] = F32(89), F32(17.3)  # exactly the limits
    sza[1], vza[2] = np.nan, -5.0  # no finite value
    sza[3] = np.nan
    sza[3, 0, 0] = 40.0  # one
    sza[4], vza[4] = np.nextafter(F32(89), F32(0)), F32(17.3)  # (float32 17.3 is below 17.3)
    taps = (resize_taps(grid_shape[0], block_shape[0]), resize_taps(grid_shape[1], block_shape[1]))
    sza64, vza64 = (np.where(a < 0, np.nan, a).astype(np.float64) for a in (sza, vza))
    assert native.misr_geometry(sza64, vza64, block_shape, taps, (s.MISR_SZA_MAX, 17.3)) is not None  # compiled

    def run() -> bytes:
        return s.misr_geometry_mask(sza, vza, 17.3, block_shape).tobytes()

    compiled, numpy = both(monkeypatch, run)
    assert compiled == numpy
    mask = np.frombuffer(compiled, dtype=bool).reshape(nb, *block_shape)
    assert mask[4].any() and not mask[0].any()  # just below the limits taken, at them not
