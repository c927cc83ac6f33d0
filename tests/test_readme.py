"""The README documents every command and environment variable; this keeps it honest."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

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


def _readme_commands() -> list[list[str]]:
    """Every `datacarousel ...` command of the README's sh blocks, as its arguments (comments dropped)."""
    found: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command: list[str] | None = None
            starts = True  # the next token starts a command
            for token in [*shlex.split(line, comments=True), "&&"]:
                if token in ("&&", "||", ";", "|") or token.startswith("$("):
                    if command:
                        found.append(command)
                    command, starts = None, True
                    continue
                if command is not None:
                    command.append(token)
                elif starts and token.removeprefix("$(") == "datacarousel":
                    command = []
                starts = False
    return found


def test_every_readme_command_parses_as_written() -> None:
    """The researcher's session works verbatim: each command's options and arguments are the CLI's."""
    commands = _readme_commands()
    assert any(c[:1] == ["generate"] for c in commands) and any(c[:1] == ["submit"] for c in commands)
    for args in commands:
        command: Any = typer.main.get_group(app)
        parent, rest = None, list(args)
        while hasattr(command, "resolve_command") and rest:  # a group: on to its subcommand
            parent = command.make_context(str(command.name), [], parent=parent, resilient_parsing=True)
            _, command, rest = command.resolve_command(parent, rest)
        try:
            command.make_context(str(command.name), rest, parent=parent)
        except Exception as exc:  # typer's own click: a UsageError
            raise AssertionError(f"README: datacarousel {shlex.join(args)}: {exc}") from None


def _tracked_text_files() -> list[Path]:
    suffixes = {".md", ".py", ".toml", ".sh", ".txt", ".cfg"}
    skip = {".venv", "var", ".git", "build", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    return [
        p for p in ROOT.rglob("*") if p.suffix in suffixes and p.is_file() and not skip & set(p.relative_to(ROOT).parts)
    ]


def test_no_file_points_outside_the_repository() -> None:
    """The project stands alone: the specs it was built from are restated in docs/, never cited by path."""
    outside = re.compile(r"\.\./shared|shared/(specs|notes)|[A-Z_]+_LAYOUT\.md|COMPUTE_RADIANCE\.md|LOCAL_SERVICES\.md")
    pointing = sorted(
        f"{p.relative_to(ROOT)}:{n}"
        for p in _tracked_text_files()
        if p.name != "test_readme.py"
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if outside.search(line)
    )
    assert not pointing, f"these lines cite files outside the repository: {pointing}"


def test_every_relative_link_of_the_docs_resolves() -> None:
    """A link in the README or docs/ to a file of the project names a file that exists."""
    broken = []
    for doc in [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to missing files: {broken}"
