"""A synthetic orbit file says so (its `synthetic_generator` root attribute), and ComputeRadiance's
results, composites and maps carry that on; a file without the attribute (real data) gives none."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from PIL import Image

from batch_jobs.compute_radiance import composite as comp
from batch_jobs.compute_radiance import quicklook
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import SYNTHETIC_FILE_ATTRIBUTE, load_npz, npz_bytes
from datacarousel import orbit as readers
from workbench.synthetic import generate_orbit
from workbench.synthetic.generator import GENERATOR_VERSION

ORBIT = 85079


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(ORBIT, tmp_path_factory.mktemp("tiny"), preset="tiny", seed=0)


@pytest.fixture(scope="module")
def real_like_file(synthetic_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same orbit without the generator's root attributes, as a real BasicFusion file has them."""
    copy = tmp_path_factory.mktemp("real") / synthetic_file.name
    copy.write_bytes(synthetic_file.read_bytes())
    with h5py.File(copy, "r+") as f:
        for name in [n for n in f.attrs if n.startswith("synthetic_")]:
            del f.attrs[name]
    return copy


def test_the_generator_marks_its_files_with_the_attribute_the_analysis_reads(synthetic_file: Path) -> None:
    with h5py.File(synthetic_file, "r") as f:
        assert f.attrs[SYNTHETIC_FILE_ATTRIBUTE].decode() == GENERATOR_VERSION


def _result(path: Path) -> dict:
    with readers.open_local(path) as source:
        return load_npz(npz_bytes(compute_orbit(source).arrays()))


def test_a_synthetic_orbit_gives_a_marked_result_and_map(synthetic_file: Path, tmp_path: Path) -> None:
    result = _result(synthetic_file)
    assert str(result[comp.SYNTHETIC_MARKER]) == GENERATOR_VERSION
    month = comp.Composite("2015.12")
    month.add(result)
    arrays = month.to_arrays()
    assert str(arrays[comp.SYNTHETIC_MARKER]) == GENERATOR_VERSION
    png = quicklook.write_quicklooks(arrays, tmp_path, "m")[0]
    with Image.open(png) as image:
        assert f"synthetic data ({GENERATOR_VERSION})" in str(image.info["Title"])


def test_a_file_without_the_attribute_gives_an_unmarked_result_and_map(real_like_file: Path, tmp_path: Path) -> None:
    result = _result(real_like_file)
    assert comp.SYNTHETIC_MARKER not in result
    month = comp.Composite("2015.12")
    month.add(result)
    png = quicklook.write_quicklooks(month.to_arrays(), tmp_path, "m")[0]
    with Image.open(png) as image:
        assert "synthetic" not in str(image.info["Title"]).lower()
