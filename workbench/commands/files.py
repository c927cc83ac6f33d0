"""`datacarousel files`: researcher queries over BasicFusionFiles (index queries only, never a Scan).

datacarousel files --year-month 2015.12
datacarousel files --path 22 [--orbits 85000-85100]
datacarousel files --orbits 85000-85100
datacarousel files --state INDEXED [--format table]
datacarousel files --state FAILED      (each with its reason, `error`: what `datacarousel retry` undoes)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from datacarousel import aws
from datacarousel.config import Settings
from datacarousel.contract import FileAttr, FileState
from datacarousel.errors import ConfigError
from datacarousel.files_table import FilesTable

COLUMNS = (
    FileAttr.ORBIT,
    FileAttr.FILE_NAME,
    FileAttr.YEAR_MONTH,
    FileAttr.MISR_PATH,
    FileAttr.STATE,
    FileAttr.SIZE,
    FileAttr.MODIS_DAY_GRANULES,
    FileAttr.MODIS_NIGHT_GRANULES,
    FileAttr.CERES_GRANULES,
    FileAttr.DOMAIN,
)


def parse_orbits(text: str) -> tuple[int, int]:
    """`85000-85100` or `85000` -> (first, last)."""
    parts = text.split("-")
    try:
        if len(parts) == 1:
            first = last = int(parts[0])
        elif len(parts) == 2:
            first, last = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"expected FIRST-LAST orbit numbers, got {text!r}") from None
    if first > last:
        raise typer.BadParameter(f"empty orbit range {text!r}")
    return first, last


def select(
    table: FilesTable,
    *,
    year_month: str | None,
    path: int | None,
    orbits: tuple[int, int] | None,
    state: str | None,
) -> Iterator[dict[str, Any]]:
    """One index query: year-month, MISR path or state (each optionally within an orbit range), or an orbit range."""
    chosen = [x is not None for x in (year_month, path, state)]
    if sum(chosen) > 1:
        raise typer.BadParameter("give one of --year-month, --path, --state (optionally with --orbits)")
    if year_month is not None:
        return table.by_year_month(year_month, orbits=orbits)
    if path is not None:
        return table.by_misr_path(path, orbits=orbits)
    if state is not None:
        return table.by_state(FileState(state.upper()), orbits=orbits)
    if orbits is not None:
        return table.by_orbits(*orbits)
    raise typer.BadParameter("give one of --year-month, --path, --orbits, --state")


def with_reasons(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every FAILED file carries its reason (`error`), empty if none was recorded."""
    for item in items:
        if item.get(FileAttr.STATE) == FileState.FAILED.value:
            item.setdefault(FileAttr.ERROR, "")
    return items


def _print_table(items: list[dict[str, Any]]) -> None:
    # A FAILED file's reason is a column of its own (`datacarousel retry --reason TEXT` matches it).
    columns = COLUMNS + ((FileAttr.ERROR,) if any(FileAttr.ERROR in item for item in items) else ())
    out = Table(title=f"BasicFusionFiles: {len(items)} file(s)")
    for column in columns:
        out.add_column(column, overflow="fold")
    for item in items:
        out.add_row(*(Text(str(item.get(c, ""))) for c in columns))  # Text: a reason's "[...]" is not markup
    Console().print(out)


def register(app: typer.Typer) -> None:
    @app.command("files")
    def files(
        year_month: str | None = typer.Option(None, "--year-month", help="YYYY.MM, e.g. 2015.12"),
        path: int | None = typer.Option(None, "--path", min=1, max=233, help="MISR path 1..233"),
        orbits: str | None = typer.Option(None, "--orbits", help="Orbit range FIRST-LAST, e.g. 85000-85100"),
        state: str | None = typer.Option(
            None, "--state", help="One of " + ", ".join(s.value for s in FileState), case_sensitive=False
        ),
        output: str = typer.Option("json", "--format", help="json or table"),
    ) -> None:
        """List BasicFusion files by year-month, MISR path, orbit range or state (DynamoDB index queries)."""
        if state is not None and state.upper() not in {s.value for s in FileState}:
            raise typer.BadParameter(f"unknown state {state!r}", param_hint="--state")
        if output not in ("json", "table"):
            raise typer.BadParameter("--format must be json or table")
        try:
            settings = Settings.from_env(need=["files_table"])
        except ConfigError as exc:
            typer.secho(str(exc), err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from exc
        table = FilesTable(aws.client("dynamodb"), settings.require("files_table"))
        try:
            items = list(
                select(
                    table,
                    year_month=year_month,
                    path=path,
                    orbits=parse_orbits(orbits) if orbits else None,
                    state=state,
                )
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        with_reasons(items)
        if output == "json":
            print(json.dumps(items, indent=2, sort_keys=True))  # noqa: T201 - the command's output
        else:
            _print_table(items)
