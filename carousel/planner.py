"""The carousel's planning step: a pure function of a snapshot and the time.

One step, in order:

1. jobs whose every job-file is DONE or FAILED complete;
2. readable files whose restored copy has expired are invalidated (their
   queued work waits again); a FAILED file fails the job-files waiting for it,
   with the file's reason (e.g. its archive object is gone), so their jobs end;
3. readable files still needed by an open job (job-file WAITING, QUEUED or
   RUNNING, released or not) get their lease renewed before it runs out; with
   `keep_s` > 0 a copy nobody needs any more is kept (renewed) for a while when
   reuse is likely (`keep`); other files are left to expire;
4. restored files still needed are queued for indexing (again, if the last
   request is older than `index_retry_s`); indexed files are released, file by
   file, to every job waiting for them;
5. restores older than the tier's latency are probed (their event may be lost);
6. restores that only jobs with slack (a deadline) wait for are held back while
   that slack lasts, so that later jobs over the same files share one restore,
   and released in time for the earliest deadline (`carousel.slack`);
7. the next files are admitted under the window caps (bytes and files
   restoring or staged) and the per-step restore request budget, in the order
   of the policy (released files with slack after those, earliest deadline
   first). A file is only ever restored from ARCHIVED: never while a restore is
   in progress, never while it is readable.

A readable file with no expiry is an object in a non-archive storage class
(STANDARD, ...; see `carousel.restore`): readable as is, it is never expired,
renewed or restored, and it is no staged copy, so it takes no room in the window.

Policies: `demand` serves owners fairly (the owner using the least of the
window goes next) and, for each owner, the file the most jobs wait for first;
`rotation` sweeps the archive in orbit (time) order from just past the newest
file in the window, wrapping around, restoring whatever any open job wants;
`naive` restores each job's files in submission order with no sharing (the
AWS restore samples), for the simulator's comparison.

The rotation cursor is derived from the state (the newest needed file in the
window), so a step needs no state of its own.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from carousel.actions import (
    Action,
    CancelJob,
    CompleteJob,
    FailJobFile,
    InvalidateExpired,
    Plan,
    ProbeRestore,
    QueueIndex,
    Release,
    RenewLease,
    RequestRestore,
)
from carousel.model import (
    F_ARCHIVED,
    F_FAILED,
    F_INDEXED,
    F_RESTORED,
    F_RESTORING,
    J_OPEN,
    JF_DONE,
    JF_FAILED,
    JF_QUEUED,
    JF_RUNNING,
    JF_WAITING,
    Snapshot,
)
from carousel.restore import ObservedRestore, RestoreEvent, apply_updates, reconcile
from carousel.slack import hold_back
from datacarousel.contract import RestoreTier
from datacarousel.errors import BadInput

log = logging.getLogger(__name__)

DAY_S = 86_400.0
HOUR_S = 3_600.0
S3_RESTORE_REQUESTS_PER_SECOND = 1_000  # per account


class Policy(enum.StrEnum):
    DEMAND = "demand"
    ROTATION = "rotation"
    NAIVE = "naive"


# Longest restore latency per tier (S3 Glacier Deep Archive; Expedited is Glacier Flexible only).
TIER_MAX_LATENCY_S = {RestoreTier.BULK: 48 * HOUR_S, RestoreTier.STANDARD: 12 * HOUR_S, RestoreTier.EXPEDITED: 300.0}


@dataclass(frozen=True)
class PlannerConfig:
    window_bytes: int
    window_files: int
    policy: Policy = Policy.DEMAND
    tier: RestoreTier = RestoreTier.BULK
    lease_days: int = 1  # RestoreObject Days: the staged copy lives this long past completion / renewal
    renew_margin_s: float = 12 * HOUR_S  # renew a needed file when less than this is left
    max_restore_requests_per_step: int = S3_RESTORE_REQUESTS_PER_SECOND * 60  # the adapter issues them for 60 s
    index_retry_s: float = HOUR_S
    probe_after_s: float = 6 * HOUR_S  # HeadObject a restore this old (its completion event may be lost) ...
    probe_every_s: float = 6 * HOUR_S  # ... and again this long after the last look (< one lease)
    # Keep-or-release (off when keep_s == 0; see `keep`): a readable copy no open job needs any more is
    # renewed while (a) its idle time is under keep_s -- idle counted from the restore's latest possible
    # completion or the latest arrival of an open job that wants it, whichever is later --, (b) at least
    # keep_min_jobs open jobs wanting files in its orbit neighbourhood arrived within keep_s (a campaign
    # is on: queries cluster), and (c) kept copies stay within keep_fraction of the window (bytes and
    # files; the rest is left for files jobs wait for).
    keep_s: float = 0.0
    keep_fraction: float = 0.5
    keep_neighbourhood_orbits: int = 450  # about one month of orbits
    keep_min_jobs: int = 1  # open jobs arrived within keep_s wanting the neighbourhood: a campaign is on
    # Slack (`carousel.slack`): a restore that only jobs with a deadline wait for is held back (later jobs over
    # the same files join it) and released, earliest deadline first, once the backlog ahead of it, the tier's
    # longest latency and this margin (index, processing, steps) would otherwise take it past the deadline.
    hold_back: bool = True
    slack_margin_s: float = DAY_S

    def __post_init__(self) -> None:
        problems = []
        if self.window_bytes <= 0:
            problems.append(f"window_bytes must be > 0, got {self.window_bytes}")
        if self.window_files <= 0:
            problems.append(f"window_files must be > 0, got {self.window_files}")
        if not 1 <= self.lease_days <= 30:
            problems.append(f"lease_days must lie in 1..30, got {self.lease_days}")
        if not 0 < self.renew_margin_s < self.lease_days * DAY_S:
            problems.append(f"renew_margin_s must lie in (0, lease_days days), got {self.renew_margin_s}")
        if not 0 < self.probe_every_s < self.lease_days * DAY_S:
            problems.append("probe_every_s must lie in (0, lease_days days): a copy must not expire unseen")
        if self.max_restore_requests_per_step < 1:
            problems.append("max_restore_requests_per_step must be >= 1")
        if not self.keep_s >= 0:
            problems.append(f"keep_s must be >= 0, got {self.keep_s}")
        if not 0 <= self.keep_fraction <= 1:
            problems.append(f"keep_fraction must lie in [0, 1], got {self.keep_fraction}")
        if self.keep_min_jobs < 1:
            problems.append("keep_min_jobs must be >= 1")
        if self.keep_neighbourhood_orbits < 1:
            problems.append("keep_neighbourhood_orbits must be >= 1")
        if not self.slack_margin_s >= 0:
            problems.append(f"slack_margin_s must be >= 0, got {self.slack_margin_s}")
        object.__setattr__(self, "policy", Policy(self.policy))
        object.__setattr__(self, "tier", RestoreTier(self.tier))
        if problems:
            raise BadInput("invalid planner config: " + "; ".join(problems))

    @staticmethod
    def requests_per_step(step_seconds: float, rate_per_second: float = S3_RESTORE_REQUESTS_PER_SECOND) -> int:
        """Restore request budget of a step whose adapter spends `step_seconds` issuing requests."""
        return max(1, int(rate_per_second * step_seconds))


@dataclass(frozen=True)
class Demand:
    """Per-file demand derived from a snapshot (arrays over files)."""

    needed: npt.NDArray[np.int64]  # open job-files still needing the file (WAITING/QUEUED/RUNNING)
    waiting: npt.NDArray[np.int64]  # open job-files WAITING for it
    readable: npt.NDArray[np.bool_]
    expired: npt.NDArray[np.bool_]
    in_window: npt.NDArray[np.bool_]  # restoring or staged (after expiries)
    # Readable with no expiry: the object is in a non-archive class (STANDARD, ...), readable as is. Not a
    # restored copy: never expired, renewed or restored, and it takes no room in the window.
    standing: npt.NDArray[np.bool_]


def demand(snapshot: Snapshot, now: float) -> Demand:
    files, jf = snapshot.files, snapshot.job_files
    n = len(files)
    open_row = snapshot.jobs.state[jf.job] == J_OPEN
    pending = open_row & (jf.state <= JF_RUNNING)
    waiting = open_row & (jf.state == JF_WAITING)
    readable = (files.state == F_RESTORED) | (files.state == F_INDEXED)
    standing = readable & np.isnan(files.expiry)
    with np.errstate(invalid="ignore"):
        expired = readable & (files.expiry <= now)
        staged_failed = (files.state == F_FAILED) & (files.expiry > now)  # a bad file's copy still takes room
    in_window = ((files.state == F_RESTORING) | (readable & ~standing) | staged_failed) & ~expired
    return Demand(
        needed=np.bincount(jf.file[pending], minlength=n),
        waiting=np.bincount(jf.file[waiting], minlength=n),
        readable=readable,
        expired=expired,
        in_window=in_window,
        standing=standing,
    )


def plan(snapshot: Snapshot, now: float, config: PlannerConfig) -> Plan:
    """One planning step (see the module docstring). Pure: the snapshot is not changed."""
    d = demand(snapshot, now)
    failed_rows = _rows_of_failed_files(snapshot)
    actions: list[Action] = [*_completions(snapshot, failed_rows), *_invalidations(snapshot, d, failed_rows)]
    renewals, budget = _renewals(snapshot, d, now, config)
    actions += [
        RenewLease(snapshot.files.names[i], snapshot.files.keys[i], config.lease_days, config.tier) for i in renewals
    ]
    actions += _index_and_release(snapshot, d, now, config)
    actions += _probes(snapshot, now, config)
    files = snapshot.files
    used_bytes = int(files.size[d.in_window].sum())
    used_files = int(d.in_window.sum())
    chosen = _admit_with_slack(snapshot, d, now, config, used_bytes=used_bytes, used_files=used_files, budget=budget)
    for i in chosen:
        actions.append(
            RequestRestore(
                files.names[i], files.keys[i], int(files.size[i]), config.tier, config.lease_days, int(files.version[i])
            )
        )
    window_bytes = used_bytes + int(files.size[chosen].sum()) if len(chosen) else used_bytes
    plan_ = Plan(
        actions=tuple(actions),
        now=now,
        window_bytes=window_bytes,
        window_files=used_files + len(chosen),
        restore_requests=len(renewals) + len(chosen),
    )
    log.debug(
        "carousel step now=%s policy=%s actions=%d restores=%d renewals=%d window_bytes=%d",
        now,
        config.policy.value,
        len(actions),
        len(chosen),
        len(renewals),
        window_bytes,
    )
    return plan_


def _admit_with_slack(
    snapshot: Snapshot, d: Demand, now: float, config: PlannerConfig, *, used_bytes: int, used_files: int, budget: int
) -> npt.NDArray[np.int64]:
    """6-7. Admission; with deadlines, files a prompt job waits for by the policy, then the released files
    only jobs with slack wait for, earliest deadline first (the rest are held back, `carousel.slack`)."""
    budget = max(0, budget)
    files = snapshot.files
    candidates = (files.state == F_ARCHIVED) & (d.waiting > 0)
    hold = hold_back(
        snapshot,
        candidates,
        now,
        config,
        used_bytes=used_bytes,
        used_files=used_files,
        max_latency_s=TIER_MAX_LATENCY_S[config.tier],
    )
    if hold is None:
        return admit(snapshot, d, config, used_bytes=used_bytes, used_files=used_files, budget=budget)
    log.debug("slack: %d restores held back, %d released", hold.held, len(hold.released))
    prompt = admit(snapshot, d, config, used_bytes=used_bytes, used_files=used_files, budget=budget, held=~hold.prompt)
    taken_bytes = used_bytes + int(files.size[prompt].sum())
    free_files = min(config.window_files - used_files, budget) - len(prompt)
    if free_files <= 0 or len(hold.released) == 0:
        return prompt
    released = _take(hold.released, files.size, config.window_bytes - taken_bytes, free_files)
    return np.concatenate([prompt, released]).astype(np.int64)


def _rows_of_failed_files(snapshot: Snapshot) -> npt.NDArray[np.bool_]:
    """Job-file rows of open jobs still waiting for a file that FAILED: they fail with it."""
    jobs, jf = snapshot.jobs, snapshot.job_files
    open_row = jobs.state[jf.job] == J_OPEN
    return np.asarray(open_row & (jf.state <= JF_QUEUED) & (snapshot.files.state[jf.file] == F_FAILED))


def _completions(snapshot: Snapshot, failed_rows: npt.NDArray[np.bool_]) -> list[Action]:
    """1. Open jobs with every job-file written and final (rows about to fail with their file count as final)."""
    jobs, jf = snapshot.jobs, snapshot.job_files
    nonterminal = np.bincount(jf.job[jf.state <= JF_RUNNING], minlength=len(jobs))
    done = np.bincount(jf.job[jf.state == JF_DONE], minlength=len(jobs))
    nonterminal -= np.bincount(jf.job[failed_rows], minlength=len(jobs))
    failed = np.bincount(jf.job[jf.state == JF_FAILED], minlength=len(jobs)) + np.bincount(
        jf.job[failed_rows], minlength=len(jobs)
    )
    # a job whose submission has not written all its job-files yet is not complete
    seen_rows = np.bincount(jf.job, minlength=len(jobs))
    all_seen = seen_rows >= jobs.file_count
    return [
        CompleteJob(jobs.ids[j], done=int(done[j]), failed=int(failed[j]))
        for j in np.nonzero((jobs.state == J_OPEN) & (nonterminal == 0) & all_seen)[0]
    ]


def _invalidations(snapshot: Snapshot, d: Demand, failed_rows: npt.NDArray[np.bool_]) -> list[Action]:
    """2. Expired copies invalidated (their queued work requeued), and job-files of failed files failed."""
    files, jobs, jf = snapshot.files, snapshot.jobs, snapshot.job_files
    actions: list[Action] = []
    expired_idx = np.nonzero(d.expired)[0]
    if len(expired_idx):
        open_row = jobs.state[jf.job] == J_OPEN
        requeue_rows = np.nonzero(open_row & (jf.state == JF_QUEUED) & d.expired[jf.file])[0]
        requeue: dict[int, list[str]] = {}
        for r in requeue_rows:
            requeue.setdefault(int(jf.file[r]), []).append(jobs.ids[jf.job[r]])
        for i in expired_idx:
            actions.append(
                InvalidateExpired(
                    files.names[i], files.domains[i], int(files.version[i]), tuple(sorted(requeue.get(int(i), ())))
                )
            )
    for r in np.nonzero(failed_rows)[0]:
        i = jf.file[r]
        reason = files.errors[i] or "file could not be indexed"
        actions.append(FailJobFile(jobs.ids[jf.job[r]], files.names[i], reason))
    return actions


def _renewals(snapshot: Snapshot, d: Demand, now: float, config: PlannerConfig) -> tuple[npt.NDArray[np.int64], int]:
    """3. Leases: copies still needed and about to expire, then copies worth keeping; and the restore
    requests left in this step's budget."""
    files = snapshot.files
    budget = config.max_restore_requests_per_step
    with np.errstate(invalid="ignore"):
        renew = d.readable & ~d.expired & (d.needed > 0) & (files.expiry - now < config.renew_margin_s)
    renew_idx = np.nonzero(renew)[0]
    if len(renew_idx) > budget:
        renew_idx = renew_idx[np.argsort(files.expiry[renew_idx], kind="stable")[:budget]]
    budget -= len(renew_idx)
    keep_idx = keep(snapshot, d, now, config, budget=max(0, budget))
    renew_idx = np.concatenate([renew_idx, keep_idx]) if len(keep_idx) else renew_idx
    return renew_idx, budget - len(keep_idx)


