"""`datacarousel generate` and `datacarousel catalogue` from the command line."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
from typer.testing import CliRunner

from datacarousel import naming
from workbench.cli import app

runner = CliRunner()


def test_generate_writes_several_orbits(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--orbits", "85079-85080", "--preset", "tiny", "--out", str(tmp_path),
                                 "--seed", "2", "--defect", "ceres_without_fm1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [naming.BasicFusionName.for_orbit(o).file_name for o in (85079, 85080)]
    with h5py.File(tmp_path / names[0]) as h5:
        assert h5.attrs["synthetic_seed"] == 2 and h5.attrs["synthetic_defects"] == b"ceres_without_fm1"
    assert str(tmp_path / names[1]) in result.output


def test_generate_refuses_bad_arguments(tmp_path: Path) -> None:
    for args in (["--orbit", "85079", "--preset", "huge"], ["--orbit", "85079", "--defect", "gremlins"],
                 ["--orbits", "9-5"], []):  # fmt: skip
        result = runner.invoke(app, ["generate", "--out", str(tmp_path), *args])
        assert result.exit_code != 0, args
    assert list(tmp_path.iterdir()) == []


def test_catalogue_command_writes_every_orbit(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.csv"
    result = runner.invoke(app, ["catalogue", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 84_303 and rows[-1]["orbit"] == "85302"
    assert "84303 files" in result.output
