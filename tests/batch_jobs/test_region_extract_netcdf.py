"""RegionExtract's NetCDF files: the orbit file round trip, its CF attributes, empty files, and the reducer."""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from batch_jobs.region_extract.netcdf import orbit_netcdf_bytes, read_orbit_netcdf
from batch_jobs.region_extract.reduce import concatenate
from batch_jobs.region_extract.science import Box, OrbitExtract, Selection, extract
from datacarousel.orbit import open_local
from workbench.synthetic.generator import generate_orbit

WORLD = Selection(Box(-90, 90, -180, 180))
DEFAULT = Selection(Box(30, 40, -95, -85))
NOWHERE = Selection(Box(10, 20, 0, 10))
ORBITS = (85079, 84846)  # both on MISR path 22


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("region-extract-nc")
    return {orbit: generate_orbit(orbit, out, preset="tiny", seed=1) for orbit in ORBITS}


def orbit_file(path: Path, orbit: int, selection: Selection) -> tuple[OrbitExtract, bytes]:
    with open_local(path) as source:
        got = extract(source, selection)
    return got, orbit_netcdf_bytes(got, orbit=orbit, source_name=path.name, selection=selection)


def assert_samples_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name, values in a.items():
        assert values.dtype == b[name].dtype and np.array_equal(values, b[name], equal_nan=True), name


def test_round_trip_gives_the_extract_and_its_description(paths: dict[int, Path]) -> None:
    got, data = orbit_file(paths[85079], 85079, WORLD)
    assert np.isnan(got.samples["MODIS"]["band_2_radiance"]).any()  # saturated pixels: _FillValue in the file
    decoded = read_orbit_netcdf(data)
    assert list(decoded.samples) == ["MODIS", "MISR", "CERES"]
    for instrument, samples in got.samples.items():
        assert_samples_equal(decoded.samples[instrument], samples)
    attrs = decoded.attrs
    assert decoded.orbit == 85079 and decoded.source_file == paths[85079].name
    assert (attrs["box_lat_min"], attrs["box_lat_max"], attrs["box_lon_min"], attrs["box_lon_max"]) == (
        -90,
        90,
        -180,
        180,
    )
    assert (
        attrs["modis_bands"] == "1,2,3,4,5,6,7" and attrs["misr_camera"] == "AN" and attrs["ceres_instrument"] == "FM1"
    )
    assert attrs["sample_count"] == got.count() and attrs["extract_status"] == "samples"
    assert json.loads(attrs["skipped"]) == [asdict(s) for s in got.skipped] and got.skipped


def test_identical_input_gives_identical_bytes(paths: dict[int, Path]) -> None:
    got, data = orbit_file(paths[85079], 85079, DEFAULT)
    time.sleep(1.1)  # HDF5 timestamps have whole seconds: a file that carried one would differ now
    assert orbit_netcdf_bytes(got, orbit=85079, source_name=paths[85079].name, selection=DEFAULT) == data


def test_cf_attributes(paths: dict[int, Path]) -> None:
    got, data = orbit_file(paths[85079], 85079, DEFAULT)
    with h5py.File(io.BytesIO(data), "r") as f:
        assert f.attrs["Conventions"] == "CF-1.8" and f.attrs["featureType"] == "point"
        for instrument in ("MODIS", "MISR", "CERES"):
            group = f[instrument]
            assert group["time"].attrs["units"] == "seconds since 1970-01-01 00:00:00"
            assert group["time"].attrs["standard_name"] == "time" and group["time"].attrs["calendar"] == "standard"
            assert group["lat"].attrs["standard_name"] == "latitude" and group["lat"].attrs["units"] == "degrees_north"
            assert group["lon"].attrs["standard_name"] == "longitude" and group["lon"].attrs["units"] == "degrees_east"
            for name, variable in group.items():
                if name == "obs":
                    continue  # the dimension
                assert variable.attrs["long_name"], (instrument, name)
                assert "units" in variable.attrs or name == "radiance_mode_flags", (instrument, name)
                if name not in ("time", "lat", "lon"):
                    assert variable.attrs["coordinates"] == "lat lon time", (instrument, name)
                floating = variable.dtype.kind == "f" and name not in ("time", "lat", "lon")
                assert ("_FillValue" in variable.attrs) == floating, (instrument, name)
        assert f["MODIS/band_1_radiance"].attrs["units"] == "W m-2 sr-1 um-1"
    # CF time decodes to the same instants (xarray's decoder reads the units)
    with xr.open_datatree(io.BytesIO(data), engine="h5netcdf") as tree:
        decoded = tree["MODIS"].to_dataset()["time"].values
        seconds = (decoded - np.datetime64("1970-01-01T00:00:00", "ns")) / np.timedelta64(1, "s")
        assert decoded.dtype.kind == "M" and np.array_equal(seconds, got.samples["MODIS"]["time"])
        assert str(decoded[0]).startswith("2015-12-16T16:")


