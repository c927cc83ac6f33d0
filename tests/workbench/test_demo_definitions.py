"""`datacarousel demo --definition NAME --param NAME=VALUE`: the choice is checked before anything starts.

A bad definition, a bad parameter or an option of another definition ends in one line on stderr
and exit code 2, with no traceback, and leaves no state directory, output folder or process behind.
The end-to-end run of another definition is in test_demo.py (it needs the embedded environment).
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from datacarousel import registry
from tests.cli_in_process import run_cli
from workbench import demo


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--definition", "Nope"], "unknown job definition 'Nope'"),
        (["--param", "lat_min=nan"], "unknown parameter 'lat_min'"),  # not a ComputeRadiance parameter
        (["--definition", "RegionExtract", "--param", "lat_min=nan"], "lat_min must be a finite number"),
        (["--definition", "RegionExtract", "--resolution", "1"], "--resolution is a ComputeRadiance option"),
        (["--definition", "RegionExtract", "--param", "lat_min=50"], "needs lat_min < lat_max"),
        (["--param", "resolution"], "--param takes NAME=VALUE"),
        (["--resolution", "0.25", "--param", "resolution=1"], "the same parameter"),
    ],
    ids=["unknown-definition", "unknown-parameter", "nan", "resolution-elsewhere", "empty-box", "no-value", "twice"],
)
def test_a_bad_definition_or_parameter_ends_in_one_line_before_anything_starts(
    tmp_path: Path, args: list[str], says: str
) -> None:
    state, out = tmp_path / "state", tmp_path / "out"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done = run_cli(["demo", *args, "--state-dir", str(state), "--out", str(out)], {})
    assert done.code == 2 and done.escaped is None, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not state.exists() and not out.exists()  # nothing started, nothing written
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_the_default_demo_submits_compute_radiance_with_its_defaults() -> None:
    options = demo.DemoOptions()
    radiance = registry.get("ComputeRadiance")
    assert options.job_definition() == radiance
    assert options.job_parameters() == radiance.defaults()  # the resolution the demo always used: 0.5
    assert options.job_parameters()["resolution"] == "0.5"
    shortcut = demo.DemoOptions(resolution=0.25).job_parameters()
    assert shortcut == demo.DemoOptions(params={"resolution": "0.25"}).job_parameters() != radiance.defaults()


def test_another_definition_takes_its_description_s_defaults_and_given_parameters() -> None:
    region = registry.get("RegionExtract")
    assert demo.DemoOptions(definition="RegionExtract").job_parameters() == region.defaults()
    given = demo.DemoOptions(definition="RegionExtract", params={"instruments": "MISR", "lat_min": "31"})
    assert given.job_parameters() == {**region.defaults(), "instruments": "MISR", "lat_min": "31.0"}
    with pytest.raises(demo.DemoError, match=r"--month.*unknown job definition"):  # every problem at once
        demo.DemoOptions(month="2016.01", definition="Nope").validate()


def test_each_definition_is_summarised_by_its_own_summariser_or_the_generic_one() -> None:
    assert demo.summariser("ComputeRadiance").collect is demo.collect_radiance
    assert demo.summariser("RegionExtract").collect is demo.collect_region
    assert demo.summariser("SomeoneElsesAnalysis") is demo.GENERIC
    assert set(demo.SUMMARISERS) <= set(registry.builtin())


def test_result_keys_are_one_per_orbit_and_reduced_outputs_are_not() -> None:
    region, radiance = registry.get("RegionExtract"), registry.get("ComputeRadiance")
    orbit = "results/job-1/2015.12/TERRA_BF_L1B_O84948_20151207161521_F000_V001.nc"
    assert demo.is_result_key(orbit, region) and not demo.is_result_key(orbit, radiance)
    assert not demo.is_result_key("results/job-1/timeseries/MODIS.nc", region)
    assert not demo.is_result_key("results/job-1/composites/2015.12.npz", radiance)
    assert not demo.is_result_key("results/job-1/reduced.json", region)
    assert demo.is_result_key("results/job-1/2015.12/CLIMARBLE_O84948_20151207161521_F000_V001.npz", radiance)
