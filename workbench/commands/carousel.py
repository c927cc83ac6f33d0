"""`datacarousel inventory | submit | cancel | step | status`: the carousel from the command line."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.measure import Measurement
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
from datacarousel.contract import JobAttr, JobState
from datacarousel.errors import BadInput, ConfigError, TransientError
from datacarousel.times import parse_iso
from workbench.commands import selection
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
        prefix=ctx.settings.archive_prefix if prefix is None else prefix,
        now=time.time(),
        workers=workers,
    )
    print(json.dumps(report.as_dict(), indent=2))  # noqa: T201


def job_query(chosen: selection.Selection) -> JobQuery:
    """The selection as a JobQuery: years x months, MISR paths, an orbit range; BadInput if it is no such query."""
    years, months = chosen.years, chosen.months
    if chosen.year_months:
        pairs = {tuple(int(x) for x in ym.split(".")) for ym in chosen.year_months}
        years = tuple(sorted({y for y, _ in pairs}))
        months = tuple(sorted({m for _, m in pairs}))
        if len(pairs) != len(years) * len(months):
            raise BadInput(
                f"a job selects years x months; --year-month {','.join(chosen.year_months)} is not such a "
                "product: submit one job per year, or give --orbits FIRST-LAST"
            )
    lo, hi = chosen.orbits or (None, None)
    return JobQuery(years=years, months=months, misr_paths=chosen.paths, orbit_min=lo, orbit_max=hi)


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
    year_month: selection.YearMonthOption = None,
    years: selection.YearsOption = None,
    months: selection.MonthsOption = None,
    path: selection.PathOption = None,
    orbits: selection.OrbitsOption = None,
    paths: selection.PathsAlias = None,
    orbit_min: selection.OrbitMinAlias = None,
    orbit_max: selection.OrbitMaxAlias = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Job parameter NAME=VALUE; repeat. Unset ones take their defaults."),
    ] = None,
    slack: float | None = typer.Option(
        None,
        "--slack",
        help="Days you can wait for the results (default: as soon as possible). The carousel may hold the "
        "job's restores back within them to share them with later jobs over the same files: cheaper.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Submit a job: a job definition over the files a query selects. Answers with counts, cost and start."""
    try:
        query = job_query(
            selection.parse_selection(
                year_month=year_month, years=years, months=months, path=path, orbits=orbits,
                paths=paths, orbit_min=orbit_min, orbit_max=orbit_max,
            )
        )  # fmt: skip
        chosen = registry.get(definition, registry.registered_from_env())
        parameters = chosen.validate(parse_params(param))  # before any table is read
        ctx = _context(("files_table", "jobs_table", "job_files_table"))
        slack_s = None if slack is None else slack * 86_400.0
        result = do_submit(
            ctx.tables, ctx.config, owner=owner, definition=chosen, query=query, parameters=parameters, slack_s=slack_s
        )
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
    if data["deadline"]:
        lines.append(f"  deadline: {data['deadline']} (restores may wait within it, to be shared)")
    if data.get("held_until"):
        lines.append(f"  restores held until about {data['held_until']}, for later jobs to share them")
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
    until_done: bool = typer.Option(
        False, "--until-done", help="With --loop: stop after a step that leaves no job open (every job COMPLETE)."
    ),
) -> None:
    """Run the carousel step (as `python -m carousel step`, with the embedded environment's launcher when it is up)."""
    run_steps(
        loop=loop, interval=interval, launch=launch, max_steps=max_steps, until_done=until_done, launcher=_launcher
    )


def _launcher() -> Launcher:
    """Local processes or containers when `DC_LAUNCHER=local` (the embedded environment), else AWS Batch."""
    return launcher_from_env(aws.client("batch"), template_dict)


STAGES = ("waiting", "restoring", "readable", "indexed", "queued", "running", "done", "failed")
WAITING_STAGES = STAGES[:6]  # a job's files not final yet, by stage
COMPACT_COLUMNS = ("job", "owner", "state", "done/failed/total", "ETA")
BAR_WIDTH = 20


def _render(data: dict[str, Any], note: str | None = None) -> Any:
    """The status screen: `note` alone (no open job), else the jobs, the window and the finished jobs' outcomes.
    Every column when the console is wide enough for them, else a compact table with each job's stages below it."""
    return _StatusView(data, note)


class _StatusView:
    def __init__(self, data: dict[str, Any], note: str | None) -> None:
        self.data, self.note = data, note

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.note is not None:
            yield Text(self.note)
            return
        jobs, window = _wide_jobs(self.data), _wide_window(self.data["window"])
        natural = options.update_width(10_000)
        wide = max(Measurement.get(console, natural, t).maximum for t in (jobs, window)) <= options.max_width
        if wide:
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), expand=True)
            for job in self.data["jobs"]:
                done = job["files"]["done"] + job["files"]["failed"]
                progress.add_task(job["job_id"], total=max(job["file_count"], 1), completed=done)
            yield Group(jobs, progress, window)
        else:
            yield Group(_compact_jobs(self.data, options.max_width), Text(""), _narrow_window(self.data["window"]))
        yield from (_outcome(job) for job in self.data["jobs"] if job.get("outcome"))