def _index_and_release(snapshot: Snapshot, d: Demand, now: float, config: PlannerConfig) -> list[Action]:
    """4. Restored copies someone needs are indexed (again, once `index_retry_s` passed); work on indexed
    files is released."""
    files, jobs, jf = snapshot.files, snapshot.jobs, snapshot.job_files
    with np.errstate(invalid="ignore"):
        stale_index = ~(now - files.index_requested_at < config.index_retry_s)  # NaN (never) counts as stale
    to_index = (files.state == F_RESTORED) & ~d.expired & (d.needed > 0) & stale_index
    actions: list[Action] = [
        QueueIndex(files.names[i], files.keys[i], int(files.size[i])) for i in np.nonzero(to_index)[0]
    ]
    open_row = jobs.state[jf.job] == J_OPEN
    release_rows = open_row & (jf.state == JF_WAITING) & (files.state[jf.file] == F_INDEXED) & ~d.expired[jf.file]
    for r in np.nonzero(release_rows)[0]:
        i = jf.file[r]
        actions.append(Release(jobs.ids[jf.job[r]], files.names[i], files.keys[i], files.domains[i]))
    return actions


def _probes(snapshot: Snapshot, now: float, config: PlannerConfig) -> list[Action]:
    """5. Restores requested long enough ago, not looked at lately: ask S3 (events can be lost)."""
    files = snapshot.files
    with np.errstate(invalid="ignore"):
        probe = (
            (files.state == F_RESTORING)
            & (now - files.requested_at >= config.probe_after_s)
            & ~(now - files.checked_at < config.probe_every_s)  # NaN (never looked) counts as due
        )
    return [ProbeRestore(files.names[i], files.keys[i]) for i in np.nonzero(probe)[0]]


