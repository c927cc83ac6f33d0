"""The README documents every command and environment variable; this keeps it honest."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from datacarousel import contract, registry
from datacarousel.config import setting_env_names
from workbench import definitions_table
from workbench.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _cli_commands() -> set[str]:
    group = typer.main.get_group(app)
    names: set[str] = set()
    for name, command in group.commands.items():
        names.add(name)
        for sub in getattr(command, "commands", {}):
            names.add(f"{name} {sub}")
    return names


def test_readme_gives_the_two_commands_that_make_reaches() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"Makefile has no {target} target"


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_cli_command_is_documented() -> None:
    missing = sorted(c for c in _cli_commands() if f"datacarousel {c}" not in README)
    assert not missing, f"README does not document: {missing}"


def test_every_environment_variable_is_documented() -> None:
    names = set(setting_env_names().values())
    names |= {v for k, v in vars(contract.Env).items() if k.isupper()}
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"README does not document: {missing}"


def test_every_dc_variable_the_code_reads_is_documented() -> None:
    """Any `DC_*` name spelled in the project's code (workers, CLI, tests, benches) is in the README."""
    sources = [
        p
        for d in (
            "datacarousel",
            "loader",
            "index_file",
            "record_metadata",
            "batch_jobs",
            "carousel",
            "stack_template",
            "tests",
            "bench",
            "scripts",
        )
        for p in (ROOT / d).rglob("*.py")
    ]
    used: set[str] = set()
    for path in [*sources, ROOT / "stack.py"]:
        used |= set(re.findall(r"[\"'](DC_[A-Z][A-Z0-9_]+)[\"']", path.read_text()))
    missing = sorted(n for n in used if f"`{n}`" not in README)
    assert not missing, f"README does not document: {missing}"


def test_the_definitions_table_is_the_descriptions() -> None:
    """Change a description and this fails until `python -m workbench.definitions_table` is pasted back."""
    assert definitions_table.markdown(registry.builtin().values()) in README
