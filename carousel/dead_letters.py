"""What a carousel step learns from the dead-letter queues: the work and index requests that failed.

A QUEUED job-file is FAILED when its WorkItem reached its definition's work dead-letter queue; a
file whose index request reached the index dead-letter queue is FAILED (and so are its job-files)
— only when that request named the file's own object (its item's bucket and key, and the
object's current ETag if it carried one). Any other dead letter is logged and deleted, the file
left as it is; one that names no file or job is logged at ERROR with its body (it could not be
attributed) and deleted too. A dead-lettered ReduceRequest ends its job COMPLETE, with the
reducer's failure as its error.

A dead letter with no reason (every receive failed transiently: an S3 or HSDS outage, a worker
killed) is first checked against the file's object (`DeadLetters.copy_lost`), then sent back to
its queue a few times, later each time (`redrive_delay`), before it fails with that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from carousel.observe import JobFileChanges, definitions_in_use
from carousel.queues import (
    EXCEEDED_RECEIVES,
    delete_message,
    drop_unattributed,
    failure_reason,
    receive_all,
    redrive,
)
from carousel.restore import ObservedStatus, missing_reason, readable_now
from carousel.runtime import DEFAULT_REDRIVE_DELAYS_S
from carousel.s3_objects import head_restore
from carousel.step_part import StepPart
from carousel.step_report import StepReport
from carousel.store import READABLE_STATES, Loaded
from datacarousel import naming
from datacarousel.archive import is_not_found, normalize_etag
from datacarousel.contract import FileAttr, FileState, JobFileState, JobState
from datacarousel.errors import BadFileName, ConfigError, MalformedMessage
from datacarousel.messages import IndexRequest, ReduceRequest, parse_job_message

log = logging.getLogger(__name__)

DLQ_VISIBILITY_S = 300
MAX_DLQ_MESSAGES = 1000
# How often a reason-less dead letter (every receive failed transiently: an S3 or HSDS outage, a worker
# killed) is sent back before its file or job-file FAILS with that reason; each time after a longer delay.
MAX_INDEX_REDRIVES = 3
MAX_WORK_REDRIVES = 3


def redrive_delay(redrive: int, delays: Sequence[int] = DEFAULT_REDRIVE_DELAYS_S) -> int:
    """The delay of the `redrive`-th redrive (1-based): growing, then the last one."""
    return delays[min(max(redrive, 1), len(delays)) - 1]


def final_reason(reason: str, redrives: int) -> str:
    """A failure's recorded reason; a transient one says that it outlived every redrive."""
    if reason != EXCEEDED_RECEIVES:
        return reason
    return f"{reason} after {redrives} redrives (transient failures only: retry once the cause is fixed)"


class DeadLetters(StepPart):
    """Reads the index and work dead-letter queues into file, job-file and job states."""

    # ---- work dead letters ----

    def record_work_failures(self, loaded: Loaded, now: float, report: StepReport) -> JobFileChanges:
        """Dead-lettered work of the open jobs' definitions: transient failures sent again (a few times,
        later each time), the rest job-files FAILED and reductions ended, with their reason."""
        changes: JobFileChanges = {}
        for definition in definitions_in_use(loaded):
            try:
                queue = self.work_queues.of(definition)
            except ConfigError as exc:
                log.error("%s", exc)
                continue
            changes.update(self.record_dead_work(queue.url, queue.dead_letter_url, now, report))
        return changes

    def record_dead_work(self, url: str, dead_letter_url: str, now: float, report: StepReport) -> JobFileChanges:
        changes: JobFileChanges = {}
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
                    delay = self.ctx.redrive_delays_s[-1]
                    redrive(self.sqs, url, dead_letter_url, message, delay=delay, what=f"job {item.job_id}'s reduction")
                    report.redriven += 1
                    continue
                self.fail_reduce(item, final_reason(reason, MAX_WORK_REDRIVES), now, report)
                delete_message(self.sqs, dead_letter_url, message)
                continue
            if reason == EXCEEDED_RECEIVES and self.copy_lost(item.file_name, now, report):
                # Released again once the file is readable again (or failed with it when its object is gone).
                if self.tables.job_files.transition(
                    item.job_id, item.file_name, (JobFileState.QUEUED, JobFileState.RUNNING), JobFileState.WAITING, now
                ):
                    changes[(item.job_id, item.file_name)] = JobFileState.WAITING
                delete_message(self.sqs, dead_letter_url, message)
                continue
            if reason == EXCEEDED_RECEIVES:
                redrives = self.tables.job_files.claim_redrive(item.job_id, item.file_name, now, MAX_WORK_REDRIVES)
                if redrives is not None:
                    what = f"job {item.job_id} file {item.file_name}"
                    delay = redrive_delay(redrives, self.ctx.redrive_delays_s)
                    redrive(self.sqs, url, dead_letter_url, message, delay=delay, what=what)
                    report.redriven += 1
                    continue
            # Only a QUEUED/RUNNING job-file fails: one put back to WAITING (its copy expired) waits for a new release.
            if self.tables.job_files.transition(
                item.job_id,
                item.file_name,
                (JobFileState.QUEUED, JobFileState.RUNNING),
                JobFileState.FAILED,
                now,
                error=final_reason(reason, MAX_WORK_REDRIVES),
            ):
                report.failed_job_files += 1
                changes[(item.job_id, item.file_name)] = JobFileState.FAILED
                log.warning("job %s file %s: FAILED: %s", item.job_id, item.file_name, reason)
            delete_message(self.sqs, dead_letter_url, message)
        return changes

    def fail_reduce(self, request: ReduceRequest, reason: str, now: float, report: StepReport) -> None:
        """A dead-lettered ReduceRequest: the job ends COMPLETE with the reducer's failure as its error."""
        error = f"reducer failed: {reason}"
        if self.tables.jobs.transition(request.job_id, JobState.OPEN, JobState.COMPLETE, now, error=error):
            report.completed_jobs.append(request.job_id)
            log.warning("job %s: COMPLETE without its reduction: %s", request.job_id, error)

    # ---- a transient failure's cause ----

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

    # ---- index dead letters ----

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
                delete_message(self.sqs, url, message)
                continue
            if reason == EXCEEDED_RECEIVES and self.copy_lost(name, now, report):
                delete_message(self.sqs, url, message)  # the carousel restores it and asks for indexing again
                continue
            if reason == EXCEEDED_RECEIVES and self.files.claim_index_redrive(name, now, MAX_INDEX_REDRIVES):
                # No reason recorded: every receive failed transiently. The file is not bad: try again, later.
                redrives = int((self.tables.files.get(name) or {}).get(FileAttr.INDEX_REDRIVES, 1) or 1)
                index_url = self.settings.require("index_queue_url")
                delay = redrive_delay(redrives, self.ctx.redrive_delays_s)
                redrive(self.sqs, index_url, url, message, delay=delay, what=f"file {name}'s index request")
                report.redriven += 1
                continue
            if self.files.fail(name, f"indexing failed: {final_reason(reason, MAX_INDEX_REDRIVES)}", now):
                failed += 1
                report.failed_files += 1
                log.warning("file %s: FAILED: %s", name, reason)
            delete_message(self.sqs, url, message)
        return failed
