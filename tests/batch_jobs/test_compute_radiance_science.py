"""The pure science functions: hand-checked edges, properties (hypothesis), and skimage/scipy equivalence."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import binned_statistic_dd

from batch_jobs.compute_radiance import science as s
from batch_jobs.compute_radiance import window as w
from batch_jobs.compute_radiance.resize import resize_bilinear

GRID = s.Grid(0.5)
finite_lat = st.floats(-90, 90, allow_nan=False, width=32)
finite_lon = st.floats(-180, 180, allow_nan=False, width=32)


IndexRule = Callable[[npt.ArrayLike, npt.ArrayLike, s.Grid], tuple[s.IntArray, s.IntArray, s.BoolArray]]


def cell(rule: IndexRule, lat: float, lon: float) -> tuple[int, int] | None:
    row, col, inside = rule(np.array([lat], np.float32), np.array([lon], np.float32), GRID)
    return (int(row[0]), int(col[0])) if inside[0] else None


# --- §1 index rules on hand-checked values -----------------------------------------------
@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (89.7, -179.7, (0, 0)),  # first cell: row 0 = 90..89.5N, col 0 = 180W..179.5W
        (0.0, 0.0, (179, 360)),  # lat 0 counts north (row -= 1 where lat >= 0); lon 0 starts column 360
        (-0.3, 0.2, (180, 360)),  # just south of the equator
        (-0.5, -0.5, (181, 358)),  # on southern / western edges: int(-1.0) = -1, then -1 again for lon < 0
        (45.5, 10.5, (88, 381)),  # on a northern edge: row (90-45)*2 - 1 - 1; col (180+10)*2 + 1
        (45.4, 10.4, (89, 380)),
        (-89.9, 179.9, (359, 719)),  # last cell
        (10.0, 180.0, (159, 0)),  # lon 180: column 720 becomes 0
        (10.0, -179.5, (159, 0)),  # (180-179)*2 + int(-1.0) - 1 = 0
        (90.0, 0.0, None),  # row -1: outside, dropped
        (-90.0, 0.0, None),  # row 360: the original crashed here; dropped
        (10.0, -180.0, None),  # column -1: dropped
        (-999.0, 10.0, None),  # fill
        (float("nan"), 10.0, None),
    ],
)
def test_modis_ceres_index_hand_checked(lat: float, lon: float, expected: tuple[int, int] | None) -> None:
    assert cell(s.modis_ceres_index, lat, lon) == expected


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (90.0, -180.0, (0, 0)),  # -lat = -90 is the first edge; lon -180 the first edge
        (-90.0, 180.0, (359, 719)),  # right edges fall in the last bin
        (0.0, 0.0, (180, 360)),  # edges belong to the bin on their right: row floor((90-0)/0.5)
        (45.5, 10.5, (89, 381)),  # floor(44.5/0.5) = 89; floor(190.5/0.5) = 381
        (89.7, -179.7, (0, 0)),
        (-0.3, 0.2, (180, 360)),
        (90.5, 0.0, None),
        (0.0, 180.5, None),
    ],
)
def test_misr_index_hand_checked(lat: float, lon: float, expected: tuple[int, int] | None) -> None:
    assert cell(s.misr_index, lat, lon) == expected


def test_rules_differ_only_on_edges() -> None:
    rng = np.random.default_rng(1)
    lat = rng.uniform(-89.9, 89.9, 20000)
    lon = rng.uniform(-179.9, 179.9, 20000)
    on_edge = (np.abs(lat * 2 - np.round(lat * 2)) < 1e-9) | (np.abs(lon * 2 - np.round(lon * 2)) < 1e-9)
    r1, c1, i1 = s.modis_ceres_index(lat, lon, GRID)
    r2, c2, i2 = s.misr_index(lat, lon, GRID)
    away = ~on_edge & i1 & i2
    assert away.sum() > 19000
    assert np.array_equal(r1[away], r2[away]) and np.array_equal(c1[away], c2[away])


@settings(max_examples=200, deadline=None)
@given(lat=finite_lat, lon=finite_lon)
def test_a_sample_lands_in_the_cell_that_contains_it(lat: float, lon: float) -> None:
    half = GRID.resolution / 2
    for rule in (s.modis_ceres_index, s.misr_index):
        got = cell(rule, lat, lon)
        if got is None:
            # only the poles / antimeridian edges may fall outside (MODIS/CERES rule)
            assert rule is s.modis_ceres_index and (lat in (90.0, -90.0) or lon == -180.0)
            continue
        row, col = got
        centre_lat = GRID.cell_center_lats()[row]
        centre_lon = GRID.cell_center_lons()[col]
        assert abs(lat - centre_lat) <= half + 1e-9
        # lon 180 wraps to column 0 (MODIS rule)
        assert abs(lon - centre_lon) <= half + 1e-9 or (lon == 180.0 and col == 0)


@settings(max_examples=100, deadline=None)
@given(
    lat=hnp.arrays(
        np.float64, st.integers(1, 60), elements=st.one_of(finite_lat, st.sampled_from([90.0, -90.0, 0.0, 45.5, -0.5]))
    ),
    lon_seed=st.integers(0, 2**32 - 1),
)
def test_misr_index_is_scipy_binned_statistic_dd(lat: np.ndarray, lon_seed: int) -> None:
    rng = np.random.default_rng(lon_seed)
    lon = rng.choice([-180.0, 180.0, 0.0, 10.5, -179.5, 33.3], size=lat.shape) * rng.integers(0, 2, lat.shape)
    lon = np.where(rng.random(lat.shape) < 0.5, rng.uniform(-180, 180, lat.shape), lon)
    counts = binned_statistic_dd(
        (-lat, lon), np.ones_like(lat), bins=[GRID.lat_edges(), GRID.lon_edges()], statistic="count"
    )[0]
    row, col, inside = s.misr_index(lat, lon, GRID)
    mine = np.zeros(GRID.shape)
    np.add.at(mine, (row[inside], col[inside]), 1)
    assert np.array_equal(mine, counts)


# --- accumulation properties -------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    cells=hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(0, GRID.num_cells - 1)),
    seed=st.integers(0, 1000),
)
def test_accumulation_conserves_counts_and_ignores_order(cells: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = rng.uniform(0, 500, len(cells))
    a, b = s.Accumulator(GRID, 2), s.Accumulator(GRID, 2)
    a.add(1, cells, rad=w)
    perm = rng.permutation(len(cells))
    b.add(1, cells[perm], rad=w[perm])
    assert a.count.sum() == len(cells) and a.count[:, 0].sum() == 0
    assert np.isclose(a.sum("rad").sum(), w.sum())
    assert np.array_equal(a.count, b.count)
    assert np.allclose(a.sum("rad"), b.sum("rad"), rtol=1e-12)
    if len(cells):
        assert a.count[cells[0], 1] == np.count_nonzero(cells == cells[0])


def _granule(seed: int, rows: int = 12, cols: int = 9) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rad_s = rng.uniform(0.005, 0.03, 7).astype(np.float32)
    bands = (rng.uniform(-0.05, 1.03, (7, rows, cols)) * (32767 * rad_s)[:, None, None]).astype(np.float32)
    bands[rng.random(bands.shape) < 0.1] = -992.0
    return {
        "lat": rng.uniform(-60, 60, (rows, cols)).astype(np.float32),
        "lon": rng.uniform(-180, 180, (rows, cols)).astype(np.float32),
        "sza": rng.uniform(-5, 95, (rows, cols)).astype(np.float32),
        "vza": rng.uniform(-2, 30, (rows, cols)).astype(np.float32),
        "bands": bands,
        "rad_s": rad_s,
        "ref_s": (rad_s / rng.uniform(100, 600, 7)).astype(np.float32),
    }


def _run_granule(g: dict[str, np.ndarray]) -> s.Accumulator:
    acc = s.Accumulator(GRID, 7)
    s.modis_granule(acc, lat=g["lat"], lon=g["lon"], sza=g["sza"], vza=g["vza"], bands=g["bands"],
                    radiance_scales=g["rad_s"], reflectance_scales=g["ref_s"], vza_max=18.0)  # fmt: skip
    return acc


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_modis_granule_pixel_order_does_not_matter(seed: int) -> None:
    g = _granule(seed)
    perm = np.random.default_rng(seed + 1).permutation(g["lat"].size)
    shuffled = {
        k: (v.reshape(*v.shape[:-2], -1)[..., perm].reshape(v.shape) if v.ndim >= 2 else v) for k, v in g.items()
    }
    a, b = _run_granule(g), _run_granule(shuffled)
    assert np.array_equal(a.count, b.count)
    assert np.allclose(a.sum("rad"), b.sum("rad"), rtol=1e-12)
    assert np.allclose(a.sum("sol"), b.sum("sol"), rtol=1e-12)


def test_modis_refill_ceiling_and_filters_hand_checked() -> None:
    rad_s = np.full(7, 0.01, np.float32)
    ceiling = float(np.float32(32767) * np.float32(0.01))
    # one pixel per column: channel-1 value and channel-2 value
    ch1 = np.array([[10.0, 0.0, -992.0, 10.0, ceiling, 10.0]], np.float32)
    ch2 = np.array([[-992.0, -992.0, 5.0, ceiling, 3.0, ceiling + 0.5]], np.float32)
    bands = np.zeros((7, 1, 6), np.float32)
    bands[0], bands[1] = ch1, ch2
    lat = np.array([[10.2, 10.2, 10.2, 10.2, 10.2, 10.2]], np.float32)
    lon = np.array([[0.2, 1.2, 2.2, 3.2, 4.2, 5.2]], np.float32)
    sza = np.full((1, 6), 60.0, np.float32)
    vza = np.zeros((1, 6), np.float32)
    acc = s.Accumulator(GRID, 7)
    s.modis_granule(acc, lat=lat, lon=lon, sza=sza, vza=vza, bands=bands, radiance_scales=rad_s,
                    reflectance_scales=rad_s / 2, vza_max=18.0)  # fmt: skip
    count, rad = acc.grid_array(), acc.grid_array("rad")
    row = 159
    # channel 1 (index 0): 10, -, -992 (no refill of channel 1), 10, ceiling (inclusive), 10
    assert list(count[row, 360:372:2, 0]) == [1, 0, 0, 1, 1, 1]
    # channel 2: refilled where channel 1 > 0; not where channel 1 == 0; above the ceiling dropped
    assert list(count[row, 360:372:2, 1]) == [1, 0, 1, 1, 1, 0]
    assert rad[row, 360, 1] == pytest.approx(ceiling)
    assert acc.grid_array("sol")[row, 360, 1] == pytest.approx(math.cos(math.radians(60)) * 2)


def test_modis_angle_and_fill_filters() -> None:
    g = _granule(3, rows=1, cols=6)
    g["lat"][:] = 20.2
    g["lon"][:] = np.array([1.2, 2.2, 3.2, 4.2, 5.2, 6.2], np.float32)
    g["bands"][:] = 100.0
    g["rad_s"][:] = 0.01
    g["sza"][:] = [89.0, 89.01, 0.0, -0.1, 10, 10]
    g["vza"][:] = [0.0, 0.0, 17.99, 0.0, 18.0, -0.01]
    acc = _run_granule(g)
    c = acc.grid_array()[139, :, 0]
    assert [c[362], c[364], c[366], c[368], c[370], c[372]] == [1, 0, 1, 0, 0, 0]


# --- §2 time --------------------------------------------------------------------------------
def test_julian_date_epoch_and_granule_times() -> None:
    assert w.julian_date(datetime(2000, 1, 1, 12)) == 2451545.0
    assert w.parse_granule_time("granule_2015350_1610") == datetime(2015, 12, 16, 16, 10)
    assert w.granule_jd("granule_2000001_1200", offset_minutes=5) == pytest.approx(2451545.0 + 5 / 1440)
    with pytest.raises(ValueError):
        w.parse_granule_time("granule_2015_1610")
    assert w.time_window([]) is None
    window = w.time_window(["granule_2015350_1700", "granule_2015350_1635"])  # any order
    assert window is not None
    t0, t1 = window
    assert t0 == w.granule_jd("granule_2015350_1635") and t1 == w.granule_jd("granule_2015350_1700", 5)


def test_descending_test_threshold() -> None:
    down = -np.arange(1100, dtype=np.float32)[:, None] + np.zeros((1, 3), np.float32)
    assert w.is_descending(down)
    assert not w.is_descending(down[::-1])  # 1099 failing rows
    mixed = down.copy()
    mixed[1:1000:2] += 5  # 999 failing rows... and their successors pass
    failing = np.count_nonzero(~np.all(mixed[1:] < mixed[:-1], axis=1))
    assert w.is_descending(mixed) == (failing < 1000)
    # granules of at most 1000 rows (shrunk synthetic files) allow half their rows to fail
    small = down[:20].copy()
    small[1:10] += 1000  # row 1 fails: 1 < 10
    assert w.is_descending(small)
    assert not w.is_descending(down[:20][::-1])  # 19 failing rows >= 10
    assert w.descending_threshold(2030) == 1000 and w.descending_threshold(1001) == 1000


def test_block_center_times_and_window_edges() -> None:
    bct = np.array([b"0000-00-00T00:00:00.000000Z", b"2015-12-16T16:35:00.000000Z", b"2015-12-16T17:25:00.000000Z",
                    b"2015-12-16T17:25:00.500000Z", b"garbage"], dtype="S28")  # fmt: skip
    jd = w.parse_block_center_times(bct)
    assert jd[0] == 0 and jd[4] == 0
    t0, t1 = w.julian_date(datetime(2015, 12, 16, 16, 35)), w.julian_date(datetime(2015, 12, 16, 17, 25))
    assert list(w.blocks_in_window(jd, t0, t1)) == [1, 2]  # inclusive edges; half a second late is out


# --- §4 MISR ---------------------------------------------------------------------------------
def test_misr_geometry_mask_fill_and_thresholds() -> None:
    sza = np.full((1, 8, 32), 50.0)
    vza = np.full((1, 8, 32), 10.0)
    sza[0, 0, 0] = -555.0  # fill -> NaN -> spreads -> fails
    vza[0, 6:, :] = 25.0  # the last two rows above VZA_MAX: the bottom lines fail
    m = s.misr_geometry_mask(sza, vza, 18.0)
    assert m.shape == (1, 128, 512)
    assert not m[0, 0, 0] and not m[0, 127, 511] and m[0, 64, 256]


def test_misr_geometry_mask_a_few_blocks_at_a_time_equals_every_block_at_once() -> None:
    """The mask is computed MASK_BLOCKS blocks at a time: the same pixels as resizing the whole stack."""
    rng = np.random.default_rng(5)
    nb = 3 * s.MASK_BLOCKS + 2  # a short last batch too
    sza = rng.uniform(-10.0, 95.0, (nb, 8, 32))
    vza = rng.uniform(-10.0, 40.0, (nb, 8, 32))
    sza[1, 3, 4] = np.nan
    whole_sza = resize_bilinear(np.where(sza < 0, np.nan, sza), (128, 512))
    whole_vza = resize_bilinear(np.where(vza < 0, np.nan, vza), (128, 512))
    with np.errstate(invalid="ignore"):
        expected = (whole_sza < s.MISR_SZA_MAX) & (whole_vza < 18.0)
    got = s.misr_geometry_mask(sza, vza, 18.0)
    assert got.shape == expected.shape and 0 < got.sum() < got.size
    assert np.array_equal(got, expected)


def test_misr_aggregate_is_nanmean_of_tiles() -> None:
    rng = np.random.default_rng(2)
    rad = rng.uniform(-50, 400, (2, 512, 2048)).astype(np.float32)
    rad[0, :4, :4] = -999.0
    agg = s.misr_aggregate(rad)
    ref = rad.copy()
    ref[ref < 0] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(ref.reshape(2, 128, 4, 512, 4), axis=(2, 4))
    assert agg.shape == (2, 128, 512) and np.isnan(agg[0, 0, 0])
    assert np.array_equal(np.isnan(agg), np.isnan(expected))
    assert np.allclose(np.nan_to_num(agg), np.nan_to_num(expected), rtol=1e-5)
    one_km = rad[:, :128, :512]
    assert s.misr_aggregate(one_km) is one_km


def test_misr_aggregate_into_out_gives_the_same_bits_and_refuses_a_wrong_out() -> None:
    rng = np.random.default_rng(3)
    rad = rng.uniform(-50, 400, (3, 512, 2048)).astype(np.float32)
    rad[1, 8:12, 16:20] = np.nan  # a whole tile without a value: NaN
    whole = np.empty((5, 128, 512), np.float32)
    got = s.misr_aggregate(rad, out=whole[1:4])
    assert np.shares_memory(got, whole)
    assert np.isnan(whole[2, 2, 4])
    # the bytes of the reference computation: the old all-at-once formula
    values, valid = np.fmax(rad, np.float32(0)), (rad >= 0).astype(np.uint8)
    total = values.reshape(3, 128, 4, 512, 4).sum(axis=(2, 4), dtype=np.float32)
    count = valid.reshape(3, 128, 4, 512, 4).sum(axis=(2, 4), dtype=np.uint8)
    assert np.array_equal(s.misr_aggregate(rad), whole[1:4], equal_nan=True)
    assert np.allclose(np.nan_to_num(whole[1:4]), np.nan_to_num(total / np.maximum(count, 1)), rtol=1e-6)
    one_km = rad[:, :128, :512].copy()
    assert np.array_equal(s.misr_aggregate(one_km, out=whole[:3]), one_km, equal_nan=True)
    with pytest.raises(ValueError, match="out must be"):
        s.misr_aggregate(rad, out=np.empty((3, 128, 512), np.float64))
    with pytest.raises(ValueError, match="neither"):
        s.misr_aggregate(rad[:, :500], out=whole[:3])


@pytest.mark.parametrize("columns", [slice(100, 420), slice(0, 512), slice(0, 1), slice(511, 512), slice(7, 7)])
def test_misr_aggregate_of_some_columns_gives_their_bytes_and_nan_elsewhere(columns: slice) -> None:
    rng = np.random.default_rng(4)
    rad = rng.uniform(-50, 400, (2, 512, 2048)).astype(np.float32)
    rad[0, 4:8, 400:404] = np.nan
    every = s.misr_aggregate(rad)
    got = s.misr_aggregate(rad, out=np.zeros((2, 128, 512), np.float32), columns=columns)
    assert got[..., columns].tobytes() == every[..., columns].tobytes()
    outside = np.ones(512, dtype=bool)
    outside[columns] = False
    assert np.isnan(got[..., outside]).all()
    with pytest.raises(ValueError, match="step 1"):
        s.misr_aggregate(rad, columns=slice(0, 512, 2))


def test_taken_columns_spans_every_column_with_a_pixel_taken() -> None:
    mask = np.zeros((3, 4, 16), dtype=bool)
    assert s.taken_columns(mask) == slice(0, 0)
    mask[2, 3, 5] = mask[0, 0, 11] = True
    assert s.taken_columns(mask) == slice(5, 12)


# --- §5 CERES --------------------------------------------------------------------------------
def test_ceres_filters_and_modes() -> None:
    n = 6
    t = np.full(n, 10.0)
    t[5] = 12.0  # outside the window
    sw = np.array([100, 0, 100, 100, 100, 100], np.float32)
    lw = np.array([50, 50, 1000, 50, 50, 50], np.float32)
    flags = np.array([0, 0, 0, 1, 0, 0], np.int32)
    sza = np.array([10, 10, 10, 10, 89.5, 10], np.float32)
    vza = np.zeros(n, np.float32)
    fp = {"time": t, "sw": sw, "lw": lw, "mode_flags": flags, "sza": sza, "vza": vza}
    ct = s.ceres_mask(fp, t0=9.0, t1=11.0)
    every = s.ceres_mask(fp, t0=9.0, t1=11.0, mode="all")
    assert list(ct) == [True, False, True, False, False, False]
    assert list(every) == [True, False, False, True, False, False]
    acc = s.Accumulator(GRID, 1)
    lat = np.array([-90.0, 0, 0, 0, 0, 0], np.float32)
    dropped = s.ceres_granule(acc, {**fp, "lat": lat, "lon": np.zeros(n, np.float32)}, t0=9.0, t1=11.0)
    assert dropped == 1 and acc.count.sum() == 1 and acc.sum("lw").sum() == 1000.0


@settings(max_examples=40, deadline=None)
@given(
    cells=hnp.arrays(np.int64, st.integers(0, 200), elements=st.integers(0, GRID.num_cells - 1)),
    seed=st.integers(0, 1000),
)
def test_add_segments_equals_add_per_channel(cells: np.ndarray, seed: int) -> None:
    """Per-cell sums of sorted samples (how the MODIS kernel makes them), added at once, equal `add` per channel."""
    rng = np.random.default_rng(seed)
    cells = np.sort(cells)
    taken = rng.random((3, len(cells))) < 0.7
    w = np.where(taken, rng.uniform(0, 100, (3, len(cells))), 0.0)
    a, b = s.Accumulator(GRID, 3), s.Accumulator(GRID, 3)
    if len(cells):  # (np.add.reduceat needs a sample)
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        counts = np.add.reduceat(taken, starts, axis=1, dtype=np.int64)
        a.add_segments(cells[starts], counts, rad=np.add.reduceat(w, starts, axis=1))
    for c in range(3):
        b.add(c, cells[taken[c]], rad=w[c][taken[c]])
    assert np.array_equal(a.count, b.count) and a.count.sum() == taken.sum()
    assert np.allclose(a.sum("rad"), b.sum("rad"), rtol=1e-12)
