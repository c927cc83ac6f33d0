"""How a carousel step applies its plan: every action with a conditional write first.

RestoreObject / SendMessage happen only for the writer that won the condition, so two steps at
once never duplicate a restore or a release. The file-state updates (reconciliation) go first
(`Applier.apply_updates`: the step deletes the restore events they record), then the other kinds
of action, in the order of `HANDLERS`, a table from action type to the method that applies all of
a plan's actions of that type. `CompleteJob` is applied after them (`carousel.complete`).

A step killed at any point loses nothing: a claimed release whose WorkItem was not sent is sent
again after `PENDING_RELEASE_GRACE_S` (`Applier.resend_pending`); a claimed restore whose request
was never made is found ARCHIVED by the next probe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from carousel.actions import (
    CancelJob,
    FailJobFile,
    InvalidateExpired,
    Plan,
    ProbeRestore,
    QueueIndex,
    Release,
    RenewLease,
    RequestRestore,
    UpdateFileState,
)
from carousel.cost import expiry_after
from carousel.observe import Observer
from carousel.queues import queue_backlog
from carousel.restore import ObservedRestore, claimed, object_missing, observe_head, readable_now, reconcile
from carousel.runtime import Context
from carousel.s3_objects import head_restore, restore_object, s3_answer
from carousel.step_part import IO_WORKERS, DomainDeleter, StepPart
from carousel.step_report import StepReport
from carousel.store import Loaded, iso_seconds, to_seconds
from datacarousel.archive import error_code, is_not_found, normalize_etag
from datacarousel.contract import FileAttr, FileState, JobAttr, JobFileAttr, JobFileState, JobState
from datacarousel.errors import ConfigError, MalformedMessage
from datacarousel.messages import IndexRequest, WorkItem
from datacarousel.work_queues import WorkQueues

log = logging.getLogger(__name__)

PENDING_RELEASE_GRACE_S = 300.0  # a claimed release not sent after this long is sent again
# RestoreObject refused because of the object itself: not in an archive class, or gone. Asking again changes
# nothing: the step records what S3 says about the object instead (`Applier.refused`).
RESTORE_REFUSED_CODES = frozenset({"InvalidObjectState", "NoSuchKey"})


def in_parallel(actions: Sequence[Any], fn: Callable[[Any], None]) -> None:
    """`fn` on every action, up to IO_WORKERS at once (one action: in this thread)."""
    if not actions:
        return
    if len(actions) == 1:
        fn(actions[0])
        return
    with ThreadPoolExecutor(max_workers=min(IO_WORKERS, len(actions))) as pool:
        for _ in pool.map(fn, actions):
            pass


class Applier(StepPart):
    """Applies a plan's actions: conditional writes, then the S3 and SQS requests they allow."""

    def __init__(
        self,
        ctx: Context,
        work_queues: WorkQueues,
        delete_domain: DomainDeleter | None = None,
        *,
        observer: Observer,
        pending_release_grace_s: float = PENDING_RELEASE_GRACE_S,
    ) -> None:
        super().__init__(ctx, work_queues, delete_domain)
        self.observer = observer  # looks at a probed file's object
        self.pending_release_grace_s = pending_release_grace_s

    def apply(self, plan: Plan, loaded: Loaded, now: float, report: StepReport) -> None:
        """Every action of the plan but its file-state updates (applied first) and job completions (after)."""
        for kind, handle in HANDLERS.items():
            handle(self, loaded, plan.of(kind), now, report)

    # ---- file states (reconciliation) ----

    def apply_updates(self, actions: Sequence[UpdateFileState], now: float, report: StepReport) -> set[str]:
        """The file-state updates; the names of the files whose update was not recorded (a conflict)."""
        failed_updates: set[str] = set()
        for action in actions:
            if not self.apply_update(action, now, report):
                failed_updates.add(action.file_name)
        return failed_updates

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

    # ---- restores, renewals, probes ----

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
        seen = self.observer.observe(loaded, [action.file_name], now, report)
        self.files.mark_probed(action.file_name, now)
        if action.file_name not in seen:
            return
        for update in reconcile(loaded.snapshot, (), seen, now):
            self.apply_update(update, now, report)

    def renew_leases(self, loaded: Loaded, actions: Sequence[RenewLease], now: float, report: StepReport) -> None:
        in_parallel(actions, lambda a: self.apply_renewal(loaded, a, now, report))

    def probe(self, loaded: Loaded, actions: Sequence[ProbeRestore], now: float, report: StepReport) -> None:
        in_parallel(actions, lambda a: self.apply_probe(loaded, a, now, report))

    def request_restores(
        self, loaded: Loaded, actions: Sequence[RequestRestore], now: float, report: StepReport
    ) -> None:
        in_parallel(actions, lambda a: self.apply_restore(loaded, a, now, report))

    # ---- index requests ----

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

    # ---- releases (WorkItems) ----

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

    def release(self, loaded: Loaded, actions: Sequence[Release], now: float, report: StepReport) -> None:
        """The releases left unsent by an earlier step first, then this plan's."""
        self.resend_pending(loaded, now, report)
        for release in actions:
            self.apply_release(loaded, release, now, report)

    # ---- expired copies, failed job-files, cancelled jobs ----

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

    def invalidate_expired(
        self, loaded: Loaded, actions: Sequence[InvalidateExpired], now: float, report: StepReport
    ) -> None:
        for expired in actions:
            self.apply_invalidate(expired, now, report)

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

    def fail_job_files(self, loaded: Loaded, actions: Sequence[FailJobFile], now: float, report: StepReport) -> None:
        for fail in actions:
            self.apply_fail_job_file(loaded, fail, now, report)

    def cancel_jobs(self, loaded: Loaded, actions: Sequence[CancelJob], now: float, report: StepReport) -> None:
        for cancel in actions:  # the planner does not emit these; `carousel.jobs.cancel` does
            self.tables.jobs.transition(cancel.job_id, JobState.OPEN, JobState.CANCELLED, now)


# Applies all of a plan's actions of one type (possibly none).
Handler = Callable[[Applier, Loaded, Any, float, StepReport], None]

# Action type -> what applies it, in the order `Applier.apply` applies them (after the file-state updates).
HANDLERS: dict[type[Any], Handler] = {
    FailJobFile: Applier.fail_job_files,
    InvalidateExpired: Applier.invalidate_expired,
    RenewLease: Applier.renew_leases,
    QueueIndex: Applier.queue_index_requests,
    Release: Applier.release,
    ProbeRestore: Applier.probe,
    RequestRestore: Applier.request_restores,
    CancelJob: Applier.cancel_jobs,
}
