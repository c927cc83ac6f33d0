"""`datacarousel upload | fetch`: orbit files into the archive bucket, a job's results out of the results bucket.

datacarousel upload DIR [--storage-class DEEP_ARCHIVE|GLACIER|STANDARD]
    every BasicFusion orbit file (`*.h5`) of DIR to $DC_ARCHIVE_BUCKET under its archive key
    ($DC_ARCHIVE_PREFIX + `P<path>/<name>`); an object already there with the same size is skipped
datacarousel fetch JOB... | --owner NAME [--out DIR]
    everything under each job's results prefix (`results/<JOB>/` in $DC_RESULTS_BUCKET: per-orbit results,
    composites, NetCDF, quick-looks) into DIR/JOB/ with the same layout; files already there with the
    same size are skipped

A progress bar on a terminal, one line per file otherwise, and a summary line (exit 0). A user error is
one line on stderr with a hint (exit 2); AWS failing is one line too (exit 1: run it again, it skips what
is done). Never a traceback. The transfers themselves are `workbench.transfer`'s.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from carousel.store import JobsTable
from datacarousel import aws, errors
from datacarousel.config import Settings
from datacarousel.contract import JobAttr, JobState
from datacarousel.errors import BadInput, ConfigError, TransientError
from workbench import transfer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class StorageClass(StrEnum):
    """The S3 storage classes an orbit file may be archived in."""

    DEEP_ARCHIVE = "DEEP_ARCHIVE"
    GLACIER = "GLACIER"
    STANDARD = "STANDARD"


def _error(text: str, code: int) -> typer.Exit:
    typer.secho(f"error: {' '.join(text.split())}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _aws_error(exc: Exception, bucket_variable: str, again: str) -> typer.Exit:
    """An AWS failure in one line: a refusal no retry fixes (`errors.PERMANENT_AWS_CODES`: a bucket that does not
    exist is the environment's mistake, not a passing failure) names the variable to check, exit 2."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code in errors.PERMANENT_AWS_CODES:
        return _error(
            f"AWS refused: {code}: {exc} (check {bucket_variable} and the credentials: `datacarousel env`)", 2
        )
    ended = errors.outcome(exc)
    if ended.code == errors.EXIT_USAGE:  # no credentials, no region, the environment down: no retry fixes it
        return _error(ended.line.removeprefix("error: "), ended.code)
    return _error(f"AWS failed: {type(exc).__name__}: {exc} ({again})", 1)


def _os_error(exc: OSError, doing: str) -> typer.Exit:
    """A path that cannot be read or written: exit 2 when it is the path (no retry fixes that), else 1."""
    return _error(f"{doing}: {exc.strerror or exc}", errors.outcome(exc).code)


class LineReporter:
    """One line per file on stdout (a log or a pipe)."""

    def begin(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, n_bytes: int) -> None:
        pass

    def line(self, text: str) -> None:
        typer.echo(text)

    def end(self) -> None:
        pass


class BarReporter:
    """A rich progress bar by bytes on a terminal, each file's line printed above it."""

    def __init__(self, console: Console, description: str) -> None:
        self.console = console
        self.description = description
        self.progress: Progress | None = None
        self.task: Any = None

    def begin(self, files: int, total_bytes: int) -> None:
        if not files:
            return
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task(f"{self.description} {files} file(s)", total=total_bytes)
        self.progress.start()

    def advance(self, n_bytes: int) -> None:  # called from s3transfer's threads; rich's Progress locks
        if self.progress is not None:
            self.progress.advance(self.task, n_bytes)

    def line(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, highlight=False, markup=False)

    def end(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _reporter(description: str) -> transfer.Reporter:
    console = Console()
    return BarReporter(console, description) if console.is_terminal else LineReporter()


def upload(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Directory holding the orbit files (as `generate --out` writes).")
    ],
    storage_class: Annotated[
        StorageClass, typer.Option("--storage-class", help="S3 storage class of the uploaded objects.")
    ] = StorageClass.DEEP_ARCHIVE,
) -> None:
    """Upload every BasicFusion orbit file of DIR to the archive bucket under its archive key; idempotent."""
    try:
        settings = Settings.from_env(need=("archive_bucket",))
        bucket = settings.require("archive_bucket")
        plan = transfer.plan_upload(directory, settings.archive_prefix)
    except (BadInput, ConfigError) as exc:
        raise _error(str(exc), 2) from exc
    if plan.not_basicfusion:
        typer.echo(f"not BasicFusion names (skipped): {', '.join(plan.not_basicfusion)}")
    try:
        report = transfer.upload(
            aws.client("s3"),
            bucket,
            plan,
            storage_class=storage_class.value,
            reporter=_reporter(f"upload to s3://{bucket}/"),
        )
    except (ClientError, BotoCoreError, TransientError) as exc:
        raise _aws_error(exc, "DC_ARCHIVE_BUCKET", "run it again: what is there is skipped") from exc
    except OSError as exc:
        raise _os_error(exc, f"cannot read {exc.filename or directory}") from exc
    typer.echo(report.summary(bucket, storage_class.value))


def _jobs_table() -> JobsTable | None:
    """The jobs table; None when no jobs table is configured."""
    try:
        table = Settings.from_env(need=("jobs_table",)).require("jobs_table")
    except ConfigError:
        return None
    return JobsTable(aws.client("dynamodb"), table)


def _owner_jobs(owner: str) -> list[str]:
    """The ids of every job `owner` submitted, in every state, oldest first (a query per state, never a scan)."""
    table = _jobs_table()
    if table is None:
        raise ConfigError('DC_JOBS_TABLE is not set (`eval "$(datacarousel env)"` sets it)')
    items = [item for state in JobState for item in table.by_state(state) if item.get(JobAttr.OWNER) == owner]
    return [str(item[JobAttr.JOB_ID]) for item in sorted(items, key=lambda i: str(i.get(JobAttr.SUBMITTED_AT, "")))]


def fetch(
    jobs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JOB]...", help="Job ids (as `datacarousel submit` answered; `datacarousel status --all`)."
        ),
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Every job this owner submitted (instead of naming them).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory; each job's files go to DIR/JOB/.")] = Path("results"),
) -> None:
    """Download jobs' results (per-orbit results, composites, NetCDF, quick-looks) into DIR/JOB/; idempotent."""
    try:
        bucket = Settings.from_env(need=("results_bucket",)).require("results_bucket")
        if bool(jobs) == bool(owner):
            raise BadInput("name the jobs (`datacarousel fetch JOB...`) or their owner (`--owner NAME`), not both")
        job_ids = [transfer.check_job_id(job) for job in jobs] if jobs else _owner_jobs(str(owner))
        if not job_ids:
            raise BadInput(f"owner {owner!r} has no jobs (`datacarousel status --all` lists every job)")
    except (BadInput, ConfigError) as exc:
        raise _error(str(exc), 2) from exc
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error(exc, "DC_JOBS_TABLE", "run it again") from exc
    s3 = aws.client("s3")  # one client for every job
    codes = [_fetch_job(s3, bucket, job_id, out, named=bool(jobs)) for job_id in job_ids]
    if any(codes):
        raise typer.Exit(max(codes))


