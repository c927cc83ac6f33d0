"""Cost model: restore (retrieval per GB + requests), staging GB-days, archive storage.

Prices are a configurable table (defaults: AWS us-east-1 list prices). S3 bills
a GB as 2**30 bytes and a month as 730 hours; both are fields of the table.
A restored copy is billed as S3 Standard from completion until it expires; a
renewal (RestoreObject on an already restored object) costs only the request.

The same model prices estimates (what a submission will cost), accounting
(what was actually restored and staged) and per-job status (a job's share of
each restore it used: a file's restore cost is split among the jobs that
wanted it).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from carousel.model import (
    F_ARCHIVED,
    F_FAILED,
    F_INDEXED,
    F_RESTORED,
    F_RESTORING,
    JF_DONE,
    JF_FAILED,
    JF_QUEUED,
    JF_RUNNING,
    JF_WAITING,
    JOB_FROM_CODE,
    FileRecord,
    Snapshot,
)
from carousel.planner import DAY_S, HOUR_S, TIER_MAX_LATENCY_S, PlannerConfig, demand
from carousel.slack import due_times, release_times
from datacarousel.contract import FileState, JobState, RestoreTier
from datacarousel.errors import BadInput


class ArchiveClass(enum.StrEnum):
    """S3 storage classes an archived object can sit in (the S3 API names)."""

    DEEP_ARCHIVE = "DEEP_ARCHIVE"
    GLACIER = "GLACIER"  # Glacier Flexible Retrieval


@dataclass(frozen=True)
class RetrievalPrice:
    per_gb: float
    per_1000_requests: float


def _default_retrieval() -> dict[tuple[ArchiveClass, RestoreTier], RetrievalPrice]:
    return {
        (ArchiveClass.DEEP_ARCHIVE, RestoreTier.BULK): RetrievalPrice(0.0025, 0.025),
        (ArchiveClass.DEEP_ARCHIVE, RestoreTier.STANDARD): RetrievalPrice(0.02, 0.10),
        (ArchiveClass.GLACIER, RestoreTier.BULK): RetrievalPrice(0.0, 0.0),
        (ArchiveClass.GLACIER, RestoreTier.STANDARD): RetrievalPrice(0.01, 0.05),
        (ArchiveClass.GLACIER, RestoreTier.EXPEDITED): RetrievalPrice(0.03, 10.00),
    }


@dataclass(frozen=True)
class PriceTable:
    retrieval: Mapping[tuple[ArchiveClass, RestoreTier], RetrievalPrice] = field(default_factory=_default_retrieval)
    staging_per_gb_month: float = 0.023  # S3 Standard, first 50 TB tier
    storage_per_gb_month: Mapping[ArchiveClass, float] = field(
        default_factory=lambda: {ArchiveClass.DEEP_ARCHIVE: 0.00099, ArchiveClass.GLACIER: 0.0036}
    )
    bytes_per_gb: int = 2**30
    hours_per_month: float = 730.0

    def retrieval_price(self, archive_class: ArchiveClass, tier: RestoreTier) -> RetrievalPrice:
        try:
            return self.retrieval[(ArchiveClass(archive_class), RestoreTier(tier))]
        except KeyError:
            raise BadInput(
                f"no {RestoreTier(tier).value} retrieval tier for {ArchiveClass(archive_class).value}"
            ) from None

    def gb(self, n_bytes: float) -> float:
        return n_bytes / self.bytes_per_gb

    def gb_month(self, byte_seconds: float) -> float:
        return byte_seconds / self.bytes_per_gb / (self.hours_per_month * HOUR_S)


DEFAULT_PRICES = PriceTable()


@dataclass(frozen=True)
class CostBreakdown:
    retrieval: float = 0.0  # restore $/GB
    requests: float = 0.0  # restore and renewal requests
    staging: float = 0.0  # restored copies, S3 Standard GB-months
    archive_storage: float = 0.0  # the archive itself while the period lasts

    @property
    def total(self) -> float:
        return self.retrieval + self.requests + self.staging + self.archive_storage

    def __add__(self, other: CostBreakdown) -> CostBreakdown:
        return CostBreakdown(
            self.retrieval + other.retrieval,
            self.requests + other.requests,
            self.staging + other.staging,
            self.archive_storage + other.archive_storage,
        )

    def scaled(self, factor: float) -> CostBreakdown:
        return CostBreakdown(
            self.retrieval * factor, self.requests * factor, self.staging * factor, self.archive_storage * factor
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "retrieval": self.retrieval,
            "requests": self.requests,
            "staging": self.staging,
            "archive_storage": self.archive_storage,
            "total": self.total,
        }


def account(
    *,
    restored_bytes: float,
    restore_requests: int,
    renewal_requests: int = 0,
    staged_byte_seconds: float = 0.0,
    archive_bytes: float = 0.0,
    period_s: float = 0.0,
    tier: RestoreTier = RestoreTier.BULK,
    archive_class: ArchiveClass = ArchiveClass.DEEP_ARCHIVE,
    prices: PriceTable = DEFAULT_PRICES,
) -> CostBreakdown:
    """What a period actually cost, from what was restored, renewed and staged."""
    price = prices.retrieval_price(archive_class, tier)
    return CostBreakdown(
        retrieval=prices.gb(restored_bytes) * price.per_gb,
        requests=(restore_requests + renewal_requests) / 1000 * price.per_1000_requests,
        staging=prices.gb_month(staged_byte_seconds) * prices.staging_per_gb_month,
        archive_storage=prices.gb_month(archive_bytes * period_s) * prices.storage_per_gb_month[archive_class],
    )


def staging_seconds(completed_at: float, days: int) -> float:
    """How long a copy restored at `completed_at` for `days` stays billed (S3 rounds expiry up to 00:00 UTC)."""
    return expiry_after(completed_at, days) - completed_at


def expiry_after(t: float, days: int) -> float:
    """S3's expiry for a restore completed (or renewed) at `t`: t + days, rounded up to the next midnight UTC."""
    return float(np.ceil((t + days * DAY_S) / DAY_S) * DAY_S)


