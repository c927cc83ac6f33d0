"""`datacarousel retry` through the command line (typer's CliRunner) on moto's in-process fakes: one line per
change and a summary, exit 0; a user error is one line on stderr with a hint, exit 2; never a traceback."""

from __future__ import annotations

from typing import Any

import pytest

from datacarousel.contract import Env, FileState, JobAttr, JobFileAttr, JobFileState, JobState
from datacarousel.naming import BasicFusionName
from tests.workbench.commands.commands_world import CliWorld, cli, make_world, one_line_error

BAD = BasicFusionName.for_orbit(85079)
OTHER = BasicFusionName.for_orbit(85078)
FINE = BasicFusionName.for_orbit(85077)
REASON = "truncated HDF5 file: the superblock says 9000 bytes"


@pytest.fixture()
def world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> CliWorld:
    world = make_world(fake_aws, monkeypatch)
    world.file(BAD, FileState.FAILED, REASON)
    world.file(OTHER, FileState.FAILED, "HSDS answered 503")
    world.file(FINE, FileState.INDEXED)
    return world


def test_retry_files_prints_a_line_per_change_and_a_summary(world: CliWorld) -> None:
    world.job("job-1", {BAD: (JobFileState.FAILED, REASON)}, JobState.OPEN)
    out = cli("retry", BAD.file_name)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"file {BAD.file_name}: FAILED -> ARCHIVED (was: {REASON}")
    assert lines[1] == f"job-file job-1/{BAD.file_name}: FAILED -> WAITING"
    assert lines[-1].startswith("retried 1 file(s) and 1 job-file(s), reopened 0 job(s)")
    assert world.state(BAD) == FileState.ARCHIVED.value and world.state(OTHER) == FileState.FAILED.value
    assert not out.stderr


def test_retry_job_reopens_a_complete_job(world: CliWorld) -> None:
    world.job("job-1", {BAD: (JobFileState.FAILED, REASON)}, JobState.COMPLETE)
    out = cli("retry", "--job", "job-1")
    assert out.exit_code == 0, out.output
    assert "job job-1: COMPLETE -> OPEN (reopened)" in out.stdout.splitlines()
    job = world.tables.jobs.get("job-1") or {}
    assert job[JobAttr.STATE] == JobState.OPEN.value and JobAttr.REOPENED_AT in job


def test_retry_reason_dry_run_lists_and_changes_nothing(world: CliWorld) -> None:
    out = cli("retry", "--reason", "superblock", "--dry-run")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0].startswith(f"would retry file {BAD.file_name}: FAILED -> ARCHIVED")
    assert "would retry 1 file(s)" in out.stdout and OTHER.file_name not in out.stdout
    assert world.state(BAD) == FileState.FAILED.value
    done = cli("retry", "--reason", "superblock")
    assert done.exit_code == 0 and world.state(BAD) == FileState.ARCHIVED.value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("TERRA_BF_L1B_O1_20000101000000_F000_V001.h5",), "no file 'TERRA_BF_L1B_O1_"),
        ((FINE.file_name,), "is INDEXED, not FAILED"),
        ((BAD.file_name, FINE.file_name), "is INDEXED, not FAILED"),
        (("--job", "job-nope"), "no such job 'job-nope'"),
        (("--job", "job-gone"), "is CANCELLED"),
        (("--reason", "no such reason"), "no FAILED file's reason contains 'no such reason'"),
        ((), "give FILE_NAME..., --job JOB_ID or --reason TEXT"),
        ((BAD.file_name, "--job", "job-gone"), "give FILE_NAME..., --job JOB_ID or --reason TEXT"),
    ],
)
def test_user_errors_are_one_line_with_a_hint_and_exit_2(world: CliWorld, args: tuple[str, ...], message: str) -> None:
    world.job("job-gone", {BAD: (JobFileState.FAILED, REASON)}, JobState.CANCELLED)
    out = cli("retry", *args)
    assert out.exit_code == 2, out.output
    line = one_line_error(out)
    assert message in line and ("see `datacarousel" in line or "submit it again" in line), line
    assert not out.stdout
    assert world.state(BAD) == FileState.FAILED.value  # nothing was changed
    assert {r[JobFileAttr.STATE] for r in world.tables.job_files.of_job("job-gone")} == {JobFileState.FAILED.value}


def test_missing_settings_and_aws_failures_are_one_line_too(world: CliWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(Env.RESULTS_BUCKET)
    out = cli("retry", BAD.file_name)
    assert out.exit_code == 2 and "DC_RESULTS_BUCKET is not set" in one_line_error(out)
    monkeypatch.setenv(Env.RESULTS_BUCKET, "dc-results")
    monkeypatch.setenv(Env.FILES_TABLE, "NoSuchTable")
    out = cli("retry", BAD.file_name)  # a table that is not there: no retry fixes it
    assert out.exit_code == 2 and "ResourceNotFoundException" in one_line_error(out)
    assert "again" not in one_line_error(out) and "retry later" not in one_line_error(out)
