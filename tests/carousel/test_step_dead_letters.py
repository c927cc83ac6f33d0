"""What the carousel step makes of dead letters, on in-process fakes of S3, SQS and DynamoDB (moto's `mock_aws`).

FAILED is terminal (the planner then fails every job-file waiting for the file), so only a dead-lettered
index request for the file's own object fails it: the bucket and key its item records and, when the request
carried one, the object's current ETag. A stray request (another bucket or key, a key with a trailing
newline, an older object version, a file not restored when every receive failed only transiently) is
logged and deleted, the file left as it was. A dead letter that names no file or job is logged at ERROR
with its body and deleted, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from carousel import inventory
from carousel.runtime import Context, planner_config
from carousel.step import MAX_INDEX_REDRIVES, MAX_WORK_REDRIVES, Step, StepReport, redrive_delay
from carousel.store import Tables, iso_seconds
from datacarousel.config import Settings
from datacarousel.contract import (
    FAILURE_REASON_ATTRIBUTE,
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
from datacarousel.files_table import serialize
from datacarousel.messages import IndexRequest, WorkItem
from datacarousel.naming import BasicFusionName, archive_key

ARCHIVE, RESULTS, PREFIX = "dc-archive", "dc-results", "bf/"
GOOD = BasicFusionName.for_orbit(85079)  # readable (STANDARD: RESTORED at inventory)
OTHER = BasicFusionName.for_orbit(85078)  # readable too
ARCHIVED = BasicFusionName.for_orbit(85077)  # in Deep Archive
POISON = "truncated HDF5 file: the superblock says 9000 bytes, the object has 4096"


@dataclass
class World:
    step: Step
    ctx: Context
    sqs: Any
    s3: Any
    index_url: str
    dlq_url: str
    work_url: str
    work_dlq_url: str
    sent: list[dict[str, Any]]  # every SendMessage's parameters, with its DelaySeconds

    def key(self, name: BasicFusionName) -> str:
        return archive_key(name, PREFIX)

    def etag(self, name: BasicFusionName) -> str:
        return str(self.s3.head_object(Bucket=ARCHIVE, Key=self.key(name))["ETag"]).strip('"')

    def dead_letter(self, body: str, reason: str | None = POISON, url: str | None = None) -> None:
        attributes = {} if reason is None else {FAILURE_REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}}
        self.sqs.send_message(QueueUrl=url or self.dlq_url, MessageBody=body, MessageAttributes=attributes)

    def messages(self, url: str) -> list[str]:
        """The bodies on a queue, failing if any is hidden (received and left: a step sees it again later)."""
        names = ["ApproximateNumberOfMessagesNotVisible"]
        hidden = int(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"][names[0]])
        got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        bodies = [m["Body"] for m in got.get("Messages", [])]
        assert hidden == 0, f"{hidden} message(s) received and left on {url} (besides {bodies})"
        return bodies

    def item(self, name: BasicFusionName) -> dict[str, Any]:
        item = self.ctx.tables.files.get(name.file_name)
        assert item is not None
        return item

    def record(self) -> StepReport:
        report = StepReport(started_at=time.time())
        self.step.dead_letters.record_index_failures(time.time(), report)
        return report


@pytest.fixture()
def world(fake_aws: Any) -> World:
    s3, sqs = fake_aws.s3, fake_aws.sqs
    for bucket in (ARCHIVE, RESULTS):
        s3.create_bucket(Bucket=bucket)
    for name, storage in ((GOOD, "STANDARD"), (OTHER, "STANDARD"), (ARCHIVED, "DEEP_ARCHIVE")):
        s3.put_object(Bucket=ARCHIVE, Key=archive_key(name, PREFIX), Body=b"\x89HDF orbit", StorageClass=storage)
    urls = {n: sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("index", "index-dlq", "events", "events-dlq")}
    work = sqs.create_queue(QueueName="dc-test-ComputeRadiance-work")["QueueUrl"]
    work_dlq = sqs.create_queue(QueueName="dc-test-ComputeRadiance-work-dlq")["QueueUrl"]
    sent: list[dict[str, Any]] = []
    sqs.meta.events.register("provide-client-params.sqs.SendMessage", lambda params, **_: sent.append(dict(params)))
    settings = Settings(
        stack_name="dc-test",
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
    return World(Step(ctx), ctx, sqs, s3, urls["index"], urls["index-dlq"], work, work_dlq, sent)


def test_a_poison_request_for_the_files_own_object_fails_it(world: World) -> None:
    world.dead_letter(IndexRequest(bucket=ARCHIVE, key=world.key(GOOD), etag=world.etag(GOOD)).to_json())
    report = world.record()
    assert report.failed_files == 1 and report.stray_index_requests == 0
    item = world.item(GOOD)
    assert item[FileAttr.STATE] == FileState.FAILED.value and POISON in item[FileAttr.ERROR]
    assert world.messages(world.dlq_url) == []


# Dead-lettered index requests that say nothing about GOOD, however they name it.
STRAY: dict[str, Callable[[World], IndexRequest]] = {
    "key with a trailing newline": lambda w: IndexRequest(bucket=ARCHIVE, key=w.key(GOOD) + "\n"),
    "another bucket (results)": lambda w: IndexRequest(bucket=RESULTS, key=w.key(GOOD)),
    "another bucket (unknown)": lambda w: IndexRequest(bucket="someone-elses", key=w.key(GOOD)),
    "another key": lambda w: IndexRequest(bucket=ARCHIVE, key=f"{PREFIX}P23/{GOOD.file_name}"),
    "dot-dot key": lambda w: IndexRequest(bucket=ARCHIVE, key=f"{PREFIX}x/../P22/{GOOD.file_name}"),
    "an older version of the object": lambda w: IndexRequest(bucket=ARCHIVE, key=w.key(GOOD), etag="0" * 32),
}


@pytest.mark.parametrize("case", sorted(STRAY))
def test_a_stray_index_request_never_fails_a_good_file(world: World, case: str) -> None:
    world.dead_letter(STRAY[case](world).to_json())
    before = world.item(GOOD)
    report = world.record()
    assert report.failed_files == 0
    assert world.item(GOOD) == before, "the file's item changed"
    assert world.messages(world.dlq_url) == [], "the dead letter was not deleted"
    assert world.messages(world.index_url) == [], "a stray request was redriven"


def test_the_etag_compared_is_the_items_when_it_records_one(world: World) -> None:
    files = world.ctx.tables.files
    files.ddb.update_item(
        TableName=files.table,
        Key={FileAttr.FILE_NAME: serialize(GOOD.file_name)},
        UpdateExpression="SET #e = :e",
        ExpressionAttributeNames={"#e": FileAttr.ETAG},
        ExpressionAttributeValues={":e": serialize("recorded-etag")},
    )
    world.dead_letter(IndexRequest(bucket=ARCHIVE, key=world.key(GOOD), etag=world.etag(GOOD)).to_json())
    assert world.record().failed_files == 0  # the object's ETag, but not the one the item records
    assert world.item(GOOD)[FileAttr.STATE] == FileState.RESTORED.value
    world.dead_letter(IndexRequest(bucket=ARCHIVE, key=world.key(GOOD), etag='"recorded-etag"').to_json())
    assert world.record().failed_files == 1
    assert world.item(GOOD)[FileAttr.STATE] == FileState.FAILED.value


def test_a_request_that_only_failed_transiently_fails_no_file_that_is_not_restored(world: World) -> None:
    """No reason: every receive failed transiently, e.g. 'not restored yet' (NotReadable) for a request
    sent too early or whose copy expired. The carousel requests indexing again once the file is restored."""
    request = IndexRequest(bucket=ARCHIVE, key=world.key(ARCHIVED))
    for _ in range(5):  # more than MAX_INDEX_REDRIVES
        world.dead_letter(request.to_json(), reason=None)
        assert world.record().failed_files == 0
    item = world.item(ARCHIVED)
    assert item[FileAttr.STATE] == FileState.ARCHIVED.value and FileAttr.INDEX_REDRIVES not in item
    assert world.messages(world.index_url) == [] and world.messages(world.dlq_url) == []
    # A readable file's request is redriven, later each time, then the file fails with the transient reason.
    readable = IndexRequest(bucket=ARCHIVE, key=world.key(GOOD)).to_json()
    for _ in range(MAX_INDEX_REDRIVES):
        world.dead_letter(readable, reason=None)
        assert world.record().redriven == 1
    redriven = [p for p in world.sent if p["QueueUrl"] == world.index_url]
    assert [p["MessageBody"] for p in redriven] == [readable] * MAX_INDEX_REDRIVES
    assert [p["DelaySeconds"] for p in redriven] == [redrive_delay(n) for n in (1, 2, 3)] == [60, 300, 900]
    world.dead_letter(readable, reason=None)
    assert world.record().failed_files == 1
    assert "after 3 redrives" in world.item(GOOD)[FileAttr.ERROR]


def test_the_planner_fails_only_the_job_files_of_a_file_that_failed(world: World) -> None:
    """A whole step: a stray dead letter for GOOD, a true one for OTHER; a job waits for both."""
    now = time.time()
    jobs, job_files = world.ctx.tables.jobs, world.ctx.tables.job_files
    assert jobs.create(
        {
            JobAttr.JOB_ID: "job-1",
            JobAttr.OWNER: "alice",
            JobAttr.DEFINITION: "ComputeRadiance",
            JobAttr.STATE: JobState.OPEN.value,
            JobAttr.SUBMITTED_AT: iso_seconds(now),
        }
    )
    job_files.put_new(
        [
            {JobFileAttr.JOB_ID: "job-1", JobFileAttr.FILE_NAME: n.file_name, JobFileAttr.STATE: "WAITING"}
            for n in (GOOD, OTHER)
        ]
    )
    world.dead_letter(IndexRequest(bucket=RESULTS, key=world.key(GOOD)).to_json())
    world.dead_letter(IndexRequest(bucket=ARCHIVE, key=world.key(OTHER)).to_json())
    report = world.step.run(now)
    assert (report.failed_files, report.stray_index_requests) == (1, 1)
    states = {r[JobFileAttr.FILE_NAME]: r[JobFileAttr.STATE] for r in job_files.of_job("job-1")}
    assert states == {GOOD.file_name: JobFileState.WAITING.value, OTHER.file_name: JobFileState.FAILED.value}
    assert world.item(GOOD)[FileAttr.STATE] == FileState.RESTORED.value
    assert [IndexRequest.from_json(b).key for b in world.messages(world.index_url)] == [world.key(GOOD)]


def test_unattributable_index_dead_letters_are_logged_with_their_body_and_deleted_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    long_junk = "x" * 5000
    bodies = [
        "{not json",
        IndexRequest(bucket=ARCHIVE, key=f"{PREFIX}not-a-basicfusion-file.h5").to_json(),
        long_junk,
    ]
    for body in bodies:
        world.dead_letter(body)
    with caplog.at_level(logging.ERROR, logger="carousel.queues"):
        report = world.record()
    assert report.unattributed_dead_letters == 3 and report.failed_files == 0
    assert world.messages(world.dlq_url) == [], "left for every later step to read again"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and all("could not be attributed" in e for e in errors)
    assert any("{not json" in e for e in errors) and any("not-a-basicfusion-file.h5" in e for e in errors)
    assert any("(5000 chars)" in e and long_junk not in e for e in errors), "long bodies are cut"
    assert world.record().unattributed_dead_letters == 0


def test_unattributable_work_dead_letters_are_logged_with_their_body_and_deleted_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    escape = WorkItem("job-1", "ComputeRadiance", GOOD.file_name, ARCHIVE, world.key(GOOD)).to_json()
    escape = escape.replace('"job-1"', '"../../escape/x"')
    for body in ("not a job message", escape):
        world.dead_letter(body, url=world.work_dlq_url)
    report = StepReport(started_at=time.time())
    with caplog.at_level(logging.ERROR, logger="carousel.queues"):
        changes = world.step.dead_letters.record_dead_work(world.work_url, world.work_dlq_url, time.time(), report)
    assert changes == {} and report.unattributed_dead_letters == 2
    assert world.messages(world.work_dlq_url) == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("could not be attributed" in e for e in errors)
    assert any("../../escape/x" in e for e in errors)


def _queued_job_file(world: World, job_id: str, name: BasicFusionName) -> WorkItem:
    now = time.time()
    jobs, job_files = world.ctx.tables.jobs, world.ctx.tables.job_files
    assert jobs.create(
        {
            JobAttr.JOB_ID: job_id,
            JobAttr.OWNER: "alice",
            JobAttr.DEFINITION: "ComputeRadiance",
            JobAttr.STATE: JobState.OPEN.value,
            JobAttr.SUBMITTED_AT: iso_seconds(now),
        }
    )
    job_files.put_new(
        [{JobFileAttr.JOB_ID: job_id, JobFileAttr.FILE_NAME: name.file_name, JobFileAttr.STATE: "QUEUED"}]
    )
    return WorkItem(job_id, "ComputeRadiance", name.file_name, ARCHIVE, world.key(name))


def _job_file(world: World, job_id: str, name: BasicFusionName) -> dict[str, Any]:
    return next(r for r in world.ctx.tables.job_files.of_job(job_id) if r[JobFileAttr.FILE_NAME] == name.file_name)


def test_work_that_failed_only_transiently_is_sent_again_later_then_fails_with_that_reason(world: World) -> None:
    """An outage longer than the work queue's receives (5 x its visibility) does not fail a job-file for good:
    the item is sent again after 60, 300, 900 s; only then does the job-file fail, saying it was transient."""
    body = _queued_job_file(world, "job-t", GOOD).to_json()
    for n in range(1, MAX_WORK_REDRIVES + 1):
        world.dead_letter(body, reason=None, url=world.work_dlq_url)
        report = StepReport(started_at=time.time())
        assert world.step.dead_letters.record_dead_work(world.work_url, world.work_dlq_url, time.time(), report) == {}
        assert report.redriven == 1 and report.failed_job_files == 0
        assert int(_job_file(world, "job-t", GOOD)[JobFileAttr.REDRIVES]) == n
    redriven = [p for p in world.sent if p["QueueUrl"] == world.work_url]
    assert [(p["MessageBody"], p["DelaySeconds"]) for p in redriven] == [(body, d) for d in (60, 300, 900)]
    assert world.messages(world.work_dlq_url) == []
    world.dead_letter(body, reason=None, url=world.work_dlq_url)
    report = StepReport(started_at=time.time())
    changes = world.step.dead_letters.record_dead_work(world.work_url, world.work_dlq_url, time.time(), report)
    assert changes == {("job-t", GOOD.file_name): JobFileState.FAILED}
    job_file = _job_file(world, "job-t", GOOD)
    assert job_file[JobFileAttr.STATE] == JobFileState.FAILED.value
    assert "transient failures only" in job_file[JobFileAttr.ERROR]


def test_work_with_a_reason_fails_at_once_and_a_job_file_no_longer_queued_is_not_redriven(world: World) -> None:
    body = _queued_job_file(world, "job-p", GOOD).to_json()
    world.dead_letter(body, reason="BadInput: MISR radiance chunk at 4096 is corrupt", url=world.work_dlq_url)
    report = StepReport(started_at=time.time())
    world.step.dead_letters.record_dead_work(world.work_url, world.work_dlq_url, time.time(), report)
    assert (report.redriven, report.failed_job_files) == (0, 1)
    assert "corrupt" in _job_file(world, "job-p", GOOD)[JobFileAttr.ERROR]
    world.dead_letter(body, reason=None, url=world.work_dlq_url)  # a late duplicate of the same item
    report = StepReport(started_at=time.time())
    world.step.dead_letters.record_dead_work(world.work_url, world.work_dlq_url, time.time(), report)
    assert (report.redriven, report.failed_job_files) == (0, 0)
    assert [p for p in world.sent if p["QueueUrl"] == world.work_url] == []


def _archive_in_place(world: World, name: BasicFusionName) -> None:
    """The bucket's lifecycle rule moves the object into Deep Archive (same bytes, same ETag)."""
    key = world.key(name)
    world.s3.copy_object(
        Bucket=ARCHIVE, Key=key, CopySource={"Bucket": ARCHIVE, "Key": key}, StorageClass="DEEP_ARCHIVE"
    )


