"""The planning step: admission under caps, leases, release, completion, cancel, and properties."""

from __future__ import annotations

from dataclasses import replace as dataclass_replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carousel import restore
from carousel.actions import (
    CompleteJob,
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
from carousel.catalogue import CatalogueArrays, fallback_entries
from carousel.model import FileTable, JobRecord, Snapshot
from carousel.planner import PlannerConfig, Policy, cancel_job, plan, step
from carousel.query import JobQuery
from carousel.restore import RestoreEvent, RestoreEventKind
from carousel.simulator import EPOCH, JobSpec, SimConfig, simulate
from datacarousel.contract import FileState, JobFileState, JobState
from datacarousel.errors import BadInput
from tests.carousel.carousel_builders import DAY, GIB, HOUR, T0, file, job, name, snapshot, wants

ORB = list(range(30_000, 30_040))


def cfg(**kw: object) -> PlannerConfig:
    base: dict[str, object] = {"window_bytes": 10**15, "window_files": 1000}
    base.update(kw)
    return PlannerConfig(**base)  # type: ignore[arg-type]


def restored_names(p: Plan) -> list[str]:
    return [a.file_name for a in p.of(RequestRestore)]


def test_only_archived_files_are_restored() -> None:
    states = [FileState.ARCHIVED, FileState.RESTORING, FileState.RESTORED, FileState.INDEXED, FileState.FAILED]
    files = [
        file(ORB[i], s, expiry=T0 + DAY if s in (FileState.RESTORED, FileState.INDEXED, FileState.FAILED) else None,
             requested_at=T0 if s is not FileState.ARCHIVED else None)
        for i, s in enumerate(states)
    ]  # fmt: skip
    snap = snapshot(files, [job("j")], wants("j", ORB[:5]))
    p = plan(snap, T0 + HOUR, cfg())
    assert restored_names(p) == [name(ORB[0])]
    assert p.of(RequestRestore)[0].expected_version == 0


def test_window_caps_bound_admission() -> None:
    files = [file(ORB[0], FileState.RESTORING, size=40 * GIB, requested_at=T0)] + [
        file(o, size=30 * GIB) for o in ORB[1:10]
    ]
    snap = snapshot(files, [job("j")], wants("j", ORB[:10]))
    by_bytes = plan(snap, T0, cfg(window_bytes=130 * GIB, window_files=100))
    assert len(by_bytes.of(RequestRestore)) == 3  # 40 + 3 * 30 = 130
    assert by_bytes.window_bytes == 130 * GIB
    by_files = plan(snap, T0, cfg(window_files=4))
    assert len(by_files.of(RequestRestore)) == 3
    full = plan(snap, T0, cfg(window_files=1))
    assert full.of(RequestRestore) == []


def test_staged_files_nobody_needs_still_count_against_the_window() -> None:
    files = [file(ORB[0], FileState.INDEXED, expiry=T0 + DAY), file(ORB[1])]
    snap = snapshot(files, [job("j")], wants("j", [ORB[1]]))  # ORB[0] is wanted by nobody
    assert plan(snap, T0, cfg(window_files=1)).of(RequestRestore) == []
    assert len(plan(snap, T0 + DAY, cfg(window_files=1)).of(RequestRestore)) == 1  # once it expired


def test_request_budget_limits_restores_and_renewals_come_first() -> None:
    files = [file(ORB[0], FileState.INDEXED, expiry=T0 + HOUR)] + [file(o) for o in ORB[1:11]]
    snap = snapshot(files, [job("j")], wants("j", ORB[:11]))
    p = plan(snap, T0, cfg(max_restore_requests_per_step=4))
    assert len(p.of(RenewLease)) == 1
    assert len(p.of(RequestRestore)) == 3
    assert p.restore_requests == 4


def test_lease_renewed_when_needed_and_left_to_expire_when_not() -> None:
    files = [
        file(ORB[0], FileState.INDEXED, expiry=T0 + 2 * HOUR),  # needed, expiring soon
        file(ORB[1], FileState.INDEXED, expiry=T0 + 2 * HOUR),  # nobody needs it
        file(ORB[2], FileState.INDEXED, expiry=T0 + 3 * DAY),  # needed, plenty of time
    ]
    snap = snapshot(files, [job("j")], wants("j", [ORB[0], ORB[2]], JobFileState.RUNNING))
    p = plan(snap, T0, cfg(lease_days=1))
    assert [(a.file_name, a.days) for a in p.of(RenewLease)] == [(name(ORB[0]), 1)]


def test_expired_file_is_invalidated_and_its_queued_work_waits_again() -> None:
    files = [file(ORB[0], FileState.INDEXED, expiry=T0, version=4), file(ORB[1], FileState.INDEXED, expiry=T0 + DAY)]
    snap = snapshot(
        files,
        [job("a"), job("b"), job("c")],
        wants("a", [ORB[0]], JobFileState.QUEUED),
        wants("b", [ORB[0]], JobFileState.DONE),
        wants("c", [ORB[0], ORB[1]], JobFileState.WAITING),
    )
    p = plan(snap, T0 + 1, cfg())
    (inv,) = p.of(InvalidateExpired)
    assert inv.file_name == name(ORB[0]) and inv.expected_version == 4 and inv.requeue == ("a",)
    assert inv.domain.endswith(name(ORB[0]))
    # released only where the copy is still there; the expired one is not restored in the same step
    assert [(r.job_id, r.file_name) for r in p.of(Release)] == [("c", name(ORB[1]))]
    assert restored_names(p) == []
    # once invalidated (ARCHIVED), the jobs still waiting get it restored again
    again = snapshot(
        [file(ORB[0], version=5), files[1]],
        [job("a"), job("b"), job("c")],
        wants("a", [ORB[0]]),
        wants("c", [ORB[0]]),
        wants("c", [ORB[1]], JobFileState.QUEUED),
    )
    assert restored_names(plan(again, T0 + HOUR, cfg())) == [name(ORB[0])]


def test_indexed_file_is_released_to_every_waiting_job_file_by_file() -> None:
    files = [file(ORB[0], FileState.INDEXED, expiry=T0 + DAY), file(ORB[1], FileState.RESTORING, requested_at=T0)]
    snap = snapshot(files, [job("a"), job("b", owner="bob")], wants("a", ORB[:2]), wants("b", ORB[:1]))
    p = plan(snap, T0 + HOUR, cfg())
    assert sorted((r.job_id, r.file_name) for r in p.of(Release)) == [("a", name(ORB[0])), ("b", name(ORB[0]))]
    assert all(r.domain for r in p.of(Release))


def test_restored_file_is_queued_for_indexing_once_per_retry_interval() -> None:
    snap = snapshot([file(ORB[0], FileState.RESTORED, expiry=T0 + DAY)], [job("j")], wants("j", [ORB[0]]))
    assert [q.file_name for q in plan(snap, T0, cfg()).of(QueueIndex)] == [name(ORB[0])]
    recent = snapshot(
        [file(ORB[0], FileState.RESTORED, expiry=T0 + DAY, index_requested_at=T0)], [job("j")], wants("j", [ORB[0]])
    )
    assert plan(recent, T0 + 10 * 60, cfg()).of(QueueIndex) == []
    assert len(plan(recent, T0 + 2 * HOUR, cfg(index_retry_s=HOUR)).of(QueueIndex)) == 1


def test_old_restores_are_probed() -> None:
    snap = snapshot([file(ORB[0], FileState.RESTORING, requested_at=T0)], [job("j")], wants("j", [ORB[0]]))
    assert plan(snap, T0 + HOUR, cfg(probe_after_s=6 * HOUR)).of(ProbeRestore) == []
    assert len(plan(snap, T0 + 7 * HOUR, cfg(probe_after_s=6 * HOUR)).of(ProbeRestore)) == 1


def test_job_completes_when_every_file_is_done_or_failed() -> None:
    files = [file(o, FileState.INDEXED, expiry=T0 + DAY) for o in ORB[:3]]
    done = snapshot(
        files, [job("j")], wants("j", ORB[:2], JobFileState.DONE), wants("j", ORB[2:3], JobFileState.FAILED)
    )
    (c,) = plan(done, T0, cfg()).of(CompleteJob)
    assert (c.job_id, c.done, c.failed) == ("j", 2, 1)
    running = snapshot(
        files, [job("j")], wants("j", ORB[:2], JobFileState.DONE), wants("j", ORB[2:3], JobFileState.RUNNING)
    )
    assert plan(running, T0, cfg()).of(CompleteJob) == []


def test_failed_file_fails_its_job_files_and_lets_the_job_complete() -> None:
    files = [file(ORB[0], FileState.FAILED), file(ORB[1], FileState.INDEXED, expiry=T0 + DAY)]
    snap = snapshot(files, [job("j")], wants("j", [ORB[0]]), wants("j", [ORB[1]], JobFileState.DONE))
    p = plan(snap, T0, cfg())
    assert [(f.job_id, f.file_name) for f in p.of(FailJobFile)] == [("j", name(ORB[0]))]
    assert [c.job_id for c in p.of(CompleteJob)] == ["j"]


def test_cancel_releases_what_only_that_job_needed() -> None:
    files = [
        file(ORB[0], FileState.INDEXED, expiry=T0 + HOUR),  # shared
        file(ORB[1], FileState.INDEXED, expiry=T0 + HOUR),  # only "a"
        file(ORB[2]),  # archived, only "a"
        file(ORB[3]),  # archived, shared
    ]
    jobs = [job("a"), job("b", owner="bob")]
    snap = snapshot(files, jobs, wants("a", ORB[:4]), wants("b", [ORB[0], ORB[3]]))
    action, released = cancel_job(snap, "a", T0)
    assert action.job_id == "a"
    assert set(released) == {name(ORB[1]), name(ORB[2])}
    cancelled = snapshot(
        files, [job("a", state=JobState.CANCELLED), jobs[1]], wants("a", ORB[:4]), wants("b", [ORB[0], ORB[3]])
    )
    p = plan(cancelled, T0, cfg())
    assert [r.file_name for r in p.of(RenewLease)] == [name(ORB[0])]
    assert restored_names(p) == [name(ORB[3])]
    assert p.of(CompleteJob) == []  # "a" is cancelled, not complete
    with pytest.raises(BadInput, match="not open"):
        cancel_job(cancelled, "a", T0)
    with pytest.raises(BadInput, match="no such job"):
        cancel_job(snap, "zz", T0)


def test_demand_policy_restores_what_most_jobs_wait_for_first() -> None:
    files = [file(o) for o in ORB[:4]]
    snap = snapshot(
        files, [job("a"), job("b"), job("c")], wants("a", ORB[:4]), wants("b", [ORB[2], ORB[3]]), wants("c", [ORB[3]])
    )
    p = plan(snap, T0, cfg(window_files=2, policy=Policy.DEMAND))
    assert restored_names(p) == [name(ORB[3]), name(ORB[2])]


def test_demand_policy_is_fair_between_owners() -> None:
    files = [file(o) for o in ORB[:20]]
    # alice's job wants 19 files, bob's one file; with room for two, bob is not starved
    snap = snapshot(files, [job("a", "alice"), job("b", "bob", T0 + HOUR)], wants("a", ORB[:19]), wants("b", [ORB[19]]))
    p = plan(snap, T0 + HOUR, cfg(window_files=2, policy=Policy.DEMAND))
    assert name(ORB[19]) in restored_names(p)
    # alice already holds most of the window: bob's file goes first
    files2 = [file(o, FileState.RESTORING, requested_at=T0) for o in ORB[:3]] + [file(o) for o in ORB[3:20]]
    snap2 = snapshot(
        files2, [job("a", "alice"), job("b", "bob", T0 + HOUR)], wants("a", ORB[:19]), wants("b", [ORB[19]])
    )
    assert restored_names(plan(snap2, T0 + HOUR, cfg(window_files=4, policy=Policy.DEMAND))) == [name(ORB[19])]


def test_rotation_policy_sweeps_on_from_the_window_and_wraps() -> None:
    files = [file(ORB[0]), file(ORB[5], FileState.RESTORING, requested_at=T0), file(ORB[8]), file(ORB[9])]
    snap = snapshot(files, [job("a")], wants("a", [ORB[0], ORB[5], ORB[8], ORB[9]]))
    assert restored_names(plan(snap, T0, cfg(window_files=3, policy=Policy.ROTATION))) == [name(ORB[8]), name(ORB[9])]
    assert restored_names(plan(snap, T0, cfg(window_files=4, policy=Policy.ROTATION))) == [
        name(ORB[8]),
        name(ORB[9]),
        name(ORB[0]),
    ]


def test_naive_policy_serves_jobs_in_submission_order() -> None:
    files = [file(o) for o in ORB[:4]]
    snap = snapshot(
        files, [job("late", submitted_at=T0 + HOUR), job("early")], wants("late", ORB[:2]), wants("early", ORB[2:4])
    )
    assert restored_names(plan(snap, T0 + HOUR, cfg(window_files=2, policy=Policy.NAIVE))) == [
        name(ORB[2]),
        name(ORB[3]),
    ]


def test_plan_is_pure_and_snapshot_is_read_only() -> None:
    files = [file(o) for o in ORB[:5]]
    snap = snapshot(files, [job("j")], wants("j", ORB[:5]))
    before = snap.files.state.copy()
    assert plan(snap, T0, cfg(window_files=2)) == plan(snap, T0, cfg(window_files=2))
    assert (snap.files.state == before).all()
    with pytest.raises(ValueError, match="read-only"):
        snap.files.state[0] = 1


def test_snapshot_rejects_unknown_references() -> None:
    with pytest.raises(BadInput, match="unknown file"):
        snapshot([file(ORB[0])], [job("j")], wants("j", [ORB[1]]))
    with pytest.raises(BadInput, match="unknown job"):
        Snapshot.from_records([file(ORB[0])], [JobRecord("j", "o", T0)], wants("k", [ORB[0]]))
    assert isinstance(snapshot([file(ORB[0])], [job("j")]).files, FileTable)


def test_config_is_validated() -> None:
    with pytest.raises(BadInput, match="window_bytes"):
        PlannerConfig(window_bytes=0, window_files=1)
    with pytest.raises(BadInput, match="renew_margin_s"):
        PlannerConfig(window_bytes=1, window_files=1, lease_days=1, renew_margin_s=2 * DAY)


# --- properties: the planner driven by a small simulated clock -----------------------------

SLICE = CatalogueArrays.from_entries(fallback_entries(seed=3, orbits=range(40_000, 40_060)))


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[JobSpec], SimConfig, Policy]:
    n_jobs = draw(st.integers(1, 6))
    jobs = []
    for k in range(n_jobs):
        rows = draw(st.lists(st.integers(0, len(SLICE) - 1), min_size=1, max_size=25, unique=True))
        arrival = draw(st.floats(0, 10 * DAY, allow_nan=False))
        lo = int(SLICE.orbit[min(rows)])
        cancel = draw(st.none() | st.floats(0, 5 * DAY, allow_nan=False))
        jobs.append(
            JobSpec(
                f"j{k}",
                f"o{draw(st.integers(0, 2))}",
                EPOCH + arrival,
                JobQuery(orbit_min=lo),
                np.array(sorted(rows)),
                cancel_at=None if cancel is None else EPOCH + arrival + cancel,
            )
        )
    policy = draw(st.sampled_from([Policy.DEMAND, Policy.ROTATION, Policy.NAIVE]))
    config = SimConfig(
        seed=draw(st.integers(0, 1000)),
        window_files=draw(st.integers(1, 12)),
        window_bytes=draw(st.integers(60, 400)) * 10**9,
        step_s=2 * HOUR,
        horizon_s=200 * DAY,
        workers=draw(st.integers(1, 8)),
        event_loss=draw(st.sampled_from([0.0, 0.2, 0.5])),
        event_duplication=draw(st.sampled_from([0.0, 0.3])),
        bad_file_rate=0.0,
        job_file_failure_rate=0.0,
        lease_days=draw(st.integers(1, 2)),
        keep_s=draw(st.sampled_from([0.0, DAY, 3 * DAY])),
        keep_fraction=draw(st.sampled_from([0.25, 0.5, 1.0])),
        request_seconds_per_step=draw(st.sampled_from([0.002, 0.01, 60.0])),  # budgets of 2, 10, 60000
    )
    return jobs, config, policy


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_every_wanted_file_is_eventually_restored_within_caps(case: tuple[list[JobSpec], SimConfig, Policy]) -> None:
    jobs, config, policy = case
    if policy is not Policy.NAIVE:
        assert max(SLICE.size) <= config.window_bytes  # every file fits the window
    result = simulate(SLICE, jobs, policy, config)
    assert result.violations == {
        "restore_while_restoring_or_readable": 0,
        "window_exceeded": 0,
        "read_unreadable": 0,
        "expired_while_needed": 0,
        "world_window_exceeded": 0,
    }
    # every job not cancelled completes: every file it waited for was restored
    assert result.jobs_completed + result.jobs_cancelled == len(jobs)
    assert result.jobs_completed >= sum(1 for j in jobs if j.cancel_at is None)
    assert result.peak_window_bytes <= (config.window_bytes if policy is not Policy.NAIVE else 10**18)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_admission_never_exceeds_caps_or_budget(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 30))
    states = data.draw(st.lists(st.sampled_from(list(FileState)), min_size=n, max_size=n))
    sizes = data.draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    files = [
        file(ORB[i], s, size=sizes[i] * GIB, expiry=T0 + DAY if s is not FileState.ARCHIVED else None,
             requested_at=T0 if s is not FileState.ARCHIVED else None)
        for i, s in enumerate(states)
    ]  # fmt: skip
    n_jobs = data.draw(st.integers(1, 4))
    rows = [
        wants(f"j{k}", data.draw(st.lists(st.sampled_from(ORB[:n]), unique=True, max_size=n))) for k in range(n_jobs)
    ]
    jobs = [job(f"j{k}", f"o{k % 2}", T0 + k) for k in range(n_jobs)]
    snap = snapshot(files, jobs, *rows)
    config = cfg(
        window_bytes=data.draw(st.integers(1, 400)) * GIB,
        window_files=data.draw(st.integers(1, 30)),
        max_restore_requests_per_step=data.draw(st.integers(1, 10)),
        policy=data.draw(st.sampled_from(list(Policy))),
    )
    p = plan(snap, T0 + HOUR, config)
    chosen = restored_names(p)
    assert len(chosen) == len(set(chosen))
    by_name = {f.file_name: f for f in files}
    assert all(by_name[c].state is FileState.ARCHIVED for c in chosen)
    held = [f for f in files if f.state is not FileState.ARCHIVED and f.state is not FileState.FAILED]
    held += [f for f in files if f.state is FileState.FAILED]  # a failed file's copy still takes room
    window_bytes = sum(f.size_bytes for f in held) + sum(by_name[c].size_bytes for c in chosen)
    window_files = len(held) + len(chosen)
    if chosen:
        assert window_bytes <= config.window_bytes
        assert window_files <= config.window_files
    assert p.restore_requests <= config.max_restore_requests_per_step