def keep(snapshot: Snapshot, d: Demand, now: float, config: PlannerConfig, *, budget: int) -> npt.NDArray[np.int64]:
    """Rows of readable copies nobody needs now that are worth keeping one more lease (see `PlannerConfig.keep_s`).

    Ski rental with a reuse signal: keeping a copy a day costs its staging; letting it go costs a
    restore (and a restore latency for the next job) if a job wants it again. A copy is kept while its
    idle time is under `keep_s` (the cost model's break-even is `keep_break_even_s`) and open jobs still
    want files in its orbit neighbourhood; kept copies hold at most `keep_fraction` of the window, the
    most wanted neighbourhoods first. Kept copies count against the window like any other.
    """
    if config.keep_s <= 0 or budget <= 0 or config.policy is Policy.NAIVE:
        return np.zeros(0, dtype=np.int64)
    files, jobs, jf = snapshot.files, snapshot.jobs, snapshot.job_files
    with np.errstate(invalid="ignore"):
        idle = d.readable & ~d.expired & (d.needed == 0)
        due = idle & (files.expiry - now < config.renew_margin_s)
    if not due.any():
        return np.zeros(0, dtype=np.int64)
    # Idle since: the restore's latest completion, or the latest arrival of an open job wanting the file.
    # Reuse is likely while a campaign is on: at least `keep_min_jobs` open jobs wanting files in the
    # copy's orbit neighbourhood (its bin and the two next to it) arrived within the last keep_s.
    bins = files.orbit // config.keep_neighbourhood_orbits
    lo = int(bins.min())
    n_bins = int(bins.max()) - lo + 1
    anchor = files.requested_at + TIER_MAX_LATENCY_S[config.tier]
    burst = np.zeros(n_bins + 2)
    open_rows = np.nonzero(jobs.state[jf.job] == J_OPEN)[0]
    if len(open_rows):
        row_file, row_job = jf.file[open_rows], jf.job[open_rows]
        row_arrival = jobs.submitted_at[row_job]
        arrival = np.full(len(files), -np.inf)
        np.maximum.at(arrival, row_file, row_arrival)
        anchor = np.fmax(anchor, arrival)
        fresh = now - row_arrival < config.keep_s
        pairs = np.unique(row_job[fresh].astype(np.int64) * (n_bins + 2) + (bins[row_file[fresh]] - lo + 1))
        burst = np.bincount(pairs % (n_bins + 2), minlength=n_bins + 2).astype(np.float64)
    heat = (burst[:-2] + burst[1:-1] + burst[2:])[bins - lo]  # jobs per bin, summed over the 3 bins
    with np.errstate(invalid="ignore"):
        wanted = due & (now - anchor < config.keep_s) & (heat >= config.keep_min_jobs)
    cand = np.nonzero(wanted)[0]
    if not len(cand):
        return np.zeros(0, dtype=np.int64)
    # room: idle copies not due now are committed until they expire; kept ones stay within the share
    # (objects readable as is, with no expiry, are no copies: they take no room)
    committed = idle & ~due & ~d.standing
    room_bytes = int(config.keep_fraction * config.window_bytes) - int(files.size[committed].sum())
    room_files = min(int(config.keep_fraction * config.window_files) - int(committed.sum()), budget)
    order = cand[np.lexsort((files.orbit[cand], -heat[cand]))][: max(room_files, 0)]
    fits = np.cumsum(files.size[order]) <= room_bytes
    return order[fits].astype(np.int64)


