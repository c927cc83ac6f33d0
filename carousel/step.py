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

This module only wires the parts, each in its own module: `carousel.observe` (1, and the results
of 3), `carousel.dead_letters` (the dead letters of 3), `carousel.apply` (4), `carousel.launching`
(5), `carousel.complete` (6); the SQS and S3 calls they share are in `carousel.queues` and
`carousel.s3_objects`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from carousel import planner
from carousel.actions import CompleteJob, UpdateFileState
from carousel.apply import PENDING_RELEASE_GRACE_S, Applier
from carousel.complete import JobCompleter
from carousel.dead_letters import MAX_INDEX_REDRIVES, MAX_WORK_REDRIVES, DeadLetters, redrive_delay
from carousel.launcher import Launcher
from carousel.launching import WorkerLaunching
from carousel.observe import Observer, record_in_snapshot, with_job_file_states
from carousel.queues import queue_backlog
from carousel.runtime import Context
from carousel.step_part import DomainDeleter
from carousel.step_report import StepReport
from carousel.store import load
from datacarousel.work_queues import WorkQueues

# Re-exported: what callers and tests import from here.
__all__ = [
    "MAX_INDEX_REDRIVES",
    "MAX_WORK_REDRIVES",
    "Step",
    "StepReport",
    "queue_backlog",
    "redrive_delay",
    "with_job_file_states",
]

log = logging.getLogger(__name__)


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
        self.s3 = ctx.s3
        self.sqs = ctx.sqs
        self.tables = ctx.tables
        self.launcher = launcher
        self.work_queues = WorkQueues(self.sqs, ctx.settings.stack_name)
        self.observer = Observer(ctx, self.work_queues, delete_domain)
        self.dead_letters = DeadLetters(ctx, self.work_queues, delete_domain)
        self.applier = Applier(
            ctx,
            self.work_queues,
            delete_domain,
            observer=self.observer,
            pending_release_grace_s=pending_release_grace_s,
        )
        self.completer = JobCompleter(ctx, self.work_queues, delete_domain)
        self.launching = WorkerLaunching(ctx, self.work_queues, delete_domain, launcher=launcher)

    def run(self, now: float | None = None) -> StepReport:
        started = time.monotonic()
        now = time.time() if now is None else now
        report = StepReport(started_at=now)
        received = self.observer.receive_events(report)
        event_names = [p.event.file_name for _, parsed in received for p in parsed]

        self.dead_letters.record_index_failures(now, report)  # before loading: the snapshot sees those files FAILED
        loaded = load(self.tables, extra_files=event_names)
        changes = self.dead_letters.record_work_failures(loaded, now, report)
        changes.update(self.observer.record_results(loaded, now, report))
        record_in_snapshot(loaded, changes)

        observed = self.observer.observe(loaded, event_names, now, report)
        events = [p.event for _, parsed in received for p in parsed]
        plan, _ = planner.step(loaded.snapshot, events, observed, now, self.ctx.config)
        report.window_bytes, report.window_files = plan.window_bytes, plan.window_files
        report.actions = dict(Counter(type(a).__name__ for a in plan.actions))

        # Reconciliation first; an event's message goes once its file's update is recorded.
        failed_updates = self.applier.apply_updates(plan.of(UpdateFileState), now, report)
        self.observer.delete_events(received, failed_updates, report)
        self.applier.apply(plan, loaded, now, report)

        # Before launching: a job's ReduceRequest is work for its definition's workers.
        self.completer.complete_jobs(plan.of(CompleteJob), now, loaded, report)
        report.open_jobs = sum(1 for job_id in loaded.jobs if job_id not in report.completed_jobs)
        try:
            self.launching.launch_workers(loaded, report)
        except Exception as exc:  # the step's effects are recorded; workers are started again next step
            log.error("launching workers failed: %s: %s", type(exc).__name__, exc)
        report.seconds = time.monotonic() - started
        log_summary(report)
        return report


def log_summary(report: StepReport) -> None:
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