def test_snapshot_rejects_duplicate_job_files() -> None:
    with pytest.raises(BadInput, match="duplicate job-file"):
        snapshot([file(ORB[0])], [job("j")], wants("j", [ORB[0]]), wants("j", [ORB[0]]))


def test_step_reconciles_then_plans_on_the_reconciled_state() -> None:
    files = [file(ORB[0], FileState.RESTORING, requested_at=T0), file(ORB[1])]
    snap = snapshot(files, [job("j")], wants("j", ORB[:2]))
    event = RestoreEvent(name(ORB[0]), RestoreEventKind.COMPLETED, T0 + 30 * HOUR, T0 + 3 * DAY)
    p, reconciled = step(snap, [event, event], {}, T0 + 31 * HOUR, cfg(window_files=2))
    kinds = [type(a).__name__ for a in p.actions]
    assert kinds[0] == "UpdateFileState"  # reconciliation first
    assert [q.file_name for q in p.of(QueueIndex)] == [name(ORB[0])]  # indexed in the same step
    assert restored_names(p) == [name(ORB[1])]
    assert reconciled.file(name(ORB[0])).state is FileState.RESTORED
    assert reconciled.file(name(ORB[0])).state_version == 1
    assert snap.file(name(ORB[0])).state is FileState.RESTORING  # the input snapshot is untouched


