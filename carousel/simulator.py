"""Archive-scale simulator: the real planning step driven by a simulated clock and archive.

The simulated world stands in for S3 (restore latency drawn per request from
the tier's range with a fixed seed; restored copies expire at S3's rounded
expiry; completion and expiry events are lost or duplicated at configurable
rates and delivered in shuffled order), for the index worker (a fixed latency;
a few files turn out bad) and for AWS Batch (a fixed number of worker slots,
processing time growing with file size, a few per-file failures). Each step it
hands the planner a `Snapshot` and the restore events/observations, and applies
the returned actions to the world, checking the invariants the planner
promises (no restore of a file restoring or readable, window caps) as it goes.

Policies compared: `demand` and `rotation` (shared restores, window caps) and
`naive` (each job restores its own copy of each of its files in submission
order, no window: the AWS restore samples' restore-then-copy pattern; S3
itself would refuse a second concurrent restore of one object, so in naive
mode every (job, file) pair is its own object).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from carousel.catalogue import CatalogueArrays
from carousel.cost import (
    DEFAULT_PRICES,
    CostBreakdown,
    NeedBound,
    PriceTable,
    account,
    lower_bound,
    need_lower_bound,
)
from carousel.model import (
    J_CANCELLED,
    J_OPEN,
)
from carousel.planner import PlannerConfig, Policy, cancel_job, step
from carousel.query import JobQuery
from carousel.sim_world import DEFAULT_CONFIG, EPOCH, TB, JobSpec, SimConfig, SimWorld
from datacarousel.contract import RestoreTier

log = logging.getLogger(__name__)

__all__ = ["EPOCH", "TB", "JobSpec", "SimConfig", "SimResult", "compare", "make_workload", "need_bound", "simulate"]


def make_workload(catalogue: CatalogueArrays, config: SimConfig) -> list[JobSpec]:
    """Researchers' jobs: overlapping queries around a few campaigns, arriving over `arrival_span_s`."""
    rng = np.random.default_rng(config.seed)
    years = np.unique(catalogue.year_month // 12)
    themes = []
    for _ in range(config.themes):
        year = int(rng.choice(years[(years >= 2001) & (years <= 2014)])) if len(years) > 2 else int(years[0])
        first = int(rng.integers(1, 12))
        themes.append((year, first, int(rng.integers(1, 3))))  # one or two months
    popularity = 1.0 / np.arange(1, config.themes + 1)
    popularity /= popularity.sum()
    jobs: list[JobSpec] = []
    for k in range(config.jobs):
        year, first, span = themes[int(rng.choice(config.themes, p=popularity))]
        months = tuple(range(first, min(12, first + span) + 1))
        kind = rng.random()
        if kind < 0.4:
            query = JobQuery(years=(year,), months=months)
        elif kind < 0.7:
            paths = tuple(int(p) for p in rng.choice(np.arange(1, 234), size=int(rng.integers(20, 120)), replace=False))
            query = JobQuery(years=(year,), months=months, misr_paths=paths)
        else:
            in_theme = np.nonzero(catalogue.mask(JobQuery(years=(year,), months=months)))[0]
            if len(in_theme) == 0:
                query = JobQuery(years=(year,), months=months)
            else:
                lo_i, hi_i = sorted(rng.integers(0, len(in_theme), size=2))
                lo, hi = int(catalogue.orbit[in_theme[lo_i]]), int(catalogue.orbit[in_theme[max(hi_i, lo_i + 1) - 1]])
                query = JobQuery(orbit_min=lo, orbit_max=max(lo, hi))
        rows = np.nonzero(catalogue.mask(query))[0].astype(np.int64)
        submitted = EPOCH + float(rng.uniform(0, config.arrival_span_s)) if k else EPOCH
        owner = f"owner-{int(rng.integers(config.owners)):02d}"
        deadline = None if config.slack_s is None else submitted + config.slack_s
        jobs.append(JobSpec(f"job-{k:03d}", owner, submitted, query, rows, deadline=deadline))
    jobs.sort(key=lambda j: (j.submitted_at, j.job_id))
    return jobs


@dataclass
class Timeline:
    t: list[float] = field(default_factory=list)
    staged_bytes: list[int] = field(default_factory=list)
    restoring_bytes: list[int] = field(default_factory=list)
    jobs_done: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SimResult:
    policy: Policy
    jobs: int
    jobs_completed: int
    jobs_cancelled: int
    unique_bytes_needed: int
    unique_files_needed: int
    restored_bytes: int
    re_restored_bytes: int  # restores of a file restored before (its copy expired, then a job wanted it)
    restore_requests: int
    renewal_requests: int
    amplification: float
    cost: CostBreakdown
    lower_bound: CostBreakdown
    peak_staged_bytes: int
    peak_window_bytes: int
    completion_s: tuple[float, ...]  # per completed job: completion - submission
    makespan_s: float
    steps: int
    wall_s: float
    max_step_s: float
    violations: dict[str, int]
    timeline: Timeline
    need_bound: NeedBound | None = None  # honest bounds given the jobs' arrival times (`cost.need_lower_bound`)
    step_s: tuple[float, ...] = ()  # wall time of every planning step
    jobs_late: int = 0  # jobs with a deadline that completed after it (or never, by the end of the run)
    max_late_s: float = 0.0  # the latest of them: completion - deadline (inf: one never completed)

    @property
    def prompt_bound(self) -> CostBreakdown:
        """Cheapest cost serving every job from its arrival (keep or restore again, per file); else the floor."""
        return self.need_bound.prompt if self.need_bound is not None else self.lower_bound

    @property
    def median_completion_s(self) -> float:
        return float(np.median(self.completion_s)) if self.completion_s else float("nan")

    @property
    def p95_completion_s(self) -> float:
        return float(np.percentile(self.completion_s, 95)) if self.completion_s else float("nan")


def simulate(
    catalogue: CatalogueArrays,
    workload: Sequence[JobSpec],
    policy: Policy | str,
    config: SimConfig = DEFAULT_CONFIG,
    prices: PriceTable = DEFAULT_PRICES,
) -> SimResult:
    """Run one policy over the workload until every job completes (or the horizon)."""
    policy = Policy(policy)
    started = time.perf_counter()
    jobs = sorted(workload, key=lambda j: (j.submitted_at, j.job_id))
    # rows inside each job sorted by unit (for the simulator's row lookup)
    jobs = [dataclasses.replace(j, files=np.unique(j.files)) for j in jobs]
    world = SimWorld(catalogue, jobs, policy, config)
    planner = _planner_config(world, policy, config)
    timeline = Timeline()
    step_times: list[float] = []
    t = EPOCH
    end = EPOCH + config.horizon_s
    steps = 0
    max_step = 0.0
    peak_window = 0
    while t <= end:
        world.advance(t)
        arrived = int(np.searchsorted(world.submitted, t, side="right"))
        _cancel_due(world, jobs, arrived, t)
        snapshot = world.snapshot(arrived)
        tick = time.perf_counter()
        plan, reconciled = step(snapshot, world.take_events(), world.observed(t), t, planner)
        step_times.append(time.perf_counter() - tick)
        max_step = max(max_step, step_times[-1])
        steps += 1
        if plan.window_bytes > planner.window_bytes or plan.window_files > planner.window_files:
            world.violations["window_exceeded"] += 1
        peak_window = max(peak_window, plan.window_bytes)
        world.apply(reconciled, plan.actions, t)
        _observe(world, timeline, planner, t, arrived)
        all_done = arrived == len(jobs) and bool((world.job_state != J_OPEN).all())
        # run on until the last staged copies expire, so that staging is billed in full
        if all_done and np.isnan(world.w_expiry).all() and not np.isfinite(world.w_done_at).any():
            break
        t += config.step_s
    world.advance(t)
    run = Progress(policy, steps, peak_window, max_step, step_times, started)
    return _result(catalogue, jobs=jobs, world=world, config=config, prices=prices, timeline=timeline, run=run)


@dataclasses.dataclass(frozen=True)
class Progress:
    """How a run went, for its result: steps, the peak window the planner reported, the planner's times."""

    policy: Policy
    steps: int
    peak_window: int
    max_step: float
    step_times: list[float]
    started: float


def _planner_config(world: SimWorld, policy: Policy, config: SimConfig) -> PlannerConfig:
    """The planner's settings for a run (the naive baseline: a window as large as the catalogue)."""
    naive = policy is Policy.NAIVE
    unlimited = int(world.size.sum()) + 1
    return PlannerConfig(
        window_bytes=unlimited if naive else config.window_bytes,
        window_files=max(1, len(world.size)) if naive else config.window_files,
        policy=policy,
        tier=config.tier,
        lease_days=config.lease_days,
        keep_s=config.keep_s,
        keep_fraction=config.keep_fraction,
        keep_min_jobs=config.keep_min_jobs,
        hold_back=config.hold_back,
        slack_margin_s=config.slack_margin_s,
        max_restore_requests_per_step=PlannerConfig.requests_per_step(
            config.request_seconds_per_step, config.requests_per_second
        ),
    )


def _cancel_due(world: SimWorld, jobs: Sequence[JobSpec], arrived: int, t: float) -> None:
    """Jobs whose researcher cancels them by now, as `datacarousel cancel` would."""
    for k in range(arrived):
        when = jobs[k].cancel_at
        if when is not None and when <= t and world.job_state[k] == J_OPEN:
            action, _ = cancel_job(world.snapshot(arrived), jobs[k].job_id, t)
            world.job_state[world._job_pos[action.job_id]] = J_CANCELLED
            world.cancelled += 1


def _observe(world: SimWorld, timeline: Timeline, planner: PlannerConfig, t: float, arrived: int) -> None:
    """The window as S3 holds it (independent of the planner's arithmetic), checked and recorded."""
    held = np.isfinite(world.w_done_at) | ~np.isnan(world.w_expiry)
    if int(world.size[held].sum()) > planner.window_bytes or int(held.sum()) > planner.window_files:
        world.violations["world_window_exceeded"] += 1
    timeline.t.append(t)
    timeline.staged_bytes.append(int(world.size[~np.isnan(world.w_expiry)].sum()))
    timeline.restoring_bytes.append(int(world.size[np.isfinite(world.w_done_at)].sum()))
    timeline.jobs_done.append(int((world.job_state[:arrived] != J_OPEN).sum()))


def _result(
    catalogue: CatalogueArrays,
    *,
    jobs: Sequence[JobSpec],
    world: SimWorld,
    config: SimConfig,
    prices: PriceTable,
    timeline: Timeline,
    run: Progress,
) -> SimResult:
    needed = np.unique(np.concatenate([j.files for j in jobs])) if jobs else np.zeros(0, np.int64)
    unique_bytes = int(catalogue.size[needed].sum())
    cost = account(
        restored_bytes=world.restored_bytes,
        restore_requests=world.restore_requests,
        renewal_requests=world.renewal_requests,
        staged_byte_seconds=world.staged_byte_s,
        tier=config.tier,
        prices=prices,
    )
    done = ~np.isnan(world.completed_at)
    completion = tuple(float(x) for x in (world.completed_at - world.submitted)[done])
    with np.errstate(invalid="ignore"):
        # never completed (by the end of the run, cancelled aside): late too
        late = ~np.isnan(world.deadline) & ~(world.completed_at <= world.deadline) & (world.job_state != J_CANCELLED)
    lateness = np.where(done, world.completed_at - world.deadline, np.inf)[late]
    return SimResult(
        policy=run.policy,
        jobs=len(jobs),
        jobs_completed=int(done.sum()),
        jobs_cancelled=world.cancelled,
        unique_bytes_needed=unique_bytes,
        unique_files_needed=len(needed),
        restored_bytes=world.restored_bytes,
        re_restored_bytes=world.re_restored_bytes,
        restore_requests=world.restore_requests,
        renewal_requests=world.renewal_requests,
        amplification=world.restored_bytes / unique_bytes if unique_bytes else float("nan"),
        cost=cost,
        lower_bound=lower_bound(unique_bytes, len(needed), tier=config.tier, prices=prices),
        peak_staged_bytes=max(timeline.staged_bytes, default=0),
        peak_window_bytes=run.peak_window,
        completion_s=completion,
        makespan_s=float(np.nanmax(world.completed_at) - EPOCH) if done.any() else float("nan"),
        steps=run.steps,
        wall_s=time.perf_counter() - run.started,
        max_step_s=run.max_step,
        violations=dict(world.violations),
        timeline=timeline,
        need_bound=need_bound(catalogue, jobs, config.tier, prices),
        step_s=tuple(run.step_times),
        jobs_late=int(late.sum()),
        max_late_s=float(lateness.max()) if len(lateness) else 0.0,
    )


def need_bound(
    catalogue: CatalogueArrays, workload: Sequence[JobSpec], tier: RestoreTier, prices: PriceTable = DEFAULT_PRICES
) -> NeedBound:
    """`cost.need_lower_bound` for a workload: each file is needed from the arrival of every job wanting it."""
    needs: dict[int, list[float]] = {}
    for j in workload:
        for f in np.unique(j.files):
            needs.setdefault(int(f), []).append(j.submitted_at)
    rows = sorted(needs)
    return need_lower_bound(catalogue.size[rows], [needs[f] for f in rows], tier=tier, prices=prices)


def compare(
    catalogue: CatalogueArrays,
    config: SimConfig = DEFAULT_CONFIG,
    policies: Sequence[Policy | str] = (Policy.DEMAND, Policy.ROTATION, Policy.NAIVE),
    prices: PriceTable = DEFAULT_PRICES,
) -> dict[Policy, SimResult]:
    """The same workload under each policy."""
    workload = make_workload(catalogue, config)
    return {Policy(p): simulate(catalogue, workload, p, config, prices) for p in policies}


__all__ = ["JobSpec", "SimConfig", "SimResult", "compare", "make_workload", "need_bound", "simulate"]
