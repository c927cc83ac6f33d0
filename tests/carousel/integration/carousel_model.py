"""A model-based test of the carousel's failure semantics: a hypothesis `RuleBasedStateMachine`.

It drives the real `Step`, the real index_file handler (`IndexFileHandler`) and the real job SDK
handler (`datacarousel.job.Handler`, with a toy analysis) through `queue_worker.drain`, against
moto's server (a `ThreadedMotoServer` of its own, reached through `AWS_ENDPOINT_URL`), through
random interleavings of what a real archive does: restores completing, restore events duplicated,
lost, stale or reordered, copies expiring, lifecycle transitions, objects deleted and uploaded
again (good or damaged), stray and early index requests, index_file racing an invalidation, two
steps racing, jobs submitted and cancelled, time passing.

What stands in for AWS where moto lacks it (documented here, nowhere in the product):
- time: the model's clock (`World.now`) runs ahead of the wall clock; moto's S3 dates follow it
  (its `utcnow` is the model's), the carousel and the workers are given it;
- a restored copy's expiry: S3 drops an expired copy's Restore header; moto keeps it, so the
  model drops it when its clock passes the expiry (`World.expire_copies`);
- a restore's progress: moto's state manager in "manual" mode (each read of an object advances
  its restore; the model's `restore_progresses` rule reads it);
- HSDS: a dictionary of published domains (index_file's HSDS calls and the step's domain
  deleter): what is checked here is who may write which state when, not how bytes are indexed;
- SQS time: redrives are not delayed (`Context.redrive_delays_s` = 0) and a failed message is
  visible again at once (drain's visibility timeout 0): the receives of an outage run at once.

After every rule it checks the invariants (`World.check_invariants`); at the end the world stops
changing and every job must reach a final state within a bounded number of rounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from botocore.exceptions import ClientError
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from carousel import inventory, jobs
from carousel.query import JobQuery
from carousel.runtime import Context, planner_config
from carousel.step import Step
from carousel.store import Tables, to_seconds
from datacarousel import aws, hsds, job, registry
from datacarousel.config import Settings
from datacarousel.contract import (
    FILES_TABLE,
    JOB_FILES_TABLE,
    JOBS_TABLE,
    MAX_RECEIVE_COUNT,
    FileAttr,
    FileState,
    JobAttr,
    JobFileAttr,
    JobFileState,
    JobState,
)
from datacarousel.errors import BadInput
from datacarousel.hsds import HsdsAccess
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key
from datacarousel.queue_worker import drain
from index_file import adapters
from index_file.adapters import HsdsTarget, IndexFileHandler
from index_file.core import Marker
from tests.aws_tables import create_table

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import StorageClassType

STACK = "dc-model"
ARCHIVE, RESULTS, PREFIX = "model-archive", "model-results", "bf/"
DEFINITION = "ComputeRadiance"  # its description and queues; the analysis itself is a toy (`toy_process`)
ORBITS = (85079, 85080, 85081, 85082)
NAMES = tuple(BasicFusionName.for_orbit(o) for o in ORBITS)
ARCHIVE_CLASSES = ("DEEP_ARCHIVE", "GLACIER")
WINDOW_FILES = 2  # small, so that the window cap binds
RESTORE_READS = 2  # reads of an object that complete its restore (moto's manual progression)
# Rounds (6 hours of the model's clock each) of a world that no longer changes within which every job must
# end: 10 days, more than a lease (2 days here) plus the time an unneeded copy is kept (2 days): a job
# whose files wait for room in the window waits at most that long.
SETTLE_ROUNDS = 40
SETTLE_ROUND_S = 6 * 3600.0
HOUR = 3600.0


def hdf5_bytes(variant: int) -> bytes:
    """A small real HDF5 file; each variant has other bytes (another ETag)."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("data", data=np.arange(64, dtype=np.int32) * variant)
    return buffer.getvalue()


GOOD = {1: hdf5_bytes(1), 2: hdf5_bytes(2)}
DAMAGED = b"this is no HDF5 file" + bytes(600)


