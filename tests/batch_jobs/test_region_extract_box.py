"""RegionExtract's rules on hand-made sources: box edges, the antimeridian, valid values, times, the parameters."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from batch_jobs.region_extract.science import DEFAULT_PARAMETERS, Box, Selection, extract, selection_from_parameters
from tests.batch_jobs.region_extract_fakes import FakeSource, ModisGranule, Recorder

F32 = np.float32
GRANULE = "granule_2015350_1650"
GRANULE_START = 1450284600.0  # 2015-12-16T16:50:00Z
VIS = ("EV_250_Aggr1km_RefSB", "EV_500_Aggr1km_RefSB")


def below(x: float) -> float:
    return float(np.nextafter(F32(x), F32(-np.inf)))


def above(x: float) -> float:
    return float(np.nextafter(F32(x), F32(np.inf)))


def modis_source(lat: list[float], lon: list[float], bands: np.ndarray | None = None, rows: int = 1) -> FakeSource:
    """One granule of `rows` identical rows; bands (7, n) default to 100 everywhere, radiance_scales 0.01."""
    n = len(lat)
    lat_a = np.repeat(np.array([lat], F32), rows, axis=0)
    lon_a = np.repeat(np.array([lon], F32), rows, axis=0)
    values = np.full((7, n), 100.0, F32) if bands is None else bands.astype(F32)
    cube = np.repeat(values[:, None, :], rows, axis=1)
    scales = np.full(7, 0.01, F32)
    granule = ModisGranule(lat_a, lon_a, np.full((rows, n), 30.0, F32), np.full((rows, n), 5.0, F32),
                           {VIS[0]: (cube[:2], scales[:2]), VIS[1]: (cube[2:], scales[2:])})  # fmt: skip
    return FakeSource(modis={GRANULE: granule})


def kept_lats(source: FakeSource, box: Box) -> list[float]:
    got = extract(source, Selection(box, instruments=("MODIS",)))
    return [float(x) for x in got.samples["MODIS"]["lat"]]


# --- the box ---------------------------------------------------------------------------------
def test_edges_are_inclusive_and_fill_or_nan_never_inside() -> None:
    box = Box(30.0, 40.0, -95.0, -85.0)
    cases = [  # (lat, lon, inside)
        (30.0, -90.0, True), (40.0, -90.0, True), (35.0, -95.0, True), (35.5, -85.0, True),
        (below(30.0), -90.0, False), (above(40.0), -90.0, False), (36.0, below(-95.0), False),
        (37.0, above(-85.0), False), (math.nan, -90.0, False), (38.0, math.nan, False), (-999.0, -90.0, False),
        (39.0, -999.0, False),
    ]  # fmt: skip
    source = modis_source([c[0] for c in cases], [c[1] for c in cases])
    assert kept_lats(source, box) == [c[0] for c in cases if c[2]]
    assert list(box.contains(np.array([c[0] for c in cases]), np.array([c[1] for c in cases]))) == [c[2] for c in cases]


def test_bounds_compare_the_stored_float32_values_exactly() -> None:
    lat_min, lat_max = 30.3, 40.7
    assert float(F32(lat_min)) < lat_min and float(F32(lat_max)) > lat_max  # float32 rounds them outwards
    lats = [float(F32(lat_min)), above(lat_min), below(lat_max), float(F32(lat_max))]
    source = modis_source(lats, [-90.0] * 4)
    # a float32 comparison would take the first and the last too
    assert kept_lats(source, Box(lat_min, lat_max, -95.0, -85.0)) == lats[1:3]


def test_antimeridian_box_edges() -> None:
    box = Box(-10.0, 10.0, 170.0, -170.0)
    assert box.crosses_antimeridian and "or" in box.describe()
    cases = [
        (170.0, True), (-170.0, True), (180.0, True), (-180.0, True), (175.0, True), (-175.0, True),
        (below(170.0), False), (above(-170.0), False), (0.0, False), (-999.0, False), (999.0, False),
    ]  # fmt: skip
    lats = [float(i) for i in range(len(cases))]
    source = modis_source(lats, [c[0] for c in cases])
    assert kept_lats(source, box) == [lat for lat, c in zip(lats, cases, strict=True) if c[1]]


# --- what a sample carries and when it is kept --------------------------------------------------
def test_modis_band_validity_angles_and_scan_times() -> None:
    ceiling = float(F32(32767) * F32(0.01))
    band_1 = [ceiling, above(ceiling), 0.0, -992.0, -999.0, math.nan, -0.5]
    bands = np.full((7, len(band_1)), -999.0, F32)
    bands[0] = band_1
    bands[1, 1] = 50.0  # keeps the pixel whose band 1 is above the ceiling
    source = modis_source([35.0] * len(band_1), [-90.0] * len(band_1), bands, rows=20)
    source.modis[GRANULE].sza[0, 0] = -999.0  # type: ignore[index]
    source.modis[GRANULE].vza[0, 0] = 180.5  # type: ignore[index]
    got = extract(source, Selection(Box(30, 40, -95, -85), instruments=("MODIS",), modis_bands=("1", "2")))
    modis = got.samples["MODIS"]
    assert len(modis["time"]) == 20 * 3  # columns 0 (ceiling), 1 (band 2), 2 (zero) of every row
    row0 = {k: v[:3] for k, v in modis.items()}
    assert np.array_equal(row0["band_1_radiance"], [ceiling, np.nan, 0.0], equal_nan=True)
    assert np.array_equal(row0["band_2_radiance"], [np.nan, 50.0, np.nan], equal_nan=True)
    assert (
        math.isnan(row0["solar_zenith"][0]) and math.isnan(row0["sensor_zenith"][0]) and row0["solar_zenith"][1] == 30
    )
    # 20 rows = 2 scans of 10 rows; each scan's time is its middle in a 300 s granule
    assert list(modis["time"][::3]) == [GRANULE_START + 75.0] * 10 + [GRANULE_START + 225.0] * 10


def test_night_granule_in_the_box_is_recorded_and_bad_names_skipped() -> None:
    source = modis_source([35.0], [-90.0])
    source.modis[GRANULE].fields.clear()
    source.modis["granule_2015350_99xx"] = source.modis[GRANULE]
    got = extract(source, Selection(Box(30, 40, -95, -85)))
    assert got.count() == 0
    assert [(s.instrument, s.item, s.reason) for s in got.skipped] == [
        ("MODIS", GRANULE, "granule_without_bands"), ("MODIS", "granule_2015350_99xx", "bad_granule_name"),
        ("MISR", "MISR", "instrument_missing"), ("CERES", "CERES", "instrument_missing"),
    ]  # fmt: skip


def misr_source() -> FakeSource:
    """5 blocks of 1 x 2 pixels, all in the box; block 0 has the fill time. Red at 275 m, Blue at 1.1 km."""
    bct = np.array([b"0000-00-00T00:00:00.000000Z", b"2015-12-16T16:50:00.250000Z", b"2015-12-16T16:50:20.950000Z",
                    b"2015-12-16T16:50:41.650000Z", b"0000-00-00T00:00:00.000000Z"], dtype="S28")  # fmt: skip
    lat = np.full((5, 1, 2), 35.0, F32)
    lon = np.full((5, 1, 2), -90.0, F32)
    red = np.full((5, 4, 8), 10.0, F32)
    red[2, :, :4] = np.array([[1, 2, 3, -999], [-999] * 4, [-999] * 4, [np.nan] * 4])  # (2, 0, 0): mean of 1, 2, 3
    red[2, :, 4:] = -999.0  # pixel (2, 0, 1): nothing valid
    red[3, 0, 4:] = [800.0, above(800.0), 0.0, -0.0]
    blue = np.full((5, 1, 2), 20.0, F32)
    blue[2, 0, 1] = -999.0  # pixel (2, 0, 1) has no valid band: dropped
    blue[3, 0, 1] = above(800.0)
    return FakeSource(misr_bct={"AN": bct}, misr_lat=lat, misr_lon=lon,
                      misr_rad={("AN", "Red"): red, ("AN", "Blue"): blue})  # fmt: skip


def test_misr_blocks_times_means_and_reads() -> None:
    recorder = Recorder(misr_source())
    got = extract(recorder, Selection(Box(30, 40, -95, -85), instruments=("MISR",), misr_bands=("Red", "Blue")))
    misr = got.samples["MISR"]
    assert list(misr["block"]) == [2, 2, 3, 4, 4] and list(misr["sample"]) == [0, 1, 0, 0, 1]
    assert list(misr["line"]) == [0] * 5 and misr["block"].dtype == np.int16
    assert list(misr["time"]) == [1450284600.25, 1450284600.25, 1450284620.95, 1450284641.65, 1450284641.65]
    # (3, 0, 1): 800, 0 and -0.0 valid in the first line, 800 + 1 ulp not; three more lines of 10
    assert np.array_equal(misr["red_radiance"], np.array([10.0, 10.0, 2.0, 10.0, (800 + 0 + 0 + 10 * 12) / 15], F32))
    assert np.array_equal(misr["blue_radiance"], [20.0, 20.0, 20.0, 20.0, np.nan], equal_nan=True)
    assert recorder.called("misr_geolocation") == [(1, 3)]  # the blocks with a valid time
    assert recorder.called("misr_radiance") == [("AN", "Red", 1, 3), ("AN", "Blue", 1, 3)]


def test_misr_missing_band_and_camera_are_recorded() -> None:
    got = extract(misr_source(), Selection(Box(30, 40, -95, -85), instruments=("MISR",), misr_bands=("NIR", "Red")))
    assert {s.reason for s in got.skipped} == {"misr_band_missing"} and got.count() == 5  # Red alone decides
    assert np.all(np.isnan(got.samples["MISR"]["nir_radiance"]))
    other = extract(misr_source(), Selection(Box(30, 40, -95, -85), instruments=("MISR",), misr_camera="DF"))
    assert other.count() == 0 and other.skipped[0].reason == "misr_without_block_times"


def test_ceres_fill_time_and_radiances() -> None:
    fill = F32(3.4028235e38)
    n = 6
    fp: dict[str, Any] = {
        "time": np.array([2440588.5, 2440588.5, 2440588.5, float(fill), 2440589.0, 2440589.0]),
        "lat": np.array([30.0, 35.0, 35.0, 35.0, -fill, 40.0], F32),
        "lon": np.full(n, -90.0, F32),
        "sw": np.array([100.0, fill, fill, 100.0, 100.0, -0.5], F32),
        "lw": np.array([200.0, 210.0, fill, 200.0, 200.0, np.inf], F32),
        "mode_flags": np.arange(n, dtype=np.int32),
        "sza": np.array([10.0, fill, 10.0, 10.0, 10.0, 10.0], F32),
        "vza": np.full(n, 20.0, F32),
    }
    source = FakeSource(ceres={"granule_2015121616": {"FM1": fp}, "granule_2015121617": {"FM2": fp}})
    got = extract(source, Selection(Box(30, 40, -95, -85), instruments=("CERES",)))
    ceres = got.samples["CERES"]
    assert list(ceres["radiance_mode_flags"]) == [0, 1, 5]  # 2: no valid radiance; 3: fill time; 4: fill latitude
    assert list(ceres["time"]) == [86400.0, 86400.0, 129600.0]  # JD 2440588.5 = 1970-01-02T00:00:00Z
    assert np.array_equal(ceres["sw_radiance"], [100.0, np.nan, -0.5], equal_nan=True)
    assert np.array_equal(ceres["lw_radiance"], [200.0, 210.0, np.nan], equal_nan=True)
    assert np.isnan(ceres["solar_zenith"][1]) and ceres["radiance_mode_flags"].dtype == np.int32
    assert [(s.item, s.reason) for s in got.skipped] == [("granule_2015121617/FM1", "ceres_without_instrument")]


# --- Box and parameter validation -------------------------------------------------------------
@pytest.mark.parametrize(
    "bounds",
    [(30, 30, 0, 1), (40, 30, 0, 1), (0, 1, 5, 5), (-90.5, 0, 0, 1), (0, 90.01, 0, 1), (0, 1, -180.5, 0),
     (0, 1, 0, 181), (0, 1, -math.inf, 0), (math.nan, 1, 0, 1), (0, math.nan, 0, 1), (0, 1, math.nan, 1),
     (0, 1, 0, math.nan), (True, 1, 0, 1), ("0", 1, 0, 1)],
)  # fmt: skip
def test_invalid_boxes_raise_value_error(bounds: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError) as info:
        Box(*bounds)
    assert "\n" not in str(info.value)


def test_valid_boxes() -> None:
    assert Box(-90, 90, -180, 180).contains(np.array([90.0, -90.0]), np.array([180.0, -180.0])).all()
    box = Box(F32(1), 2, 180, -180)  # type: ignore[arg-type]  # numpy scalars are taken too; crosses: only the antimeridian itself
    assert box.lat_min == 1.0 and type(box.lat_min) is float and box.crosses_antimeridian
    assert list(box.contains(np.full(3, 1.5), np.array([180.0, -180.0, 0.0]))) == [True, True, False]


def test_parameters_defaults_and_spelling() -> None:
    assert selection_from_parameters({}) == Selection(Box(30.0, 40.0, -95.0, -85.0))
    assert selection_from_parameters(DEFAULT_PARAMETERS) == selection_from_parameters({})
    params = {"lon_min": "170", "lon_max": "-170.0", "instruments": " CERES, MODIS", "modis_bands": "13lo,1",
              "misr_camera": "DF", "ceres_instrument": "FM2"}  # fmt: skip
    got = selection_from_parameters(params)
    assert got.box == Box(30, 40, 170, -170) and got.instruments == ("CERES", "MODIS")
    assert got.modis_bands == ("13lo", "1") and got.misr_camera == "DF" and got.ceres_instrument == "FM2"
    assert got.variables("MODIS")[-2:] == ("band_13lo_radiance", "band_1_radiance")


@pytest.mark.parametrize(
    ("params", "message"),
    [({"lat_min": "north"}, "lat_min must be a number"), ({"lat_min": "nan"}, "lat_min must be a number"),
     ({"lat_max": "25"}, "lat_min must be smaller than lat_max"), ({"lon_max": "-95"}, "must differ"),
     ({"lon_min": "-200"}, "lon_min must lie in"), ({"instruments": "MODIS,ASTER"}, "unknown 'ASTER'"),
     ({"instruments": "MODIS,,MISR"}, "no empty entry"), ({"modis_bands": "1,1"}, "twice"),
     ({"modis_bands": "20"}, "modis_bands: unknown '20'"), ({"misr_bands": "red"}, "unknown 'red'"),
     ({"misr_camera": "XX"}, "misr_camera must be one of"), ({"ceres_instrument": "FM3"}, "ceres_instrument"),
     ({"resolution": "0.5"}, "unknown parameter(s) resolution")],
)  # fmt: skip
def test_bad_parameters_raise_one_line_value_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        selection_from_parameters(params)
    assert message in str(info.value) and "\n" not in str(info.value)