def test_job_is_not_completed_before_its_submission_wrote_every_job_file() -> None:
    files = [file(o, FileState.INDEXED, expiry=T0 + DAY) for o in ORB[:2]]
    partial = snapshot(files, [JobRecord("j", "o", T0, file_count=2)], wants("j", ORB[:1], JobFileState.DONE))
    assert plan(partial, T0, cfg()).of(CompleteJob) == []
    full = snapshot(files, [JobRecord("j", "o", T0, file_count=2)], wants("j", ORB[:2], JobFileState.DONE))
    assert [c.job_id for c in plan(full, T0, cfg()).of(CompleteJob)] == ["j"]
    empty = snapshot(files, [JobRecord("e", "o", T0, file_count=0)])
    assert [c.job_id for c in plan(empty, T0, cfg()).of(CompleteJob)] == ["e"]  # a query matching nothing


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(2, 12))
def test_demand_policy_splits_the_window_evenly_between_owners(n_a: int, n_b: int, slots: int) -> None:
    files = [file(o, size=GIB) for o in ORB[:40]]
    snap = snapshot(
        files, [job("a", "alice"), job("b", "bob", T0 + 1)], wants("a", ORB[:n_a]), wants("b", ORB[20 : 20 + n_b])
    )
    chosen = restored_names(plan(snap, T0 + 1, cfg(window_files=slots, policy=Policy.DEMAND)))
    got_a = sum(1 for c in chosen if c in {name(o) for o in ORB[:n_a]})
    got_b = len(chosen) - got_a
    assert len(chosen) == min(slots, n_a + n_b)
    if got_a < n_a and got_b < n_b:  # both still want more: neither gets more than one ahead
        assert abs(got_a - got_b) <= 1


