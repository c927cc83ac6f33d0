"""Job definitions described once (`definition.toml`): parsing, parameter checks, and what is derived from them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import stack_template
from datacarousel import definitions, registry
from datacarousel.definitions import JobDefinition, Parameter, ParameterType
from datacarousel.errors import BadInput, ConfigError
from workbench.commands import carousel as carousel_commands

ROOT = Path(__file__).resolve().parents[2]
RADIANCE = registry.get("ComputeRadiance")

BOX = {
    "name": "Box",
    "summary": "A box.",
    "image": "box",
    "image_parameter": "BoxImage",
    "command": ["python", "-m", "box"],
    "vcpus": 1,
    "memory_mib": 512,
    "timeout_s": 60,
    "visibility_timeout_s": 60,
    "constraints": [["lat_min", "<", "lat_max"]],
    "parameters": {
        "lat_min": {"type": "float", "default": -10, "low": -90, "high": 90, "help": "South."},
        "lat_max": {"type": "float", "default": 10, "low": -90, "high": 90, "help": "North."},
        "bands": {"type": "list", "default": "a,b", "choices": ["a", "b", "c"], "help": "Bands."},
        "count": {"type": "int", "default": 3, "low": 1, "help": "How many."},
    },
}


def box(**changes: Any) -> JobDefinition:
    return JobDefinition.from_dict({**BOX, **changes}, "box.toml")


def test_every_builtin_description_is_found_without_importing_its_analysis() -> None:
    names = {path.parent.name for path in registry.builtin_files()}
    assert "compute_radiance" in names
    assert RADIANCE.name == "ComputeRadiance" and RADIANCE.reducer and RADIANCE.result_suffix == ".npz"
    assert RADIANCE.source.endswith("batch_jobs/compute_radiance/definition.toml")


def test_parameters_are_checked_normalised_and_completed_with_defaults() -> None:
    assert RADIANCE.validate({"resolution": 5, "vza_max": "18"}) == {
        "resolution": "5.0",
        "vza_max": "18.0",
        "modis_category": "VIS",
        "misr_camera": "AN",
        "ceres_mode": "ct",
    }
    with pytest.raises(BadInput) as err:
        RADIANCE.validate({"resolution": "fine", "vza_max": 95, "colour": "red", "ceres_mode": "some"})
    text = str(err.value)
    for expected in ("resolution must be a number", "vza_max must lie in", "unknown parameter 'colour'", "ceres_mode"):
        assert expected in text
    assert "\n" not in text


@pytest.mark.parametrize("bad", ["nan", "NaN", float("nan"), "inf", "-inf", float("inf")])
def test_nan_and_infinity_are_refused_by_name(bad: Any) -> None:
    # NaN compares false with every bound: a range check alone would let it through.
    with pytest.raises(BadInput, match="resolution must be a finite number"):
        RADIANCE.validate({"resolution": bad})


def test_unknown_definitions_are_refused_with_a_hint() -> None:
    with pytest.raises(BadInput, match=r"unknown job definition 'RmRf'.*ComputeRadiance.*definitions list"):
        registry.get("RmRf")


def test_lists_ints_and_constraints() -> None:
    d = box()
    assert d.validate({}) == {"lat_min": "-10.0", "lat_max": "10.0", "bands": "a,b", "count": "3"}
    assert d.values(d.validate({"bands": " c , a", "count": "7"}))["bands"] == ("c", "a")
    for given_, message in (
        ({"lat_min": 20}, "needs lat_min < lat_max"),
        ({"lat_min": 10}, "needs lat_min < lat_max"),  # an empty box
        ({"bands": "a,d"}, "unknown 'd'"),
        ({"bands": "a,,b"}, "no empty entry"),
        ({"bands": "a,a"}, "twice"),
        ({"count": "2.5"}, "whole number"),
        ({"count": 0}, "count must lie in 1.."),
        ({"lat_max": True}, "must be a number"),
    ):
        with pytest.raises(BadInput, match=message):
            d.validate(given_)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_either_refused_or_kept_inside_its_bounds(value: float) -> None:
    spec = RADIANCE.parameter("vza_max")
    try:
        text = spec.canonical(value)
    except ValueError:
        assert not math.isfinite(value) or not (spec.low or 0) <= value <= (spec.high or 0)
        return
    assert spec.low is not None and spec.high is not None and spec.low <= float(text) <= spec.high
    assert spec.canonical(text) == text  # canonical spellings are fixed points


def test_a_description_round_trips_through_its_dict() -> None:
    for d in (RADIANCE, box()):
        again = JobDefinition.from_dict(json.loads(json.dumps(d.to_dict())))
        assert again == d


def test_bad_descriptions_name_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must match"):
        box(name="Trailing\n")  # a name is all of the string, not a prefix
    with pytest.raises(ConfigError) as err:
        box(name="no spaces", vcpus=0, colour="red", constraints=[["lat_min", "<", "nope"]], command=[])
    text = str(err.value)
    for expected in ("box.toml", "name 'no spaces'", "'vcpus' must be at least 1", "unknown key(s) colour", "nope"):
        assert expected in text
    assert "command" in text
    with pytest.raises(ConfigError, match="default: lat_min must lie in"):
        box(parameters={"lat_min": {"type": "float", "default": 100, "low": -90, "high": 90, "help": "x"}})
    with pytest.raises(ConfigError, match="type must be one of"):
        box(parameters={"x": {"type": "complex", "default": 1, "help": "x"}})
    for reserved in ("mode", "object"):
        with pytest.raises(ConfigError, match=f"'{reserved}'"):
            box(parameters={reserved: {"type": "str", "default": "x", "help": "x"}})
    broken = tmp_path / "definition.toml"
    broken.write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        definitions.load(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        definitions.load(tmp_path / "missing.toml")


def test_the_batch_command_passes_the_mode_and_every_parameter() -> None:
    assert RADIANCE.batch_command() == [
        *RADIANCE.command,
        "Ref::mode",
        "--object",
        "Ref::object",
        *(part for p in RADIANCE.parameters for part in (definitions.option_name(p.name), f"Ref::{p.name}")),
    ]
    assert RADIANCE.batch_parameters() == {"mode": "queue", "object": "none", **RADIANCE.defaults()}
    described = Parameter("vza_max", ParameterType.FLOAT, "18.0", "Largest angle.", 0.01, 90.0).describe()
    assert described == "vza_max (float, default 18.0; 0.01..90): Largest angle."


def test_a_default_changed_in_the_description_reaches_template_cli_help_and_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing but the default in definition.toml changes; the template, the CLI and the checks follow."""
    original = (ROOT / "batch_jobs" / "compute_radiance" / "definition.toml").read_text()
    assert "default = 0.5\n" in original
    changed = tmp_path / "compute_radiance" / "definition.toml"
    changed.parent.mkdir()
    changed.write_text(original.replace("default = 0.5\n", "default = 0.25\n"))
    monkeypatch.setattr(registry, "builtin_files", lambda: [changed])
    registry.builtin.cache_clear()
    try:
        # Validation: a job that sets nothing gets the new default.
        assert registry.get("ComputeRadiance").validate({})["resolution"] == "0.25"
        # The template: the Batch job definition's parameter default.
        template = json.loads(stack_template.template_json())
        (radiance,) = [
            r["Properties"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::Batch::JobDefinition" and r["Properties"]["JobDefinitionName"] == "ComputeRadiance"
        ]
        assert radiance["Parameters"]["resolution"] == "0.25"
        # The CLI: `submit --help` lists the parameter with its default.
        app = typer.Typer()
        carousel_commands.register(app)
        shown = CliRunner().invoke(app, ["submit", "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
        assert shown.exit_code == 0
        assert "resolution (float, default 0.25; 0.01..10)" in shown.output
    finally:
        registry.builtin.cache_clear()  # the next call reads the real files again (monkeypatch undoes the patch)