def toy_process(s3: Any) -> job.Process:
    """Reads the orbit's first bytes from S3 and refuses anything but HDF5, like a real analysis's reader."""

    def process(work: job.Work) -> job.Result:
        head = s3.get_object(Bucket=work.item.bucket, Key=work.item.key, Range="bytes=0-7")["Body"].read()
        if head != b"\x89HDF\r\n\x1a\n":
            raise BadInput(f"{work.item.file_name}: not an HDF5 file")
        return job.Result(data=b"result of " + work.item.file_name.encode())

    return process


def toy_reduce(reduction: job.Reduction) -> None:
    reduction.put("summary.txt", f"{len(reduction.result_keys())} results".encode())


@dataclasses.dataclass
class Truth:
    """What the model knows about one file's archive object."""

    present: bool = True
    storage_class: str = "DEEP_ARCHIVE"
    body: bytes = GOOD[1]
    tainted: str = ""  # why FAILED is a legitimate end for this file ("" : it must never fail)

    @property
    def good(self) -> bool:
        return self.present and self.body in GOOD.values()


class Violation(AssertionError):
    pass


class World:
    """One example's AWS (fresh: moto is reset first), clock, HSDS stand-in and workers."""

    def __init__(self, endpoint: str, clock_offset: list[float]) -> None:
        self.endpoint = endpoint
        self.offset = clock_offset  # shared with moto's patched utcnow
        self.offset[0] = 0.0
        self.s3, self.sqs, self.ddb = aws.client("s3"), aws.client("sqs"), aws.client("dynamodb")
        for bucket in (ARCHIVE, RESULTS):
            self.s3.create_bucket(Bucket=bucket)
        queues = {}
        for name in ("index", "events", f"{STACK}-{DEFINITION}-work"):
            dlq = self.sqs.create_queue(QueueName=f"{name}-dlq" if name != "events" else "events-dlq")["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
            queues[name] = (
                self.sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"],
                dlq,
            )
        self.index_url, self.index_dlq = queues["index"]
        self.events_url, self.events_dlq = queues["events"]
        self.work_url, self.work_dlq = queues[f"{STACK}-{DEFINITION}-work"]
        events_arn = self.sqs.get_queue_attributes(QueueUrl=self.events_url, AttributeNames=["QueueArn"])
        self.s3.put_bucket_notification_configuration(
            Bucket=ARCHIVE,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": events_arn["Attributes"]["QueueArn"],
                        "Events": ["s3:ObjectRestore:Completed", "s3:ObjectRestore:Delete"],
                    }
                ]
            },
        )
        for schema in (FILES_TABLE, JOBS_TABLE, JOB_FILES_TABLE):
            create_table(self.ddb, schema)
        self.settings = Settings(
            stack_name=STACK,
            archive_bucket=ARCHIVE,
            archive_prefix=PREFIX,
            results_bucket=RESULTS,
            index_queue_url=self.index_url,
            index_dlq_url=self.index_dlq,
            restore_events_queue_url=self.events_url,
            restore_events_dlq_url=self.events_dlq,
            files_table=FILES_TABLE.table_name,
            jobs_table=JOBS_TABLE.table_name,
            job_files_table=JOB_FILES_TABLE.table_name,
            window_files=WINDOW_FILES,
            restore_days=2,
        )
        self.tables = Tables.from_names(
            self.ddb, FILES_TABLE.table_name, JOBS_TABLE.table_name, JOB_FILES_TABLE.table_name
        )
        self.ctx = Context(
            self.settings, planner_config(self.settings), self.tables, s3=self.s3, sqs=self.sqs, redrive_delays_s=(0,)
        )
        self.truth = {n.file_name: Truth() for n in NAMES}
        for each in NAMES:
            self.upload(each, GOOD[1], "DEEP_ARCHIVE")
        report = inventory.run(self.s3, self.tables.files, bucket=ARCHIVE, prefix=PREFIX, now=self.now)
        assert report.created == len(NAMES)
        # HSDS stand-in: published domains (their markers) and every link made.
        self.markers: dict[str, Marker] = {}
        self.links: Counter[tuple[str, str]] = Counter()  # (domain, etag) -> times linked
        self.relinked: list[str] = []
        self.restores: list[tuple[str, str]] = []  # (file, what S3 had when RestoreObject was called)
        self.s3.meta.events.register("provide-client-params.s3.RestoreObject", self._restore_called)
        self.job_ids: list[str] = []
        self.definition = registry.get(DEFINITION)
        self.target = HsdsTarget(HsdsAccess("http://hsds.invalid", "model", "unused"), "/home/model/bf/")

    # -- time --

    @property
    def now(self) -> float:
        return time.time() + self.offset[0]

    def clock(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC).replace(microsecond=0)

    def key_of(self, name: BasicFusionName) -> str:
        return archive_key(name, PREFIX)

    # -- moto's own objects (the model is S3 here) --

    def moto_key(self, name: BasicFusionName) -> Any:
        from moto.s3.models import s3_backends  # noqa: PLC0415 - moto's internals, the model's S3 only

        bucket = s3_backends["123456789012"]["aws"].buckets[ARCHIVE]
        return bucket.keys.get(self.key_of(name))

    def copy_expiry(self, name: BasicFusionName) -> float | None:
        """Until when S3 serves a restored copy (None: no copy, or a readable class)."""
        key = self.moto_key(name)
        if key is None or key._expiry is None or key.storage_class not in ARCHIVE_CLASSES:
            return None
        return float(key._expiry.replace(tzinfo=UTC).timestamp())

    def restore_ongoing(self, name: BasicFusionName) -> bool:
        key = self.moto_key(name)
        return key is not None and key._expiry is not None and key._status == "IN_PROGRESS"

    def expire_copies(self) -> None:
        """S3 drops a restored copy once its expiry passed."""
        for name in NAMES:
            key = self.moto_key(name)
            expired = key is not None and key._expiry is not None and key._status == "RESTORED"
            if expired and key._expiry.replace(tzinfo=UTC).timestamp() <= self.now:
                key.set_expiry(None)
                key._status = None

    def _restore_called(self, params: dict[str, Any], **_: Any) -> None:
        name = BasicFusionName.parse(params["Key"])
        key = self.moto_key(name)
        status = "gone" if key is None else ("ongoing" if self.restore_ongoing(name) else str(key._status))
        self.restores.append((name.file_name, status))

    def upload(self, name: BasicFusionName, body: bytes, storage_class: StorageClassType) -> None:
        self.s3.put_object(Bucket=ARCHIVE, Key=self.key_of(name), Body=body, StorageClass=storage_class)
        truth = self.truth[name.file_name]
        truth.present, truth.body, truth.storage_class = True, body, storage_class

    # -- HSDS stand-in (patched into index_file.adapters and given to the step) --

    def read_domain_root(self, target: HsdsTarget, domain: str) -> adapters.DomainRoot:
        exists = domain in self.markers  # a domain here is complete, with its restart points
        return adapters.DomainRoot(exists=exists, marker=self.markers.get(domain), restart_points=exists)

    def write_marker(self, target: HsdsTarget, domain: str, marker: Marker) -> None:
        self.markers[domain] = marker

    def link(self, target: HsdsTarget, source: adapters.SourceObject, domain: str) -> hsds.LinkResult:
        self.links[(domain, source.etag)] += 1
        published = self.markers.get(domain)
        if published is not None and (published.source, published.etag) == (source.uri, source.etag):
            self.relinked.append(domain)  # a second link for one need: work done twice
        return hsds.LinkResult(domain, source.uri, source.uri, datasets=1, linked=1, copied=0, seconds=0.0)

    def delete_domain(self, domain: str) -> None:
        self.markers.pop(domain, None)

    # -- the parts under test --

    def step(self) -> Step:
        return Step(self.ctx, delete_domain=self.delete_domain)

    def index_handler(self) -> IndexFileHandler:
        return IndexFileHandler(
            self.s3, self.tables.files, self.target, self.clock, archive_bucket=ARCHIVE, archive_prefix=PREFIX
        )

    def work_handler(self) -> job.Handler:
        return job.Handler(
            self.definition, toy_process(self.s3), toy_reduce, s3=self.s3, results_bucket=RESULTS, reader="s3"
        )

    def drain(self, url: str, dlq: str, handler: Callable[[str], Any], limit: int) -> None:
        drain(self.sqs, url, dlq, handler, max_messages=limit, wait_seconds=0, visibility_timeout=0)

    # -- reading state --

    def items(self) -> dict[str, dict[str, Any]]:
        return {n.file_name: dict(self.tables.files.get(n.file_name) or {}) for n in NAMES}

    def job_items(self) -> dict[str, dict[str, Any]]:
        return {j: dict(self.tables.jobs.get(j) or {}) for j in self.job_ids}

    def job_files(self) -> list[dict[str, Any]]:
        return [dict(r) for j in self.job_ids for r in self.tables.job_files.of_job(j)]

    # -- invariants --

    def check_invariants(self) -> None:
        items = self.items()
        for name in NAMES:
            item, truth = items[name.file_name], self.truth[name.file_name]
            state = item.get(FileAttr.STATE)
            if state == FileState.FAILED.value and not truth.tainted:
                raise Violation(f"{name.file_name}: a good file FAILED: {item.get(FileAttr.ERROR)}")
            if state == FileState.INDEXED.value:
                recorded = to_seconds(item.get(FileAttr.RESTORE_EXPIRY))
                if truth.storage_class in ARCHIVE_CLASSES and truth.present and not truth.tainted:
                    if recorded is None:
                        raise Violation(f"{name.file_name}: INDEXED, archive class, and no expiry recorded")
                    actual = self.copy_expiry(name)
                    if actual is not None and recorded > actual + 1:
                        raise Violation(f"{name.file_name}: recorded expiry {recorded} later than the copy's {actual}")
        for row in self.job_files():
            if row.get(JobFileAttr.STATE) == JobFileState.FAILED.value:
                truth = self.truth[str(row[JobFileAttr.FILE_NAME])]
                if not truth.tainted:
                    raise Violation(f"job-file {row[JobFileAttr.FILE_NAME]} of a good file FAILED: {row.get('error')}")
        twice = [r for r in self.restores if r[1] == "ongoing"]
        if twice:
            raise Violation(f"RestoreObject while a restore was in progress (paid twice): {twice}")
        restoring = sum(1 for item in items.values() if item.get(FileAttr.STATE) == FileState.RESTORING.value)
        if restoring > WINDOW_FILES:
            raise Violation(f"{restoring} files RESTORING, window cap {WINDOW_FILES}")
        if self.relinked:
            raise Violation(f"domains linked again while published for the same object: {self.relinked}")
        for job_id, item in self.job_items().items():
            if item.get(JobAttr.STATE) == JobState.COMPLETE.value:
                rows = [r for r in self.tables.job_files.of_job(job_id)]
                open_rows = [r for r in rows if r[JobFileAttr.STATE] not in (JobFileState.DONE.value, "FAILED")]
                if open_rows:
                    raise Violation(f"job {job_id} COMPLETE with job-files not final: {open_rows}")

    def all_final(self) -> bool:
        return all(
            item.get(JobAttr.STATE) in (JobState.COMPLETE.value, JobState.CANCELLED.value)
            for item in self.job_items().values()
        )