def _wide_jobs(data: dict[str, Any]) -> Table:
    table = Table(title=f"Data Carousel jobs ({data['now']})")
    for column in ("job", "owner", "state", "waiting", "restoring", "readable", "indexed", "queued", "running", "done",
                   "failed", "GiB", "cost so far", "est. cost", "ETA"):  # fmt: skip
        table.add_column(column)
    for job in data["jobs"]:
        f = job["files"]
        table.add_row(
            job["job_id"], str(job["owner"]), job["state"],
            *(str(f[k]) for k in STAGES),
            f"{job['total_bytes'] / 2**30:.2f}", f"${job['cost_so_far']['total']:.4f}",
            f"${job['estimated_cost']['total']:.4f}", job["eta"] or "-",
        )  # fmt: skip
    return table


def _gib(x: dict[str, int]) -> str:
    return f"{x['bytes'] / 2**30:.2f}"


WINDOW_ROWS = (
    ("restoring", "restoring"), ("restored", "restored"), ("indexed", "indexed"), ("failed", "failed"),
    ("in window", "in_window"), ("cap", "window_cap"), ("needed, archived", "needed_archived"),
)  # fmt: skip


def _wide_window(w: dict[str, Any]) -> Table:
    window = Table(title="window")
    for column, _ in WINDOW_ROWS:
        window.add_column(column)
    window.add_row(*(f"{w[key]['files']} ({_gib(w[key])} GiB)" for _, key in WINDOW_ROWS))
    return window


def _narrow_window(w: dict[str, Any]) -> Table:
    window = Table()
    for column in ("window", "files", "GiB"):
        window.add_column(column, justify="left" if column == "window" else "right", no_wrap=True)
    for label, key in WINDOW_ROWS:
        window.add_row(label, str(w[key]["files"]), _gib(w[key]))
    return window