# --- keep-or-release: idle copies kept while a campaign is on ------------------------------


def keep_cfg(**kw: object) -> PlannerConfig:
    return cfg(keep_s=2 * DAY, **kw)


def test_idle_copy_is_kept_while_jobs_wanting_its_neighbourhood_keep_arriving() -> None:
    files = [
        file(ORB[0], FileState.INDEXED, expiry=T0 + 2 * DAY, requested_at=T0 - DAY),  # idle, expiring soon
        file(ORB[1], FileState.INDEXED, expiry=T0 + 2 * DAY, requested_at=T0 - DAY),  # needed
    ]
    jobs = [job("a", submitted_at=T0 - DAY), job("b", "bob", submitted_at=T0 + DAY)]
    snap = snapshot(files, jobs, wants("a", [ORB[0]], JobFileState.DONE), wants("a", [ORB[1]], JobFileState.RUNNING),
                    wants("b", [ORB[1]], JobFileState.RUNNING))  # fmt: skip
    now = T0 + 2 * DAY - HOUR
    kept = plan(snap, now, keep_cfg())
    assert sorted(r.file_name for r in kept.of(RenewLease)) == [name(ORB[0]), name(ORB[1])]
    assert kept.restore_requests == 2
    # off: only the needed copy is renewed
    assert [r.file_name for r in plan(snap, now, cfg()).of(RenewLease)] == [name(ORB[1])]
    # idle longer than keep_s (since the restore's latest completion and the last arrival wanting it): let go
    late = T0 + 2 * DAY - HOUR + 3 * DAY
    old = snapshot(
        [dataclass_replace(f, restore_expiry=late + HOUR) for f in files],
        [job("a", submitted_at=T0 - DAY), job("b", "bob", submitted_at=late - HOUR)],
        wants("a", [ORB[0]], JobFileState.DONE), wants("a", [ORB[1]], JobFileState.RUNNING),
        wants("b", [ORB[1]], JobFileState.RUNNING),
    )  # fmt: skip
    assert [r.file_name for r in plan(old, late, keep_cfg()).of(RenewLease)] == [name(ORB[1])]
    # no job wanting the neighbourhood arrived within keep_s: reuse is unlikely, let go
    quiet = snapshot(files, [job("a", submitted_at=T0 - 2 * DAY)], wants("a", [ORB[0]], JobFileState.DONE),
                     wants("a", [ORB[1]], JobFileState.RUNNING))  # fmt: skip
    assert [r.file_name for r in plan(quiet, now, keep_cfg()).of(RenewLease)] == [name(ORB[1])]
    # the naive policy never keeps
    assert [r.file_name for r in plan(snap, now, keep_cfg(policy=Policy.NAIVE)).of(RenewLease)] == [name(ORB[1])]