def admit(
    snapshot: Snapshot,
    d: Demand,
    config: PlannerConfig,
    *,
    used_bytes: int,
    used_files: int,
    budget: int,
    held: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.int64]:
    """Rows of the files to restore now, in policy order, within caps and the request budget.

    `held`: files held back within their jobs' slack (`carousel.slack.hold_back`), not restored now.
    """
    files = snapshot.files
    candidates = (files.state == F_ARCHIVED) & (d.waiting > 0)
    if held is not None:
        candidates &= ~held
    free_bytes = config.window_bytes - used_bytes
    free_files = min(config.window_files - used_files, budget)
    if free_files <= 0 or free_bytes <= 0 or not candidates.any():
        return np.zeros(0, dtype=np.int64)
    if config.policy is Policy.DEMAND:
        return _admit_demand(snapshot, d, candidates, free_bytes, free_files)
    cand = np.nonzero(candidates)[0]
    if config.policy is Policy.ROTATION:
        in_window_needed = d.in_window & (d.needed > 0)
        cursor = int(files.orbit[in_window_needed].max()) if in_window_needed.any() else -1
        orbits = files.orbit[cand]
        # ahead of the cursor first (in orbit order), then wrap around
        order = np.lexsort((orbits, orbits <= cursor))
    else:  # NAIVE: the earliest submitted job waiting for the file first, then orbit
        first = _first_submitted(snapshot, candidates)
        order = np.lexsort((files.orbit[cand], first[cand]))
    return _take(cand[order], files.size, free_bytes, free_files)


