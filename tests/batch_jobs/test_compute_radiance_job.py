"""The job on whole orbit files: exactness against the loop-per-sample reference, robustness (spec §7), readers, CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from batch_jobs.compute_radiance import result as r
from batch_jobs.compute_radiance.__main__ import app
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import Parameters, load_npz, npz_bytes, skipped_of
from datacarousel import orbit as readers
from datacarousel.errors import BadFileName, BadInput
from datacarousel.naming import BasicFusionName
from tests.batch_jobs.compute_radiance_orbits import build_orbit
from tests.batch_jobs.compute_radiance_reference import reference
from workbench.synthetic.generator import generate_orbit

SUMS = ("modis_rad_sum", "modis_sol_sum", "misr_rad_sum", "ceres_sw_sum", "ceres_lw_sum")
COUNTS = ("modis_count", "misr_count", "ceres_count")


def run_local(path: Path, params: Parameters | None = None) -> r.OrbitResult:
    with readers.open_local(path) as src:
        return compute_orbit(src, params)


def assert_matches_reference(res: r.OrbitResult, ref: dict) -> None:
    got = res.arrays()
    for name in SUMS:
        assert np.allclose(got[name], ref[name], rtol=1e-5, atol=1e-6), name
    for name in COUNTS:
        assert np.array_equal(got[name], ref[name]), name
    assert res.t0 == ref["t0"] and res.t1 == ref["t1"]


@pytest.fixture(scope="module")
def built_orbit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_orbit(tmp_path_factory.mktemp("built"))


@pytest.fixture(scope="module")
def tiny_orbit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(85079, tmp_path_factory.mktemp("tiny"), preset="tiny", seed=3)


# --- exactness ------------------------------------------------------------------------------
def test_built_orbit_matches_reference(built_orbit: Path) -> None:
    res = run_local(built_orbit)
    ref = reference(built_orbit)
    assert_matches_reference(res, ref)
    # the orbit exercises every instrument and the planted edges
    assert res.modis.count.sum() > 1000 and res.misr.count.sum() > 1000 and res.ceres.count.sum() > 10
    assert res.misr_blocks_used[0] == 40 and res.misr_blocks_used[-1] == 160  # block 160 sits exactly on t1
    assert r.LATITUDE_MINUS_90 in res.reasons()


@pytest.mark.parametrize(("orbit", "seed"), [(85079, 0), (40110, 7)])
def test_generated_orbits_match_reference(tmp_path: Path, orbit: int, seed: int) -> None:
    path = generate_orbit(orbit, tmp_path, preset="tiny", seed=seed)
    res = run_local(path)
    assert_matches_reference(res, reference(path))
    assert res.modis.count.sum() > 0 and res.misr.count.sum() > 0 and res.ceres.count.sum() > 0


def test_other_parameters_match_reference(built_orbit: Path) -> None:
    params = Parameters(resolution=1.0, vza_max=30.0, ceres_mode="all")
    res = run_local(built_orbit, params)
    ref = reference(built_orbit, res=1.0, vza_max=30.0, ceres_mode="all")
    assert_matches_reference(res, ref)
    assert res.arrays()["modis_count"].shape == (180, 360, 7)


def test_streamed_misr_equals_hdf5_slices(built_orbit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "STREAM_PIECE", 4096)  # many small pieces: exercises every boundary
    with readers.open_local(built_orbit, direct=False) as src:
        streamed = np.concatenate(list(src.misr_radiance("AN", "Red", 37, 161)))
        lat, _ = src.misr_geolocation(0, 179)
    with h5py.File(built_orbit) as f:
        assert np.array_equal(streamed, f["MISR/AN/Data_Fields/Red_Radiance"][37:162])
        assert np.array_equal(lat, f["MISR/Geolocation/GeoLatitude"][()])
    with readers.open_local(built_orbit, direct=False) as src:
        src._raw_read = None  # the HDF5 path
        sliced = compute_orbit(src)
    streamed_res = run_local(built_orbit)
    for name in (*SUMS, *COUNTS):
        assert np.array_equal(sliced.arrays()[name], streamed_res.arrays()[name]), name


# --- robustness: every case where the original crashed ---------------------------------------
def test_no_descending_granule_gives_empty_result(tmp_path: Path) -> None:
    res = run_local(build_orbit(tmp_path, no_descending=True))
    assert r.NO_DESCENDING_GRANULE in res.reasons()
    assert res.modis.count.sum() == res.misr.count.sum() == res.ceres.count.sum() == 0
    assert np.isnan(res.t0)


def test_first_misr_block_in_window_is_recorded_and_processed(tmp_path: Path) -> None:
    path = build_orbit(tmp_path, first_block_in_window=True)
    res = run_local(path)
    assert r.MISR_FIRST_BLOCK_IN_WINDOW in res.reasons()
    assert res.misr_blocks_used[0] == 0 and 1 not in res.misr_blocks_used
    assert_matches_reference(res, reference(path))


def test_no_misr_block_in_window(tmp_path: Path) -> None:
    path = build_orbit(tmp_path)
    with h5py.File(path, "a") as f:
        f["MISR/AN/BlockCenterTime"][...] = np.array([b"0000-00-00T00:00:00.000000Z"] * 180, dtype="S28")
    res = run_local(path)
    assert r.MISR_NO_BLOCK_IN_WINDOW in res.reasons() and res.misr.count.sum() == 0
    assert res.modis.count.sum() > 0 and res.ceres.count.sum() > 0


def test_builder_defects_are_recorded(tmp_path: Path) -> None:
    path = build_orbit(tmp_path, ceres_without_fm1=True, refsb_missing_in=(7,))
    res = run_local(path)
    assert {r.CERES_WITHOUT_FM1, r.DAY_GRANULE_WITHOUT_REFSB} <= res.reasons()
    assert_matches_reference(res, reference(path))


@pytest.mark.parametrize(
    ("defect", "reason"),
    [
        ("no_descending_granule", r.NO_DESCENDING_GRANULE),
        ("day_granule_without_refsb", r.DAY_GRANULE_WITHOUT_REFSB),
        ("ceres_without_fm1", r.CERES_WITHOUT_FM1),
        ("latitude_minus_90", r.LATITUDE_MINUS_90),
    ],
)
def test_generator_defects_give_a_result_with_the_reason(tmp_path: Path, defect: str, reason: str) -> None:
    path = generate_orbit(85079, tmp_path, preset="tiny", defects=[defect])
    res = run_local(path)
    assert reason in res.reasons()
    saved = load_npz(npz_bytes(res.arrays()))
    assert reason in {s["reason"] for s in skipped_of(saved)}
    if defect != "no_descending_granule":
        assert_matches_reference(res, reference(path))


def test_truncated_file_is_bad_input(tmp_path: Path) -> None:
    path = generate_orbit(85079, tmp_path, preset="tiny", defects=["truncated"])
    with pytest.raises(BadInput), readers.open_local(path) as src:
        compute_orbit(src)


def test_not_hdf5_and_not_basicfusion_are_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / BasicFusionName.for_orbit(85079).file_name
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(BadInput):
        readers.open_local(junk)
    other = tmp_path / "other" / junk.name
    other.parent.mkdir()
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=[1, 2])
    with pytest.raises(BadInput, match="not a BasicFusion file"), readers.open_local(other) as src:
        compute_orbit(src)


def test_truncated_misr_stream_is_bad_input(built_orbit: Path) -> None:
    with readers.open_local(built_orbit, direct=False) as src:  # the reader's own streaming (direct reads: see
        # tests/batch_jobs/test_compute_radiance_read_paths.py)
        real = src._raw_read
        assert real is not None
        src._raw_read = lambda offset, size: real(offset, size)[: size // 2]
        with pytest.raises(BadInput, match="truncated"):
            list(src.misr_radiance("AN", "Blue", 0, 179))


# --- CLI -------------------------------------------------------------------------------------
def test_cli_run_writes_identical_bytes_on_rerun(built_orbit: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    first = runner.invoke(app, ["run", "--file", str(built_orbit), "--out", f"{out}/"])
    assert first.exit_code == 0, first.output
    name = BasicFusionName.parse(built_orbit.name).result_name
    data1 = (out / name).read_bytes()
    second = runner.invoke(app, ["run", "--file", str(built_orbit), "--out", f"{out}/"])
    assert second.exit_code == 0
    assert (out / name).read_bytes() == data1
    arrays = load_npz(str(out / name))
    assert arrays["modis_rad_sum"].shape == (360, 720, 7) and arrays["misr_count"].shape == (360, 720, 4)
    assert arrays["ceres_count"].shape == (360, 720) and arrays["latitude"][0] == 89.75
    assert json.loads(str(arrays["parameters"]))["vza_max"] == 18.0
    assert json.loads(first.output.strip().splitlines()[-1])["result"].endswith(name)


def test_cli_run_bad_inputs_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["run", "--file", str(tmp_path / "nope.h5"), "--out", str(tmp_path)])
    assert missing.exit_code == 2
    bad = generate_orbit(85079, tmp_path, preset="tiny", defects=["bad_name"])
    assert runner.invoke(app, ["run", "--file", str(bad), "--out", str(tmp_path)]).exit_code == 2
    with pytest.raises(BadFileName):
        BasicFusionName.parse(bad.name)


class _CountingSource:
    """An orbit reader with `threads` reader threads that counts the MODIS granules being loaded at once."""

    def __init__(self, source: readers.OrbitReader, threads: int) -> None:
        self._source, self.threads = source, threads
        self._lock = threading.Lock()
        self._loading = 0
        self.most_at_once = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def modis_latlon(self, granule: str) -> Any:
        with self._lock:
            self._loading += 1
            self.most_at_once = max(self.most_at_once, self._loading)
        try:
            time.sleep(0.05)  # long enough for every granule allowed ahead to be started
            return self._source.modis_latlon(granule)
        finally:
            with self._lock:
                self._loading -= 1


@pytest.mark.parametrize(("threads", "ahead"), [(1, 1), (2, 2), (4, 2), (8, 4)])
def test_modis_granules_are_read_half_as_many_ahead_as_the_reader_has_threads_but_two_on_two(
    tiny_orbit: Path, threads: int, ahead: int
) -> None:
    """Each granule is inflated on all the reader's threads already: more granules ahead would only hold
    more of them in memory (~121 MB each on a full orbit); on two threads, one ahead left a core idle."""
    with readers.open_local(tiny_orbit, workers=threads) as plain:
        counting = _CountingSource(plain, threads)
        assert len(counting.modis_granules()) > ahead + 1
        got = compute_orbit(counting)
        want = compute_orbit(plain)
    assert counting.most_at_once == ahead
    assert npz_bytes(got.arrays()) == npz_bytes(want.arrays())
