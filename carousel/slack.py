"""Trading a researcher's slack for cost: hold restores back, release them in time.

A job may state a deadline (its latest acceptable completion; `JobTable.deadline`, NaN = none: the job
is prompt, served as soon as the window allows, as before). A file whose every waiting job still has
slack need not be restored now: held back, it is restored once for every job that wants it by the time
it is released — later jobs over the same files join the restore instead of paying their own.

Release is conservative, earliest deadline first. Each candidate file's due time is the earliest
deadline among the open jobs waiting for it (-inf when one of them has none: never held). In due order,
file k is estimated to finish by

    now + backlog_k + the tier's longest restore latency + `slack_margin_s`

where backlog_k is the time the window takes to turn over the bytes (and files) already in it plus
those of files 1..k — the window turns over once per (longest latency + lease + 1 day, S3's rounding
of the expiry). Files are released in due order up to the last one whose estimate reaches its due
time. Admission (`planner._admit_with_slack`) takes the files a prompt job waits for by the policy,
as before, then the released ones earliest deadline first.
With no deadline in the snapshot nothing is held: the plan is exactly the one without slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from carousel.model import J_OPEN, JF_WAITING, Snapshot

if TYPE_CHECKING:
    from carousel.planner import PlannerConfig

DAY_S = 86_400.0


def turnover_s(max_latency_s: float, lease_days: int) -> float:
    """How long one window's worth of restores holds its room: longest latency + lease + S3's rounding."""
    return max_latency_s + (lease_days + 1) * DAY_S


def release_times(
    due: npt.ArrayLike, cum_bytes: npt.ArrayLike, cum_files: npt.ArrayLike, config: PlannerConfig, max_latency_s: float
) -> npt.NDArray[np.float64]:
    """When a file due at `due` must be released for the window to restore it in time: `due` less the longest
    latency, the margin, and the time the window takes to turn over the bytes and files ahead of it and its
    own (`cum_bytes`, `cum_files`). Kept idle copies (`keep`) may hold up to keep_fraction of the window for
    longer than a turnover, so the window's room is the rest of it."""
    turnover = turnover_s(max_latency_s, config.lease_days)
    room = max(1.0 - config.keep_fraction, 0.05) if config.keep_s > 0 else 1.0
    load = np.maximum(
        np.asarray(cum_bytes, np.float64) / config.window_bytes, np.asarray(cum_files, np.float64) / config.window_files
    )
    return np.asarray(due, np.float64) - max_latency_s - config.slack_margin_s - turnover * load / room


def due_times(snapshot: Snapshot, candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Per file: the earliest deadline of the open jobs waiting for it (-inf: a prompt job waits; inf: none)."""
    jobs, jf = snapshot.jobs, snapshot.job_files
    rows = (jobs.state[jf.job] == J_OPEN) & (jf.state == JF_WAITING) & candidates[jf.file]
    deadline = np.where(np.isnan(jobs.deadline), -np.inf, jobs.deadline)
    due = np.full(len(snapshot.files), np.inf)
    np.minimum.at(due, jf.file[rows], deadline[jf.job[rows]])
    return due


@dataclass(frozen=True)
class Hold:
    """What `hold_back` decided: candidate files a prompt job waits for, and the released files with slack."""

    prompt: npt.NDArray[np.bool_]  # over files: candidates some job without a deadline waits for
    released: npt.NDArray[np.int64]  # rows of candidates only jobs with slack wait for, due now: earliest first
    held: int  # candidates held back this step


def hold_back(
    snapshot: Snapshot,
    candidates: npt.NDArray[np.bool_],
    now: float,
    config: PlannerConfig,
    *,
    used_bytes: int,
    used_files: int,
    max_latency_s: float,
) -> Hold | None:
    """Split this step's restore candidates; None when no open job has a deadline (the plan is as without slack)."""
    jobs = snapshot.jobs
    if not config.hold_back or config.policy.value == "naive":  # naive: no sharing, nothing to wait for
        return None
    if not (np.isfinite(jobs.deadline) & (jobs.state == J_OPEN)).any():
        return None
    files = snapshot.files
    due = due_times(snapshot, candidates)
    if not (candidates & np.isfinite(due)).any():  # no file that only jobs with slack wait for
        return None
    cand = np.nonzero(candidates)[0]
    order = cand[np.lexsort((files.orbit[cand], due[cand]))]  # prompt files (-inf) first
    cum_bytes = used_bytes + np.cumsum(files.size[order], dtype=np.float64)
    cum_files = used_files + np.arange(1, len(order) + 1, dtype=np.float64)
    release_at = release_times(due[order], cum_bytes, cum_files, config, max_latency_s)
    late = np.nonzero(release_at <= now)[0]
    released = int(late[-1]) + 1 if len(late) else 0
    head = order[:released]
    return Hold(
        prompt=candidates & np.isneginf(due),
        released=head[np.isfinite(due[head])].astype(np.int64),
        held=len(order) - released,
    )
