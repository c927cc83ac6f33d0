"""Every read path of the radiance job gives the same result, and that result is the reference's (issue #11).

Paths: local h5py (direct=False), local direct reads (pread + inflate, 1 and 3 threads), and, with the
embedded environment, the S3 object (h5py over s3fs, and direct ranged GETs) and the linked HSDS domain
(h5pyd through the HSDS data nodes, and the carousel path: chunk index from HSDS, bytes from S3).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import Parameters
from datacarousel import hsds
from datacarousel import orbit as readers
from datacarousel.aws import client
from datacarousel.chunkread import restart
from datacarousel.contract import Env
from datacarousel.errors import BadInput
from tests.batch_jobs.compute_radiance_reference import reference
from workbench.synthetic.generator import generate_orbit

GRIDS = ("modis_rad_sum", "modis_sol_sum", "modis_count", "misr_rad_sum", "misr_count", "ceres_sw_sum",
         "ceres_lw_sum", "ceres_count")  # fmt: skip


def run(opener: Any) -> dict[str, Any]:
    with opener() as src:
        return compute_orbit(src, Parameters()).arrays()


def assert_identical(got: dict[str, Any], want: dict[str, Any], label: str) -> None:
    for name in GRIDS:
        assert np.array_equal(got[name], want[name]), (label, name)
    assert got["skipped"] == want["skipped"], label
    assert float(got["t0"]) == float(want["t0"]) and float(got["t1"]) == float(want["t1"]), label


@pytest.fixture(scope="module")
def small_orbit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(85079, tmp_path_factory.mktemp("rp"), preset="small", seed=5)


def test_local_paths_are_identical_and_match_the_reference(small_orbit: Path) -> None:
    plain = run(lambda: readers.open_local(small_orbit, direct=False))
    ref = reference(small_orbit)
    for name in GRIDS:
        if "count" in name:
            assert np.array_equal(plain[name], ref[name]), name
        else:
            assert np.allclose(plain[name], ref[name], rtol=1e-5, atol=1e-6), name
    assert plain["modis_count"].sum() > 0 and plain["misr_count"].sum() > 0 and plain["ceres_count"].sum() > 0
    for workers in (1, 3):
        assert_identical(run(lambda w=workers: readers.open_local(small_orbit, workers=w)), plain, f"direct-w{workers}")


def test_direct_reads_really_serve_the_job(small_orbit: Path) -> None:
    with readers.open_local(small_orbit, workers=2) as src:
        compute_orbit(src, Parameters())
        stats = src._direct.stats if src._direct is not None else None
    assert stats is not None and stats.requests > 20 and stats.inflate_s > 0


def test_restart_points_beside_the_file_give_the_same_result(
    small_orbit: Path, tmp_path: Path, segmented_inflations: list[restart.RestartIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ORBIT.h5.restart-points, the MISR bands are inflated in segments side by side (only those that hold
    the blocks asked for): same result."""
    linked = tmp_path / small_orbit.name  # the points go beside this link, not beside the shared file
    linked.symlink_to(small_orbit)
    plain = run(lambda: readers.open_local(linked, workers=2))
    assert not segmented_inflations
    points = restart.build_file(linked, min_size=1, span=restart.WINDOW)
    assert sum(len(index.points) for _, index in points.values()) > 10
    (tmp_path / (linked.name + restart.SIDECAR_SUFFIX)).write_bytes(restart.dumps_file(points))
    used = segmented_inflations
    chosen: list[tuple[int, int]] = []  # (segments inflated, segments in the chunk)
    covering = restart.RestartIndex.covering

    def counted(index: restart.RestartIndex, start: int, end: int) -> list[restart.Segment]:
        wanted = covering(index, start, end)
        chosen.append((len(wanted), len(index.segments())))
        return wanted

    monkeypatch.setattr(restart.RestartIndex, "covering", counted)
    for workers in (1, 3):
        assert_identical(run(lambda w=workers: readers.open_local(linked, workers=w)), plain, f"restart-w{workers}")
    assert len(used) >= 2 * 4  # the four AN bands, at least, each time
    assert chosen and all(n <= total for n, total in chosen)
    chosen.clear()  # the first blocks only: the segments after them are neither read nor inflated
    with readers.open_local(linked, workers=2) as source:
        first = np.concatenate(list(source.misr_radiance("AN", "Green", 0, 3)))
    with readers.open_local(linked, workers=2, restart_points=False) as source:
        assert first.tobytes() == np.concatenate(list(source.misr_radiance("AN", "Green", 0, 3))).tobytes()
    assert len(chosen) == 1 and chosen[0][0] < chosen[0][1]
    used.clear()
    assert_identical(run(lambda: readers.open_local(linked, workers=2, restart_points=False)), plain, "points off")
    assert not used


def test_truncated_data_on_the_direct_path_is_bad_input(small_orbit: Path) -> None:
    with readers.open_local(small_orbit) as src:
        assert src._direct is not None
        real = src._direct.reader
        src._direct.reader = lambda offset, size: real(offset, size)[: size // 2]
        with pytest.raises(BadInput, match="truncated"):
            list(src.misr_radiance("AN", "Blue", 0, 179))
        with pytest.raises(BadInput, match="truncated"):
            src.modis_latlon(src.modis_granules()[0])


@pytest.mark.integration
def test_every_carousel_path_gives_identical_results(local_env: Any, tmp_path: Path) -> None:
    path = generate_orbit(85079, tmp_path, preset="tiny", seed=11)
    bucket = os.environ[Env.ARCHIVE_BUCKET]
    key = f"rp-{uuid.uuid4().hex[:8]}/{path.name}"
    client("s3").upload_file(str(path), bucket, key)
    domain = f"{os.environ[Env.HSDS_FOLDER]}rp-{uuid.uuid4().hex[:8]}/{path.name}"
    hsds.ensure_folder(domain.rsplit("/", 1)[0] + "/")
    hsds.link_file(f"s3://{bucket}/{key}", domain)
    url = f"s3://{bucket}/{key}"
    want = run(lambda: readers.open_local(path, direct=False))
    assert want["modis_count"].sum() > 0 and want["misr_count"].sum() > 0
    openers = {
        "s3-h5py": lambda: readers.open_s3(url, direct=False),
        "s3-direct": lambda: readers.open_s3(url, workers=2),
        "hsds-h5pyd": lambda: readers.open_hsds(domain, direct=False),
        "hsds-direct": lambda: readers.open_hsds(domain, workers=2),
    }
    for label, opener in openers.items():
        assert_identical(run(opener), want, label)
    with readers.open_hsds(domain) as src:  # the carousel path reads the bytes from S3, not through HSDS
        compute_orbit(src, Parameters())
        assert src._direct is not None and src._direct.stats.requests > 0
