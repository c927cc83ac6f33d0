"""`datacarousel definitions list|show`: the analyses a researcher can submit, from their descriptions."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datacarousel import registry
from datacarousel.errors import BadInput, ConfigError

definitions_app = typer.Typer(help="The job definitions (analyses) researchers can submit.", no_args_is_help=True)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@definitions_app.command("list")
def list_definitions(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """One line per job definition: its name, what it does, its size and whether it reduces."""
    try:
        known = registry.known()
    except ConfigError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps({name: d.to_dict() for name, d in known.items()}, indent=2))  # noqa: T201
        return
    table = Table("definition", "does", "vCPU", "memory", "reducer", box=None)
    for d in known.values():
        table.add_row(d.name, d.summary, str(d.vcpus), f"{d.memory_mib} MiB", "yes" if d.reducer else "no")
    Console(width=160).print(table)


@definitions_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The job definition, e.g. ComputeRadiance.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A job definition's parameters with their types, defaults and allowed values."""
    try:
        definition = registry.get(name)
    except (BadInput, ConfigError) as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps(definition.to_dict(), indent=2))  # noqa: T201
        return
    print(definition.help_text())  # noqa: T201


def register(app: typer.Typer) -> None:
    app.add_typer(definitions_app, name="definitions")