def test_an_orbit_without_samples_gives_a_valid_empty_file(paths: dict[int, Path]) -> None:
    got, data = orbit_file(paths[85079], 85079, NOWHERE)
    assert got.count() == 0
    decoded = read_orbit_netcdf(data)
    assert decoded.attrs["extract_status"] == "no_samples_in_box" and decoded.attrs["sample_count"] == 0
    for instrument, samples in got.samples.items():
        assert_samples_equal(decoded.samples[instrument], samples)
    with xr.open_datatree(io.BytesIO(data), engine="h5netcdf") as tree:
        assert all(tree[i].sizes["obs"] == 0 for i in ("MODIS", "MISR", "CERES"))


def test_reducer_joins_orbits_into_time_series(paths: dict[int, Path]) -> None:
    files = {orbit: orbit_file(paths[orbit], orbit, DEFAULT) for orbit in ORBITS}
    series = concatenate(data for _, data in files.values())
    assert list(series) == ["MODIS", "MISR", "CERES"]
    assert concatenate([files[o][1] for o in reversed(ORBITS)]) == series  # arrival order does not matter
    for instrument, data in series.items():
        with xr.open_dataset(io.BytesIO(data), engine="h5netcdf", decode_times=False) as ds:
            assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["instrument"] == instrument
            assert list(ds["orbit_number"].values) == sorted(ORBITS) and ds["orbit"].dtype == np.int32
            assert list(ds["orbit_file_name"].values) == [paths[o].name for o in sorted(ORBITS)]
            times = ds["time"].values
            assert np.all(np.diff(times) >= 0) and len(times) == sum(files[o][0].count(instrument) for o in ORBITS)
            for orbit in ORBITS:
                mine = ds.isel(obs=ds["orbit"].values == orbit)
                expected = files[orbit][0].samples[instrument]
                assert expected["time"].size > 0
                assert_samples_equal({name: mine[name].values for name in expected}, expected)  # order kept


def hand_made(times: list[float]) -> OrbitExtract:
    n = len(times)
    ceres = {"time": np.array(times), "lat": np.full(n, 35.0, np.float32), "lon": np.full(n, -90.0, np.float32),
             "solar_zenith": np.full(n, 10.0, np.float32), "viewing_zenith": np.full(n, 1.0, np.float32),
             "sw_radiance": np.arange(n, dtype=np.float32), "lw_radiance": np.full(n, np.nan, np.float32),
             "radiance_mode_flags": np.zeros(n, np.int32)}  # fmt: skip
    return OrbitExtract({"CERES": ceres})


def test_reducer_sort_is_stable_and_orbits_go_in_number_order() -> None:
    selection = Selection(Box(30, 40, -95, -85), instruments=("CERES",))
    late = orbit_netcdf_bytes(hand_made([5.0, 1.0, 1.0]), orbit=200, source_name="b.h5", selection=selection)
    early = orbit_netcdf_bytes(hand_made([1.0, 3.0]), orbit=100, source_name="a.h5", selection=selection)
    empty = orbit_netcdf_bytes(hand_made([]), orbit=150, source_name="c.h5", selection=selection)
    (data,) = concatenate([late, empty, early]).values()
    with xr.open_dataset(io.BytesIO(data), engine="h5netcdf", decode_times=False) as ds:
        assert list(ds["orbit"].values) == [100, 200, 200, 100, 200]
        assert list(ds["sw_radiance"].values) == [0, 1, 2, 1, 0] and np.isnan(ds["lw_radiance"].values).all()
        assert list(ds["orbit_number"].values) == [100, 150, 200] and ds.attrs["orbit_file_count"] == 3
        assert list(ds["orbit_file_name"].values) == ["a.h5", "c.h5", "b.h5"]
    assert concatenate([]) == {}
    other = Selection(Box(30, 41, -95, -85), instruments=("CERES",))
    mismatched = orbit_netcdf_bytes(hand_made([1.0]), orbit=300, source_name="d.h5", selection=other)
    with pytest.raises(ValueError, match="different selections"):
        concatenate([early, mismatched])