def _compact_jobs(data: dict[str, Any], width: int) -> Group:
    """One row per job (job, owner, state, done/failed/total, ETA), and under it its progress bar, bytes and cost,
    and its files per stage (lines of at most `width`): 80 columns fit an id like `job-20261203T170000Z-1a2b3c4d`."""
    rows = [
        (j["job_id"], str(j["owner"]), j["state"], f"{j['files']['done']}/{j['files']['failed']}/{j['file_count']}",
         _eta(j["eta"], data["now"]))
        for j in data["jobs"]
    ]  # fmt: skip
    widths = [max(len(cell) for cell in column) for column in zip(COMPACT_COLUMNS, *rows, strict=False)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    out: list[Any] = [
        Text(f"Data Carousel jobs ({data['now']})", style="italic"),
        Text(line(COMPACT_COLUMNS), style="bold"),
        Text("─" * (sum(widths) + 2 * (len(widths) - 1))),
    ]
    for job, row in zip(data["jobs"], rows, strict=True):
        out += [Text(line(row)), *_job_detail(job, width)]
    return Group(*out)


def _job_detail(job: dict[str, Any], width: int) -> list[Text]:
    """`  ━━━━━━━━──────── 40%  1.23 GiB  cost $0.0012 so far, est. $0.0031` and `  waiting 2 · restoring 4 · …`,
    broken between two parts (never inside one) where a line would be wider than `width`."""
    f, total = job["files"], max(job["file_count"], 1)
    done = round(BAR_WIDTH * f["done"] / total)
    failed = min(round(BAR_WIDTH * f["failed"] / total), BAR_WIDTH - done)
    text = Text("  ")
    text.append("━" * done, style="green")
    text.append("━" * failed, style="red")
    text.append("─" * (BAR_WIDTH - done - failed), style="bright_black")
    text.append(f" {100 * (f['done'] + f['failed']) / total:3.0f}%  {job['total_bytes'] / 2**30:.2f} GiB")
    cost = f"cost ${job['cost_so_far']['total']:.4f} so far, est. ${job['estimated_cost']['total']:.4f}"
    lines = [text.append(f"  {cost}")] if len(text) + 2 + len(cost) <= width else [text, Text(f"  {cost}")]
    stages: list[str] = []
    for part in (f"{stage} {f[stage]}" for stage in WAITING_STAGES):
        if stages and len(stages[-1]) + 3 + len(part) <= width:
            stages[-1] += f" · {part}"
        else:
            stages.append(f"  {part}")
    return lines + [Text(stage_line, style="dim") for stage_line in stages]


def _stages(files: dict[str, int]) -> str:
    return " · ".join(f"{stage} {files[stage]}" for stage in WAITING_STAGES)


def _eta(eta: str | None, now: str) -> str:
    """The ETA from now, compact: `in 55m`, `in 3h05m`, `in 2d04h` (`-`: none)."""
    if not eta:
        return "-"
    minutes = max(0, int((parse_iso(eta) - parse_iso(now)).total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"in {days}d{hours:02d}h"
    return f"in {hours}h{minutes:02d}m" if hours else f"in {minutes}m"


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
    watch: bool = typer.Option(
        False, "--watch", help="Live view, refreshed every --interval seconds (piped: one line per change)."
    ),
    interval: float = typer.Option(5.0, "--interval", min=0.5, help="Refresh period of --watch."),
    show_all: bool = typer.Option(False, "--all", help="Every job, completed and cancelled ones too."),
) -> None:
    """Progress, cost and ETA per job, and the window."""
    ctx = _context(("files_table", "jobs_table", "job_files_table"))
    asked = list(job_ids or [])

    def fetch(ids: list[str] | None = None) -> dict[str, Any]:
        if ids is None:
            ids = asked + [j for j in _every_job(ctx.tables) if j not in asked] if show_all else asked
        return overview(ctx.tables, ctx.config, ids)

    def note(data: dict[str, Any]) -> str | None:
        return None if asked else _idle_note(ctx.tables, data, show_all=show_all)

    try:
        data = fetch()
        if as_json and not watch:
            print(json.dumps(data, indent=2, default=str))  # noqa: T201
            return
        if not watch:
            Console().print(_render(data, note(data)))
            return
        if sys.stdout.isatty():
            _watch_live(fetch, note, data, interval=interval, until_finished=bool(asked))
        else:
            _watch_lines(fetch, note, data, interval=interval, asked=asked, emit=typer.echo)
    except BadInput as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt:  # Ctrl-C ends --watch: exit 0
        return


def _every_job(tables: Any) -> list[str]:
    return sorted(str(item[JobAttr.JOB_ID]) for state in JobState for item in tables.jobs.by_state(state))


def _idle_note(tables: Any, data: dict[str, Any], *, show_all: bool) -> str | None:
    """One line instead of an empty table when no job is open (None: some job is, or --all lists finished ones)."""
    if any(job["state"] == JobState.OPEN.value for job in data["jobs"]) or (show_all and data["jobs"]):
        return None
    finished = {state: sum(1 for _ in tables.jobs.by_state(state)) for state in (JobState.COMPLETE, JobState.CANCELLED)}
    if not any(finished.values()):
        return "no jobs yet: `datacarousel submit --owner NAME --year-month ... --path ...` starts one"
    counts = f"completed: {finished[JobState.COMPLETE]}"
    if finished[JobState.CANCELLED]:
        counts += f", cancelled: {finished[JobState.CANCELLED]}"
    return f"no open jobs; {counts} (`datacarousel status --all` lists them)"


Fetch = Callable[..., dict[str, Any]]
Note = Callable[[dict[str, Any]], str | None]


def _watch_live(fetch: Fetch, note: Note, data: dict[str, Any], *, interval: float, until_finished: bool) -> None:
    """A terminal: the status screen, redrawn every `interval` s (until the jobs asked for are finished)."""
    with Live(_render(data, note(data)), console=Console(), refresh_per_second=2) as live:
        while True:
            time.sleep(interval)
            data = fetch()
            live.update(_render(data, note(data)))
            if until_finished and all(j["state"] != JobState.OPEN.value for j in data["jobs"]):
                break


def _watch_lines(
    fetch: Fetch,
    note: Note,
    data: dict[str, Any],
    *,
    interval: float,
    asked: list[str],
    emit: Callable[[str], Any],
) -> None:
    """No terminal (a pipe, CI): a plain line per change of a job (time, job, owner, state, done/total, stages),
    and the no-open-job note when it changes; a job that stops being open gets its last line. Until the jobs asked
    for are finished (none asked for: until interrupted)."""
    shown: dict[str, str] = {}  # job id -> its last line (without the time)
    last_note: str | None = None
    while True:
        jobs = list(data["jobs"])
        gone = [j for j in shown if j not in {job["job_id"] for job in jobs}]
        if gone:  # finished (or cancelled) since the last refresh: one more line with that state
            jobs += fetch(gone)["jobs"]
        for job in jobs:
            line = _plain_line(job)
            if shown.get(job["job_id"]) != line:
                emit(f"{data['now']} {line}")
                shown[job["job_id"]] = line
        for job_id in gone:
            del shown[job_id]
        now_note = note(data)
        if now_note is not None and now_note != last_note:
            emit(f"{data['now']} {now_note}")
        last_note = now_note
        if asked and all(j["state"] != JobState.OPEN.value for j in data["jobs"]):
            return
        time.sleep(interval)
        data = fetch()


def _plain_line(job: dict[str, Any]) -> str:
    """`job-… alice OPEN done 3/12 failed 0 | waiting 2 · restoring 4 · readable 1 · indexed 1 · queued 1 · …`"""
    f = job["files"]
    return (
        f"{job['job_id']} {job['owner']} {job['state']} done {f['done']}/{job['file_count']} failed {f['failed']}"
        f" | {_stages(f)}"
    )


def register(app: typer.Typer) -> None:
    app.command("inventory")(inventory)
    app.command("submit", epilog=_definitions_help())(submit)
    app.command("cancel")(cancel)
    app.command("step")(step)
    app.command("status")(status)
