"""`python -m loader [--prefix P] [--dry-run]`: queue index requests for the readable archive files.

Prints the run's report (JSON) on stdout; logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta

import typer

from datacarousel import aws
from datacarousel.config import Settings
from datacarousel.errors import ConfigError, run_one_line
from datacarousel.files_table import FilesTable
from datacarousel.times import utcnow
from loader.adapters import DEFAULT_WORKERS, run
from loader.core import DEFAULT_REQUEUE_AFTER
from loader.ledger import IndexRequestLedger, LedgerWriteError

log = logging.getLogger("loader")

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    prefix: str | None = typer.Option(None, "--prefix", help="Key prefix to list (default: DC_ARCHIVE_PREFIX)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List and decide, send nothing, write nothing."),
    requeue_after_hours: float = typer.Option(
        DEFAULT_REQUEUE_AFTER.total_seconds() / 3600,
        "--requeue-after-hours",
        help="Queue a file again when its last request is older than this and it is still not indexed.",
    ),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", min=1, max=64, help="Parallel AWS calls."),
) -> None:
    try:
        settings = Settings.from_env(need=["archive_bucket", "index_queue_url", "files_table", "index_requests_table"])
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    dynamodb = aws.client("dynamodb")  # no region, the embedded environment down: one line, exit 2 (the edge)
    aws.check_credentials()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        report = run(
            aws.client("s3"),
            aws.client("sqs"),
            FilesTable(dynamodb, settings.require("files_table")),
            IndexRequestLedger(dynamodb, settings.require("index_requests_table")),
            bucket=settings.require("archive_bucket"),
            queue_url=settings.require("index_queue_url"),
            prefix=settings.archive_prefix if prefix is None else prefix,
            dry_run=dry_run,
            now=utcnow(),
            requeue_after=timedelta(hours=requeue_after_hours),
            workers=workers,
        )
    except LedgerWriteError as exc:
        # Nothing is lost: a request is recorded after it is sent, so a later run sends again both the
        # requests this run sent but could not record and those it never reached.
        typer.echo(f"loader: stopped: {exc}; run the loader again (it sends what was not recorded)", err=True)
        raise typer.Exit(1) from exc
    print(json.dumps(report.as_dict(), indent=2))  # noqa: T201 - the report is this program's output
    if report.send_failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    # Every failure ends in one line on stderr and its exit code (2: no retry fixes it), never a traceback.
    sys.exit(run_one_line(lambda: typer.main.get_command(app).main(standalone_mode=False)))
