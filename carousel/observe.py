"""What a carousel step sees before it plans: restore events, the objects they name, the results.

1. The restore events waiting on the restore-events queue are hints: each named object is looked
   at (HeadObject is the truth: its storage class, then for an archived object its `Restore`
   header; a 404 means the object is gone). An event's message is deleted only once its file's
   update is recorded (`Observer.delete_events`).
2. A QUEUED or RUNNING job-file is DONE when its result object exists (one listing of the job's
   result prefix per step).

The job-file changes recorded here and by `carousel.dead_letters` are folded into the loaded
snapshot (`record_in_snapshot`), so that the planner plans from what is now true.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from carousel.events import ParsedEvent, parse_event_message
from carousel.model import JOB_FILE_CODE, JobFileTable, Snapshot
from carousel.queues import delete_message, receive_all
from carousel.restore import ObservedRestore
from carousel.runtime import Context
from carousel.s3_objects import head_restore
from carousel.step_part import IO_WORKERS, DomainDeleter, StepPart
from carousel.step_report import StepReport
from carousel.store import Loaded
from datacarousel import naming
from datacarousel.aws import list_keys
from datacarousel.contract import JobAttr, JobFileAttr, JobFileState
from datacarousel.errors import MalformedMessage
from datacarousel.queue_worker import send_to_dead_letter_queue
from datacarousel.work_queues import WorkQueues

log = logging.getLogger(__name__)

EVENT_VISIBILITY_S = 120
MAX_EVENT_MESSAGES = 5000  # per step; the rest waits for the next step

# A received restore-events message and the events parsed from it.
ReceivedEvents = list[tuple[Mapping[str, Any], list[ParsedEvent]]]
JobFileChanges = dict[tuple[str, str], JobFileState]


def definitions_in_use(loaded: Loaded) -> list[str]:
    """The job definitions of the loaded (open) jobs: the work queues this step serves."""
    return sorted({str(job[JobAttr.DEFINITION]) for job in loaded.jobs.values() if job.get(JobAttr.DEFINITION)})


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


def record_in_snapshot(loaded: Loaded, changes: Mapping[tuple[str, str], JobFileState]) -> None:
    """The job-file states this step recorded, in the loaded snapshot and items too."""
    snapshot = with_job_file_states(loaded.snapshot, changes)
    for key, state in changes.items():
        if key in loaded.job_files:
            loaded.job_files[key][JobFileAttr.STATE] = state.value
    loaded.snapshot = snapshot


# --- the observer ------------------------------------------------------------------------------


class Observer(StepPart):
    """Reads the restore events, looks at objects, finds the results the workers wrote."""

    def __init__(self, ctx: Context, work_queues: WorkQueues, delete_domain: DomainDeleter | None = None) -> None:
        super().__init__(ctx, work_queues, delete_domain)
        self.events_dlq_url = ctx.settings.restore_events_dlq_url or ""

    # ---- 1. restore events ----

    def receive_events(self, report: StepReport) -> ReceivedEvents:
        url = self.settings.require("restore_events_queue_url")
        received: ReceivedEvents = []
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
                    delete_message(self.sqs, url, message)
                else:  # left: the queue's redrive moves it to its dead-letter queue
                    log.warning("malformed restore event %s left for redrive: %s", message.get("MessageId"), exc)
                continue
            received.append((message, parsed))
        return received

    def delete_events(self, received: ReceivedEvents, failed_updates: set[str], report: StepReport) -> None:
        """Delete the received messages whose every file's update is recorded (`failed_updates`: the files
        whose update was not: their messages stay, and are received again)."""
        events_url = self.settings.require("restore_events_queue_url")
        for message, parsed in received:
            if any(p.event.file_name in failed_updates for p in parsed):
                continue
            delete_message(self.sqs, events_url, message)
            report.events_deleted += 1

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

    # ---- 2. worker results ----

    def record_results(self, loaded: Loaded, now: float, report: StepReport) -> JobFileChanges:
        """QUEUED/RUNNING job-files whose result object exists -> DONE (one listing per job)."""
        bucket = self.settings.require("results_bucket")
        pending: dict[str, list[str]] = {}
        for (job_id, name), item in loaded.job_files.items():
            if item.get(JobFileAttr.STATE) in (JobFileState.QUEUED.value, JobFileState.RUNNING.value):
                pending.setdefault(job_id, []).append(name)
        changes: JobFileChanges = {}
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
