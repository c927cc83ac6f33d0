"""`python -m record_metadata [--reread]`: record the metadata of the indexed files under DC_HSDS_FOLDER
whose item does not hold it yet (every domain with --reread).

Prints the run's report (JSON) on stdout; exits 1 when a domain could not be read.
"""

from __future__ import annotations

import json
import logging
import sys

import typer

from datacarousel import aws
from datacarousel.config import Settings, check_hsds_socket
from datacarousel.errors import ConfigError, run_one_line
from datacarousel.files_table import FilesTable
from datacarousel.hsds import HsdsAccess
from datacarousel.hsds_target import HsdsTarget
from datacarousel.times import utcnow
from record_metadata.adapters import run

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    reread: bool = typer.Option(
        False, "--reread", help="Open and record every domain, also those whose metadata is current."
    ),
) -> None:
    try:
        settings = Settings.from_env(need=["files_table", "hsds_folder", "hs_endpoint", "hs_username", "hs_password"])
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    dynamodb = aws.client("dynamodb")  # no region, the embedded environment down: one line, exit 2 (the edge)
    aws.check_credentials()
    check_hsds_socket(settings.require("hs_endpoint"))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    target = HsdsTarget(
        HsdsAccess(
            endpoint=settings.require("hs_endpoint"),
            username=settings.require("hs_username"),
            password=settings.require("hs_password"),
        ),
        folder=settings.require("hsds_folder"),
    )
    report = run(FilesTable(dynamodb, settings.require("files_table")), target, utcnow(), reread=reread)
    print(json.dumps(report.as_dict(), indent=2))  # noqa: T201 - the report is this program's output
    if report.outcomes.get("error"):
        raise typer.Exit(1)


if __name__ == "__main__":
    # Every failure ends in one line on stderr and its exit code (2: no retry fixes it), never a traceback.
    sys.exit(run_one_line(lambda: typer.main.get_command(app).main(standalone_mode=False)))
