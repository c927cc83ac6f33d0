"""How a carousel step starts workers for the backlogs, one step at a time (the launch lease).

The pools are the index queue (index_file drainers), the INDEXED files lacking metadata (one
record_metadata worker) and the work queue of each open job's definition (its drainers); how many to
start is decided by `carousel.launch` (pure), and a `Launcher` starts them. Only the step holding
the launch lease launches, so two steps at once never both start workers for the same backlog.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from carousel import launch
from carousel.launcher import Launcher
from carousel.observe import definitions_in_use
from carousel.queues import queue_depth
from carousel.runtime import Context
from carousel.step_part import DomainDeleter, StepPart
from carousel.step_report import StepReport
from carousel.store import LaunchLease, Loaded
from datacarousel.contract import FileAttr, FileState, JobDefinitionName
from datacarousel.definitions import DEFAULT_MODE, MODE_PARAMETER
from datacarousel.errors import ConfigError
from datacarousel.files_table import metadata_is_current
from datacarousel.work_queues import WorkQueues

log = logging.getLogger(__name__)

LAUNCH_LEASE_S = 60.0  # a step killed while launching blocks launches for at most this long


class WorkerLaunching(StepPart):
    """Starts the workers the backlogs need, under the launch lease (no launcher: starts none)."""

    def __init__(
        self,
        ctx: Context,
        work_queues: WorkQueues,
        delete_domain: DomainDeleter | None = None,
        *,
        launcher: Launcher | None = None,
    ) -> None:
        super().__init__(ctx, work_queues, delete_domain)
        self.launcher = launcher
        # Who holds a lease this step takes (launching workers).
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

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

    def pools(self, launcher: Launcher, loaded: Loaded) -> list[launch.Pool]:
        """The backlogs and the workers draining them: index requests, metadata to record, each open job's work."""
        indexed_without_metadata = sum(
            1
            for item in loaded.files.values()
            if item.get(FileAttr.STATE) == FileState.INDEXED.value and not metadata_is_current(item)
        )
        pools = [
            launch.Pool(
                JobDefinitionName.INDEX_FILE.value,
                depth=queue_depth(self.sqs, self.settings.require("index_queue_url")),
                active=launcher.active(JobDefinitionName.INDEX_FILE.value),
                cap=self.ctx.settings.max_index_workers,
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
        for definition in definitions_in_use(loaded):
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
                    cap=self.ctx.settings.max_job_workers,
                    per_worker=2,
                    parameters={MODE_PARAMETER: DEFAULT_MODE},
                )
            )
        return pools

    def _launch_under_lease(self, launcher: Launcher, loaded: Loaded, report: StepReport) -> None:
        for request in launch.decide(self.pools(launcher, loaded)):
            try:
                ids = launcher.launch(request)
            except Exception as exc:  # a launch failure must not undo the recorded step
                log.error("could not launch %s x%d: %s", request.job_definition, request.array_size, exc)
                continue
            report.launched[request.job_definition] = (
                report.launched.get(request.job_definition, 0) + request.array_size
            )
            log.info("launched %s x%d: %s", request.job_definition, request.array_size, ", ".join(ids))
