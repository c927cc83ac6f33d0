"""`datacarousel files`: researcher queries over BasicFusionFiles (index queries only, never a Scan).

datacarousel files --year-month 2015.12 [--path 22,23]
datacarousel files --path 22 [--orbits 85000-85100]
datacarousel files --orbits 85000-85100
datacarousel files --years 2015 --months 11,12
datacarousel files --state INDEXED [--format table]
datacarousel files --state FAILED      (each with its reason, `error`: what `datacarousel retry` undoes)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import chain
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from datacarousel import aws
from datacarousel.config import Settings
from datacarousel.contract import FileAttr, FileState
from datacarousel.errors import BadInput, ConfigError
from datacarousel.files_table import FilesTable
from workbench.commands import selection
from workbench.commands.selection import Selection

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


def select(table: FilesTable, chosen: Selection, state: str | None) -> list[dict[str, Any]]:
    """Index queries only: one per month named (else per MISR path, else of the state, else of the orbit
    range), each within the orbit range; the other options filter what they return. In orbit order."""
    orbits = chosen.orbits
    found: Iterable[dict[str, Any]]
    if chosen.by_month:
        found = chain.from_iterable(table.by_year_month(ym, orbits=orbits) for ym in chosen.month_list())
    elif chosen.paths:
        found = chain.from_iterable(table.by_misr_path(p, orbits=orbits) for p in chosen.paths)
    elif state is not None:
        found = table.by_state(FileState(state.upper()), orbits=orbits)
    elif orbits is not None:
        found = table.by_orbits(*orbits)
    else:
        raise BadInput("give --year-month, --years/--months, --path, --orbits or --state: the whole archive is 2.5 PB")
    unique: dict[str, dict[str, Any]] = {}
    for item in found:
        if chosen.keeps(int(item[FileAttr.ORBIT])) and (state is None or item.get(FileAttr.STATE) == state.upper()):
            unique.setdefault(str(item[FileAttr.FILE_NAME]), item)
    return sorted(unique.values(), key=lambda item: (int(item[FileAttr.ORBIT]), str(item[FileAttr.FILE_NAME])))


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
    def files(  # noqa: PLR0917 - typer maps options to parameters
        year_month: selection.YearMonthOption = None,
        years: selection.YearsOption = None,
        months: selection.MonthsOption = None,
        path: selection.PathOption = None,
        orbits: selection.OrbitsOption = None,
        state: str | None = typer.Option(
            None, "--state", help="One of " + ", ".join(s.value for s in FileState), case_sensitive=False
        ),
        output: str = typer.Option("json", "--format", help="json or table"),
        paths: selection.PathsAlias = None,
    ) -> None:
        """List BasicFusion files by year-month, MISR path, orbit range or state (DynamoDB index queries)."""
        try:
            chosen = selection.parse_selection(
                year_month=year_month, years=years, months=months, path=path, orbits=orbits, paths=paths
            )
            if state is not None and state.upper() not in {s.value for s in FileState}:
                raise BadInput(f"--state {state!r}: choose one of {', '.join(s.value for s in FileState)}")
            if output not in ("json", "table"):
                raise BadInput(f"--format {output!r}: choose json or table")
            settings = Settings.from_env(need=["files_table"])
            table = FilesTable(aws.client("dynamodb"), settings.require("files_table"))
            items = select(table, chosen, state)
        except (BadInput, ConfigError, ValueError) as exc:
            raise selection.refuse(exc) from None
        with_reasons(items)
        if output == "json":
            print(json.dumps(items, indent=2, sort_keys=True))  # noqa: T201 - the command's output
        else:
            _print_table(items)