def test_kept_copies_stay_within_their_share_of_the_window() -> None:
    idle = [file(o, FileState.INDEXED, size=10 * GIB, expiry=T0 + HOUR, requested_at=T0 - DAY) for o in ORB[:6]]
    snap = snapshot([*idle, file(ORB[10])], [job("a", submitted_at=T0)], wants("a", [ORB[10]]))
    by_bytes = plan(snap, T0, keep_cfg(window_bytes=70 * GIB, window_files=100, keep_fraction=0.5))
    assert len(by_bytes.of(RenewLease)) == 3  # 35 GiB of room for kept copies: three of 10 GiB
    by_files = plan(snap, T0, keep_cfg(window_bytes=10**15, window_files=4, keep_fraction=0.5))
    assert len(by_files.of(RenewLease)) == 2
    assert plan(snap, T0, keep_cfg(keep_fraction=0.0)).of(RenewLease) == []
    budget = plan(snap, T0, keep_cfg(max_restore_requests_per_step=2))
    assert budget.restore_requests <= 2 and len(budget.of(RenewLease)) == 2


def test_keep_config_is_validated() -> None:
    with pytest.raises(BadInput, match="keep_s"):
        cfg(keep_s=-1.0)
    with pytest.raises(BadInput, match="keep_fraction"):
        cfg(keep_fraction=1.5)
    with pytest.raises(BadInput, match="keep_min_jobs"):
        cfg(keep_min_jobs=0)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_keep_renews_only_readable_unexpired_copies_within_budget_and_share(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 25))
    states = data.draw(st.lists(st.sampled_from(list(FileState)), min_size=n, max_size=n))
    sizes = data.draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    expiries = data.draw(st.lists(st.floats(-DAY, 3 * DAY), min_size=n, max_size=n))
    files = [
        file(ORB[i], s, size=sizes[i] * GIB, expiry=T0 + expiries[i] if s is not FileState.ARCHIVED else None,
             requested_at=T0 - data.draw(st.floats(0, 5 * DAY)) if s is not FileState.ARCHIVED else None)
        for i, s in enumerate(states)
    ]  # fmt: skip
    n_jobs = data.draw(st.integers(1, 4))
    rows = [
        wants(f"j{k}", data.draw(st.lists(st.sampled_from(ORB[:n]), unique=True, max_size=n)),
              data.draw(st.sampled_from(list(JobFileState))))
        for k in range(n_jobs)
    ]  # fmt: skip
    jobs = [job(f"j{k}", f"o{k % 2}", T0 - data.draw(st.floats(0, 4 * DAY))) for k in range(n_jobs)]
    config = cfg(
        window_bytes=data.draw(st.integers(1, 400)) * GIB,
        window_files=data.draw(st.integers(1, 30)),
        max_restore_requests_per_step=data.draw(st.integers(1, 10)),
        keep_s=data.draw(st.sampled_from([HOUR, DAY, 3 * DAY])),
        keep_fraction=data.draw(st.sampled_from([0.0, 0.3, 1.0])),
    )
    snap = snapshot(files, jobs, *rows)
    p = plan(snap, T0, config)
    renewed = [r.file_name for r in p.of(RenewLease)]
    assert len(renewed) == len(set(renewed))
    assert p.restore_requests <= config.max_restore_requests_per_step
    by_name = {f.file_name: f for f in files}
    for r in renewed:  # only readable copies that have not expired are renewed
        f = by_name[r]
        assert f.state in (FileState.RESTORED, FileState.INDEXED) and f.restore_expiry is not None
        assert f.restore_expiry > T0
    # nothing is restored while restoring or readable, and admission still respects the caps
    assert all(by_name[c].state is FileState.ARCHIVED for c in restored_names(p))
    if restored_names(p):
        assert p.window_bytes <= config.window_bytes and p.window_files <= config.window_files