def lower_bound(
    unique_bytes: float,
    unique_files: int,
    *,
    min_staging_s: float = DAY_S,
    tier: RestoreTier = RestoreTier.BULK,
    archive_class: ArchiveClass = ArchiveClass.DEEP_ARCHIVE,
    prices: PriceTable = DEFAULT_PRICES,
) -> CostBreakdown:
    """Each needed byte restored once at the tier and staged the shortest time allowed (1 day by default)."""
    return account(
        restored_bytes=unique_bytes,
        restore_requests=unique_files,
        staged_byte_seconds=unique_bytes * min_staging_s,
        tier=tier,
        archive_class=archive_class,
        prices=prices,
    )


@dataclass(frozen=True)
class NeedBound:
    """Lower bounds on the cost of serving needs that arrive over time (see `need_lower_bound`)."""

    prompt: CostBreakdown  # each job served from its arrival: per file the cheaper of keeping or restoring again
    prompt_restored_bytes: int  # bytes that optimum restores (its amplification numerator)
    once: CostBreakdown  # amplification exactly 1 while serving promptly: each file staged first need -> last need
    once_peak_bytes: int  # what `once` must hold staged at one time (above the window: amplification 1 infeasible)
    floor: CostBreakdown  # `lower_bound`: each byte restored once, staged one day (jobs may wait for each other)


