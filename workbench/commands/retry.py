"""`datacarousel retry`: put FAILED files and job-files back so the carousel does them again.

datacarousel retry FILE_NAME...            the files (each must be FAILED), and the open jobs' job-files they failed
datacarousel retry --job JOB_ID            the job's FAILED job-files (and files); a COMPLETE job is reopened
datacarousel retry --reason TEXT           every FAILED file whose reason contains TEXT
... [--dry-run]                            list what would be retried, change nothing

The decisions and writes are `carousel.recovery`'s; this is the command line around them: one line per
change and a summary on stdout (exit 0); a user error is one line on stderr with a hint (exit 2), and so
is AWS refusing what no retry fixes (credentials, a name in the environment); AWS failing for now is one
line too (exit 1: try again). Never a traceback.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError

from carousel import recovery
from carousel.runtime import Context
from datacarousel import errors
from datacarousel.errors import BadInput, ConfigError, TransientError

NEED = ("files_table", "jobs_table", "job_files_table", "results_bucket")


def _error(text: str, code: int) -> typer.Exit:
    typer.secho(f"error: {' '.join(text.split())}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def retry(
    file_names: Annotated[
        list[str] | None, typer.Argument(help="FAILED files to retry (BasicFusion file names).", show_default=False)
    ] = None,
    job: str | None = typer.Option(None, "--job", help="Retry this job's FAILED files; reopen it if COMPLETE."),
    reason: str | None = typer.Option(None, "--reason", help="Retry every FAILED file whose reason contains TEXT."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be retried; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Put FAILED files (and the job-files they failed) back, or reopen a job; the carousel redoes them."""
    chosen = [bool(file_names), job is not None, reason is not None]
    if sum(chosen) != 1:
        raise _error(
            "give FILE_NAME..., --job JOB_ID or --reason TEXT (one of them; see `datacarousel retry --help`)", 2
        )
    try:
        ctx = Context.from_env(need=NEED)
        s3, bucket = ctx.s3, ctx.settings.require("results_bucket")
        if job is not None:
            report = recovery.retry_job(ctx.tables, job, s3=s3, results_bucket=bucket, dry_run=dry_run)
        elif reason is not None:
            report = recovery.retry_reason(ctx.tables, reason, s3=s3, results_bucket=bucket, dry_run=dry_run)
        else:
            report = recovery.retry_files(ctx.tables, file_names or [], s3=s3, results_bucket=bucket, dry_run=dry_run)
    except (BadInput, ConfigError) as exc:
        raise _error(str(exc), 2) from exc
    except (TransientError, ClientError, BotoCoreError) as exc:
        ended = errors.outcome(exc)
        if ended.code == errors.EXIT_USAGE:  # no credentials, no region, a table or bucket that is not there
            raise _error(ended.line.removeprefix("error: "), ended.code) from exc
        # Each change is its own conditional write: what was retried stays retried, the rest is not.
        raise _error(
            f"AWS failed: {type(exc).__name__}: {exc} (see `datacarousel files --state FAILED`, then run it again)", 1
        ) from exc
    if as_json:
        print(json.dumps({**report.as_dict(), "summary": report.summary()}, indent=2))  # noqa: T201
        return
    print("\n".join([*report.lines, report.summary()]))  # noqa: T201 - the command's output


def register(app: typer.Typer) -> None:
    app.command("retry")(retry)
