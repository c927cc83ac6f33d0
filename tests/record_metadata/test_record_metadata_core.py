"""record_metadata's pure extraction, checked on synthetic orbit files read with h5py."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacarousel import naming
from datacarousel.naming import BasicFusionName
from record_metadata.adapters import summarise
from record_metadata.core import build_metadata, daylit_block_range, instruments_present, modis_granule_counts
from workbench.synthetic.generator import generate_orbit

FILL = b"0000-00-00T00:00:00.000000Z"


@given(st.integers(0, 180), st.integers(0, 180))
def test_daylit_block_range_is_the_first_and_last_non_fill_block(a: int, b: int) -> None:
    first, last = sorted((a, b))
    bct = [FILL] * 180
    for i in range(first, last):
        bct[i] = b"2015-12-16T16:41:23.000000Z"
    expected = (first + 1, last) if last > first else (None, None)
    assert daylit_block_range(bct) == expected


def test_counts_and_instruments() -> None:
    assert modis_granule_counts({"granule_a": True, "granule_b": False, "granule_c": True, "other": True}) == (2, 1)
    assert instruments_present(["MODIS", "MISR", "SOMBlock_Time", "CERES"]) == ("CERES", "MISR", "MODIS")


@pytest.fixture(scope="module")
def orbit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(85079, tmp_path_factory.mktemp("orbit"), preset="tiny", seed=3)


def test_metadata_of_a_synthetic_orbit(orbit_file: Path) -> None:
    name = BasicFusionName.parse(orbit_file.name)
    with h5py.File(orbit_file, "r") as f:
        meta = build_metadata(name, "/home/u/bf/2015.12/" + name.file_name, summarise(f, orbit_file.stat().st_size))
        # Independent expectations, straight from the file.
        granules = list(f["MODIS"])
        day = [g for g in granules if "EV_250_Aggr1km_RefSB" in f[f"MODIS/{g}/_1KM/Data_Fields"]]
        bct = f["MISR/AN/BlockCenterTime"][()]
        daylit = [i + 1 for i, v in enumerate(bct) if not v.startswith(b"0000")]
        ceres = list(f["CERES"])
    assert meta.orbit == 85079 and meta.misr_path == 22 and meta.year_month == "2015.12"
    assert (meta.start_time, meta.end_time) == ("2015-12-16T16:09:10Z", "2015-12-16T17:48:03Z")
    assert (meta.year, meta.month, meta.day) == (2015, 12, 16)
    assert meta.instruments == ("ASTER", "CERES", "MISR", "MODIS", "MOPITT")
    assert meta.modis_day_granules == len(day) > 0
    assert meta.modis_night_granules == len(granules) - len(day) > 0
    assert meta.ceres_granules == len(ceres) >= 2
    assert (meta.misr_first_daylit_block, meta.misr_last_daylit_block) == (daylit[0], daylit[-1])
    assert 1 < daylit[0] < daylit[-1] < 180
    assert meta.size_bytes == orbit_file.stat().st_size
    assert naming.hsds_domain("/home/u/bf/", name) == meta.domain
