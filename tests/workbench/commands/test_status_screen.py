"""`datacarousel status` as a researcher sees it: readable at 80 columns, plain lines when piped (`--watch`),
one line with a hint when no job is open, and no AWS SDK chatter unless `--log-level DEBUG`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from carousel.runtime import Context
from carousel.status import overview
from datacarousel.contract import FileState, JobFileState, JobState
from datacarousel.naming import BasicFusionName
from tests.workbench.commands.commands_world import CliWorld, cli, make_world
from workbench.commands import carousel as carousel_command
from workbench.commands.carousel import _render

JOB = "alice-20261203T170000Z-1a2b"
ORBITS = [BasicFusionName.for_orbit(85000 + i) for i in range(8)]
STAGED = dict(
    zip(
        ORBITS,
        [
            (FileState.ARCHIVED, JobFileState.WAITING),
            (FileState.RESTORING, JobFileState.WAITING),
            (FileState.RESTORING, JobFileState.WAITING),
            (FileState.RESTORED, JobFileState.WAITING),
            (FileState.INDEXED, JobFileState.QUEUED),
            (FileState.INDEXED, JobFileState.RUNNING),
            (FileState.INDEXED, JobFileState.DONE),
            (FileState.FAILED, JobFileState.FAILED),
        ],
        strict=True,
    )
)
COMPACT_HEADERS = ("job", "owner", "state", "done/failed/total", "ETA", "window", "files", "GiB")
WIDE_HEADERS = ("waiting", "restoring", "readable", "indexed", "queued", "running", "done", "failed", "cost so far")


@pytest.fixture()
def world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> CliWorld:
    return make_world(fake_aws, monkeypatch)


def open_job(world: CliWorld, job_id: str = JOB, files: dict[BasicFusionName, Any] | None = None) -> None:
    for name, (file_state, _) in (files or STAGED).items():
        world.file(name, file_state)
    job_files = {name: (jf_state, "") for name, (_, jf_state) in (files or STAGED).items()}
    world.job(job_id, job_files, JobState.OPEN)


def headers_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("job "))


def test_status_is_readable_at_80_columns(world: CliWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    open_job(world)
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("status")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80, text
    header = headers_line(text)
    for column in ("job", "owner", "state", "done/failed/total", "ETA"):
        assert column in header.split("  "), header
    row = next(line for line in text.splitlines() if line.startswith(JOB))
    assert row.split()[:4] == [JOB, "alice", "OPEN", "1/1/8"], row
    assert "waiting 1 · restoring 2 · readable 1 · indexed 0 · queued 1 · running 1" in text  # the job's stages
    assert " 25%" in text and "GiB" in text and "so far, est. $" in text
    for column in ("window", "files", "GiB", "restoring", "in window", "needed, archived"):
        assert column in text


def test_rendering_at_80_columns_keeps_every_header_and_cell_whole(world: CliWorld) -> None:
    open_job(world)
    open_job(world, "job-20261203T170000Z-1a2b3c4d", {ORBITS[0]: STAGED[ORBITS[0]]})
    ctx = Context.from_env(need=("files_table", "jobs_table", "job_files_table"))
    data = overview(ctx.tables, ctx.config)
    console = Console(width=80, record=True)
    console.print(_render(data))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80, text
    for header in COMPACT_HEADERS:
        assert header in text, header
    for job in data["jobs"]:
        assert job["job_id"] in text and f"${job['estimated_cost']['total']:.4f}" in text


def test_large_counts_and_costs_fit_80_columns_too() -> None:
    files = {"waiting": 1200, "restoring": 340, "readable": 12, "indexed": 48, "queued": 20, "running": 8}
    job = {
        "job_id": JOB, "owner": "alice.smith", "state": "OPEN", "file_count": 2000,
        "files": {**files, "done": 360, "failed": 12}, "total_bytes": 1234 * 2**30,
        "cost_so_far": {"total": 12.3456}, "estimated_cost": {"total": 123.4567},
        "eta": "2026-12-05T20:35:00Z", "outcome": None, "failures": [],
    }  # fmt: skip
    window = {k: {"files": 1700, "bytes": 40 * 10**12} for k in ("restoring", "restored", "indexed", "failed")}
    window |= {"in_window": window["restoring"], "needed_archived": window["restoring"]}
    window["window_cap"] = {"files": 2000, "bytes": 50 * 10**12}
    console = Console(width=80, record=True)
    console.print(_render({"now": "2026-12-03T17:05:00Z", "jobs": [job], "window": window}))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80, text
    assert f"{JOB}  alice.smith  OPEN   360/12/2000        in 2d03h" in text
    assert "  19%  1234.00 GiB  cost $12.3456 so far, est. $123.4567" in text
    # a stage line too wide is broken between two stages, never inside one
    assert "\n  waiting 1200 · restoring 340 · readable 12 · indexed 48 · queued 20\n  running 8\n" in text


def test_a_wide_terminal_shows_every_stage_as_a_column(world: CliWorld) -> None:
    open_job(world)
    out = cli("status")  # COLUMNS=250
    assert out.exit_code == 0, out.output
    header = next(line for line in out.stdout.splitlines() if " job " in line and "restoring" in line)
    for column in WIDE_HEADERS:
        assert f" {column} " in header, header
    assert "…" not in out.stdout and JOB in out.stdout


def test_no_job_at_all_says_how_to_start_one(world: CliWorld) -> None:
    out = cli("status")
    assert out.exit_code == 0, out.output
    assert out.stdout.strip().startswith("no jobs yet") and "datacarousel submit" in out.stdout
    assert len(out.stdout.strip().splitlines()) == 1, out.stdout


def test_no_open_job_says_so_and_all_lists_the_finished_ones(world: CliWorld) -> None:
    open_job(world, "job-1", {ORBITS[6]: STAGED[ORBITS[6]]})
    world.tables.jobs.transition("job-1", JobState.OPEN, JobState.COMPLETE, time.time())
    world.job("job-2", {ORBITS[0]: (JobFileState.WAITING, "")}, JobState.CANCELLED)
    out = cli("status")
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "no open jobs; completed: 1, cancelled: 1 (`datacarousel status --all` lists them)"

    every = cli("status", "--all")
    assert every.exit_code == 0, every.output
    assert "job-1" in every.stdout and "job-2" in every.stdout and "CANCELLED" in every.stdout
    assert "job job-1: COMPLETE, 1 done, 0 failed" in every.stdout
    asked = cli("status", "job-1")  # a job asked for is shown whatever its state
    assert "job job-1: COMPLETE" in asked.stdout and "no open jobs" not in asked.stdout


def test_piped_watch_prints_a_line_per_change_until_ctrl_c(world: CliWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    open_job(world, "job-1", {ORBITS[4]: STAGED[ORBITS[4]], ORBITS[5]: STAGED[ORBITS[5]]})
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # the refreshes, with the carousel's work in between
        naps.append(seconds)
        if len(naps) == 1:
            world.tables.job_files.transition(
                "job-1", ORBITS[5].file_name, [JobFileState.RUNNING], JobFileState.DONE, 0
            )
        elif len(naps) == 3:
            world.tables.job_files.transition("job-1", ORBITS[4].file_name, [JobFileState.QUEUED], JobFileState.DONE, 0)
            world.tables.jobs.transition("job-1", JobState.OPEN, JobState.COMPLETE, time.time())
        elif len(naps) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(carousel_command.time, "sleep", sleep)
    out = cli("status", "--watch", "--interval", "0.5")
    assert out.exit_code == 0 and "Traceback" not in out.output, out.output
    lines = out.stdout.splitlines()
    assert naps == [0.5] * 5 and len(lines) == 4, out.stdout  # refreshes 2 and 4 change nothing: no line
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
    assert all(__import__("re").match(stamp, line) for line in lines), lines
    assert lines[0].endswith("job-1 alice OPEN done 0/2 failed 0 | "
                             "waiting 0 · restoring 0 · readable 0 · indexed 0 · queued 1 · running 1")  # fmt: skip
    assert "job-1 alice OPEN done 1/2 failed 0 | " in lines[1] and "queued 1 · running 0" in lines[1]
    assert "job-1 alice COMPLETE done 2/2 failed 0" in lines[2]  # its last line, once no longer open
    assert lines[3].endswith("no open jobs; completed: 1 (`datacarousel status --all` lists them)")


def test_piped_watch_of_named_jobs_ends_when_they_are_finished(world: CliWorld) -> None:
    open_job(world, "job-1", {ORBITS[6]: STAGED[ORBITS[6]]})
    world.tables.jobs.transition("job-1", JobState.OPEN, JobState.COMPLETE, time.time())
    out = cli("status", "job-1", "--watch")
    assert out.exit_code == 0, out.output
    (line,) = out.stdout.splitlines()
    assert "job-1 alice COMPLETE done 1/1 failed 0" in line


@pytest.fixture()
def bare_logging() -> Iterator[None]:
    """Puts back the root logger and the SDK's loggers as they were (the test takes pytest's handlers off)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARIES}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


LIBRARIES = ("botocore", "boto3", "urllib3", "s3transfer")


def fresh_process_logging() -> None:
    """The root logger as in a new process: no handlers, so the CLI's `logging.basicConfig` takes effect."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.usefixtures("bare_logging")
def test_botocore_info_lines_are_off_unless_debug(world: CliWorld) -> None:
    open_job(world)
    fresh_process_logging()
    quiet = cli("status", "--json")
    assert quiet.exit_code == 0, quiet.output
    assert logging.getLogger().level == logging.INFO  # the project's INFO lines are shown
    assert all(logging.getLogger(name).getEffectiveLevel() == logging.WARNING for name in LIBRARIES)
    assert " INFO botocore" not in quiet.stderr and " DEBUG botocore" not in quiet.stderr, quiet.stderr

    fresh_process_logging()
    loud = cli("--log-level", "DEBUG", "status", "--json")
    assert loud.exit_code == 0, loud.output
    assert " DEBUG botocore" in loud.stderr  # the SDK's lines are there when asked for

    fresh_process_logging()
    errors_only = cli("--log-level", "ERROR", "status", "--json")
    assert errors_only.exit_code == 0, errors_only.output
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.ERROR
