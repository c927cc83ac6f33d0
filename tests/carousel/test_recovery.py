"""Operator recovery (`carousel.recovery`, `datacarousel retry`) on moto's in-process fakes.

A FAILED file goes back to ARCHIVED (version bumped, its reason and last restore/index traces gone) and
takes along the FAILED job-files of open jobs that failed because of it; `retry --job` puts a job's
FAILED job-files back and reopens a COMPLETE job, which then completes only after a new reduction (its
old marker does not count, whatever the operator's clock says). Every change is conditional: a retry
that races another writer changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from carousel import inventory, recovery
from carousel.runtime import Context, planner_config
from carousel.step import Step
from carousel.step_report import StepReport
from carousel.store import Tables, iso_seconds, to_seconds
from datacarousel import naming
from datacarousel.config import Settings
from datacarousel.contract import (
    FILES_TABLE,
    JOB_FILES_TABLE,
    JOBS_TABLE,
    FileAttr,
    FileState,
    JobAttr,
    JobFileAttr,
    JobFileState,
    JobState,
)
from datacarousel.errors import BadInput
from datacarousel.files_table import serialize
from datacarousel.messages import ReduceRequest
from datacarousel.naming import BasicFusionName, archive_key

ARCHIVE, RESULTS, PREFIX, STACK = "dc-archive", "dc-results", "bf/", "dc-test"
BAD = BasicFusionName.for_orbit(85079)  # FAILED: its index request was dead-lettered
GOOD = BasicFusionName.for_orbit(85078)  # fine (INDEXED in the tests that need it)
OTHER = BasicFusionName.for_orbit(85077)  # FAILED too, for another reason
REASON = "truncated HDF5 file: the superblock says 9000 bytes, the object has 4096"
OTHER_REASON = "HSDS answered 503 five times"
WORK_REASON = "ComputeRadiance: MISR camera AN missing"  # the analysis failed on a readable file


@dataclass
class World:
    ctx: Context
    step: Step
    s3: Any
    sqs: Any
    work_url: str

    @property
    def tables(self) -> Tables:
        return self.ctx.tables

    def item(self, name: BasicFusionName) -> dict[str, Any]:
        item = self.tables.files.get(name.file_name)
        assert item is not None
        return item

    def set_file(self, name: BasicFusionName, **values: Any) -> None:
        names = {f"#a{i}": k for i, k in enumerate(values)}
        self.tables.files.ddb.update_item(
            TableName=self.tables.files.table,
            Key={FileAttr.FILE_NAME: serialize(name.file_name)},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": serialize(v) for i, v in enumerate(values.values())},
        )

    def fail(self, name: BasicFusionName, reason: str = REASON) -> None:
        """As the step fails a file whose index request was dead-lettered, with the traces of a restore."""
        assert self.tables.carousel_files.fail(name.file_name, reason, time.time())
        self.set_file(
            name,
            **{
                FileAttr.INDEX_REDRIVES: 3,
                FileAttr.DOMAIN: f"/home/test/basicfusion/{name.year_month}/{name.file_name}",
                FileAttr.RESTORE_EXPIRY: iso_seconds(time.time() + 86_400),
                FileAttr.INDEX_REQUESTED_AT: iso_seconds(time.time()),
                FileAttr.RESTORE_CHECKED_AT: iso_seconds(time.time()),
            },
        )

    def job(
        self,
        job_id: str,
        files: dict[BasicFusionName, tuple[JobFileState, str]],
        state: JobState = JobState.OPEN,
        *,
        reducer: bool = False,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """A job and its job-files, each in the state given with that error ("" for none)."""
        self.tables.job_files.put_new(
            [
                {
                    JobFileAttr.JOB_ID: job_id,
                    JobFileAttr.FILE_NAME: name.file_name,
                    JobFileAttr.STATE: jf_state.value,
                    JobFileAttr.ORBIT: name.orbit,
                    **({JobFileAttr.ERROR: error} if error else {}),
                }
                for name, (jf_state, error) in files.items()
            ]
        )
        assert self.tables.jobs.create(
            {
                JobAttr.JOB_ID: job_id,
                JobAttr.OWNER: "alice",
                JobAttr.DEFINITION: "ComputeRadiance",
                JobAttr.STATE: state.value,
                JobAttr.SUBMITTED_AT: iso_seconds(time.time() - 3600),
                JobAttr.REDUCER: reducer,
                JobAttr.PARAMETERS: {},
                **(attrs or {}),
            }
        )

    def job_file(self, job_id: str, name: BasicFusionName) -> dict[str, Any]:
        (row,) = [r for r in self.tables.job_files.of_job(job_id) if r[JobFileAttr.FILE_NAME] == name.file_name]
        return row

    def job_item(self, job_id: str) -> dict[str, Any]:
        item = self.tables.jobs.get(job_id)
        assert item is not None
        return item

    def marker(self, job_id: str, keys: list[str]) -> float:
        """Write the job's reduced marker as the SDK does; returns its LastModified."""
        key = naming.reduced_marker_key(job_id)
        self.s3.put_object(Bucket=RESULTS, Key=key, Body=json.dumps({"job_id": job_id, "keys": keys}).encode())
        return float(self.s3.head_object(Bucket=RESULTS, Key=key)["LastModified"].timestamp())

    def retry_files(self, *names: BasicFusionName, dry_run: bool = False) -> recovery.RetryReport:
        return recovery.retry_files(
            self.tables, [n.file_name for n in names], s3=self.s3, results_bucket=RESULTS, dry_run=dry_run
        )

    def retry_job(self, job_id: str, **kwargs: Any) -> recovery.RetryReport:
        return recovery.retry_job(self.tables, job_id, s3=self.s3, results_bucket=RESULTS, **kwargs)

    def reduce_requests(self) -> list[ReduceRequest]:
        got = self.sqs.receive_message(QueueUrl=self.work_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [ReduceRequest.from_json(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture()
def world(fake_aws: Any) -> World:
    s3, sqs = fake_aws.s3, fake_aws.sqs
    for bucket in (ARCHIVE, RESULTS):
        s3.create_bucket(Bucket=bucket)
    for name in (BAD, GOOD, OTHER):
        s3.put_object(Bucket=ARCHIVE, Key=archive_key(name, PREFIX), Body=b"\x89HDF orbit", StorageClass="DEEP_ARCHIVE")
    urls = {n: sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("index", "index-dlq", "events", "events-dlq")}
    work_url = sqs.create_queue(QueueName=f"{STACK}-ComputeRadiance-work")["QueueUrl"]
    sqs.create_queue(QueueName=f"{STACK}-ComputeRadiance-work-dlq")
    settings = Settings(
        stack_name=STACK,
        archive_bucket=ARCHIVE,
        results_bucket=RESULTS,
        index_queue_url=urls["index"],
        index_dlq_url=urls["index-dlq"],
        restore_events_queue_url=urls["events"],
        restore_events_dlq_url=urls["events-dlq"],
        files_table=fake_aws.table(FILES_TABLE),
        jobs_table=fake_aws.table(JOBS_TABLE),
        job_files_table=fake_aws.table(JOB_FILES_TABLE),
    )
    tables = Tables.from_names(fake_aws.ddb, FILES_TABLE.table_name, JOBS_TABLE.table_name, JOB_FILES_TABLE.table_name)
    ctx = Context(settings, planner_config(settings), tables, s3=s3, sqs=sqs)
    assert inventory.run(s3, tables.files, bucket=ARCHIVE, prefix=PREFIX, now=time.time()).created == 3
    return World(ctx, Step(ctx, delete_domain=lambda _domain: None), s3, sqs, work_url)


# --- files ---------------------------------------------------------------------------------------------


def test_a_failed_file_retried_is_archived_with_its_version_bumped_and_its_reason_gone(world: World) -> None:
    world.fail(BAD)
    before = int(world.item(BAD)[FileAttr.STATE_VERSION])
    world.job("job-1", {BAD: (JobFileState.FAILED, REASON), GOOD: (JobFileState.DONE, "")})

    report = world.retry_files(BAD)

    item = world.item(BAD)
    assert item[FileAttr.STATE] == FileState.ARCHIVED.value
    assert int(item[FileAttr.STATE_VERSION]) == before + 1  # a state change: index_file's stale writes lose
    gone = (FileAttr.ERROR, FileAttr.INDEX_REDRIVES, FileAttr.DOMAIN, FileAttr.RESTORE_EXPIRY,
            FileAttr.INDEX_REQUESTED_AT, FileAttr.RESTORE_CHECKED_AT)  # fmt: skip
    assert not [a for a in gone if a in item], item
    row = world.job_file("job-1", BAD)
    assert row[JobFileAttr.STATE] == JobFileState.WAITING.value and JobFileAttr.ERROR not in row
    assert world.job_file("job-1", GOOD)[JobFileAttr.STATE] == JobFileState.DONE.value  # untouched
    assert (report.files, report.job_files, report.jobs, report.skipped) == (1, 1, 0, 0)
    assert f"file {BAD.file_name}: FAILED -> ARCHIVED" in report.lines[0] and REASON[:40] in report.lines[0]
    assert report.lines[1] == f"job-file job-1/{BAD.file_name}: FAILED -> WAITING"

    # The carousel takes it from there: the next step restores it for the job that waits for it again.
    step = world.step.run(time.time())
    assert step.restores == 1 and world.item(BAD)[FileAttr.STATE] == FileState.RESTORING.value


def test_a_retry_racing_another_writer_changes_nothing(world: World) -> None:
    """Looked at while FAILED, written after another retry and a step moved on: the conditions refuse."""
    world.fail(BAD)
    world.job("job-1", {BAD: (JobFileState.FAILED, REASON)})
    plan = recovery.plan_for_files(
        [world.item(BAD)], {BAD.file_name: [(world.job_file("job-1", BAD), world.job_item("job-1"))]}
    )
    assert len(plan.files) == 1 and len(plan.job_files) == 1
    # Meanwhile another operator retried both, and a step restored the file and released the job-file.
    assert world.tables.carousel_files.retry_failed(BAD.file_name, time.time())
    assert world.tables.job_files.retry_failed("job-1", BAD.file_name, time.time())
    world.set_file(BAD, **{FileAttr.STATE: FileState.RESTORING.value})
    assert world.tables.job_files.claim_release("job-1", BAD.file_name, time.time())
    file_before, row_before = world.item(BAD), world.job_file("job-1", BAD)

    report = recovery.apply(world.tables, plan, s3=world.s3, results_bucket=RESULTS)

    assert world.item(BAD) == file_before and world.job_file("job-1", BAD) == row_before
    assert (report.files, report.job_files, report.skipped) == (0, 0, 2)
    assert all("skipped: no longer FAILED" in line for line in report.lines)


def test_an_open_job_completed_while_the_retry_ran_is_reopened(world: World) -> None:
    """Its only job-file FAILED: a step may complete the job between the file's write and the job-file's.
    The job-file put back WAITING must not be left in a COMPLETE job that nothing would ever run again."""
    world.fail(BAD)
    world.job("job-1", {BAD: (JobFileState.FAILED, REASON)})
    plan = recovery.plan_for_files(
        [world.item(BAD)], {BAD.file_name: [(world.job_file("job-1", BAD), world.job_item("job-1"))]}
    )
    assert plan.jobs == ()  # no reduction asked for: nothing to do about the job itself, as planned
    assert world.tables.jobs.transition("job-1", JobState.OPEN, JobState.COMPLETE, time.time())  # the step

    report = recovery.apply(world.tables, plan, s3=world.s3, results_bucket=RESULTS)

    job = world.job_item("job-1")
    assert job[JobAttr.STATE] == JobState.OPEN.value and JobAttr.REOPENED_AT in job
    assert JobAttr.COMPLETED_AT not in job
    assert world.job_file("job-1", BAD)[JobFileAttr.STATE] == JobFileState.WAITING.value
    assert report.jobs == 1 and any("it completed while the retry ran" in line for line in report.lines)


def test_only_the_open_jobs_job_files_failed_by_the_file_come_back(world: World) -> None:
    """A job-file failed by the analysis (its own reason) stays FAILED; a COMPLETE job is left alone: both
    are named in a note with the command that retries them."""
    world.fail(BAD)
    world.job("job-open", {BAD: (JobFileState.FAILED, WORK_REASON)})
    world.job("job-done", {BAD: (JobFileState.FAILED, REASON)}, JobState.COMPLETE)

    report = world.retry_files(BAD)

    assert world.item(BAD)[FileAttr.STATE] == FileState.ARCHIVED.value
    assert world.job_file("job-open", BAD)[JobFileAttr.ERROR] == WORK_REASON
    assert world.job_file("job-done", BAD)[JobFileAttr.STATE] == JobFileState.FAILED.value
    assert world.job_item("job-done")[JobAttr.STATE] == JobState.COMPLETE.value
    assert report.job_files == 0
    notes = [line for line in report.lines if line.startswith("note: ")]
    assert any("retry --job job-open" in n and WORK_REASON in n for n in notes), notes
    assert any("job job-done is COMPLETE" in n and "retry --job job-done" in n for n in notes), notes
    assert any("no open job waits" in n for n in notes), notes  # job-open's job-file is still FAILED


def test_files_that_are_not_failed_or_unknown_are_refused_and_nothing_changes(world: World) -> None:
    world.fail(BAD)
    version = world.item(BAD)[FileAttr.STATE_VERSION]
    with pytest.raises(BadInput, match=r"is ARCHIVED, not FAILED.*files --state FAILED"):
        world.retry_files(BAD, GOOD)
    with pytest.raises(BadInput, match=r"no file 'TERRA_BF_L1B_O1_.*' in BasicFusionFiles"):
        recovery.retry_files(world.tables, [BAD.file_name, "TERRA_BF_L1B_O1_x.h5"], s3=world.s3, results_bucket=RESULTS)
    assert world.item(BAD)[FileAttr.STATE] == FileState.FAILED.value  # checked all before writing any
    assert world.item(BAD)[FileAttr.STATE_VERSION] == version


def test_retry_by_reason_queries_the_state_index_and_dry_run_changes_nothing(world: World, no_scan: list[str]) -> None:
    world.fail(BAD)
    world.fail(OTHER, OTHER_REASON)

    dry = recovery.retry_reason(world.tables, "superblock", s3=world.s3, results_bucket=RESULTS, dry_run=True)
    assert dry.dry_run and dry.files == 1 and dry.lines[0].startswith(f"would retry file {BAD.file_name}")
    assert world.item(BAD)[FileAttr.STATE] == FileState.FAILED.value  # a dry run writes nothing

    done = recovery.retry_reason(world.tables, "superblock", s3=world.s3, results_bucket=RESULTS)
    assert done.files == 1
    assert world.item(BAD)[FileAttr.STATE] == FileState.ARCHIVED.value
    assert world.item(OTHER)[FileAttr.STATE] == FileState.FAILED.value  # its reason does not match
    with pytest.raises(BadInput, match="no FAILED file's reason contains 'superblock'"):
        recovery.retry_reason(world.tables, "superblock", s3=world.s3, results_bucket=RESULTS)
    assert not no_scan


# --- jobs ----------------------------------------------------------------------------------------------


def test_retry_job_puts_its_failed_files_back_and_reopens_it(world: World) -> None:
    world.fail(BAD)
    world.set_file(GOOD, **{FileAttr.STATE: FileState.INDEXED.value})
    ended = {
        JobAttr.COMPLETED_AT: iso_seconds(time.time()),
        JobAttr.ERROR: "reducer failed: out of memory",
        JobAttr.DONE_FILES: 0,
        JobAttr.FAILED_FILES: 2,
        JobAttr.COMPOSITE_KEY: ["results/job-1/composites/2015.12.npz"],
        JobAttr.REDUCE_REQUESTED_AT: iso_seconds(time.time()),
    }
    world.job(
        "job-1", {BAD: (JobFileState.FAILED, REASON), GOOD: (JobFileState.FAILED, WORK_REASON)}, JobState.COMPLETE,
        attrs=ended,
    )  # fmt: skip
    world.job("job-2", {BAD: (JobFileState.FAILED, REASON)})  # another open job failed on BAD: it comes back too

    report = world.retry_job("job-1")

    job = world.job_item("job-1")
    assert job[JobAttr.STATE] == JobState.OPEN.value and to_seconds(job[JobAttr.REOPENED_AT])
    assert not [a for a in ended if a in job], job
    for job_id, name in (("job-1", BAD), ("job-1", GOOD), ("job-2", BAD)):
        row = world.job_file(job_id, name)
        assert row[JobFileAttr.STATE] == JobFileState.WAITING.value and JobFileAttr.ERROR not in row, row
    assert world.item(BAD)[FileAttr.STATE] == FileState.ARCHIVED.value
    assert world.item(GOOD)[FileAttr.STATE] == FileState.INDEXED.value  # it was fine: the analysis failed
    assert (report.files, report.job_files, report.jobs) == (1, 3, 1)
    assert "job job-1: COMPLETE -> OPEN (reopened)" in report.lines


@pytest.mark.parametrize(
    ("state", "files", "message"),
    [
        (JobState.CANCELLED, {BAD: (JobFileState.FAILED, REASON)}, "job job-1 is CANCELLED"),
        (JobState.COMPLETE, {GOOD: (JobFileState.DONE, "")}, "nothing to retry"),
        (JobState.OPEN, {GOOD: (JobFileState.WAITING, "")}, "nothing to retry"),
    ],
)
def test_retry_job_refuses_what_it_cannot_retry(
    world: World, state: JobState, files: dict[BasicFusionName, tuple[JobFileState, str]], message: str
) -> None:
    world.fail(BAD)
    world.job("job-1", files, state)
    before = world.job_item("job-1")
    with pytest.raises(BadInput, match=message):
        world.retry_job("job-1")
    assert world.job_item("job-1") == before and world.item(BAD)[FileAttr.STATE] == FileState.FAILED.value
    with pytest.raises(BadInput, match="no such job 'job-nope'"):
        world.retry_job("job-nope")
    with pytest.raises(BadInput, match="is not a job id"):
        world.retry_job("../etc")


def test_reopening_a_job_that_changed_meanwhile_changes_nothing(world: World) -> None:
    world.job("job-1", {GOOD: (JobFileState.DONE, "")}, JobState.COMPLETE, attrs={JobAttr.ERROR: "reducer failed: x"})
    plan = recovery.plan_for_job(world.job_item("job-1"), list(world.tables.job_files.of_job("job-1")), {}, {})
    assert world.tables.jobs.reopen("job-1", time.time())  # another operator was first
    assert world.tables.jobs.transition("job-1", JobState.OPEN, JobState.CANCELLED, time.time())
    report = recovery.apply(world.tables, plan, s3=world.s3, results_bucket=RESULTS)
    assert report.jobs == 0 and report.skipped == 1
    assert world.job_item("job-1")[JobAttr.STATE] == JobState.CANCELLED.value


# --- a reopened job's old reduction ------------------------------------------------------------------


def test_a_reopened_job_completes_only_after_a_new_reduction(world: World) -> None:
    """The old marker must not complete the reopened job, even with the operator's clock an hour behind S3."""
    world.fail(BAD)
    world.job("job-1", {BAD: (JobFileState.FAILED, REASON)}, JobState.COMPLETE, reducer=True)
    old_at = world.marker("job-1", ["results/job-1/composites/old.npz"])
    world.retry_job("job-1", now=time.time() - 3600)
    assert to_seconds(world.job_item("job-1")[JobAttr.REOPENED_AT]) == old_at  # never before the old marker

    # The carousel restores, indexes and computes the file again (done here by hand), then steps.
    world.set_file(BAD, **{FileAttr.STATE: FileState.INDEXED.value})
    assert world.tables.job_files.transition("job-1", BAD.file_name, [JobFileState.WAITING], JobFileState.DONE, 0)
    first = world.step.run(time.time())
    assert "job-1" not in first.completed_jobs and first.reducing == ["job-1"]
    assert first.open_jobs == 1  # reducing is still open: `step --loop --until-done` goes on
    requests = world.reduce_requests()
    assert [(r.job_id, r.owner) for r in requests] == [("job-1", "alice")]  # a new reduction, for alice's maps
    assert world.step.run(time.time()).completed_jobs == []  # the old marker still does not count
    assert world.job_item("job-1")[JobAttr.STATE] == JobState.OPEN.value

    time.sleep(max(0.0, old_at + 1.05 - time.time()))  # LastModified has whole seconds
    world.marker("job-1", ["results/job-1/composites/new.npz"])  # the reducer's new marker
    last = world.step.run(time.time())
    job = world.job_item("job-1")
    assert last.completed_jobs == ["job-1"] and job[JobAttr.STATE] == JobState.COMPLETE.value
    assert last.open_jobs == 0
    assert job[JobAttr.COMPOSITE_KEY] == ["results/job-1/composites/new.npz"]


def test_step_reduced_ignores_a_marker_not_newer_than_the_reopening(world: World) -> None:
    at = world.marker("job-1", ["k"])
    never = {JobAttr.JOB_ID: "job-1"}
    assert world.step.completer.reduced("job-1", never) == {"job_id": "job-1", "keys": ["k"]}
    assert world.step.completer.reduced("job-1", {**never, JobAttr.REOPENED_AT: iso_seconds(at)}) is None
    assert world.step.completer.reduced("job-1", {**never, JobAttr.REOPENED_AT: iso_seconds(at - 1)}) is not None
    # Without the item at hand it reads the job's.
    world.job("job-1", {}, reducer=True, attrs={JobAttr.REOPENED_AT: iso_seconds(at)})
    assert world.step.completer.reduced("job-1") is None


def test_an_open_job_already_reducing_reduces_again_when_a_file_comes_back(world: World) -> None:
    """Every file final, the reducer asked for (or done): a file retried must not be left out of it."""
    world.fail(BAD)
    asked = iso_seconds(time.time() - 60)
    world.job("job-1", {BAD: (JobFileState.FAILED, REASON)}, reducer=True, attrs={JobAttr.REDUCE_REQUESTED_AT: asked})
    marker_at = world.marker("job-1", ["results/job-1/composites/partial.npz"])

    world.retry_files(BAD)

    job = world.job_item("job-1")
    assert JobAttr.REDUCE_REQUESTED_AT not in job  # the step asks again once the file is final
    assert (to_seconds(job[JobAttr.REOPENED_AT]) or 0) >= marker_at  # the partial reduction no longer counts


# --- pure rules ----------------------------------------------------------------------------------------


def test_marker_staleness_and_the_reopen_moment() -> None:
    assert not recovery.marker_is_stale(100.0, None)  # never reopened
    assert recovery.marker_is_stale(100.0, 100.0) and recovery.marker_is_stale(None, 100.0)
    assert not recovery.marker_is_stale(101.0, 100.0)
    # S3's Date wins over the local clock, whichever way the latter is off.
    assert recovery.reopen_moment(local_now=5_000.0, s3_now=1_000.0, old_marker_modified=900.0) == 1_000.0
    assert recovery.reopen_moment(local_now=500.0, s3_now=1_000.0, old_marker_modified=900.0) == 1_000.0
    # No Date: the local clock, never before the old marker.
    assert recovery.reopen_moment(local_now=500.0, s3_now=None, old_marker_modified=900.0) == 900.0
    assert recovery.reopen_moment(local_now=1_200.0, s3_now=None, old_marker_modified=None) == 1_200.0


def test_s3s_date_header_is_read_from_answers_and_errors() -> None:
    date = {"ResponseMetadata": {"HTTPHeaders": {"date": "Thu, 03 Dec 2026 13:53:53 GMT"}}}
    assert recovery._date_header(date) == to_seconds("2026-12-03T13:53:53Z")
    assert recovery._date_header({"ResponseMetadata": {"HTTPHeaders": {"date": "soon"}}}) is None
    assert recovery._date_header({}) is None


def test_a_step_whose_snapshot_predates_a_racing_steps_reduce_request_does_not_send_it_again(world: World) -> None:
    """Two racing steps see the same finished job: only the first sends its ReduceRequest (two reducers would
    write the same composites twice)."""
    world.job("job-1", {GOOD: (JobFileState.DONE, "")}, JobState.OPEN, reducer=True)
    stale = dict(world.job_item("job-1"))  # what the second step loaded, before the first one sent
    world.step.completer.request_reduce(world.job_item("job-1"), time.time(), StepReport(started_at=0.0))
    world.step.completer.request_reduce(stale, time.time(), StepReport(started_at=0.0))
    assert [r.job_id for r in world.reduce_requests()] == ["job-1"]