# --- objects readable as is (no expiry) and objects that are gone ------------------------------------


def test_a_file_whose_object_is_gone_fails_its_job_files_with_the_reason_and_the_job_completes() -> None:
    """HeadObject 404 (here with a Completed event that says otherwise): FAILED at once, with the evidence;
    the job-files waiting for it fail with that reason and the job ends instead of staying OPEN for ever."""
    files = [file(ORB[0], FileState.RESTORING, requested_at=T0), file(ORB[1], FileState.INDEXED, expiry=T0 + DAY)]
    snap = snapshot(files, [job("j")], wants("j", [ORB[0]]), wants("j", [ORB[1]], JobFileState.DONE))
    event = RestoreEvent(name(ORB[0]), RestoreEventKind.COMPLETED, T0 + 30 * HOUR, T0 + 3 * DAY)
    gone = restore.object_missing("archive", f"bf/{name(ORB[0])}", "HeadObject answered HTTP 404 (404)", T0 + DAY)
    p, reconciled = step(snap, [event], {name(ORB[0]): gone}, T0 + 31 * HOUR, cfg())
    (update,) = p.of(UpdateFileState)
    assert update.to_state is FileState.FAILED and update.reason and "bf/" + name(ORB[0]) in update.reason
    assert reconciled.file(name(ORB[0])).state is FileState.FAILED
    assert [(f.job_id, f.file_name, f.reason) for f in p.of(FailJobFile)] == [("j", name(ORB[0]), update.reason)]
    assert [(c.job_id, c.done, c.failed) for c in p.of(CompleteJob)] == [("j", 1, 1)]
    assert restored_names(p) == [] and p.of(QueueIndex) == []


