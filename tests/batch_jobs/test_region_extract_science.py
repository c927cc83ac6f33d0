"""RegionExtract on synthetic orbit files: exactly the loop-per-sample reference, and only the reads it needs.

Presets "tiny" and "small" run in seconds ("medium" and "full" would take the reference minutes);
every generator defect the reader can read is extracted too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batch_jobs.region_extract.science import Box, OrbitExtract, Selection, extract
from datacarousel.errors import BadInput
from datacarousel.naming import misr_path
from datacarousel.orbit import open_local
from tests.batch_jobs.region_extract_fakes import Recorder
from tests.batch_jobs.region_extract_reference import reference
from workbench.synthetic.generator import generate_orbit

DEFAULT = (30.0, 40.0, -95.0, -85.0)
WORLD = (-90.0, 90.0, -180.0, 180.0)
ANTIMERIDIAN = (-90.0, -60.0, 170.0, -170.0)  # the daylit pass of path 22 crosses 180 deg near the south pole
NOWHERE = (10.0, 20.0, 0.0, 10.0)  # never under an orbit of path 22
READABLE_DEFECTS = ("bad_name", "day_granule_without_refsb", "ceres_without_fm1", "no_descending_granule",
                    "latitude_minus_90")  # fmt: skip


@pytest.fixture(scope="module")
def orbits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("region-extract")
    return {preset: generate_orbit(85079, out / preset, preset=preset, seed=4) for preset in ("tiny", "small")}


def run(path: Path, selection: Selection) -> OrbitExtract:
    with open_local(path) as source:
        return extract(source, selection)


def assert_same(got: OrbitExtract, expected: dict[str, dict[str, np.ndarray]]) -> None:
    assert list(got.samples) == list(expected)
    for instrument, variables in expected.items():
        assert list(got.samples[instrument]) == list(variables), instrument
        for name, values in variables.items():
            mine = got.samples[instrument][name]
            assert mine.dtype == values.dtype, (instrument, name, mine.dtype, values.dtype)
            assert np.array_equal(mine, values, equal_nan=True), (instrument, name)


def reference_of(path: Path, selection: Selection) -> dict[str, dict[str, np.ndarray]]:
    b = selection.box
    return reference(path, box=(b.lat_min, b.lat_max, b.lon_min, b.lon_max), instruments=selection.instruments,
                     modis_bands=selection.modis_bands, misr_camera=selection.misr_camera,
                     misr_bands=selection.misr_bands, ceres_instrument=selection.ceres_instrument)  # fmt: skip


@pytest.mark.parametrize("preset", ["tiny", "small"])
@pytest.mark.parametrize("box", [DEFAULT, WORLD, ANTIMERIDIAN], ids=["default", "world", "antimeridian"])
def test_presets_equal_the_reference(orbits: dict[str, Path], preset: str, box: tuple[float, ...]) -> None:
    selection = Selection(Box(*box))
    got = run(orbits[preset], selection)
    assert_same(got, reference_of(orbits[preset], selection))
    assert all(got.count(instrument) > 0 for instrument in got.samples)
    modis = got.samples["MODIS"]
    assert np.all(np.diff(modis["time"]) >= 0) and np.all(np.diff(got.samples["MISR"]["time"]) >= 0)


def test_other_bands_camera_and_ceres_instrument_equal_the_reference(orbits: dict[str, Path]) -> None:
    # BF: Red at 275 m (averaged), Blue and NIR at 1.1 km (taken as they are); MODIS bands of two fields
    selection = Selection(Box(*WORLD), instruments=("CERES", "MISR", "MODIS"), modis_bands=("26", "1", "13hi"),
                          misr_camera="BF", misr_bands=("NIR", "Red", "Blue"), ceres_instrument="FM2")  # fmt: skip
    got = run(orbits["tiny"], selection)
    assert_same(got, reference_of(orbits["tiny"], selection))
    assert list(got.samples) == ["CERES", "MISR", "MODIS"] and got.count() > 1000
    assert set(got.samples["CERES"]["radiance_mode_flags"]) <= {2, 3}  # FM2 flags in the generator


def test_antimeridian_box_takes_both_sides(orbits: dict[str, Path]) -> None:
    got = run(orbits["tiny"], Selection(Box(*ANTIMERIDIAN)))
    for instrument in ("MODIS", "MISR"):
        lat, lon = (np.asarray(got.samples[instrument][name], dtype=np.float64) for name in ("lat", "lon"))
        assert np.any(lon >= 170) and np.any(lon <= -170), instrument
        assert np.all((lon >= 170) | (lon <= -170)), instrument
        assert np.all((lat >= -90) & (lat <= -60)), instrument


@pytest.mark.parametrize("defect", READABLE_DEFECTS)
def test_defect_orbits_equal_the_reference(tmp_path: Path, defect: str) -> None:
    path = generate_orbit(85079, tmp_path, preset="tiny", seed=2, defects=[defect])
    selection = Selection(Box(*WORLD))
    got = run(path, selection)
    assert_same(got, reference_of(path, selection))
    reasons = {(s.instrument, s.reason) for s in got.skipped}
    if defect == "day_granule_without_refsb":
        granules = [s.item for s in got.skipped if s.reason == "granule_without_bands"]
        assert len(granules) == 11  # the 10 night granules seen from the whole-world box, and the broken day one
    if defect == "ceres_without_fm1":
        assert ("CERES", "ceres_without_instrument") in reasons and got.count("CERES") > 0
    if defect == "no_descending_granule":
        assert got.count("MODIS") == 0 and got.count("MISR") > 0
    if defect == "latitude_minus_90":
        assert -90.0 in got.samples["MODIS"]["lat"] and -90.0 in got.samples["CERES"]["lat"]


@pytest.mark.parametrize("defect", ["truncated", "not_hdf5"])
def test_unreadable_defects_are_bad_input(tmp_path: Path, defect: str) -> None:
    path = generate_orbit(85079, tmp_path, preset="tiny", defects=[defect])
    with pytest.raises(BadInput), open_local(path) as source:
        extract(source, Selection(Box(*WORLD)))


def test_box_without_samples_reads_no_radiance(orbits: dict[str, Path]) -> None:
    with open_local(orbits["tiny"]) as source:
        recorder = Recorder(source)
        got = extract(recorder, Selection(Box(*NOWHERE)))
    assert got.count() == 0 and got.skipped == ()
    assert got.samples["MISR"]["block"].dtype == np.int16 and got.samples["MODIS"]["time"].dtype == np.float64
    assert not recorder.called("modis_bands") and not recorder.called("modis_angles")
    assert not recorder.called("misr_radiance")


def test_reads_only_the_fields_granules_and_blocks_in_the_box(orbits: dict[str, Path]) -> None:
    with open_local(orbits["small"]) as source:
        recorder = Recorder(source)
        got = extract(recorder, Selection(Box(*DEFAULT), modis_bands=("2", "1")))
    granules = recorder.called("modis_granules")
    assert len(granules) == 1 and len(recorder.called("modis_latlon")) == 20
    bands = recorder.called("modis_bands")
    assert 1 <= len(bands) <= 2 and all(fields == ("EV_250_Aggr1km_RefSB",) for _, fields in bands)
    blocks = got.samples["MISR"]["block"] - 1  # 0-based, as the reader counts
    ranges = {(first, last) for _, _, first, last in recorder.called("misr_radiance")}
    (first, last), *others = ranges
    assert not others and len(recorder.called("misr_radiance")) == 4  # one read per band, all the same blocks
    assert first <= blocks.min() and last >= blocks.max() and last - first < 15  # of some 120 daylit blocks


@pytest.mark.parametrize("orbit", [84948, 85050])
def test_default_box_yields_every_instrument_on_the_demo_paths(tmp_path: Path, orbit: int) -> None:
    assert misr_path(orbit) in (23, 24)  # path 22 is the fixture's orbit 85079
    path = generate_orbit(orbit, tmp_path, preset="tiny")
    selection = Selection(Box(*DEFAULT))
    got = run(path, selection)
    assert_same(got, reference_of(path, selection))
    assert all(got.count(instrument) > 0 for instrument in ("MODIS", "MISR", "CERES"))
