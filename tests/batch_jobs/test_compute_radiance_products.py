"""Beyond the original: the composite reducer, the CF NetCDF export and the quick-look PNGs."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from batch_jobs.compute_radiance import composite as comp
from batch_jobs.compute_radiance import export, quicklook
from batch_jobs.compute_radiance.__main__ import app
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import load_npz, npz_bytes
from datacarousel import orbit as readers
from tests.batch_jobs.compute_radiance_orbits import build_orbit


@pytest.fixture(scope="module")
def two_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, np.ndarray]]:
    out = []
    for orbit, seed in ((85079, 0), (85080, 1)):  # both on 2015-12-16
        path = build_orbit(tmp_path_factory.mktemp(f"o{orbit}"), orbit=orbit, seed=seed)
        with readers.open_local(path) as src:
            out.append(load_npz(npz_bytes(compute_orbit(src).arrays())))
    return out


def test_composite_mean_is_sum_over_count_and_counts_each_orbit_once(two_results: list[dict]) -> None:
    a, b = two_results
    c = comp.Composite("2015.12")
    assert c.add(a) and c.add(b)
    assert not c.add(a)  # a redelivered result is not counted twice
    arrays = c.to_arrays()
    assert np.array_equal(arrays["modis_count"], a["modis_count"] + b["modis_count"])
    assert np.allclose(arrays["misr_rad_sum"], a["misr_rad_sum"] + b["misr_rad_sum"])
    count = arrays["misr_count"]
    mean = arrays["misr_rad_mean"]
    assert count.sum() > 0
    assert np.allclose(mean[count > 0], arrays["misr_rad_sum"][count > 0] / count[count > 0])
    assert np.all(np.isnan(mean[count == 0]))
    assert int(arrays["n_orbits"]) == 2 and len(arrays["sources"]) == 2
    assert float(arrays["t0"]) == min(float(a["t0"]), float(b["t0"]))
    # composites add further (e.g. days into a month)
    again = comp.Composite("2015.12")
    assert again.add(arrays)
    assert np.array_equal(again.to_arrays()["ceres_count"], arrays["ceres_count"])


def test_composite_refuses_mixed_parameters(two_results: list[dict]) -> None:
    a, b = two_results
    b = dict(b, parameters=np.array('{"resolution":1.0}'))
    c = comp.Composite()
    c.add(a)
    with pytest.raises(ValueError, match="parameters differ"):
        c.add(b)


def test_build_selects_the_period(two_results: list[dict]) -> None:
    labelled = [(str(r["source"]), r) for r in two_results]
    assert len(comp.build(labelled, "2015.12.16").sources) == 2
    assert len(comp.build(labelled, "2015.11").sources) == 0
    with pytest.raises(ValueError, match="empty"):
        comp.build(labelled, "2015.11").to_arrays()


def test_netcdf_export_round_trips(two_results: list[dict], tmp_path: Path) -> None:
    c = comp.Composite("2015.12")
    for r in two_results:
        c.add(r)
    arrays = c.to_arrays()
    path = export.write_netcdf(arrays, tmp_path / "marble.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["n_orbits"] == 2
        assert ds["latitude"].attrs["units"] == "degrees_north" and ds.sizes["latitude"] == 360
        assert np.array_equal(ds["modis_count"].values, arrays["modis_count"])
        assert np.allclose(ds["misr_rad_mean"].values, arrays["misr_rad_mean"], equal_nan=True, rtol=1e-6)
        assert list(ds["misr_band"].values) == ["Blue", "Green", "Red", "NIR"]
        assert ds.attrs["time_coverage_start"].startswith("2015-12-16T")
    single = export.write_netcdf(two_results[0], tmp_path / "orbit.nc")
    with xr.open_dataset(single, engine="h5netcdf") as ds:
        assert "skipped" in ds.attrs and np.nansum(ds["ceres_sw_mean"].values) > 0


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_quicklook_pngs(two_results: list[dict], tmp_path: Path) -> None:
    c = comp.Composite("2015.12")
    for r in two_results:
        c.add(r)
    paths = quicklook.write_quicklooks(c.to_arrays(), tmp_path, "marble")
    assert [p.name for p in paths] == ["marble_modis.png", "marble_misr.png", "marble_ceres.png"]
    for p in paths:
        assert _png_size(p) == (1000, 500)
    data = quicklook.mean_map(c.to_arrays(), "modis_rad_sum", "modis_count", 0)
    assert np.isfinite(data).sum() > 0


def test_cli_composite_export_quicklook(two_results: list[dict], tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for r in two_results:
        (results / str(r["source"]).replace("TERRA_BF_L1B", "CLIMARBLE").replace(".h5", ".npz")).write_bytes(
            npz_bytes(r)
        )
    runner = CliRunner()
    out = runner.invoke(app, ["composite", str(results), "--period", "2015.12", "--out", str(tmp_path / "c.npz"),
                              "--netcdf", str(tmp_path / "c.nc"), "--quicklook-dir", str(tmp_path / "ql")])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert int(load_npz(str(tmp_path / "c.npz"))["n_orbits"]) == 2
    assert (tmp_path / "c.nc").stat().st_size > 0 and len(list((tmp_path / "ql").glob("*.png"))) == 3
    assert runner.invoke(app, ["export", str(tmp_path / "c.npz"), "--out", str(tmp_path / "e.nc")]).exit_code == 0
    assert runner.invoke(app, ["quicklook", str(tmp_path / "c.npz"), "--out-dir", str(tmp_path / "q2")]).exit_code == 0
    assert _png_size(tmp_path / "q2" / "c_misr.png") == (1000, 500)
