"""How a carousel step completes jobs: the jobs whose job-files are all DONE or FAILED.

A job whose definition has a reducer (ComputeRadiance's monthly composites) gets one ReduceRequest
on its work queue; a worker of the definition's own image runs the reducer, and the job is
COMPLETE once the reducer's marker (`naming.reduced_marker_key`) exists. The carousel never runs
analysis code. (A dead-lettered ReduceRequest ends its job too: `carousel.dead_letters`.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from carousel.actions import CompleteJob
from carousel.recovery import marker_is_stale, reopened_at
from carousel.step_part import StepPart
from carousel.step_report import StepReport
from carousel.store import Loaded, iso_seconds, to_seconds
from datacarousel import naming
from datacarousel.archive import is_not_found
from datacarousel.contract import JobAttr, JobState
from datacarousel.errors import BadInput, ConfigError, MalformedMessage
from datacarousel.messages import ReduceRequest

log = logging.getLogger(__name__)

# A ReduceRequest is sent once (SQS keeps it until a worker is done or it is dead-lettered); it is sent
# again only if no marker appeared this long after: past the work queue's retention a message is gone.
REDUCE_RESEND_S = 3 * 24 * 3600.0


class JobCompleter(StepPart):
    """Moves finished jobs OPEN -> COMPLETE, through their reducer when they have one."""

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
        current = self.tables.jobs.get(job_id)  # consistent: a racing step may have sent it since our snapshot
        if current is not None and current.get(JobAttr.REDUCE_REQUESTED_AT) != job.get(JobAttr.REDUCE_REQUESTED_AT):
            return
        request = ReduceRequest(
            job_id=job_id,
            job_definition=str(job[JobAttr.DEFINITION]),
            parameters={str(k): str(v) for k, v in (job.get(JobAttr.PARAMETERS) or {}).items()},
            owner=str(job.get(JobAttr.OWNER, "")),
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

    def complete_jobs(self, completions: Sequence[CompleteJob], now: float, loaded: Loaded, report: StepReport) -> None:
        for complete in completions:
            try:
                self.apply_complete(loaded, complete, now, report)
            except (BadInput, ConfigError, MalformedMessage, ClientError, BotoCoreError) as exc:
                # The job stays OPEN and is completed by a later step; nothing else waits on it.
                log.error("job %s: could not complete: %s: %s", complete.job_id, type(exc).__name__, exc)