def _take(
    ordered: npt.NDArray[np.int64], size: npt.NDArray[np.int64], free_bytes: int, free_files: int
) -> npt.NDArray[np.int64]:
    """The longest prefix that fits: strict order, so a big file is never overtaken for ever."""
    head = ordered[:free_files]
    fits = np.cumsum(size[head]) <= free_bytes
    stop = int(np.argmin(fits)) if not fits.all() else len(head)
    return head[:stop].astype(np.int64)


def _first_submitted(snapshot: Snapshot, candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    jf, jobs = snapshot.job_files, snapshot.jobs
    rows = (jobs.state[jf.job] == J_OPEN) & (jf.state == JF_WAITING) & candidates[jf.file]
    file_idx, submitted = jf.file[rows], jobs.submitted_at[jf.job[rows]]
    order = np.lexsort((submitted, file_idx))
    file_sorted = file_idx[order]
    head = np.ones(len(order), dtype=bool)
    head[1:] = file_sorted[1:] != file_sorted[:-1]  # the earliest submission of each file
    first = np.full(len(snapshot.files), np.inf)
    first[file_sorted[head]] = submitted[order][head]
    return first


def _admit_demand(
    snapshot: Snapshot, d: Demand, candidates: npt.NDArray[np.bool_], free_bytes: int, free_files: int
) -> npt.NDArray[np.int64]:
    files, jobs, jf = snapshot.files, snapshot.jobs, snapshot.job_files
    n = len(files)
    owner = jobs.owner_index
    n_owners = len(jobs.owner_names)
    open_row = jobs.state[jf.job] == J_OPEN
    # Window usage per owner: each pending row's file split among the rows needing it.
    window_rows = open_row & (jf.state <= JF_RUNNING) & d.in_window[jf.file]
    share = files.size[jf.file[window_rows]] / np.maximum(d.needed[jf.file[window_rows]], 1)
    usage = np.bincount(owner[jf.job[window_rows]], weights=share, minlength=n_owners).astype(float)

    rows = open_row & (jf.state == JF_WAITING) & candidates[jf.file]
    keys = np.sort(owner[jf.job[rows]].astype(np.int64) * n + jf.file[rows])
    distinct = np.ones(len(keys), dtype=bool)
    distinct[1:] = keys[1:] != keys[:-1]
    pair = keys[distinct]  # unique (owner, file) pairs
    pair_owner, pair_file = pair // n, pair % n
    by_file = np.argsort(pair_file, kind="stable")
    file_sorted, owner_by_file = pair_file[by_file], pair_owner[by_file]
    first = _first_submitted(snapshot, candidates)
    order = np.lexsort((files.orbit[pair_file], first[pair_file], -d.waiting[pair_file], pair_owner))
    pair_owner, pair_file = pair_owner[order], pair_file[order]
    bounds = np.searchsorted(pair_owner, np.arange(n_owners + 1))

    heap = [(usage[o], o) for o in range(n_owners) if bounds[o] < bounds[o + 1]]
    heapq.heapify(heap)
    pointer = bounds[:-1].copy()
    taken: set[int] = set()
    chosen: list[int] = []
    size = files.size
    while heap and len(chosen) < free_files:
        u, o = heapq.heappop(heap)
        if u != usage[o]:
            heapq.heappush(heap, (usage[o], o))
            continue
        p = pointer[o]
        while p < bounds[o + 1] and int(pair_file[p]) in taken:
            p += 1
        pointer[o] = p
        if p >= bounds[o + 1]:
            continue
        f = int(pair_file[p])
        if size[f] > free_bytes:
            break
        free_bytes -= int(size[f])
        taken.add(f)
        chosen.append(f)
        wanting = owner_by_file[np.searchsorted(file_sorted, f, "left") : np.searchsorted(file_sorted, f, "right")]
        usage[wanting] += size[f] / len(wanting)
        heapq.heappush(heap, (usage[o], o))
    return np.asarray(chosen, dtype=np.int64)


def cancel_job(snapshot: Snapshot, job_id: str, now: float) -> tuple[CancelJob, tuple[str, ...]]:
    """Cancel an open job: the action, and the files only it needed (they are no longer renewed or restored)."""
    jobs, jf, files = snapshot.jobs, snapshot.job_files, snapshot.files
    if job_id not in jobs.position:
        raise BadInput(f"no such job {job_id!r}")
    j = jobs.position[job_id]
    if jobs.state[j] != J_OPEN:
        raise BadInput(f"job {job_id!r} is not open")
    d = demand(snapshot, now)
    mine = (jf.job == j) & (jf.state <= JF_RUNNING)
    mine_count = np.bincount(jf.file[mine], minlength=len(files))
    only_mine = np.nonzero((mine_count > 0) & (d.needed == mine_count))[0]
    return CancelJob(job_id), tuple(files.names[i] for i in only_mine)


__all__ = [
    "JF_DONE",
    "JF_FAILED",
    "JF_QUEUED",
    "JF_RUNNING",
    "JF_WAITING",
    "Demand",
    "PlannerConfig",
    "Policy",
    "admit",
    "cancel_job",
    "demand",
    "keep",
    "plan",
    "step",
]


def step(
    snapshot: Snapshot,
    events: Iterable[RestoreEvent],
    observed: Mapping[str, ObservedRestore],
    now: float,
    config: PlannerConfig,
) -> tuple[Plan, Snapshot]:
    """Reconcile restore events/observations, then plan on the reconciled state.

    Returns the plan (the reconciliation's `UpdateFileState` actions first) and the
    reconciled snapshot the rest of the plan was computed from.
    """
    updates = reconcile(snapshot, events, observed, now)
    reconciled = apply_updates(snapshot, updates, now)
    planned = plan(reconciled, now, config)
    return dataclasses.replace(planned, actions=updates + planned.actions), reconciled