def test_objects_readable_as_is_take_no_room_in_the_window() -> None:
    """Files inventoried in a readable class (no expiry) are no restored copies: they never leave, so
    counting them against the window caps would keep the window full for ever and the jobs never end."""
    standing = [file(o, FileState.INDEXED) for o in ORB[:5]]
    snap = snapshot([*standing, file(ORB[5]), file(ORB[6])], [job("j")], wants("j", ORB[:7]))
    p = plan(snap, T0, cfg(window_files=2, window_bytes=60 * GIB))
    assert sorted(restored_names(p)) == sorted(name(o) for o in ORB[5:7])
    assert (p.window_files, p.window_bytes) == (2, 60 * GIB)
    kept = plan(snap, T0, cfg(window_files=2, window_bytes=60 * GIB, keep_s=DAY))
    assert sorted(restored_names(kept)) == sorted(name(o) for o in ORB[5:7])


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_files_readable_as_is_are_never_expired_renewed_probed_or_restored(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12))
    states = data.draw(st.lists(st.sampled_from(list(FileState)), min_size=n, max_size=n))
    standing = {
        name(ORB[i])
        for i, s in enumerate(states)
        if s in (FileState.RESTORED, FileState.INDEXED) and data.draw(st.booleans())
    }
    files = [
        file(ORB[i], s, expiry=None if name(ORB[i]) in standing or s is FileState.ARCHIVED else T0 + HOUR,
             requested_at=None if s is FileState.ARCHIVED else T0 - DAY)
        for i, s in enumerate(states)
    ]  # fmt: skip
    rows = wants("j", data.draw(st.lists(st.sampled_from(ORB[:n]), unique=True, max_size=n)))
    snap = snapshot(files, [job("j")], rows)
    config = cfg(window_files=data.draw(st.integers(1, 12)), keep_s=data.draw(st.sampled_from([0.0, DAY])))
    for now in (T0, T0 + 2 * HOUR, T0 + 40 * DAY):
        p = plan(snap, now, config)
        touched = {a.file_name for a in p.of(InvalidateExpired)} | {a.file_name for a in p.of(RenewLease)}
        touched |= {a.file_name for a in p.of(ProbeRestore)} | set(restored_names(p))
        assert not standing & touched


