"""One carousel step: observe, plan, apply, launch.

1. Receive the restore events waiting on the restore-events queue (hints) and
   look at each named object (HeadObject is the truth: its storage class, then for an
   archived object its `Restore` header; a 404 means the object is gone).
2. Load the snapshot (open jobs, their job-files, the window, the files they need).
3. Record what the workers reported: a QUEUED job-file is DONE when its result
   object exists (one listing of the job's result prefix per step), FAILED when
   its WorkItem reached the work dead-letter queue; a file whose index request
   reached the index dead-letter queue is FAILED (and so are its job-files) — only
   when that request named the file's own object (its item's bucket and key, and
   the object's current ETag if it carried one). Any other dead letter is logged
   and deleted, the file left as it is; one that names no file or job is logged at
   ERROR with its body (it could not be attributed) and deleted too.
4. Plan (`carousel.planner.step`: reconciliation first, then the plan) and apply
   every action with a conditional write; RestoreObject / SendMessage happen only
   for the writer that won the condition, so two steps at once never duplicate
   a restore or a release. Restore-event messages are deleted only once their
   effect is recorded.
5. Start workers for the backlogs (index_file, record_metadata, job drainers), one
   step at a time (the launch lease).
6. Complete the jobs whose job-files are all DONE or FAILED. A job whose definition has a
   reducer (ComputeRadiance's monthly composites) gets one ReduceRequest on its work queue; a
   worker of the definition's own image runs the reducer, and the job is COMPLETE once the
   reducer's marker (`naming.reduced_marker_key`) exists. The carousel never runs analysis code.

A step killed at any point loses nothing: every effect is either recorded (and
the next step sees it) or redone by the next step (a claimed release whose
WorkItem was not sent is sent again after `PENDING_RELEASE_GRACE_S`; a claimed
restore whose request was never made is found ARCHIVED by the next probe).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from carousel import launch, planner
from carousel.actions import (
    CancelJob,
    CompleteJob,
    FailJobFile,
    InvalidateExpired,
    ProbeRestore,
    QueueIndex,
    Release,
    RenewLease,
    RequestRestore,
    UpdateFileState,
)
from carousel.cost import expiry_after
from carousel.events import ParsedEvent, parse_event_message
from carousel.launcher import Launcher
from carousel.model import JOB_FILE_CODE, JobFileTable, Snapshot
from carousel.recovery import marker_is_stale, reopened_at
from carousel.restore import (
    ObservedRestore,
    ObservedStatus,
    claimed,
    missing_reason,
    object_missing,
    observe_head,
    readable_now,
    reconcile,
)
from carousel.runtime import DEFAULT_REDRIVE_DELAYS_S, Context
from carousel.store import READABLE_STATES, LaunchLease, Loaded, iso_seconds, load, to_seconds
from datacarousel import hsds, naming
from datacarousel.archive import error_code, is_not_found, normalize_etag
from datacarousel.aws import list_keys
from datacarousel.contract import (
    DEFAULT_STACK_NAME,
    FAILURE_REASON_ATTRIBUTE,
    SQS_BATCH_SIZE,
    FileAttr,
    FileState,
    JobAttr,
    JobDefinitionName,
    JobFileAttr,
    JobFileState,
    JobState,
)
from datacarousel.definitions import DEFAULT_MODE, MODE_PARAMETER
from datacarousel.errors import BadFileName, BadInput, ConfigError, MalformedMessage
from datacarousel.files_table import metadata_is_current
from datacarousel.messages import IndexRequest, ReduceRequest, WorkItem, parse_job_message
from datacarousel.queue_worker import send_to_dead_letter_queue
from datacarousel.work_queues import WorkQueues

log = logging.getLogger(__name__)

EVENT_VISIBILITY_S = 120
DLQ_VISIBILITY_S = 300
MAX_EVENT_MESSAGES = 5000  # per step; the rest waits for the next step
MAX_DLQ_MESSAGES = 1000
PENDING_RELEASE_GRACE_S = 300.0  # a claimed release not sent after this long is sent again
EXCEEDED_RECEIVES = "exceeded max receives"
# How often a reason-less dead letter (every receive failed transiently: an S3 or HSDS outage, a worker
# killed) is sent back before its file or job-file FAILS with that reason; each time after a longer delay.
MAX_INDEX_REDRIVES = 3
MAX_WORK_REDRIVES = 3


def redrive_delay(redrive: int, delays: Sequence[int] = DEFAULT_REDRIVE_DELAYS_S) -> int:
    """The delay of the `redrive`-th redrive (1-based): growing, then the last one."""
    return delays[min(max(redrive, 1), len(delays)) - 1]


# How much of a dead letter that names no file or job the log keeps (it is deleted after).
UNATTRIBUTED_BODY_CHARS = 2000
THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
RESTORE_DONE_CODES = frozenset({"RestoreAlreadyInProgress"})
# RestoreObject refused because of the object itself: not in an archive class, or gone. Asking again changes
# nothing: the step records what S3 says about the object instead (`Step.refused`).
RESTORE_REFUSED_CODES = frozenset({"InvalidObjectState", "NoSuchKey"})
IO_WORKERS = 16
LAUNCH_LEASE_S = 60.0  # a step killed while launching blocks launches for at most this long
# A ReduceRequest is sent once (SQS keeps it until a worker is done or it is dead-lettered); it is sent
# again only if no marker appeared this long after: past the work queue's retention a message is gone.
REDUCE_RESEND_S = 3 * 24 * 3600.0

DomainDeleter = Callable[[str], Any]


@dataclass
class StepReport:
    started_at: float
    seconds: float = 0.0
    events_received: int = 0
    events_deleted: int = 0
    events_malformed: int = 0
    heads: int = 0
    restores: int = 0
    renewals: int = 0
    restore_failures: int = 0
    index_requests: int = 0
    index_repeats_held: int = 0  # stale index requests not repeated because the index queue is not empty
    releases: int = 0
    done: int = 0
    failed_job_files: int = 0
    failed_files: int = 0
    stray_index_requests: int = 0  # dead-lettered index requests that said nothing about their file
    unattributed_dead_letters: int = 0  # dead letters naming no file or job: logged, then deleted
    redriven: int = 0  # dead letters of transient failures sent back to their queue (with a delay)
    invalidated: int = 0
    completed_jobs: list[str] = field(default_factory=list)
    reducing: list[str] = field(default_factory=list)  # done jobs whose reducer has not finished yet
    reduce_requests: int = 0
    conflicts: int = 0
    launched: dict[str, int] = field(default_factory=dict)
    launch_deferred: bool = False  # another step held the launch lease
    window_bytes: int = 0
    window_files: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- S3 helpers ----------------------------------------------------------------------------


def _throttled(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in THROTTLING_CODES


@retry(
    retry=retry_if_exception(_throttled),
    stop=stop_after_attempt(6),
    wait=wait_exponential_jitter(initial=1, max=30),
    reraise=True,
)
def restore_object(s3: Any, bucket: str, key: str, days: int, tier: str) -> str:
    """RestoreObject; 'accepted' (202), 'extended' (200: a copy existed) or 'in-progress'. Throttling is retried
    (botocore's standard retries first, then these, with backoff)."""
    try:
        response = s3.restore_object(
            Bucket=bucket, Key=key, RestoreRequest={"Days": int(days), "GlacierJobParameters": {"Tier": tier}}
        )
    except ClientError as exc:
        if error_code(exc) in RESTORE_DONE_CODES:
            return "in-progress"
        raise
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 202))
    return "extended" if status == 200 else "accepted"


