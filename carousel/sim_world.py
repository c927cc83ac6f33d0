"""The simulator's world: S3, the files table, the index worker and AWS Batch, simulated for one policy run.

Restore latency is drawn per request from the tier's range with a fixed seed; restored copies expire
at S3's rounded expiry; completion and expiry events are lost or duplicated at configurable rates and
delivered in shuffled order; the index worker has a fixed latency and finds a few files bad; Batch has
a fixed number of worker slots. The world applies the planner's actions and counts what S3 would bill
and every broken promise (`violations`). The run itself: `carousel.simulator`.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from carousel.actions import (
    CompleteJob,
    FailJobFile,
    InvalidateExpired,
    ProbeRestore,
    QueueIndex,
    Release,
    RenewLease,
    RequestRestore,
)
from carousel.catalogue import CatalogueArrays
from carousel.cost import (
    expiry_after,
)
from carousel.model import (
    F_ARCHIVED,
    F_FAILED,
    F_INDEXED,
    F_RESTORED,
    F_RESTORING,
    J_COMPLETE,
    J_OPEN,
    JF_DONE,
    JF_FAILED,
    JF_QUEUED,
    JF_RUNNING,
    JF_WAITING,
    FileTable,
    JobFileTable,
    JobTable,
    Snapshot,
)
from carousel.planner import DAY_S, HOUR_S, Policy
from carousel.query import JobQuery
from carousel.restore import ObservedRestore, ObservedStatus, RestoreEvent, RestoreEventKind
from datacarousel.contract import RestoreTier

log = logging.getLogger(__name__)


TB = 10**12
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: simulated time starts here


@dataclass(frozen=True)
class SimConfig:
    seed: int = 0
    jobs: int = 32
    owners: int = 10
    themes: int = 6  # campaigns the researchers' queries cluster around (overlap)
    arrival_span_s: float = 4 * DAY_S
    window_bytes: int = 60 * TB
    window_files: int = 3_000
    tier: RestoreTier = RestoreTier.BULK
    lease_days: int = 1
    keep_s: float = 2 * DAY_S  # PlannerConfig.keep_s: keep idle copies this long when reuse is likely (0: off)
    keep_fraction: float = 0.5  # PlannerConfig.keep_fraction
    keep_min_jobs: int = 1  # PlannerConfig.keep_min_jobs
    slack_s: float | None = None  # each job's slack: deadline = arrival + slack_s (None: prompt jobs, no deadline)
    hold_back: bool = True  # PlannerConfig.hold_back
    slack_margin_s: float = DAY_S  # PlannerConfig.slack_margin_s
    step_s: float = HOUR_S
    horizon_s: float = 120 * DAY_S
    restore_latency_h: dict[RestoreTier, tuple[float, float]] = field(
        default_factory=lambda: {RestoreTier.BULK: (24.0, 48.0), RestoreTier.STANDARD: (6.0, 12.0)}
    )
    requests_per_second: float = 1_000.0
    request_seconds_per_step: float = 60.0
    index_latency_s: float = 600.0
    workers: int = 256
    process_s_base: float = 600.0
    process_s_per_gb: float = 20.0
    event_loss: float = 0.02
    event_duplication: float = 0.05
    bad_file_rate: float = 0.0005
    job_file_failure_rate: float = 0.001
    hsds_folder: str = "/home/sim/basicfusion/"


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    owner: str
    submitted_at: float
    query: JobQuery
    files: npt.NDArray[np.int64]  # catalogue rows
    cancel_at: float | None = None  # the researcher cancels the job at this time (if still open)
    deadline: float | None = None  # latest acceptable completion (None: prompt)


DEFAULT_CONFIG = SimConfig()


class SimWorld:
    """Simulated S3 + DynamoDB + index worker + Batch for one policy run."""

    def __init__(self, catalogue: CatalogueArrays, workload: Sequence[JobSpec], policy: Policy, config: SimConfig):
        self.config = config
        self.policy = policy
        self.rng = np.random.default_rng(config.seed + 1)
        jobs = list(workload)
        self.jobs = jobs
        if policy is Policy.NAIVE:
            # every (job, file) pair is its own object
            unit_file = np.concatenate([j.files for j in jobs]) if jobs else np.zeros(0, np.int64)
            job_of_row = np.concatenate([np.full(len(j.files), k) for k, j in enumerate(jobs)])
            names = tuple(f"{jobs[k].job_id}/{catalogue.names[f]}" for k, f in zip(job_of_row, unit_file, strict=True))
            keys = names
            rows_file = np.arange(len(unit_file), dtype=np.int64)
        else:
            unit_file = np.arange(len(catalogue), dtype=np.int64)
            names, keys = catalogue.names, catalogue.keys
            job_of_row = np.concatenate([np.full(len(j.files), k) for k, j in enumerate(jobs)])
            rows_file = np.concatenate([j.files for j in jobs])
        self.unit_file = unit_file
        self.names, self.keys = names, keys
        self.position = {n: i for i, n in enumerate(names)}
        n = len(unit_file)
        self.size = catalogue.size[unit_file]
        self.orbit = catalogue.orbit[unit_file]
        self.ym = catalogue.year_month[unit_file]
        # DynamoDB view
        self.state = np.zeros(n, np.int8)
        self.version = np.zeros(n, np.int64)
        self.requested_at = np.full(n, np.nan)
        self.expiry = np.full(n, np.nan)
        self.index_requested_at = np.full(n, np.nan)
        self.updated_at = np.full(n, np.nan)
        self.restore_count = np.zeros(n, np.int64)
        self.checked_at = np.full(n, np.nan)
        self.domains = [""] * n
        # S3 / index worker view
        self.w_done_at = np.full(n, np.inf)  # restore completes
        self.w_expiry = np.full(n, np.nan)  # readable copy expires (NaN: no copy)
        self.w_index_at = np.full(n, np.inf)
        self.bad = self.rng.random(n) < config.bad_file_rate
        # jobs and job-files (rows ordered by job arrival)
        self.job_ids = tuple(j.job_id for j in jobs)
        self._job_pos = {job_id: k for k, job_id in enumerate(self.job_ids)}
        self.owners = tuple(j.owner for j in jobs)
        self.submitted = np.array([j.submitted_at for j in jobs])
        self.deadline = np.array([np.nan if j.deadline is None else j.deadline for j in jobs], dtype=np.float64)
        self.job_state = np.zeros(len(jobs), np.int8)
        self.completed_at = np.full(len(jobs), np.nan)
        self.jf_job = job_of_row.astype(np.int32)
        self.jf_file = rows_file.astype(np.int32)
        self.jf_state = np.zeros(len(rows_file), np.int8)
        self.rows_before = np.searchsorted(self.jf_job, np.arange(len(jobs) + 1))
        self.run_start = np.full(len(rows_file), np.inf)
        self.run_end = np.full(len(rows_file), np.inf)
        self.row_fails = self.rng.random(len(rows_file)) < config.job_file_failure_rate
        self.slots = [EPOCH] * config.workers
        # ledgers
        self.events: list[RestoreEvent] = []
        self.probe_next: set[int] = set()
        self.restored_bytes = 0
        self.restore_requests = 0
        self.renewal_requests = 0
        self.staged_byte_s = 0.0
        self.violations = {
            "restore_while_restoring_or_readable": 0,
            "window_exceeded": 0,
            "read_unreadable": 0,
            "expired_while_needed": 0,
            "world_window_exceeded": 0,
        }
        self.re_restored_bytes = 0
        self.cancelled = 0
        self.t_prev = EPOCH

    # -- world -> snapshot ------------------------------------------------------------
    def snapshot(self, arrived: int) -> Snapshot:
        files = FileTable.build(
            self.names,
            self.orbit,
            self.size,
            keys=self.keys,
            domains=self.domains,
            state=self.state,
            version=self.version,
            requested_at=self.requested_at,
            expiry=self.expiry,
            index_requested_at=self.index_requested_at,
            updated_at=self.updated_at,
            restore_count=self.restore_count,
            checked_at=self.checked_at,
            position=self.position,
        )
        jobs = JobTable.build(
            self.job_ids[:arrived],
            self.owners[:arrived],
            self.submitted[:arrived],
            self.job_state[:arrived],
            deadline=self.deadline[:arrived],
        )
        m = self.rows_before[arrived]
        return Snapshot(files, jobs, JobFileTable.build(self.jf_job[:m], self.jf_file[:m], self.jf_state[:m]))

    def _event(self, event: RestoreEvent) -> None:
        if self.rng.random() < self.config.event_loss:
            return
        self.events.append(event)
        if self.rng.random() < self.config.event_duplication:
            self.events.append(event)

    # -- the world moves on to time t ------------------------------------------------------------
    def advance(self, t: float) -> None:
        cfg = self.config
        # staging billed from completion to expiry
        done = np.nonzero(self.w_done_at <= t)[0]
        for i in done:
            self.w_expiry[i] = expiry_after(self.w_done_at[i], cfg.lease_days)
            self._event(RestoreEvent(self.names[i], RestoreEventKind.COMPLETED, self.w_done_at[i], self.w_expiry[i]))
        staged_from = np.full(len(self.size), np.nan)
        staged_from[done] = self.w_done_at[done]
        self.w_done_at[done] = np.inf
        readable = ~np.isnan(self.w_expiry)
        start = np.where(np.isnan(staged_from), self.t_prev, np.maximum(staged_from, self.t_prev))
        end = np.minimum(self.w_expiry, t)
        span = np.where(readable, np.maximum(end - start, 0.0), 0.0)
        self.staged_byte_s += float((span * self.size).sum())
        with np.errstate(invalid="ignore"):
            gone = np.nonzero(self.w_expiry <= t)[0]
        for i in gone:
            self._event(RestoreEvent(self.names[i], RestoreEventKind.EXPIRED, self.w_expiry[i]))
        if len(gone):
            pending = (self.job_state[self.jf_job] == J_OPEN) & (self.jf_state <= JF_RUNNING)
            # Only jobs the planner has seen count: one that arrived after its last step (at t_prev)
            # could not have had the copy renewed; it is served by a new restore.
            seen = int(np.searchsorted(self.submitted, self.t_prev, "right"))
            arrived_rows = np.arange(len(self.jf_job)) < self.rows_before[seen]
            needed = np.zeros(len(self.size), bool)
            needed[self.jf_file[pending & arrived_rows]] = True
            self.violations["expired_while_needed"] += int(needed[gone].sum())
        self.w_expiry[gone] = np.nan
        # the index worker
        indexed = np.nonzero(self.w_index_at <= t)[0]
        self.w_index_at[indexed] = np.inf
        for i in indexed:
            if self.state[i] != F_RESTORED or np.isnan(self.w_expiry[i]):
                continue
            self.version[i] += 1
            self.updated_at[i] = t
            if self.bad[i]:
                self.state[i] = F_FAILED
            else:
                self.state[i] = F_INDEXED
                self.domains[i] = f"{self.config.hsds_folder}{self.names[i]}"
        # Batch workers
        started = np.nonzero((self.jf_state == JF_QUEUED) & (self.run_start <= t))[0]
        for r in started:
            if np.isnan(self.w_expiry[self.jf_file[r]]):
                self.violations["read_unreadable"] += 1
        self.jf_state[started] = JF_RUNNING
        finished = np.nonzero((self.jf_state == JF_RUNNING) & (self.run_end <= t))[0]
        self.jf_state[finished] = np.where(self.row_fails[finished], JF_FAILED, JF_DONE)
        self.t_prev = t

    def observed(self, t: float) -> dict[str, ObservedRestore]:
        out = {}
        for i in self.probe_next:
            if np.isfinite(self.w_done_at[i]):
                out[self.names[i]] = ObservedRestore(ObservedStatus.ONGOING, t)
            elif not np.isnan(self.w_expiry[i]):
                out[self.names[i]] = ObservedRestore(ObservedStatus.RESTORED, t, float(self.w_expiry[i]))
            else:
                out[self.names[i]] = ObservedRestore(ObservedStatus.ARCHIVED, t)
        self.probe_next = set()
        return out

    def take_events(self) -> list[RestoreEvent]:
        events, self.events = self.events, []
        self.rng.shuffle(events)
        return events

    # -- apply one plan -------------------------------------------------------------------
    def apply(self, snapshot: Snapshot, plan_actions: Sequence[object], t: float) -> None:
        cfg = self.config
        rec = snapshot.files
        # reconciliation already produced `rec` (state/expiry/version/updated_at)
        self.state[:] = rec.state
        self.expiry[:] = rec.expiry
        self.version[:] = rec.version
        self.updated_at[:] = rec.updated_at
        lo, hi = cfg.restore_latency_h[cfg.tier]
        for a in plan_actions:
            if isinstance(a, RequestRestore):
                i = self.position[a.file_name]
                if np.isfinite(self.w_done_at[i]) or not np.isnan(self.w_expiry[i]) or self.state[i] != F_ARCHIVED:
                    self.violations["restore_while_restoring_or_readable"] += 1
                    continue
                self.state[i] = F_RESTORING
                self.version[i] += 1
                self.requested_at[i] = t
                self.updated_at[i] = t
                if self.restore_count[i]:
                    self.re_restored_bytes += int(self.size[i])
                self.restore_count[i] += 1
                self.w_done_at[i] = t + self.rng.uniform(lo, hi) * HOUR_S
                self.restored_bytes += int(self.size[i])
                self.restore_requests += 1
            elif isinstance(a, Release):
                i = self.position[a.file_name]
                r = self._row(self._job_pos[a.job_id], i)
                self.jf_state[r] = JF_QUEUED
                begin = max(t, heapq.heappop(self.slots))
                end = begin + cfg.process_s_base + cfg.process_s_per_gb * self.size[i] / 2**30
                heapq.heappush(self.slots, end)
                self.run_start[r], self.run_end[r] = begin, end
            elif isinstance(a, RenewLease):
                i = self.position[a.file_name]
                if not np.isnan(self.w_expiry[i]):
                    self.w_expiry[i] = max(self.w_expiry[i], expiry_after(t, a.days))
                    self.expiry[i] = self.w_expiry[i]
                self.renewal_requests += 1
            elif isinstance(a, QueueIndex):
                i = self.position[a.file_name]
                self.index_requested_at[i] = t
                if not np.isfinite(self.w_index_at[i]):
                    self.w_index_at[i] = t + cfg.index_latency_s
            elif isinstance(a, InvalidateExpired):
                i = self.position[a.file_name]
                self.state[i] = F_ARCHIVED
                self.version[i] += 1
                self.domains[i] = ""
                self.expiry[i] = np.nan
                self.index_requested_at[i] = np.nan
                for job in a.requeue:
                    r = self._row(self._job_pos[job], i)
                    self.jf_state[r] = JF_WAITING
                    self.run_start[r] = self.run_end[r] = np.inf
            elif isinstance(a, ProbeRestore):
                self.probe_next.add(self.position[a.file_name])
                self.checked_at[self.position[a.file_name]] = t
            elif isinstance(a, FailJobFile):
                self.jf_state[self._row(self._job_pos[a.job_id], self.position[a.file_name])] = JF_FAILED
            elif isinstance(a, CompleteJob):
                j = self._job_pos[a.job_id]
                self.job_state[j] = J_COMPLETE
                self.completed_at[j] = t

    def _row(self, job: int, unit: int) -> int:
        lo, hi = self.rows_before[job], self.rows_before[job + 1]
        if self.policy is Policy.NAIVE:
            return int(unit)  # each row is its own unit
        k = lo + int(np.searchsorted(self.jf_file[lo:hi], unit))
        assert self.jf_file[k] == unit, "job-file row not found"
        return k