def _fetch_job(s3: S3Client, bucket: str, job: str, out: Path, *, named: bool) -> int:
    """One job's results into out/JOB/; 0, or the exit code of what stopped it (the message is on stderr)."""
    root = out / job
    try:
        objects = transfer.job_objects(s3, bucket, job)
        if not objects:
            table = _jobs_table()
            item = table.get(job) if table is not None else None
            where = f"s3://{bucket}/{transfer.job_prefix(job)}"
            if item is None:
                raise _error(f"no job {job!r}: nothing in {where} (see `datacarousel status --all` for the jobs)", 2)
            state = item.get(JobAttr.STATE, "?")
            text = f"job {job!r} ({state}) has no results in {where} yet"
            if not named and state != JobState.COMPLETE.value:  # --owner: a job still running is not an error
                typer.echo(f"{text}: skipped")
                return 0
            raise _error(f"{text} (see `datacarousel status`; run it again once its files are done)", 1)
        report = transfer.fetch(s3, bucket, job, objects, root, reporter=_reporter(f"fetch {job}"))
    except typer.Exit as exc:
        return int(exc.exit_code)
    except BadInput as exc:
        return _error(str(exc), 2).exit_code
    except (ClientError, BotoCoreError, TransientError) as exc:
        return _aws_error(exc, "DC_RESULTS_BUCKET", "run it again: what is there is skipped").exit_code
    except OSError as exc:
        return _os_error(exc, f"cannot write {exc.filename or root}").exit_code
    typer.echo(report.summary())
    return 0


def register(app: typer.Typer) -> None:
    app.command("upload")(upload)
    app.command("fetch")(fetch)