def test_a_readable_file_whose_object_was_archived_is_restored_again_not_failed_transiently(world: World) -> None:
    """Found by the model-based test: a STANDARD file the lifecycle rule moved to Deep Archive made every
    index receive fail (not restored), three redrives later the file FAILED. Its requests failing only
    transiently, the step looks at the object: not readable, so the file is ARCHIVED again (to restore)."""
    _archive_in_place(world, GOOD)
    request = IndexRequest(bucket=ARCHIVE, key=world.key(GOOD)).to_json()
    world.dead_letter(request, reason=None)
    report = world.record()
    assert (report.failed_files, report.redriven, report.invalidated) == (0, 0, 1)
    assert world.item(GOOD)[FileAttr.STATE] == FileState.ARCHIVED.value
    assert world.messages(world.dlq_url) == [] and world.messages(world.index_url) == []


def test_work_of_a_file_whose_object_was_archived_waits_for_its_restore(world: World) -> None:
    body = _queued_job_file(world, "job-a", GOOD).to_json()
    _archive_in_place(world, GOOD)
    world.dead_letter(body, reason=None, url=world.work_dlq_url)
    report = StepReport(started_at=time.time())
    changes = world.step.dead_letters.record_dead_work(world.work_url, world.work_dlq_url, time.time(), report)
    assert changes == {("job-a", GOOD.file_name): JobFileState.WAITING} and report.redriven == 0
    assert world.item(GOOD)[FileAttr.STATE] == FileState.ARCHIVED.value
    assert world.messages(world.work_url) == [] and world.messages(world.work_dlq_url) == []


def test_a_readable_file_whose_object_is_gone_fails_with_the_evidence(world: World) -> None:
    world.s3.delete_object(Bucket=ARCHIVE, Key=world.key(GOOD))
    world.dead_letter(IndexRequest(bucket=ARCHIVE, key=world.key(GOOD)).to_json(), reason=None)
    assert world.record().failed_files == 1
    item = world.item(GOOD)
    assert item[FileAttr.STATE] == FileState.FAILED.value
    assert "archive object missing" in item[FileAttr.ERROR] and "404" in item[FileAttr.ERROR]