def s3_answer(call: str, exc: ClientError) -> str:
    """What S3 answered, as evidence: e.g. "HeadObject answered HTTP 404 (404)"."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    return f"{call} answered HTTP {status} ({error_code(exc) or '-'})"


def head_restore(s3: Any, bucket: str, key: str, now: float) -> ObservedRestore:
    """What S3 says about the object (`restore.observe_head`: its storage class, then its `Restore` header);
    MISSING when HeadObject answers 404: the object is gone, whatever a restore event said."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            log.warning("head s3://%s/%s: no such object", bucket, key)
            return object_missing(bucket, key, s3_answer("HeadObject", exc), now)
        raise
    return observe_head(head, now)


def _message_count(sqs: Any, url: str, names: Sequence[str]) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]
    return sum(int(attrs.get(name, 0)) for name in names)


def queue_depth(sqs: Any, url: str) -> int:
    """Messages waiting to be received (what a new worker would find)."""
    return _message_count(sqs, url, ["ApproximateNumberOfMessages"])


def queue_backlog(sqs: Any, url: str) -> int:
    """Messages in the queue: waiting, being worked on (in flight) or delayed."""
    return _message_count(
        sqs,
        url,
        ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
    )


def receive_all(sqs: Any, url: str, *, limit: int, visibility: int) -> list[dict[str, Any]]:
    """Up to `limit` messages (10 a call, no waiting), each hidden for `visibility` seconds."""
    messages: list[dict[str, Any]] = []
    while len(messages) < limit:
        response = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(SQS_BATCH_SIZE, limit - len(messages)),
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        batch = response.get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
    return messages


def failure_reason(message: Mapping[str, Any]) -> str:
    attr = message.get("MessageAttributes", {}).get(FAILURE_REASON_ATTRIBUTE, {})
    return str(attr.get("StringValue") or EXCEEDED_RECEIVES)


def _delete(sqs: Any, url: str, message: Mapping[str, Any]) -> None:
    try:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    except (ClientError, BotoCoreError) as exc:  # recorded already; a redelivery changes nothing
        log.warning("could not delete message %s from %s: %s", message.get("MessageId"), url, exc)


def drop_unattributed(sqs: Any, url: str, message: Mapping[str, Any], what: str, error: BaseException) -> None:
    """A dead letter that names no file or job: logged at ERROR with its id and (truncated) body, so a
    person can still find it, then deleted, so that later steps do not read it again until retention."""
    body = str(message.get("Body", ""))
    shown = body if len(body) <= UNATTRIBUTED_BODY_CHARS else f"{body[:UNATTRIBUTED_BODY_CHARS]}... ({len(body)} chars)"
    log.error(
        "%s dead letter %s could not be attributed to any file or job (%s: %s); deleted from %s. Its body: %r",
        what,
        message.get("MessageId"),
        type(error).__name__,
        error,
        url,
        shown,
    )
    _delete(sqs, url, message)


# --- snapshot edits --------------------------------------------------------------------------


def with_job_file_states(snapshot: Snapshot, changes: Mapping[tuple[str, str], JobFileState]) -> Snapshot:
    if not changes:
        return snapshot
    jf = snapshot.job_files
    state = jf.state.copy()
    jobs, files = snapshot.jobs.position, snapshot.files.position
    index = {(int(j), int(f)): r for r, (j, f) in enumerate(zip(jf.job, jf.file, strict=True))}
    for (job_id, name), new in changes.items():
        r = index.get((jobs.get(job_id, -1), files.get(name, -1)))
        if r is not None:
            state[r] = JOB_FILE_CODE[new]
    return snapshot.replace(job_files=JobFileTable.build(jf.job, jf.file, state))


# --- the step ---------------------------------------------------------------------------------


