"""`datacarousel inventory | submit | cancel | step | status`: the carousel from the command line."""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from carousel import inventory as inv
from carousel.__main__ import run_steps
from carousel.jobs import cancel as do_cancel
from carousel.jobs import submit as do_submit
from carousel.launcher import Launcher
from carousel.query import JobQuery
from carousel.runtime import Context
from carousel.status import overview
from datacarousel import aws, registry
from datacarousel.errors import BadInput, ConfigError, TransientError
from workbench.local.environment import template_dict
from workbench.local.launcher import launcher_from_env

log = logging.getLogger(__name__)


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _context(need: tuple[str, ...]) -> Any:
    try:
        return Context.from_env(need=need)
    except ConfigError as exc:
        raise _fail(exc) from exc


def inventory(
    prefix: str = typer.Option(None, "--prefix", help="Key prefix to list (default: DC_ARCHIVE_PREFIX)."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Parallel DynamoDB writes."),
) -> None:
    """Register every archive object as a BasicFusionFiles item (ARCHIVED); idempotent."""
    ctx = _context(("archive_bucket", "files_table", "jobs_table", "job_files_table"))
    report = inv.run(
        ctx.s3,
        ctx.tables.files,
        bucket=ctx.settings.require("archive_bucket"),
        prefix=(ctx.settings.archive_prefix or "") if prefix is None else prefix,
        now=time.time(),
        workers=workers,
    )
    print(json.dumps(report.as_dict(), indent=2))  # noqa: T201


def int_list(option: str, values: list[str] | None) -> tuple[int, ...]:
    """`--paths 22,23 --paths 24` -> (22, 23, 24); anything but integers is a BadInput."""
    out: list[int] = []
    for text in values or []:
        for part in text.replace(" ", ",").split(","):
            if not part:
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise BadInput(f"{option} takes integers, got {part!r}"[:200]) from None
    return tuple(out)


def _definitions_help() -> str:
    """Every known definition and its parameters, for `submit --help` (rich keeps the line breaks)."""
    return "\n\n".join(definition.help_text() for definition in registry.known().values())


def parse_params(texts: list[str] | None) -> dict[str, str]:
    """`--param a=1 --param b=x` -> {"a": "1", "b": "x"}; BadInput for anything but NAME=VALUE."""
    parameters: dict[str, str] = {}
    for text in texts or []:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise BadInput(f"--param takes NAME=VALUE, got {text!r}")
        if key in parameters:
            raise BadInput(f"--param {key} is given twice")
        parameters[key] = value
    return parameters


def submit(  # noqa: PLR0917 - typer maps options to parameters
    owner: str = typer.Option(..., "--owner", help="Who submits (lower-case letters, digits, '_', '.', '-')."),
    definition: str = typer.Option(
        "ComputeRadiance",
        "--definition",
        help=f"Job definition to run on each file: {', '.join(registry.known()) or 'none known'}.",
    ),
    years: Annotated[list[str] | None, typer.Option("--years", help="Years 2000..2015: 2014,2015 or repeat.")] = None,
    months: Annotated[list[str] | None, typer.Option("--months", help="Months 1..12: 6,7 or repeat.")] = None,
    paths: Annotated[list[str] | None, typer.Option("--paths", help="MISR paths 1..233: 22,23 or repeat.")] = None,
    orbit_min: int = typer.Option(None, "--orbit-min", help="First orbit (inclusive)."),
    orbit_max: int = typer.Option(None, "--orbit-max", help="Last orbit (inclusive)."),
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Job parameter NAME=VALUE; repeat. Unset ones take their defaults."),
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Submit a job: a job definition over the files a query selects. Answers with counts, cost and start."""
    try:
        query = JobQuery(
            years=int_list("--years", years),
            months=int_list("--months", months),
            misr_paths=int_list("--paths", paths),
            orbit_min=orbit_min,
            orbit_max=orbit_max,
        )
        chosen = registry.get(definition, registry.registered_from_env())
        parameters = chosen.validate(parse_params(param))  # before any table is read
        ctx = _context(("files_table", "jobs_table", "job_files_table"))
        result = do_submit(ctx.tables, ctx.config, owner=owner, definition=chosen, query=query, parameters=parameters)
    except (BadInput, ConfigError) as exc:
        raise _fail(exc) from exc
    except TransientError as exc:  # DynamoDB kept refusing the job-files' writes: nothing was opened
        typer.secho(f"error: {exc} (retry later)", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from exc
    data = result.as_dict()
    if as_json:
        print(json.dumps(data, indent=2))  # noqa: T201
        return
    gib = 2**30
    lines = [
        f"job {data['job_id']} submitted ({data['definition']}, owner {data['owner']})",
        f"  files: {data['file_count']} ({data['total_bytes'] / gib:.2f} GiB); "
        f"readable now: {data['readable_files']}, restoring: {data['restoring_files']}, "
        f"to restore: {data['to_restore_files']} ({data['shared_files']} shared with other jobs)",
        f"  estimated cost: ${data['estimated_cost']['total']:.4f} "
        f"(alone: ${data['estimated_cost_alone']['total']:.4f})",
        f"  estimated start: {data['estimated_start'] or '-'}",
    ]
    print("\n".join(lines))  # noqa: T201


def cancel(job_id: str = typer.Argument(..., help="The job to cancel.")) -> None:
    """Cancel an open job; the files only it needed are no longer restored or renewed."""
    ctx = _context(("files_table", "jobs_table", "job_files_table"))
    try:
        result = do_cancel(ctx.tables, job_id)
    except BadInput as exc:
        raise _fail(exc) from exc
    print(json.dumps(result.as_dict(), indent=2))  # noqa: T201


def step(
    loop: bool = typer.Option(False, "--loop", help="Run step after step."),
    interval: float = typer.Option(60.0, "--interval", min=0.0, help="Seconds from one step's start to the next."),
    launch: bool = typer.Option(True, "--launch/--no-launch", help="Start workers for the backlogs."),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="With --loop: stop after this many steps."),
) -> None:
    """Run the carousel step (as `python -m carousel step`, with the embedded environment's launcher when it is up)."""
    run_steps(loop=loop, interval=interval, launch=launch, max_steps=max_steps, launcher=_launcher)


def _launcher() -> Launcher:
    """Local processes or containers when `DC_LAUNCHER=local` (the embedded environment), else AWS Batch."""
    return launcher_from_env(aws.client("batch"), template_dict)


STAGES = ("waiting", "restoring", "readable", "indexed", "queued", "running", "done", "failed")


def _render(data: dict[str, Any]) -> Any:
    table = Table(title=f"Data Carousel jobs ({data['now']})")
    for column in ("job", "owner", "state", "waiting", "restoring", "readable", "indexed", "queued", "running", "done",
                   "failed", "GiB", "cost so far", "est. cost", "ETA"):  # fmt: skip
        table.add_column(column)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), expand=True)
    for job in data["jobs"]:
        f = job["files"]
        table.add_row(
            job["job_id"], str(job["owner"]), job["state"],
            *(str(f[k]) for k in STAGES),
            f"{job['total_bytes'] / 2**30:.2f}", f"${job['cost_so_far']['total']:.4f}",
            f"${job['estimated_cost']['total']:.4f}", job["eta"] or "-",
        )  # fmt: skip
        progress.add_task(job["job_id"], total=max(job["file_count"], 1), completed=f["done"] + f["failed"])
    w = data["window"]
    window = Table(title="window")
    for column in ("restoring", "restored", "indexed", "failed", "in window", "cap", "needed, archived"):
        window.add_column(column)

    def cell(x: dict[str, int]) -> str:
        return f"{x['files']} ({x['bytes'] / 2**30:.2f} GiB)"

    window.add_row(
        cell(w["restoring"]), cell(w["restored"]), cell(w["indexed"]), cell(w["failed"]), cell(w["in_window"]),
        cell(w["window_cap"]), cell(w["needed_archived"]),
    )  # fmt: skip
    return Group(table, progress, window, *(_outcome(job) for job in data["jobs"] if job.get("outcome")))


SHOWN_FAILURES = 50  # failed files listed per COMPLETE job (--json lists all)


def _outcome(job: dict[str, Any]) -> Any:
    """A COMPLETE job's done and failed counts, and its failed files with their reasons."""
    counts = job["outcome"]
    title = f"job {job['job_id']}: COMPLETE, {counts['done']} done, {counts['failed']} failed"
    if job.get("error"):
        title += f" ({job['error']})"
    failures = job.get("failures") or []
    if not failures:
        return Text(title)
    out = Table(title=Text(title), title_justify="left")  # Text: a reason's "[...]" is not rich markup
    out.add_column("failed file", no_wrap=True)
    out.add_column("reason", overflow="fold")
    for failure in failures[:SHOWN_FAILURES]:
        out.add_row(Text(failure["file_name"]), Text(failure["error"] or "-"))
    if len(failures) > SHOWN_FAILURES:
        out.add_row(f"... and {len(failures) - SHOWN_FAILURES} more (--json lists them all)", "")
    out.caption = Text(f"`datacarousel retry --job {job['job_id']}` retries them")
    return out


def status(
    job_ids: Annotated[list[str] | None, typer.Argument(help="Jobs to show (default: every open job).")] = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for machines)."),
    watch: bool = typer.Option(False, "--watch", help="Live view, refreshed every --interval seconds."),
    interval: float = typer.Option(5.0, "--interval", min=0.5, help="Refresh period of --watch."),
) -> None:
    """Progress, cost and ETA per job, and the window."""
    ctx = _context(("files_table", "jobs_table", "job_files_table"))
    try:
        data = overview(ctx.tables, ctx.config, job_ids or [])
    except BadInput as exc:
        raise _fail(exc) from exc
    if as_json and not watch:
        print(json.dumps(data, indent=2, default=str))  # noqa: T201
        return
    console = Console()
    if not watch:
        console.print(_render(data))
        return
    with Live(_render(data), console=console, refresh_per_second=2) as live:
        try:
            while True:
                time.sleep(interval)
                data = overview(ctx.tables, ctx.config, job_ids or [])
                live.update(_render(data))
                if job_ids and all(j["state"] != "OPEN" for j in data["jobs"]):
                    break
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.command("inventory")(inventory)
    app.command("submit", epilog=_definitions_help())(submit)
    app.command("cancel")(cancel)
    app.command("step")(step)
    app.command("status")(status)