class CarouselMachine(RuleBasedStateMachine):
    """Rules are what the world and the carousel's parts do; the invariants, what must always hold."""

    endpoint = ""  # set by the test before running
    clock_offset: list[float] = [0.0]  # noqa: RUF012 - shared with moto's patched clock
    reset: Callable[[], None] = staticmethod(lambda: None)
    current: World | None = None  # the running example's world (the HSDS stand-in calls into it)

    def __init__(self) -> None:
        super().__init__()
        type(self).reset()
        self.world = World(self.endpoint, self.clock_offset)
        CarouselMachine.current = self.world

    @staticmethod
    def install_hsds_stand_in(setattr_: Callable[[Any, str, Any], None]) -> None:
        """index_file's HSDS calls go to the running example's dictionary of domains."""

        def world() -> World:
            assert CarouselMachine.current is not None
            return CarouselMachine.current

        setattr_(adapters, "read_domain_root", lambda target, domain: world().read_domain_root(target, domain))
        setattr_(adapters, "write_marker", lambda target, domain, marker: world().write_marker(target, domain, marker))
        setattr_(adapters, "link", lambda target, source, domain, inspect=None: world().link(target, source, domain))
        setattr_(adapters, "add_restart_points", lambda *args, **kwargs: 0)  # (in the domain: no domain here)
        setattr_(hsds, "domain_exists", lambda domain, **_: domain in world().markers)

    # -- jobs --

    @rule(first=st.integers(0, len(ORBITS) - 1), count=st.integers(1, len(ORBITS)))
    def submit(self, first: int, count: int) -> None:
        orbits = ORBITS[first : first + count]
        try:
            submission = jobs.submit(
                self.world.tables,
                self.world.ctx.config,
                owner="model",
                definition=self.world.definition,
                query=JobQuery(orbit_min=orbits[0], orbit_max=orbits[-1]),
                now=self.world.now,
                job_id=f"model-{len(self.world.job_ids)}",
            )
        except BadInput:
            return
        self.world.job_ids.append(submission.job_id)

    @precondition(lambda self: bool(self.world.job_ids))
    @rule(which=st.integers(0, 10))
    def cancel(self, which: int) -> None:
        job_id = self.world.job_ids[which % len(self.world.job_ids)]
        with contextlib.suppress(BadInput):  # not open any more
            jobs.cancel(self.world.tables, job_id, now=self.world.now)

    # -- the carousel and its workers --

    @rule()
    def step(self) -> None:
        self.world.step().run(self.world.now)

    @rule()
    def racing_steps(self) -> None:
        steps = [self.world.step(), self.world.step()]
        now = self.world.now
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.run(now), steps))

    @rule(limit=st.integers(1, 4))
    def index_worker(self, limit: int) -> None:
        self.world.drain(self.world.index_url, self.world.index_dlq, self.world.index_handler(), limit)

    @rule()
    def index_worker_racing_a_step(self) -> None:
        """A step runs between index_file's reading the item and its writing INDEXED."""
        handler = self.world.index_handler()
        original = handler.files.mark_indexed
        world = self.world

        def step_first(*args: Any, **kwargs: Any) -> bool:
            world.step().run(world.now)
            return original(*args, **kwargs)

        handler.files.mark_indexed = step_first  # type: ignore[method-assign]
        try:
            self.world.drain(self.world.index_url, self.world.index_dlq, handler, 1)
        finally:
            del handler.files.mark_indexed

    @rule(limit=st.integers(1, 4))
    def work_worker(self, limit: int) -> None:
        self.world.drain(self.world.work_url, self.world.work_dlq, self.world.work_handler(), limit)

    # -- the world --

    @rule(hours=st.sampled_from([0.5, 6.0, 30.0, 60.0]))
    def time_passes(self, hours: float) -> None:
        self.clock_offset[0] += hours * HOUR
        self.world.expire_copies()

    @rule(which=st.sampled_from(NAMES))
    def restore_progresses(self, which: BasicFusionName) -> None:
        for _ in range(RESTORE_READS):
            try:
                self.world.s3.head_object(Bucket=ARCHIVE, Key=self.world.key_of(which))
            except ClientError:  # gone: nothing progresses
                return

    @rule(which=st.sampled_from(NAMES), kind=st.sampled_from(["Completed", "Delete"]), stale=st.booleans())
    def restore_event(self, which: BasicFusionName, kind: str, stale: bool) -> None:
        """A duplicate, stale or made-up restore event (S3 delivers at least once, in any order)."""
        when = self.world.now - (3 * 86_400 if stale else 0)
        expiry = self.world.copy_expiry(which) if kind == "Completed" else None
        record: dict[str, Any] = {
            "eventName": f"ObjectRestore:{kind}",
            "eventTime": datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z"),
            "s3": {"bucket": {"name": ARCHIVE}, "object": {"key": self.world.key_of(which)}},
        }
        if expiry is not None:
            stamp = datetime.fromtimestamp(expiry, UTC).isoformat().replace("+00:00", "Z")
            record["glacierEventData"] = {"restoreEventData": {"lifecycleRestorationExpiryTime": stamp}}
        self.world.sqs.send_message(QueueUrl=self.world.events_url, MessageBody=json.dumps({"Records": [record]}))

    @rule()
    def an_event_is_lost(self) -> None:
        got = self.world.sqs.receive_message(QueueUrl=self.world.events_url, MaxNumberOfMessages=1)
        for message in got.get("Messages", []):
            self.world.sqs.delete_message(QueueUrl=self.world.events_url, ReceiptHandle=message["ReceiptHandle"])

    @rule(which=st.sampled_from(NAMES))
    def lifecycle_transition(self, which: BasicFusionName) -> None:
        """The bucket's lifecycle rule moves a readable (STANDARD) object to Deep Archive (S3 moves objects
        only to colder classes; back to STANDARD is an upload: `object_uploaded_again`)."""
        truth = self.world.truth[which.file_name]
        if not truth.present or truth.storage_class != "STANDARD":
            return
        key = self.world.key_of(which)
        self.world.s3.copy_object(
            Bucket=ARCHIVE, Key=key, CopySource={"Bucket": ARCHIVE, "Key": key}, StorageClass="DEEP_ARCHIVE"
        )
        truth.storage_class = "DEEP_ARCHIVE"

    @rule(which=st.sampled_from(NAMES))
    def object_deleted(self, which: BasicFusionName) -> None:
        self.world.s3.delete_object(Bucket=ARCHIVE, Key=self.world.key_of(which))
        truth = self.world.truth[which.file_name]
        truth.present = False
        truth.tainted = truth.tainted or "its object was deleted"

    @rule(which=st.sampled_from(NAMES), variant=st.sampled_from([1, 2, 0]), archived=st.booleans())
    def object_uploaded_again(self, which: BasicFusionName, variant: int, archived: bool) -> None:
        body = GOOD.get(variant, DAMAGED)
        self.world.upload(which, body, "DEEP_ARCHIVE" if archived else "STANDARD")
        if body == DAMAGED:
            self.world.truth[which.file_name].tainted = "a damaged object was uploaded"

    @rule(
        which=st.sampled_from(NAMES),
        kind=st.sampled_from(["results bucket", "trailing newline", "other key", "old etag", "early"]),
    )
    def stray_index_request(self, which: BasicFusionName, kind: str) -> None:
        """Someone else's request for this file's name (or a request sent before its restore completed)."""
        key = self.world.key_of(which)
        request = {
            "results bucket": IndexRequest(bucket=RESULTS, key=key),
            "trailing newline": IndexRequest(bucket=ARCHIVE, key=key + "\n"),
            "other key": IndexRequest(bucket=ARCHIVE, key=f"{PREFIX}P99/{which.file_name}"),
            "old etag": IndexRequest(bucket=ARCHIVE, key=key, etag="0" * 32),
            "early": IndexRequest(bucket=ARCHIVE, key=key),
        }[kind]
        self.world.sqs.send_message(QueueUrl=self.world.index_url, MessageBody=request.to_json())

    @invariant()
    def invariants_hold(self) -> None:
        self.world.check_invariants()

    def teardown(self) -> None:
        """The world stops changing: every restore completes when read, workers and steps run; every
        job must then end within SETTLE_ROUNDS rounds, and the invariants hold throughout."""
        world = self.world
        for _ in range(SETTLE_ROUNDS):
            if world.all_final():
                break
            for name in NAMES:
                self.restore_progresses(name)
            world.step().run(world.now)
            world.drain(world.index_url, world.index_dlq, world.index_handler(), 20)
            world.drain(world.work_url, world.work_dlq, world.work_handler(), 20)
            world.check_invariants()
            self.clock_offset[0] += SETTLE_ROUND_S
            world.expire_copies()
        open_jobs = {j: i.get(JobAttr.STATE) for j, i in world.job_items().items() if i.get(JobAttr.STATE) == "OPEN"}
        if open_jobs:
            raise Violation(f"jobs still OPEN {SETTLE_ROUNDS} rounds after the world stopped changing: {open_jobs}")