def need_lower_bound(
    sizes: Sequence[int] | np.ndarray,
    need_times: Sequence[Sequence[float]],
    *,
    min_staging_s: float = DAY_S,
    tier: RestoreTier = RestoreTier.BULK,
    archive_class: ArchiveClass = ArchiveClass.DEEP_ARCHIVE,
    prices: PriceTable = DEFAULT_PRICES,
) -> NeedBound:
    """Honest lower bounds for files needed at given times (a job needs its files from its arrival on).

    A restore costs retrieval + one request and stays billed at least `min_staging_s` (S3's shortest
    restore is one day). If every job is to be served from its arrival (no job held back to wait for a
    later one), each file's need times must be covered by staged periods ("stints"): one stint over needs
    t_a..t_b costs one restore + staging for max(min_staging_s, t_b - t_a). Per file the cheapest
    cover is found exactly (a small dynamic programme over its sorted need times): between two
    needs far apart it is cheaper to restore again than to keep the copy. `prompt` is that optimum;
    `once` is the single-stint cover (restore amplification exactly 1); `floor` drops the promptness
    (each byte restored once, staged one day) and bounds every schedule. Restore latency, window caps
    and processing time are ignored, so every figure is a lower bound for its class of schedules.
    """
    price = prices.retrieval_price(archive_class, tier)
    restore_per_byte = price.per_gb / prices.bytes_per_gb
    request = price.per_1000_requests / 1000
    stage_per_byte_s = prices.staging_per_gb_month / prices.bytes_per_gb / (prices.hours_per_month * HOUR_S)
    size_arr = np.asarray(sizes, dtype=np.float64)
    prompt = np.zeros(4)  # retrieval, requests, staging byte-seconds, restored bytes
    once_stage = 0.0
    events: list[tuple[float, float]] = []
    memo: dict[tuple[float, tuple[float, ...]], tuple[int, float]] = {}
    for size, times in zip(size_arr, need_times, strict=True):
        t = tuple(sorted(float(x) for x in times))
        if not t:
            continue
        span = t[-1] - t[0]
        once_stage += size * max(min_staging_s, span)
        events += [(t[0], size), (t[0] + max(min_staging_s, span), -size)]
        key = (float(size), tuple(x - t[0] for x in t))
        if key not in memo:
            memo[key] = _cheapest_cover(
                t, fixed=size * restore_per_byte + request, staging=stage_per_byte_s * size, min_staging_s=min_staging_s
            )
        n_stints, held_s = memo[key]
        prompt += (size * n_stints * restore_per_byte, n_stints * request, size * held_s, size * n_stints)
    events.sort()
    level = peak = 0.0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    needed = size_arr[[bool(len(x)) for x in need_times]] if len(size_arr) else size_arr
    unique_bytes = float(needed.sum())
    staging_price = prices.staging_per_gb_month / prices.bytes_per_gb / (prices.hours_per_month * HOUR_S)
    return NeedBound(
        prompt=CostBreakdown(
            retrieval=float(prompt[0]), requests=float(prompt[1]), staging=float(prompt[2]) * staging_price
        ),
        prompt_restored_bytes=int(prompt[3]),
        once=CostBreakdown(
            retrieval=unique_bytes * restore_per_byte,
            requests=len(needed) * request,
            staging=once_stage * staging_price,
        ),
        once_peak_bytes=int(peak),
        floor=lower_bound(
            unique_bytes,
            len(needed),
            min_staging_s=min_staging_s,
            tier=tier,
            archive_class=archive_class,
            prices=prices,
        ),
    )


def _cheapest_cover(t: tuple[float, ...], *, fixed: float, staging: float, min_staging_s: float) -> tuple[int, float]:
    """The cheapest stints covering sorted need times `t` (a restore costs `fixed`, staging `staging` a
    second, at least `min_staging_s`): a dynamic programme over the last stint's first need. Returns the
    number of stints and the seconds staged."""
    k = len(t)
    best = [0.0] + [np.inf] * k
    stints = [0] * (k + 1)
    stage = [0.0] * (k + 1)
    for b in range(1, k + 1):
        for a in range(1, b + 1):
            held = max(min_staging_s, t[b - 1] - t[a - 1])
            c = best[a - 1] + fixed + staging * held
            if c < best[b]:
                best[b], stints[b], stage[b] = c, stints[a - 1] + 1, stage[a - 1] + held
    return stints[k], stage[k]


def keep_break_even_s(
    size_bytes: float = 30 * 2**30,
    *,
    lease_days: int = 1,
    tier: RestoreTier = RestoreTier.BULK,
    archive_class: ArchiveClass = ArchiveClass.DEEP_ARCHIVE,
    prices: PriceTable = DEFAULT_PRICES,
) -> float:
    """How long keeping an idle copy costs as much as restoring it again (retrieval + request + the
    re-restore's own staging, completion + lease rounded up to midnight: lease + half a day on average)."""
    price = prices.retrieval_price(archive_class, tier)
    stage_per_s = prices.staging_per_gb_month / prices.bytes_per_gb / (prices.hours_per_month * HOUR_S) * size_bytes
    again = prices.gb(size_bytes) * price.per_gb + price.per_1000_requests / 1000
    return again / stage_per_s + (lease_days + 0.5) * DAY_S


# --- estimates ----------------------------------------------------------------------


@dataclass(frozen=True)
class SubmissionEstimate:
    file_count: int
    total_bytes: int
    readable_files: int  # already staged: work can start on them at once
    readable_bytes: int
    restoring_files: int
    to_restore_files: int  # still archived: a restore is needed
    to_restore_bytes: int
    shared_files: int  # archived files other open jobs also wait for (their restore is shared)
    estimated_cost: CostBreakdown  # the job's share (restores split with jobs already waiting)
    estimated_cost_alone: CostBreakdown  # as if nobody shared
    estimated_start: float | None  # when the first file should be readable (None: nothing to do)
    # With a deadline: when the carousel is expected to release the job's restores, held back until then to be
    # shared with later jobs (`carousel.slack`); None: not held (no deadline, or work can start at once).
    held_until: float | None = None


def _turnover_s(config: PlannerConfig) -> float:
    """Time a window slot is busy with one file: the longest restore latency plus one lease."""
    return TIER_MAX_LATENCY_S[config.tier] + config.lease_days * DAY_S


