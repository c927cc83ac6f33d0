"""RegionExtract's definition.toml: the agreed schema, and the same defaults and choices as the science module."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from batch_jobs.region_extract import layout
from batch_jobs.region_extract.science import DEFAULT_PARAMETERS, Box, selection_from_parameters

DEFINITION = Path(__file__).parents[2] / "batch_jobs" / "region_extract" / "definition.toml"


@pytest.fixture(scope="module")
def described() -> dict[str, Any]:
    return tomllib.loads(DEFINITION.read_text(encoding="utf-8"))


def test_schema_keys_and_values(described: dict[str, Any]) -> None:
    assert described["name"] == "RegionExtract" and described["image"] == "datacarousel-region-extract"
    assert described["image_parameter"] == "RegionExtractImage"
    assert described["command"] == ["python", "-m", "batch_jobs.region_extract"]
    assert described["result_suffix"] == ".nc" and described["reducer"] is True
    assert described["constraints"] == [["lat_min", "<", "lat_max"], ["lon_min", "!=", "lon_max"]]
    for key in ("summary", "vcpus", "memory_mib", "timeout_s", "visibility_timeout_s"):
        assert key in described
    for spec in described["parameters"].values():
        assert set(spec) <= {"type", "default", "low", "high", "choices", "help"} and spec["help"]


def test_defaults_and_choices_are_the_science_modules(described: dict[str, Any]) -> None:
    parameters = described["parameters"]
    assert list(parameters) == list(DEFAULT_PARAMETERS)
    for name, spec in parameters.items():
        default = repr(float(spec["default"])) if spec["type"] == "float" else spec["default"]
        assert default == DEFAULT_PARAMETERS[name], name
    assert tuple(parameters["instruments"]["choices"]) == layout.INSTRUMENTS
    assert tuple(parameters["modis_bands"]["choices"]) == layout.MODIS_BANDS
    assert tuple(parameters["misr_camera"]["choices"]) == layout.MISR_CAMERAS
    assert tuple(parameters["misr_bands"]["choices"]) == layout.MISR_BANDS
    assert tuple(parameters["ceres_instrument"]["choices"]) == layout.CERES_INSTRUMENTS
    for name, limit in (("lat_min", 90.0), ("lat_max", 90.0), ("lon_min", 180.0), ("lon_max", 180.0)):
        assert (parameters[name]["low"], parameters[name]["high"]) == (-limit, limit)


def test_the_projects_parser_reads_it_and_agrees_with_the_selection() -> None:
    definitions = pytest.importorskip("datacarousel.definitions")
    definition = definitions.load(DEFINITION)
    assert definition.validate({}) == DEFAULT_PARAMETERS
    canonical = definition.validate({"lon_min": 170, "lon_max": "-170", "modis_bands": "26,1"})
    selection = selection_from_parameters(canonical)
    assert selection.box == Box(30, 40, 170, -170) and selection.modis_bands == ("26", "1")
    with pytest.raises(definitions.BadInput):
        definition.validate({"lat_min": "40"})
    with pytest.raises(ValueError, match="lat_min must be smaller"):
        selection_from_parameters({"lat_min": "40"})
