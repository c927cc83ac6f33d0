"""The orbit readers (datacarousel.orbit): what the radiance job asks for, read the same on every path."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from datacarousel import orbit
from workbench.synthetic.generator import generate_orbit

FIELDS = ("EV_250_Aggr1km_RefSB", "EV_500_Aggr1km_RefSB")


@pytest.fixture(scope="module")
def orbit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(85079, tmp_path_factory.mktemp("tiny"), preset="tiny", seed=7)


def _day_granule(path: Path) -> str:
    with h5py.File(path, "r") as f:
        return next(g for g in f["MODIS"] if f"_1KM/Data_Fields/{FIELDS[0]}" in f["MODIS"][g])


@pytest.mark.parametrize("direct", [True, False])
def test_modis_bands_stacks_both_refsb_arrays_and_their_scales(orbit_file: Path, direct: bool) -> None:
    granule = _day_granule(orbit_file)
    with h5py.File(orbit_file, "r") as f:
        data = [f[f"MODIS/{granule}/_1KM/Data_Fields/{name}"] for name in FIELDS]
        expected = np.concatenate([d[()] for d in data]).astype(np.float32)
        radiance_scales = np.concatenate([d.attrs["radiance_scales"][: d.shape[0]] for d in data])
    with orbit.open_local(orbit_file, direct=direct, workers=2) as source:
        bands, rad, ref = source.modis_bands(granule, FIELDS)
    assert bands.dtype == np.float32 and bands.flags.c_contiguous
    assert bands.tobytes() == expected.tobytes()
    assert np.array_equal(rad, radiance_scales.astype(np.float32)) and len(ref) == len(bands) == 7


def test_modis_bands_of_different_sizes_are_missing_data(orbit_file: Path, tmp_path: Path) -> None:
    granule = _day_granule(orbit_file)
    changed = tmp_path / orbit_file.name
    changed.write_bytes(orbit_file.read_bytes())
    with h5py.File(changed, "r+") as f:
        group = f[f"MODIS/{granule}/_1KM/Data_Fields"]
        attrs = dict(group[FIELDS[1]].attrs)
        narrower = group[FIELDS[1]][:, :, :-1]
        del group[FIELDS[1]]
        group.create_dataset(FIELDS[1], data=narrower)
        group[FIELDS[1]].attrs.update(attrs)
    with orbit.open_local(changed) as source, pytest.raises(orbit.MissingData, match="band arrays of different sizes"):
        source.modis_bands(granule, FIELDS)