def estimate_submission(
    matched: Sequence[FileRecord],
    snapshot: Snapshot,
    now: float,
    config: PlannerConfig,
    *,
    archive_class: ArchiveClass = ArchiveClass.DEEP_ARCHIVE,
    prices: PriceTable = DEFAULT_PRICES,
    deadline: float | None = None,
) -> SubmissionEstimate:
    """What a job over `matched` files will cost and when it should start, given the current snapshot.

    The start estimate is coarse: the archived bytes already waiting (beyond the free
    window) drain at one window per turnover (longest latency + one lease); then one
    restore latency. A job with a `deadline` whose files no prompt job waits for, and none readable
    yet, starts later: its restores are held back as `carousel.slack` holds them, released in time
    for the deadline (`held_until`), then one restore latency.
    """
    d = demand(snapshot, now)
    pos = snapshot.files.position
    price = prices.retrieval_price(archive_class, config.tier)
    sizes = np.array([f.size_bytes for f in matched], dtype=np.float64)
    states = [FileState(f.state) for f in matched]
    waiting_others = np.array([d.waiting[pos[f.file_name]] if f.file_name in pos else 0 for f in matched])
    readable = np.array([s in (FileState.RESTORED, FileState.INDEXED) for s in states], dtype=bool)
    restoring = np.array([s is FileState.RESTORING for s in states], dtype=bool)
    archived = np.array([s is FileState.ARCHIVED for s in states], dtype=bool)
    stage_s = staging_seconds(now, config.lease_days)

    def cost(share: np.ndarray) -> CostBreakdown:
        arch = archived.astype(float) * share
        return CostBreakdown(
            retrieval=prices.gb(float((sizes * arch).sum())) * price.per_gb,
            requests=float(arch.sum()) / 1000 * price.per_1000_requests,
            staging=prices.gb_month(float((sizes * share * (archived | restoring | readable)).sum()) * stage_s)
            * prices.staging_per_gb_month,
        )

    share = 1.0 / (1.0 + waiting_others) if len(matched) else np.zeros(0)
    if len(matched) == 0 or not (archived | restoring | readable).any():
        start = None
    elif readable.any():
        start = now
    else:
        latency = TIER_MAX_LATENCY_S[config.tier]
        if restoring.any():
            start = now + latency
        else:
            backlog = float(snapshot.files.size[(snapshot.files.state == F_ARCHIVED) & (d.waiting > 0)].sum())
            free = max(0.0, config.window_bytes - float(snapshot.files.size[d.in_window].sum()))
            queue_s = max(0.0, backlog - free) / config.window_bytes * _turnover_s(config)
            start = now + queue_s + latency
    held_until = None
    if deadline is not None and start is not None and not (readable | restoring).any():  # else it starts anyway
        rows = np.array([pos[f.file_name] for f in matched if f.file_name in pos], dtype=np.int64)
        restore_bytes, restore_files = int(sizes[archived].sum()), int(archived.sum())
        release = _held_release(
            snapshot, deadline, rows, config, restore_bytes=restore_bytes, restore_files=restore_files
        )
        if release is not None and release > start - TIER_MAX_LATENCY_S[config.tier]:
            held_until = release
            start = release + TIER_MAX_LATENCY_S[config.tier]
    return SubmissionEstimate(
        file_count=len(matched),
        total_bytes=int(sizes.sum()),
        readable_files=int(readable.sum()),
        readable_bytes=int(sizes[readable].sum()),
        restoring_files=int(restoring.sum()),
        to_restore_files=int(archived.sum()),
        to_restore_bytes=int(sizes[archived].sum()),
        shared_files=int((archived & (waiting_others > 0)).sum()),
        estimated_cost=cost(share),
        estimated_cost_alone=cost(np.ones(len(matched))),
        estimated_start=start,
        held_until=held_until,
    )


def _held_release(
    snapshot: Snapshot,
    deadline: float,
    files: npt.NDArray[np.int64],
    config: PlannerConfig,
    *,
    restore_bytes: int,
    restore_files: int,
) -> float | None:
    """When `carousel.slack.hold_back` releases the restores (`restore_bytes` in `restore_files` files) of a job
    due at `deadline` over the snapshot's `files`, with nothing ahead of it in the window (its last file's
    release time: the earliest of the job's). None when nothing is held: no deadline, nothing to restore, hold
    back off or the naive policy, or a prompt job waits for one of the files."""
    if not (np.isfinite(deadline) and restore_files and config.hold_back and config.policy.value != "naive"):
        return None
    due = due_times(snapshot, np.ones(len(snapshot.files), dtype=bool))
    if np.isneginf(due[files]).any():
        return None
    latency = TIER_MAX_LATENCY_S[config.tier]
    return float(release_times([deadline], [restore_bytes], [restore_files], config, latency)[0])


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: JobState
    files: dict[str, int]  # waiting, restoring, readable, indexed, queued, running, done, failed
    total_bytes: int
    done_bytes: int
    cost_so_far: CostBreakdown  # the job's share of the restores made for the files it used
    estimated_cost: CostBreakdown  # cost so far + the share of restores still to come + staging
    eta: float | None  # None when complete, cancelled, or nothing to go on yet