def test_a_job_arriving_after_the_last_step_before_its_copy_expires_is_served_by_a_new_restore() -> None:
    """Found by the property above: j2 arrives one second after a step, the copy it wants expires at the
    next step (S3's midnight). No step saw j2 while the copy lived, so the expiry breaks no promise; j2
    is served by a second restore and completes. A job a step has seen keeps its copy (renewed)."""
    t0 = EPOCH
    config = SimConfig(
        window_files=1, window_bytes=60 * 10**9, lease_days=2, keep_s=0.0, step_s=2 * HOUR, horizon_s=200 * DAY,
        workers=1, event_loss=0.0, event_duplication=0.0, bad_file_rate=0.0, job_file_failure_rate=0.0,
        request_seconds_per_step=0.002,
    )  # fmt: skip
    late = t0 + 8 * DAY - 2 * HOUR + 1  # one second after the last step before midnight, when the copy expires
    jobs = [
        JobSpec("j0", "o0", t0, JobQuery(orbit_min=40_000), np.array([0])),
        JobSpec("j1", "o0", t0, JobQuery(orbit_min=40_001), np.array([1])),
        JobSpec("j2", "o0", late, JobQuery(orbit_min=40_001), np.array([1])),
    ]
    result = simulate(SLICE, jobs, Policy.DEMAND, config)
    assert result.violations["expired_while_needed"] == 0
    assert result.jobs_completed == 3
    assert result.restore_requests == 3  # file 1 restored again for j2