class Step:
    """One carousel step over a `Context` (clients, tables, settings)."""

    def __init__(
        self,
        ctx: Context,
        *,
        launcher: Launcher | None = None,
        delete_domain: DomainDeleter | None = None,
        pending_release_grace_s: float = PENDING_RELEASE_GRACE_S,
    ) -> None:
        self.ctx = ctx
        self.pending_release_grace_s = pending_release_grace_s
        self.s3 = ctx.s3
        self.sqs = ctx.sqs
        self.tables = ctx.tables
        self.files = ctx.tables.carousel_files
        self.settings = ctx.settings
        self.config = ctx.config
        self.launcher = launcher
        self.work_queues = WorkQueues(self.sqs, str(ctx.settings.stack_name or DEFAULT_STACK_NAME))
        self._delete_domain = delete_domain
        self.events_dlq_url = ctx.settings.restore_events_dlq_url or ""
        # Who holds a lease this step takes (launching workers).
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # ---- helpers ----

    def bucket_of(self, loaded: Loaded, name: str) -> str:
        item = loaded.files.get(name, {})
        return str(item.get(FileAttr.BUCKET) or self.settings.require("archive_bucket"))

    def key_of(self, loaded: Loaded, name: str) -> str:
        item = loaded.files.get(name, {})
        return str(item.get(FileAttr.KEY) or name)

    def delete_domain(self, domain: str) -> None:
        if self._delete_domain is not None:
            self._delete_domain(domain)
            return
        hsds.delete_domain(domain)

    # ---- 1. restore events ----

    def receive_events(self, report: StepReport) -> list[tuple[dict[str, Any], list[ParsedEvent]]]:
        url = self.settings.require("restore_events_queue_url")
        received = []
        for message in receive_all(self.sqs, url, limit=MAX_EVENT_MESSAGES, visibility=EVENT_VISIBILITY_S):
            report.events_received += 1
            try:
                parsed = parse_event_message(message.get("Body", ""))
            except MalformedMessage as exc:
                report.events_malformed += 1
                if self.events_dlq_url:
                    send_to_dead_letter_queue(
                        self.sqs,
                        self.events_dlq_url,
                        message.get("Body", ""),
                        str(exc),
                        error_type=type(exc).__name__,
                        source_queue_url=url,
                        message_id=str(message.get("MessageId", "")),
                    )
                    _delete(self.sqs, url, message)
                else:  # left: the queue's redrive moves it to its dead-letter queue
                    log.warning("malformed restore event %s left for redrive: %s", message.get("MessageId"), exc)
                continue
            received.append((message, parsed))
        return received

    def observe(
        self, loaded: Loaded, names: Iterable[str], now: float, report: StepReport
    ) -> dict[str, ObservedRestore]:
        names = [n for n in dict.fromkeys(names) if n in loaded.files]

        def look(name: str) -> tuple[str, ObservedRestore | None]:
            return name, head_restore(self.s3, self.bucket_of(loaded, name), self.key_of(loaded, name), now)

        observed: dict[str, ObservedRestore] = {}
        with ThreadPoolExecutor(max_workers=IO_WORKERS) as pool:
            for name, seen in pool.map(look, names):
                report.heads += 1
                if seen is not None:
                    observed[name] = seen
        return observed

    # ---- 3. worker reports ----

    def record_results(self, loaded: Loaded, now: float, report: StepReport) -> dict[tuple[str, str], JobFileState]:
        """QUEUED/RUNNING job-files whose result object exists -> DONE (one listing per job)."""
        bucket = self.settings.require("results_bucket")
        pending: dict[str, list[str]] = {}
        for (job_id, name), item in loaded.job_files.items():
            if item.get(JobFileAttr.STATE) in (JobFileState.QUEUED.value, JobFileState.RUNNING.value):
                pending.setdefault(job_id, []).append(name)
        changes: dict[tuple[str, str], JobFileState] = {}
        for job_id, names in pending.items():
            keys = list_keys(self.s3, bucket, f"{naming.RESULTS_PREFIX}/{job_id}/")
            job = loaded.jobs.get(job_id, {})
            named = {
                "prefix": str(job.get(JobAttr.RESULT_PREFIX) or naming.RESULT_PREFIX),
                "suffix": str(job.get(JobAttr.RESULT_SUFFIX) or ".npz"),
            }
            for name in names:
                key = naming.result_key(job_id, naming.BasicFusionName.parse(name), **named)
                if key not in keys:
                    continue
                if self.tables.job_files.transition(
                    job_id, name, (JobFileState.QUEUED, JobFileState.RUNNING), JobFileState.DONE, now, result_key=key
                ):
                    report.done += 1
                    changes[(job_id, name)] = JobFileState.DONE
                    log.info("job %s file %s: DONE (%s)", job_id, name, key)
                else:
                    report.conflicts += 1
        return changes

    def definitions_in_use(self, loaded: Loaded) -> list[str]:
        """The job definitions of the loaded (open) jobs: the work queues this step serves."""
        return sorted({str(job[JobAttr.DEFINITION]) for job in loaded.jobs.values() if job.get(JobAttr.DEFINITION)})

    def record_work_failures(
        self, loaded: Loaded, now: float, report: StepReport
    ) -> dict[tuple[str, str], JobFileState]:
        """Dead-lettered work of the open jobs' definitions: transient failures sent again (a few times,
        later each time), the rest job-files FAILED and reductions ended, with their reason."""
        changes: dict[tuple[str, str], JobFileState] = {}
        for definition in self.definitions_in_use(loaded):
            try:
                queue = self.work_queues.of(definition)
            except ConfigError as exc:
                log.error("%s", exc)
                continue
            changes.update(self._record_dead_work(queue.url, queue.dead_letter_url, now, report))
        return changes

    def _record_dead_work(
        self, url: str, dead_letter_url: str, now: float, report: StepReport
    ) -> dict[tuple[str, str], JobFileState]:
        changes: dict[tuple[str, str], JobFileState] = {}
        for message in receive_all(self.sqs, dead_letter_url, limit=MAX_DLQ_MESSAGES, visibility=DLQ_VISIBILITY_S):
            try:
                item = parse_job_message(message.get("Body", ""))
            except MalformedMessage as exc:
                report.unattributed_dead_letters += 1
                drop_unattributed(self.sqs, dead_letter_url, message, "work", exc)
                continue
            reason = failure_reason(message)
            if isinstance(item, ReduceRequest):
                if reason == EXCEEDED_RECEIVES and self.tables.jobs.claim_reduce_redrive(
                    item.job_id, now, MAX_WORK_REDRIVES
                ):
                    delay = self.ctx.tuning.redrive_delays_s[-1]
                    self._redrive(url, dead_letter_url, message, delay, f"job {item.job_id}'s reduction")
                    report.redriven += 1
                    continue
                self.fail_reduce(item, self._final_reason(reason, MAX_WORK_REDRIVES), now, report)
                _delete(self.sqs, dead_letter_url, message)
                continue
            if reason == EXCEEDED_RECEIVES and self.copy_lost(item.file_name, now, report):
                # Released again once the file is readable again (or failed with it when its object is gone).
                if self.tables.job_files.transition(
                    item.job_id, item.file_name, (JobFileState.QUEUED, JobFileState.RUNNING), JobFileState.WAITING, now
                ):
                    changes[(item.job_id, item.file_name)] = JobFileState.WAITING
                _delete(self.sqs, dead_letter_url, message)
                continue
            if reason == EXCEEDED_RECEIVES:
                redrive = self.tables.job_files.claim_redrive(item.job_id, item.file_name, now, MAX_WORK_REDRIVES)
                if redrive is not None:
                    what = f"job {item.job_id} file {item.file_name}"
                    self._redrive(
                        url, dead_letter_url, message, redrive_delay(redrive, self.ctx.tuning.redrive_delays_s), what
                    )
                    report.redriven += 1
                    continue
            # Only a QUEUED/RUNNING job-file fails: one put back to WAITING (its copy expired) waits for a new release.
            if self.tables.job_files.transition(
                item.job_id,
                item.file_name,
                (JobFileState.QUEUED, JobFileState.RUNNING),
                JobFileState.FAILED,
                now,
                error=self._final_reason(reason, MAX_WORK_REDRIVES),
            ):
                report.failed_job_files += 1
                changes[(item.job_id, item.file_name)] = JobFileState.FAILED
                log.warning("job %s file %s: FAILED: %s", item.job_id, item.file_name, reason)
            _delete(self.sqs, dead_letter_url, message)
        return changes

    @staticmethod
    def _final_reason(reason: str, redrives: int) -> str:
        """A failure's recorded reason; a transient one says that it outlived every redrive."""
        if reason != EXCEEDED_RECEIVES:
            return reason
        return f"{reason} after {redrives} redrives (transient failures only: retry once the cause is fixed)"

    def _redrive(self, url: str, dead_letter_url: str, message: Mapping[str, Any], delay: int, what: str) -> None:
        """Send a dead letter back to its queue after `delay` seconds, then delete it (sent first: a step
        killed in between sends it twice, and every handler is idempotent)."""
        self.sqs.send_message(QueueUrl=url, MessageBody=message.get("Body", ""), DelaySeconds=delay)
        _delete(self.sqs, dead_letter_url, message)
        log.warning("%s: failed transiently at every receive; sent again in %d s", what, delay)

    def copy_lost(self, name: str, now: float, report: StepReport) -> bool:
        """Whether file `name`, held readable (RESTORED or INDEXED), has no readable copy any more.

        Asked when its work or index request failed transiently at every receive: the cause may be
        the object itself (moved into an archive class by a lifecycle rule, its copy gone early,
        deleted). Then sending the request again cannot help: the file goes back to ARCHIVED (its
        domain deleted first), so that the planner restores it again for the jobs that need it, or,
        when the object is gone, FAILED with S3's answer as evidence.
        """
        item = self.tables.files.get(name)
        if item is None or item.get(FileAttr.STATE) not in {s.value for s in READABLE_STATES}:
            return False
        bucket = str(item.get(FileAttr.BUCKET) or self.settings.require("archive_bucket"))
        seen = head_restore(self.s3, bucket, str(item.get(FileAttr.KEY) or name), now)
        report.heads += 1
        if readable_now(seen, now):
            return False
        version = int(item.get(FileAttr.STATE_VERSION, 0) or 0)
        if seen.status is ObservedStatus.MISSING:
            if self.files.set_state(name, version, FileState.FAILED, None, now, error=missing_reason(seen)):
                report.failed_files += 1
                log.warning("file %s: FAILED: %s", name, missing_reason(seen))
            return True
        domain = str(item.get(FileAttr.DOMAIN) or "")
        if domain:
            self.delete_domain(domain)  # first, as for an expired copy
        if self.files.invalidate(name, version, now):
            report.invalidated += 1
            log.warning("file %s: its object is %s, not readable: back to ARCHIVED, to be restored", name, seen.status)
        return True

    def stray_index_request(self, request: IndexRequest, name: str, reason: str, report: StepReport) -> str | None:
        """Why a dead-lettered index request says nothing about file `name` (None: it does).

        Only a request for the file's own object counts: the bucket and key its item records (the
        archive bucket and the file name where it records none) and, if the request carried an ETag,
        the object's current one (the item's, else HeadObject's). A request that failed only
        transiently (no reason) counts only while the file is readable (RESTORED): one for a file
        not restored (yet, or any more) failed because of that, and the carousel requests indexing
        again itself once the file is restored.
        """
        item = self.tables.files.get(name)
        if item is None:
            return "the file is not in the files table"
        bucket = str(item.get(FileAttr.BUCKET) or self.settings.require("archive_bucket"))
        key = str(item.get(FileAttr.KEY) or name)
        if (request.bucket, request.key) != (bucket, key):
            return f"it names s3://{request.bucket}/{request.key!r}, not the file's s3://{bucket}/{key}"
        if request.etag:
            current = str(item.get(FileAttr.ETAG) or "").strip('"') or self.current_etag(bucket, key, report)
            if current and request.etag.strip('"') != current:
                return f"it was for ETag {request.etag}, the object's is {current}"
        state = str(item.get(FileAttr.STATE, ""))
        if reason == EXCEEDED_RECEIVES and state != FileState.RESTORED.value:
            return f"it failed only transiently and the file is {state or 'in no state'}, not RESTORED"
        return None

    def current_etag(self, bucket: str, key: str, report: StepReport) -> str:
        """The object's ETag now; "" when it is gone (other S3 errors are raised)."""
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return ""
            raise
        finally:
            report.heads += 1
        return normalize_etag(head.get("ETag"))

    def record_index_failures(self, now: float, report: StepReport) -> int:
        url = self.settings.require("index_dlq_url")
        failed = 0
        for message in receive_all(self.sqs, url, limit=MAX_DLQ_MESSAGES, visibility=DLQ_VISIBILITY_S):
            body = message.get("Body", "")
            try:
                request = IndexRequest.from_json(body)
                name = naming.BasicFusionName.parse(request.key).file_name
            except (MalformedMessage, BadFileName) as exc:
                report.unattributed_dead_letters += 1
                drop_unattributed(self.sqs, url, message, "index", exc)
                continue
            reason = failure_reason(message)
            try:
                stray = self.stray_index_request(request, name, reason, report)
            except (ClientError, BotoCoreError) as exc:  # left: the next step looks again
                log.warning("index dead letter %s (file %s) not checked now: %s", message.get("MessageId"), name, exc)
                continue
            if stray is not None:
                report.stray_index_requests += 1
                log.warning(
                    "index dead letter %s does not fail file %s: %s (its reason: %s); deleted, the file left as it is",
                    message.get("MessageId"),
                    name,
                    stray,
                    reason,
                )
                _delete(self.sqs, url, message)
                continue
            if reason == EXCEEDED_RECEIVES and self.copy_lost(name, now, report):
                _delete(self.sqs, url, message)  # the carousel restores it and asks for indexing again
                continue
            if reason == EXCEEDED_RECEIVES and self.files.claim_index_redrive(name, now, MAX_INDEX_REDRIVES):
                # No reason recorded: every receive failed transiently. The file is not bad: try again, later.
                redrives = int((self.tables.files.get(name) or {}).get(FileAttr.INDEX_REDRIVES, 1) or 1)
                index_url = self.settings.require("index_queue_url")
                delay = redrive_delay(redrives, self.ctx.tuning.redrive_delays_s)
                self._redrive(index_url, url, message, delay, f"file {name}'s index request")
                report.redriven += 1
                continue
            if self.files.fail(name, f"indexing failed: {self._final_reason(reason, MAX_INDEX_REDRIVES)}", now):
                failed += 1
                report.failed_files += 1
                log.warning("file %s: FAILED: %s", name, reason)
            _delete(self.sqs, url, message)
        return failed

    # ---- 4. apply ----

    def apply_update(self, action: UpdateFileState, now: float, report: StepReport) -> bool:
        # RESTORING -> ARCHIVED: S3 has neither a copy nor a restore in progress, so the request never took;
        # RESTORING -> RESTORED with no expiry: the object is readable as is (not archived): nothing to restore.
        never_took = action.from_state is FileState.RESTORING and (
            action.to_state is FileState.ARCHIVED
            or (action.to_state is FileState.RESTORED and action.restore_expiry is None)
        )
        ok = self.files.set_state(
            action.file_name,
            action.expected_version,
            action.to_state,
            action.restore_expiry,
            now,
            uncount_restore=never_took,
            error=action.reason or None,
        )
        if ok:
            log.info(
                "file %s: %s -> %s (expiry %s)%s",
                action.file_name,
                action.from_state.value,
                action.to_state.value,
                iso_seconds(action.restore_expiry) if action.restore_expiry else "-",
                f": {action.reason}" if action.reason else "",
            )
        else:
            report.conflicts += 1
        return ok

    def settle(
        self,
        loaded: Loaded,
        name: str,
        seen: ObservedRestore,
        now: float,
        report: StepReport,
        *,
        claimed_version: int | None = None,
    ) -> None:
        """Record what S3 said about a file's object while an action was applied (reconciled like a probe;
        `claimed_version`: this step's restore claim moved the file to RESTORING at that version)."""
        snapshot = loaded.snapshot
        if claimed_version is not None:
            snapshot = claimed(snapshot, name, claimed_version, now)
        for change in reconcile(snapshot, (), {name: seen}, now):
            self.apply_update(change, now, report)

    def refused(
        self, bucket: str, key: str, exc: BaseException, now: float, report: StepReport
    ) -> ObservedRestore | None:
        """What S3 says about an object RestoreObject refused because of the object itself (None: another
        error, or no look possible now): NoSuchKey -> gone (S3's answer is the evidence); InvalidObjectState
        -> not in an archive class: HeadObject says what it is (e.g. readable as is)."""
        if not isinstance(exc, ClientError) or error_code(exc) not in RESTORE_REFUSED_CODES:
            return None
        if error_code(exc) == "NoSuchKey":
            return object_missing(bucket, key, s3_answer("RestoreObject", exc), now)
        report.heads += 1
        try:
            return head_restore(self.s3, bucket, key, now)
        except (ClientError, BotoCoreError) as head_exc:
            log.error("head s3://%s/%s after RestoreObject refused it failed: %s", bucket, key, head_exc)
            return None

    def apply_restore(self, loaded: Loaded, action: RequestRestore, now: float, report: StepReport) -> None:
        if not self.files.claim_restore(action.file_name, action.expected_version, now):
            report.conflicts += 1
            return
        bucket, key = self.bucket_of(loaded, action.file_name), self.key_of(loaded, action.file_name)
        try:
            outcome = restore_object(self.s3, bucket, key, action.days, action.tier.value)
        except (ClientError, BotoCoreError) as exc:
            report.restore_failures += 1
            log.error("restore of s3://%s/%s failed: %s", bucket, key, exc)
            seen = self.refused(bucket, key, exc, now, report)
            if seen is None:
                self.files.unclaim_restore(action.file_name, action.expected_version + 1, now)
            else:  # not archived (readable as is) or gone (FAILED): recorded, not requested again every step
                self.settle(loaded, action.file_name, seen, now, report, claimed_version=action.expected_version + 1)
            return
        report.restores += 1
        log.info(
            "file %s: restore requested (%s, %d days, %s): %s",
            action.file_name,
            action.tier.value,
            action.days,
            key,
            outcome,
        )

    def apply_renewal(self, loaded: Loaded, action: RenewLease, now: float, report: StepReport) -> None:
        bucket, key = self.bucket_of(loaded, action.file_name), self.key_of(loaded, action.file_name)
        try:
            restore_object(self.s3, bucket, key, action.days, action.tier.value)
        except (ClientError, BotoCoreError) as exc:
            report.restore_failures += 1
            log.error("lease renewal of s3://%s/%s failed: %s", bucket, key, exc)
            seen = self.refused(bucket, key, exc, now, report)
            if seen is not None:  # not archived any more (readable as is, no expiry) or gone (FAILED)
                self.settle(loaded, action.file_name, seen, now, report)
            return
        report.renewals += 1
        if not self.files.set_lease(action.file_name, expiry_after(now, action.days), now):
            report.conflicts += 1
        log.info("file %s: lease renewed for %d days", action.file_name, action.days)

    def apply_probe(self, loaded: Loaded, action: ProbeRestore, now: float, report: StepReport) -> None:
        seen = self.observe(loaded, [action.file_name], now, report)
        self.files.mark_probed(action.file_name, now)
        if action.file_name not in seen:
            return
        for update in reconcile(loaded.snapshot, (), seen, now):
            self.apply_update(update, now, report)

    def apply_index(self, loaded: Loaded, action: QueueIndex, now: float, report: StepReport) -> None:
        bucket, key = self.bucket_of(loaded, action.file_name), self.key_of(loaded, action.file_name)
        etag = str(loaded.files.get(action.file_name, {}).get(FileAttr.ETAG, ""))
        if not etag:
            try:
                head = self.s3.head_object(Bucket=bucket, Key=key)
                report.heads += 1
            except ClientError as exc:
                if is_not_found(exc):  # gone: FAILED, not looked for every step
                    gone = object_missing(bucket, key, s3_answer("HeadObject", exc), now)
                    self.settle(loaded, action.file_name, gone, now, report)
                    return
                log.error("head s3://%s/%s before indexing failed: %s", bucket, key, exc)
                return
            seen = observe_head(head, now)
            if not readable_now(seen, now):
                # Not readable (e.g. moved into an archive class after inventory): not indexed, which could
                # only fail; recorded instead (the planner puts it back to ARCHIVED, restored when needed).
                self.settle(loaded, action.file_name, seen, now, report)
                return
            etag = normalize_etag(head.get("ETag"))
        # Claim first: of two steps at once only one sends (a claim whose send dies is retried after index_retry_s).
        if not self.files.claim_index_request(action.file_name, now, self.config.index_retry_s):
            report.conflicts += 1
            return
        request = IndexRequest(bucket=bucket, key=key, size=action.size_bytes, etag=etag)
        self.sqs.send_message(QueueUrl=self.settings.require("index_queue_url"), MessageBody=request.to_json())
        report.index_requests += 1
        log.info("file %s: index requested", action.file_name)

    def queue_index_requests(
        self, loaded: Loaded, actions: Sequence[QueueIndex], now: float, report: StepReport
    ) -> None:
        """First requests go at once; a repeat (the last request is older than index_retry_s) only once
        the index queue is empty. A sent request is durable in SQS (failures reach its dead-letter
        queue, which the step reads), so a repeat only covers a claim whose send never happened; while
        the queue holds a backlog longer than index_retry_s, repeating would flood it with duplicates."""
        first: list[QueueIndex] = []
        repeats: list[QueueIndex] = []
        for action in actions:
            requested = loaded.files.get(action.file_name, {}).get(FileAttr.INDEX_REQUESTED_AT)
            (repeats if requested else first).append(action)
        if repeats:
            backlog = queue_backlog(self.sqs, self.settings.require("index_queue_url"))
            if backlog:
                report.index_repeats_held += len(repeats)
                log.info(
                    "%d index requests not repeated: the index queue still holds %d messages", len(repeats), backlog
                )
                repeats = []
        for action in first + repeats:
            self.apply_index(loaded, action, now, report)

    def work_item(self, loaded: Loaded, job_id: str, name: str, domain: str) -> WorkItem:
        job = loaded.jobs.get(job_id, {})
        parameters = {str(k): str(v) for k, v in (job.get(JobAttr.PARAMETERS) or {}).items()}
        return WorkItem(
            job_id=job_id,
            job_definition=str(job[JobAttr.DEFINITION]),
            file_name=name,
            bucket=self.bucket_of(loaded, name),
            key=self.key_of(loaded, name),
            domain=domain,
            parameters=parameters,
        )

    def send_release(self, loaded: Loaded, job_id: str, name: str, domain: str) -> None:
        item = self.work_item(loaded, job_id, name, domain)
        self.sqs.send_message(QueueUrl=self.work_queues.of(item.job_definition).url, MessageBody=item.to_json())
        self.tables.job_files.release_sent(job_id, name)

    def apply_release(self, loaded: Loaded, action: Release, now: float, report: StepReport) -> None:
        if not self.tables.job_files.claim_release(action.job_id, action.file_name, now):
            report.conflicts += 1
            return
        try:
            self.send_release(loaded, action.job_id, action.file_name, action.domain)
        # Its definition has no work queue (claimed, sent once the queue exists), or the job's id or
        # definition name could never make a WorkItem (refused, not sent).
        except (ConfigError, MalformedMessage) as exc:
            log.error("job %s file %s: not released: %s", action.job_id, action.file_name, exc)
            return
        report.releases += 1
        log.info("job %s file %s: released (WAITING -> QUEUED)", action.job_id, action.file_name)

    def resend_pending(self, loaded: Loaded, now: float, report: StepReport) -> None:
        """QUEUED job-files whose WorkItem was claimed but (as far as anyone recorded) never sent."""
        for (job_id, name), item in loaded.job_files.items():
            pending = to_seconds(item.get(JobFileAttr.RELEASE_PENDING_AT))
            if item.get(JobFileAttr.STATE) != JobFileState.QUEUED.value or pending is None:
                continue
            if now - pending < self.pending_release_grace_s:
                continue
            domain = str(loaded.files.get(name, {}).get(FileAttr.DOMAIN, ""))
            try:
                self.send_release(loaded, job_id, name, domain)
            except (ConfigError, MalformedMessage) as exc:
                log.error("job %s file %s: not released: %s", job_id, name, exc)
                continue
            report.releases += 1
            log.warning(
                "job %s file %s: release claimed at %s but not confirmed: WorkItem sent again",
                job_id,
                name,
                iso_seconds(pending),
            )

    def apply_invalidate(self, action: InvalidateExpired, now: float, report: StepReport) -> None:
        if action.domain:
            self.delete_domain(action.domain)  # first: a crash after it leaves the file readable -> redone
        if not self.files.invalidate(action.file_name, action.expected_version, now):
            report.conflicts += 1
            return
        report.invalidated += 1
        log.info(
            "file %s: restored copy expired: domain %s deleted, back to ARCHIVED",
            action.file_name,
            action.domain or "-",
        )
        for job_id in action.requeue:
            if self.tables.job_files.transition(
                job_id, action.file_name, (JobFileState.QUEUED,), JobFileState.WAITING, now
            ):
                log.info("job %s file %s: QUEUED -> WAITING (its copy expired)", job_id, action.file_name)

    def apply_fail_job_file(self, loaded: Loaded, action: FailJobFile, now: float, report: StepReport) -> None:
        error = str(loaded.files.get(action.file_name, {}).get(FileAttr.ERROR, "")) or action.reason
        if self.tables.job_files.transition(
            action.job_id,
            action.file_name,
            (JobFileState.WAITING, JobFileState.QUEUED),
            JobFileState.FAILED,
            now,
            error=error,
        ):
            report.failed_job_files += 1
        else:
            report.conflicts += 1

    def reduced(self, job_id: str, job: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The job's reduced marker ({"keys": [...], ...}) once its reducer wrote it, else None.

        A job reopened by `datacarousel retry` (`JobAttr.REOPENED_AT`) must be reduced again: a marker
        not newer than its reopening is the old reduction's and counts as absent. The marker's age is its
        S3 LastModified, not a time written in it by the reducer (the SDK writes none, and a worker's
        clock may be off): LastModified and `reopened_at` are both S3's clock (`recovery.reopen_moment`
        takes the latter from S3's Date header, never earlier than the old marker), so clock skew can
        never make the old marker count; see `recovery.marker_is_stale`. `job`: the job's item if the
        caller has it; else it is read (one GetItem, only while a marker exists).
        """
        bucket = self.settings.require("results_bucket")
        try:
            response = self.s3.get_object(Bucket=bucket, Key=naming.reduced_marker_key(job_id))
            body = response["Body"].read()
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        modified = response.get("LastModified")
        reopened = reopened_at(job if job is not None else self.tables.jobs.get(job_id))
        if marker_is_stale(modified.timestamp() if modified is not None else None, reopened):
            log.info("job %s: its reduced marker predates its reopening: reduced again", job_id)
            return None
        try:
            marker = json.loads(body)
        except ValueError:
            marker = None
        if not isinstance(marker, dict) or not isinstance(marker.get("keys"), list):
            raise BadInput(f"job {job_id}: reduced marker is not a JSON object with a list of keys")
        return marker

    def request_reduce(self, job: Mapping[str, Any], now: float, report: StepReport) -> None:
        """Send the job's ReduceRequest unless it was sent less than REDUCE_RESEND_S ago."""
        job_id = str(job[JobAttr.JOB_ID])
        sent_at = to_seconds(job.get(JobAttr.REDUCE_REQUESTED_AT))
        if sent_at is not None and now - sent_at < REDUCE_RESEND_S:
            return
        request = ReduceRequest(
            job_id=job_id,
            job_definition=str(job[JobAttr.DEFINITION]),
            parameters={str(k): str(v) for k, v in (job.get(JobAttr.PARAMETERS) or {}).items()},
        )
        # Sent first, recorded after: a step killed in between sends it again, and a reducer is idempotent.
        self.sqs.send_message(QueueUrl=self.work_queues.of(request.job_definition).url, MessageBody=request.to_json())
        self.tables.jobs.set_open(job_id, **{JobAttr.REDUCE_REQUESTED_AT: iso_seconds(now)})
        report.reduce_requests += 1
        log.info("job %s: every file is final; its reducer is requested", job_id)

    def apply_complete(self, loaded: Loaded, action: CompleteJob, now: float, report: StepReport) -> None:
        """OPEN -> COMPLETE; a job with a reducer once the reducer's marker exists."""
        job = loaded.jobs.get(action.job_id, {})
        keys: list[str] = []
        if job.get(JobAttr.REDUCER) and action.done:
            marker = self.reduced(action.job_id, job)
            if marker is None:
                self.request_reduce(job, now, report)
                report.reducing.append(action.job_id)
                return
            keys = [str(key) for key in marker["keys"]]
        # A job ends once no file can change any more: the failed ones (reasons on the job-files) are counted
        # on the job, which `datacarousel status` shows and `datacarousel retry --job` can put back.
        attrs: dict[str, Any] = {JobAttr.DONE_FILES: action.done, JobAttr.FAILED_FILES: action.failed}
        if keys:
            attrs[JobAttr.COMPOSITE_KEY] = keys
        if self.tables.jobs.transition(action.job_id, JobState.OPEN, JobState.COMPLETE, now, **attrs):
            report.completed_jobs.append(action.job_id)
            log.info(
                "job %s: COMPLETE (%d done, %d failed; reduced to: %s)",
                action.job_id,
                action.done,
                action.failed,
                keys or "-",
            )
        else:
            report.conflicts += 1

    def fail_reduce(self, request: ReduceRequest, reason: str, now: float, report: StepReport) -> None:
        """A dead-lettered ReduceRequest: the job ends COMPLETE with the reducer's failure as its error."""
        error = f"reducer failed: {reason}"
        if self.tables.jobs.transition(request.job_id, JobState.OPEN, JobState.COMPLETE, now, error=error):
            report.completed_jobs.append(request.job_id)
            log.warning("job %s: COMPLETE without its reduction: %s", request.job_id, error)

    def complete_jobs(self, completions: Sequence[CompleteJob], now: float, loaded: Loaded, report: StepReport) -> None:
        for complete in completions:
            try:
                self.apply_complete(loaded, complete, now, report)
            except (BadInput, ConfigError, MalformedMessage, ClientError, BotoCoreError) as exc:
                # The job stays OPEN and is completed by a later step; nothing else waits on it.
                log.error("job %s: could not complete: %s: %s", complete.job_id, type(exc).__name__, exc)

    # ---- 5. launch ----

    def launch_workers(self, loaded: Loaded, report: StepReport) -> None:
        if self.launcher is None:
            return
        lease = LaunchLease(self.tables.jobs)
        if not lease.acquire(self.holder, time.time(), LAUNCH_LEASE_S):
            log.info("another carousel step is starting workers: this step starts none")
            report.launch_deferred = True
            return
        try:
            self._launch_under_lease(self.launcher, loaded, report)
        finally:
            lease.release(self.holder)

    def _launch_under_lease(self, launcher: Launcher, loaded: Loaded, report: StepReport) -> None:
        indexed_without_metadata = sum(
            1
            for item in loaded.files.values()
            if item.get(FileAttr.STATE) == FileState.INDEXED.value and not metadata_is_current(item)
        )
        tuning = self.ctx.tuning
        pools = [
            launch.Pool(
                JobDefinitionName.INDEX_FILE.value,
                depth=queue_depth(self.sqs, self.settings.require("index_queue_url")),
                active=launcher.active(JobDefinitionName.INDEX_FILE.value),
                cap=tuning.max_index_workers,
                per_worker=2,
            ),
            launch.Pool(
                JobDefinitionName.RECORD_METADATA.value,
                depth=indexed_without_metadata,
                active=launcher.active(JobDefinitionName.RECORD_METADATA.value),
                cap=1,
                per_worker=10_000,
            ),
        ]
        # One pool per job definition with open jobs, each draining its own work queue.
        for definition in self.definitions_in_use(loaded):
            try:
                url = self.work_queues.of(definition).url
            except ConfigError as exc:
                log.error("%s", exc)
                continue
            pools.append(
                launch.Pool(
                    definition,
                    depth=queue_depth(self.sqs, url),
                    active=launcher.active(definition),
                    cap=tuning.max_job_workers,
                    per_worker=2,
                    parameters={MODE_PARAMETER: DEFAULT_MODE},
                )
            )
        for request in launch.decide(pools):
            try:
                ids = launcher.launch(request)
            except Exception as exc:  # a launch failure must not undo the recorded step
                log.error("could not launch %s x%d: %s", request.job_definition, request.array_size, exc)
                continue
            report.launched[request.job_definition] = (
                report.launched.get(request.job_definition, 0) + request.array_size
            )
            log.info("launched %s x%d: %s", request.job_definition, request.array_size, ", ".join(ids))

    # ---- the step ----

    def run(self, now: float | None = None) -> StepReport:
        started = time.monotonic()
        now = time.time() if now is None else now
        report = StepReport(started_at=now)
        received = self.receive_events(report)
        event_names = [p.event.file_name for _, parsed in received for p in parsed]

        self.record_index_failures(now, report)  # before loading: the snapshot sees those files FAILED
        loaded = load(self.tables, extra_files=event_names)
        changes = self.record_work_failures(loaded, now, report)
        changes.update(self.record_results(loaded, now, report))
        snapshot = with_job_file_states(loaded.snapshot, changes)
        for key, state in changes.items():
            if key in loaded.job_files:
                loaded.job_files[key][JobFileAttr.STATE] = state.value
        loaded.snapshot = snapshot

        observed = self.observe(loaded, event_names, now, report)
        events = [p.event for _, parsed in received for p in parsed]
        plan, _ = planner.step(snapshot, events, observed, now, self.config)
        report.window_bytes, report.window_files = plan.window_bytes, plan.window_files
        report.actions = dict(Counter(type(a).__name__ for a in plan.actions))

        # Reconciliation first; an event's message goes once its file's update is recorded.
        failed_updates: set[str] = set()
        for action in plan.of(UpdateFileState):
            if not self.apply_update(action, now, report):
                failed_updates.add(action.file_name)
        events_url = self.settings.require("restore_events_queue_url")
        for message, parsed in received:
            if any(p.event.file_name in failed_updates for p in parsed):
                continue
            _delete(self.sqs, events_url, message)
            report.events_deleted += 1

        for fail in plan.of(FailJobFile):
            self.apply_fail_job_file(loaded, fail, now, report)
        for expired in plan.of(InvalidateExpired):
            self.apply_invalidate(expired, now, report)
        self._parallel(plan.of(RenewLease), lambda a: self.apply_renewal(loaded, a, now, report))
        self.queue_index_requests(loaded, plan.of(QueueIndex), now, report)
        self.resend_pending(loaded, now, report)
        for release in plan.of(Release):
            self.apply_release(loaded, release, now, report)
        self._parallel(plan.of(ProbeRestore), lambda a: self.apply_probe(loaded, a, now, report))
        self._parallel(plan.of(RequestRestore), lambda a: self.apply_restore(loaded, a, now, report))
        for cancel in plan.of(CancelJob):  # the planner does not emit these; `carousel.jobs.cancel` does
            self.tables.jobs.transition(cancel.job_id, JobState.OPEN, JobState.CANCELLED, now)

        # Before launching: a job's ReduceRequest is work for its definition's workers.
        self.complete_jobs(plan.of(CompleteJob), now, loaded, report)
        try:
            self.launch_workers(loaded, report)
        except Exception as exc:  # the step's effects are recorded; workers are started again next step
            log.error("launching workers failed: %s: %s", type(exc).__name__, exc)
        report.seconds = time.monotonic() - started
        log.info(
            "carousel step: events=%d restores=%d renewals=%d index=%d releases=%d done=%d failed=%d "
            "invalidated=%d completed=%s reducing=%s conflicts=%d launched=%s window=%d files/%d bytes "
            "in %.2f s",
            report.events_received,
            report.restores,
            report.renewals,
            report.index_requests,
            report.releases,
            report.done,
            report.failed_job_files,
            report.invalidated,
            report.completed_jobs,
            report.reducing,
            report.conflicts,
            report.launched,
            report.window_files,
            report.window_bytes,
            report.seconds,
        )
        return report

    @staticmethod
    def _parallel(actions: Sequence[Any], fn: Callable[[Any], None]) -> None:
        if not actions:
            return
        if len(actions) == 1:
            fn(actions[0])
            return
        with ThreadPoolExecutor(max_workers=min(IO_WORKERS, len(actions))) as pool:
            for _ in pool.map(fn, actions):
                pass
