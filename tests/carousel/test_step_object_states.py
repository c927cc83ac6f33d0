"""Whole carousel steps over objects that are not what the inventory said, on moto's in-process fakes.

HeadObject is the truth about an archive object: its storage class first (absent = STANDARD: readable as
is, no expiry, never expired, invalidated, renewed or restored; GLACIER / DEEP_ARCHIVE: its `Restore`
header decides), and a 404 says it is gone. A file whose object is gone FAILS with the key and S3's answer,
so the job-files waiting for it fail and the job ends; nothing is asked of S3 again and again for ever.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from carousel import inventory
from carousel.runtime import Context, planner_config
from carousel.step import Step, StepReport
from carousel.store import Tables, iso_seconds
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
from datacarousel.files_table import serialize
from datacarousel.naming import BasicFusionName, archive_key

ARCHIVE, RESULTS, PREFIX, STACK = "dc-archive", "dc-results", "bf/", "dc-test"
NAME = BasicFusionName.for_orbit(85079)
KEY = archive_key(NAME, PREFIX)
DOMAIN = f"/home/test/basicfusion/{NAME.year_month}/{NAME.file_name}"
STEP_S = 60.0
MISSING_OBJECT = "archive object missing"  # how a FAILED file's reason starts when its object is gone


@dataclass
class World:
    step: Step
    ctx: Context
    s3: Any
    sqs: Any
    index_url: str
    events_url: str
    deleted_domains: list[str] = field(default_factory=list)
    reports: list[StepReport] = field(default_factory=list)
    now: float = field(default_factory=time.time)

    def put(self, storage_class: str) -> None:
        self.s3.put_object(Bucket=ARCHIVE, Key=KEY, Body=b"\x89HDF orbit", StorageClass=storage_class)

    def inventory(self) -> None:
        report = inventory.run(self.s3, self.ctx.tables.files, bucket=ARCHIVE, prefix=PREFIX, now=self.now)
        assert report.created == 1

    def item(self) -> dict[str, Any]:
        item = self.ctx.tables.files.get(NAME.file_name)
        assert item is not None
        return item

    def set_item(self, **values: Any) -> None:
        names = {f"#a{i}": k for i, k in enumerate(values)}
        files = self.ctx.tables.files
        files.ddb.update_item(
            TableName=files.table,
            Key={FileAttr.FILE_NAME: serialize(NAME.file_name)},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": serialize(v) for i, v in enumerate(values.values())},
        )

    def submit(self, job_id: str = "job-1") -> None:
        assert self.ctx.tables.jobs.create(
            {
                JobAttr.JOB_ID: job_id,
                JobAttr.OWNER: "alice",
                JobAttr.DEFINITION: "ComputeRadiance",
                JobAttr.STATE: JobState.OPEN.value,
                JobAttr.SUBMITTED_AT: iso_seconds(self.now),
            }
        )
        self.ctx.tables.job_files.put_new(
            [{JobFileAttr.JOB_ID: job_id, JobFileAttr.FILE_NAME: NAME.file_name, JobFileAttr.STATE: "WAITING"}]
        )

    def restore_event(self, event: str, expiry: float | None = None) -> None:
        record: dict[str, Any] = {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventTime": iso_seconds(self.now),
            "eventName": event,
            "s3": {"bucket": {"name": ARCHIVE}, "object": {"key": KEY, "size": 10}},
        }
        if expiry is not None:
            record["glacierEventData"] = {"restoreEventData": {"lifecycleRestorationExpiryTime": iso_seconds(expiry)}}
        self.sqs.send_message(QueueUrl=self.events_url, MessageBody=json.dumps({"Records": [record]}))

    def run(self, steps: int = 1) -> StepReport:
        for _ in range(steps):
            self.now += STEP_S
            self.reports.append(self.step.run(self.now))
        return self.reports[-1]

    @property
    def restore_calls(self) -> int:
        """RestoreObject calls so far (answered or refused), renewals included."""
        return sum(r.restores + r.renewals + r.restore_failures for r in self.reports)

    def index_requests(self) -> list[str]:
        got = self.sqs.receive_message(QueueUrl=self.index_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [m["Body"] for m in got.get("Messages", [])]

    def job_file(self, job_id: str = "job-1") -> dict[str, Any]:
        (row,) = self.ctx.tables.job_files.of_job(job_id)
        return row

    def job_state(self, job_id: str = "job-1") -> str:
        job = self.ctx.tables.jobs.get(job_id)
        assert job is not None
        return str(job[JobAttr.STATE])


@pytest.fixture()
def world(fake_aws: Any) -> World:
    s3, sqs = fake_aws.s3, fake_aws.sqs
    for bucket in (ARCHIVE, RESULTS):
        s3.create_bucket(Bucket=bucket)
    urls = {n: sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("index", "index-dlq", "events", "events-dlq")}
    for suffix in ("work", "work-dlq"):
        sqs.create_queue(QueueName=f"{STACK}-ComputeRadiance-{suffix}")
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
    deleted: list[str] = []
    step = Step(ctx, delete_domain=deleted.append)
    return World(step, ctx, s3, sqs, urls["index"], urls["events"], deleted_domains=deleted)


# --- storage class ---------------------------------------------------------------------------------


def test_restore_refused_for_an_object_no_longer_archived_records_it_readable_once(world: World) -> None:
    """Inventoried in DEEP_ARCHIVE, then copied into STANDARD: RestoreObject answers InvalidObjectState.
    The step looks at the object and records it readable as is, instead of asking again every step."""
    world.put("DEEP_ARCHIVE")
    world.inventory()
    world.put("STANDARD")
    world.submit()
    world.run(4)
    assert world.restore_calls == 1, "RestoreObject asked again after InvalidObjectState"
    item = world.item()
    assert item[FileAttr.STATE] == FileState.RESTORED.value
    assert FileAttr.RESTORE_EXPIRY not in item, "a STANDARD object has no expiry"
    assert int(item[FileAttr.RESTORE_COUNT]) == 0, "a refused restore costs nothing"
    assert len(world.index_requests()) == 1  # and it is indexed as it is


def test_a_restore_event_for_an_indexed_standard_object_changes_nothing(world: World) -> None:
    """A STANDARD object has no Restore header; a restore event about it must not expire it, delete its
    domain and send every later step to RestoreObject (InvalidObjectState, for ever)."""
    world.put("STANDARD")
    world.inventory()
    world.set_item(**{FileAttr.STATE: FileState.INDEXED.value, FileAttr.DOMAIN: DOMAIN})
    world.submit()
    world.restore_event("ObjectRestore:Delete")
    world.restore_event("ObjectRestore:Completed", expiry=world.now + 86_400)
    world.run(3)
    item = world.item()
    assert item[FileAttr.STATE] == FileState.INDEXED.value and item[FileAttr.DOMAIN] == DOMAIN
    assert FileAttr.RESTORE_EXPIRY not in item
    assert world.deleted_domains == [] and world.restore_calls == 0
    assert sum(r.events_deleted for r in world.reports) == 2  # the events were handled, not left
    assert world.job_file()[JobFileAttr.STATE] == JobFileState.QUEUED.value  # released as it was


def test_an_object_moved_to_deep_archive_after_inventory_is_restored_not_failed(world: World) -> None:
    """Inventoried in STANDARD (RESTORED, no expiry), then moved to DEEP_ARCHIVE by a lifecycle rule: an index
    request could only fail (and FAIL the file); the file goes back to ARCHIVED and is restored instead."""
    world.put("STANDARD")
    world.inventory()
    world.put("DEEP_ARCHIVE")
    world.submit()
    world.run()
    assert world.index_requests() == [], "an index request for an archived object"
    world.run(2)  # the copy it never had is invalidated, then the file is restored
    item = world.item()
    assert item[FileAttr.STATE] == FileState.RESTORING.value
    assert world.restore_calls == 1 and int(item[FileAttr.RESTORE_COUNT]) == 1
    assert world.index_requests() == []
    assert world.job_file()[JobFileAttr.STATE] == JobFileState.WAITING.value


def test_a_renewal_refused_for_an_object_no_longer_archived_drops_its_expiry(world: World) -> None:
    world.put("STANDARD")
    world.inventory()
    soon = world.now + 3600  # within the renewal margin: the planner renews it
    world.set_item(**{FileAttr.STATE: FileState.INDEXED.value, FileAttr.DOMAIN: DOMAIN})
    world.set_item(**{FileAttr.RESTORE_EXPIRY: iso_seconds(soon)})
    world.submit()
    world.run(3)
    item = world.item()
    assert item[FileAttr.STATE] == FileState.INDEXED.value and FileAttr.RESTORE_EXPIRY not in item
    assert world.restore_calls == 1 and world.deleted_domains == []


# --- objects that are gone ---------------------------------------------------------------------------


def _assert_failed_as_missing(world: World, answer: str) -> None:
    item = world.item()
    assert item[FileAttr.STATE] == FileState.FAILED.value
    error = str(item[FileAttr.ERROR])
    assert error.startswith(MISSING_OBJECT) and f"s3://{ARCHIVE}/{KEY}" in error and answer in error, error


def test_a_deleted_archive_object_fails_its_file_and_the_job_ends(world: World) -> None:
    """Deleted after inventory: RestoreObject answers NoSuchKey. Not asked again every step: the file FAILS
    (missing, with the key and the answer), its job-file fails with that reason and the job completes."""
    world.put("DEEP_ARCHIVE")
    world.inventory()
    world.s3.delete_object(Bucket=ARCHIVE, Key=KEY)
    world.submit()
    world.run(3)
    assert world.restore_calls == 1
    _assert_failed_as_missing(world, "RestoreObject answered HTTP 404 (NoSuchKey)")
    row = world.job_file()
    assert row[JobFileAttr.STATE] == JobFileState.FAILED.value and MISSING_OBJECT in row[JobFileAttr.ERROR]
    assert world.job_state() == JobState.COMPLETE.value


def test_a_completion_event_for_a_deleted_object_never_restores_it(world: World) -> None:
    """HeadObject 404 is the truth: a Completed event for an object that is gone makes nothing RESTORED."""
    world.put("DEEP_ARCHIVE")
    world.inventory()
    world.submit()
    world.run()
    assert world.item()[FileAttr.STATE] == FileState.RESTORING.value
    world.s3.delete_object(Bucket=ARCHIVE, Key=KEY)
    world.restore_event("ObjectRestore:Completed", expiry=world.now + 86_400)
    world.run()
    _assert_failed_as_missing(world, "HeadObject answered HTTP 404")
    world.run()
    assert world.job_state() == JobState.COMPLETE.value
    assert world.index_requests() == [] and world.restore_calls == 1


def test_a_deleted_standard_object_fails_instead_of_being_looked_for_every_step(world: World) -> None:
    """Inventoried readable (STANDARD), deleted before indexing: the HeadObject before the index request
    answers 404, every step, for ever, unless the file FAILS."""
    world.put("STANDARD")
    world.inventory()
    world.s3.delete_object(Bucket=ARCHIVE, Key=KEY)
    world.submit()
    world.run(3)
    _assert_failed_as_missing(world, "HeadObject answered HTTP 404")
    assert world.job_file()[JobFileAttr.STATE] == JobFileState.FAILED.value
    assert world.job_state() == JobState.COMPLETE.value
    assert world.index_requests() == []