def job_status(
    snapshot: Snapshot,
    job_id: str,
    now: float,
    config: PlannerConfig,
    *,
    archive_class: ArchiveClass = ArchiveClass.DEEP_ARCHIVE,
    prices: PriceTable = DEFAULT_PRICES,
) -> JobStatus:
    jobs, jf, files = snapshot.jobs, snapshot.job_files, snapshot.files
    if job_id not in jobs.position:
        raise BadInput(f"no such job {job_id!r}")
    j = jobs.position[job_id]
    rows = np.nonzero(jf.job == j)[0]
    f = jf.file[rows]
    rs = jf.state[rows]
    fs = files.state[f]
    size = files.size[f].astype(np.float64)
    waiting = rs == JF_WAITING
    counts = {
        "waiting": int((waiting & (fs == F_ARCHIVED)).sum()),
        "restoring": int((waiting & (fs == F_RESTORING)).sum()),
        "readable": int((waiting & (fs == F_RESTORED)).sum()),
        "indexed": int((waiting & (fs == F_INDEXED)).sum()),
        "queued": int((rs == JF_QUEUED).sum()),
        "running": int((rs == JF_RUNNING).sum()),
        "done": int((rs == JF_DONE).sum()),
        "failed": int(((rs == JF_FAILED) | (waiting & (fs == F_FAILED))).sum()),
    }
    sharers = np.maximum(np.bincount(jf.file, minlength=len(files))[f], 1)
    price = prices.retrieval_price(archive_class, config.tier)
    restores = files.restore_count[f].astype(np.float64)
    used = restores / sharers
    so_far = CostBreakdown(
        retrieval=prices.gb(float((size * used).sum())) * price.per_gb,
        requests=float(used.sum()) / 1000 * price.per_1000_requests,
    )
    to_come = waiting & (fs == F_ARCHIVED)
    future = to_come / sharers
    stage_s = staging_seconds(now, config.lease_days)
    estimated = so_far + CostBreakdown(
        retrieval=prices.gb(float((size * future).sum())) * price.per_gb,
        requests=float(future.sum()) / 1000 * price.per_1000_requests,
        staging=prices.gb_month(float((size / sharers).sum()) * stage_s) * prices.staging_per_gb_month,
    )
    state = JOB_FROM_CODE[int(jobs.state[j])]
    finished = counts["done"] + counts["failed"]
    remaining = len(rows) - finished
    eta: float | None = None
    if state is JobState.OPEN and remaining:
        elapsed = now - float(jobs.submitted_at[j])
        if finished and elapsed > 0:
            eta = now + remaining * elapsed / finished
        else:
            per_window = max(1.0, config.window_bytes / max(float(size.mean()), 1.0))
            eta = now + TIER_MAX_LATENCY_S[config.tier] + remaining / per_window * _turnover_s(config)
            release = _held_release(
                snapshot,
                float(jobs.deadline[j]),
                f[to_come],
                config,
                restore_bytes=int(size[to_come].sum()),
                restore_files=int(to_come.sum()),
            )
            if release is not None and release > now and remaining == int(to_come.sum()):
                eta += release - now  # nothing started yet: its restores wait for the release, then the same
    return JobStatus(
        job_id=job_id,
        state=state,
        files=counts,
        total_bytes=int(size.sum()),
        done_bytes=int(size[rs == JF_DONE].sum()),
        cost_so_far=so_far,
        estimated_cost=estimated,
        eta=eta,
    )


__all__ = [
    "DEFAULT_PRICES",
    "F_INDEXED",
    "F_RESTORED",
    "ArchiveClass",
    "CostBreakdown",
    "JobStatus",
    "NeedBound",
    "PriceTable",
    "RetrievalPrice",
    "SubmissionEstimate",
    "account",
    "estimate_submission",
    "expiry_after",
    "job_status",
    "keep_break_even_s",
    "lower_bound",
    "need_lower_bound",
    "staging_seconds",
]
