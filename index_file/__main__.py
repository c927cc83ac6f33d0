"""`python -m index_file [--max-messages N]`: drain DC_INDEX_QUEUE_URL, linking each file into HSDS.

Each linked domain also gets the restart points of the file's large whole-array chunks
(`--restart-points-min-mib`; see `datacarousel.hsds_restart_points`).

Prints the drain report (JSON) on stdout; logs go to stderr. SIGTERM (what AWS
Batch sends before stopping a job) ends the drain after the current message.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType

import typer

from datacarousel import aws
from datacarousel.chunkread import restart
from datacarousel.config import Settings, check_hsds_socket
from datacarousel.errors import ConfigError, run_one_line
from datacarousel.files_table import FilesTable
from datacarousel.hsds import HsdsAccess
from datacarousel.queue_worker import drain
from index_file.adapters import HsdsTarget, IndexFileHandler, RestartPointsPolicy

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

NEEDED = [
    "archive_bucket",
    "index_queue_url",
    "index_dlq_url",
    "files_table",
    "hsds_folder",
    "hs_endpoint",
    "hs_username",
    "hs_password",
]


@app.command()
def main(
    max_messages: int | None = typer.Option(None, "--max-messages", min=1, help="Stop after this many messages."),
    visibility_timeout: int = typer.Option(300, "--visibility-timeout", min=1, help="Seconds; renewed while busy."),
    wait_seconds: int = typer.Option(5, "--wait-seconds", min=0, max=20, help="Long-poll time of each receive."),
    forever: bool = typer.Option(False, "--forever", help="Keep polling when the queue is empty."),
    restart_points_min_mib: int = typer.Option(
        restart.MIN_CHUNK >> 20,
        "--restart-points-min-mib",
        min=0,
        help="Build restart points for whole-array chunks that inflate to at least this many MiB (0: none).",
    ),
) -> None:
    try:
        settings = Settings.from_env(need=NEEDED)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    sqs = aws.client("sqs")  # no region, the embedded environment down: one line, exit 2 (the edge)
    aws.check_credentials()
    check_hsds_socket(settings.require("hs_endpoint"))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("index_file").warning("SIGTERM: finishing the current message, then stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    target = HsdsTarget(
        HsdsAccess(
            endpoint=settings.require("hs_endpoint"),
            username=settings.require("hs_username"),
            password=settings.require("hs_password"),
        ),
        folder=settings.require("hsds_folder"),
    )
    handler = IndexFileHandler(
        aws.client("s3"),
        FilesTable(aws.client("dynamodb"), settings.files_table or ""),
        target,
        archive_bucket=settings.require("archive_bucket"),
        archive_prefix=settings.archive_prefix,
        restart_points=RestartPointsPolicy(min_size=restart_points_min_mib << 20),
    )
    report = drain(
        sqs,
        settings.require("index_queue_url"),
        settings.require("index_dlq_url"),
        handler,
        max_messages=max_messages,
        wait_seconds=wait_seconds,
        visibility_timeout=visibility_timeout,
        stop_when_empty=not forever,
        stop=stop,
    )
    print(json.dumps(report.as_dict(), indent=2))  # noqa: T201 - the report is this program's output


if __name__ == "__main__":
    # Every failure ends in one line on stderr and its exit code (2: no retry fixes it), never a traceback.
    sys.exit(run_one_line(lambda: typer.main.get_command(app).main(standalone_mode=False)))
