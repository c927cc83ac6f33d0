"""Why files failed, where operators look: `datacarousel files --state FAILED` shows each file's reason, and
`datacarousel status JOB` shows a COMPLETE job's done and failed counts and its failed files with their reasons."""

from __future__ import annotations

import json
from typing import Any

import pytest

from datacarousel.contract import FileState, JobAttr, JobFileState, JobState
from datacarousel.naming import BasicFusionName
from tests.workbench.commands.commands_world import CliWorld, cli, make_world

BAD = BasicFusionName.for_orbit(85079)
SILENT = BasicFusionName.for_orbit(85078)  # FAILED with no reason recorded
FINE = BasicFusionName.for_orbit(85077)
REASON = "truncated HDF5 file: [superblock] says 9000 bytes"  # "[...]" is not rich markup
WORK_REASON = "ComputeRadiance: MISR camera AN missing"


@pytest.fixture()
def world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> CliWorld:
    world = make_world(fake_aws, monkeypatch)
    world.file(BAD, FileState.FAILED, REASON)
    world.file(SILENT, FileState.FAILED)
    world.file(FINE, FileState.INDEXED)
    return world


def test_files_state_failed_shows_each_reason(world: CliWorld) -> None:
    out = cli("files", "--state", "FAILED")
    assert out.exit_code == 0, out.output
    items = {i["file_name"]: i for i in json.loads(out.stdout)}
    assert set(items) == {BAD.file_name, SILENT.file_name}
    assert items[BAD.file_name]["error"] == REASON and items[SILENT.file_name]["error"] == ""

    table = cli("files", "--state", "FAILED", "--format", "table")
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if "file_name" in line)
    assert "error" in header
    assert REASON in table.stdout

    indexed = cli("files", "--state", "INDEXED", "--format", "table")
    assert "error" not in next(line for line in indexed.stdout.splitlines() if "file_name" in line)


@pytest.mark.parametrize("recorded", [True, False], ids=["counts-on-the-job", "counted"])
def test_status_of_a_complete_job_shows_done_failed_and_why(world: CliWorld, recorded: bool) -> None:
    counts = {JobAttr.DONE_FILES: 1, JobAttr.FAILED_FILES: 2} if recorded else {}
    world.job(
        "job-1",
        {BAD: (JobFileState.FAILED, REASON), SILENT: (JobFileState.FAILED, WORK_REASON), FINE: (JobFileState.DONE, "")},
        JobState.COMPLETE,
        counts,
    )
    out = cli("status", "job-1", "--json")
    assert out.exit_code == 0, out.output
    (job,) = json.loads(out.stdout)["jobs"]
    assert job["outcome"] == {"done": 1, "failed": 2}
    assert job["failures"] == [
        {"file_name": SILENT.file_name, "error": WORK_REASON},
        {"file_name": BAD.file_name, "error": REASON},
    ]

    shown = cli("status", "job-1")
    assert shown.exit_code == 0, shown.output
    assert "job job-1: COMPLETE, 1 done, 2 failed" in shown.stdout
    assert REASON in shown.stdout and WORK_REASON in shown.stdout and BAD.file_name in shown.stdout
    assert "datacarousel retry --job job-1" in shown.stdout


def test_status_of_an_open_job_has_no_outcome(world: CliWorld) -> None:
    world.job("job-2", {FINE: (JobFileState.WAITING, "")}, JobState.OPEN)
    out = cli("status", "job-2", "--json")
    (job,) = json.loads(out.stdout)["jobs"]
    assert job["outcome"] is None and job["failures"] == []
    assert "COMPLETE," not in cli("status", "job-2").stdout
