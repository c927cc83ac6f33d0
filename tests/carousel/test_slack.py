"""A researcher's slack: deadlines in the model and the jobs table, the planner holding restores back
within them, and the simulator checking that held-back jobs still finish in time."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carousel import jobs, store
from carousel.actions import Plan, RequestRestore
from carousel.catalogue import CatalogueArrays, fallback_entries
from carousel.model import FileRecord, JobFileRecord, JobRecord, Snapshot
from carousel.planner import TIER_MAX_LATENCY_S, PlannerConfig, Policy, plan
from carousel.query import JobQuery
from carousel.simulator import EPOCH, JobSpec, SimConfig, simulate
from carousel.slack import turnover_s
from datacarousel.contract import FileState, JobAttr, JobFileState, JobState, RestoreTier
from datacarousel.errors import BadInput
from tests.carousel.carousel_builders import DAY, GIB, HOUR, T0, file, job, snapshot, wants

ORB = list(range(30_000, 30_040))
FAR = list(range(50_000, 50_010))  # another part of the archive: no neighbourhood shared with ORB


def cfg(**kw: Any) -> PlannerConfig:
    base: dict[str, Any] = {"window_bytes": 10**15, "window_files": 1000}
    base.update(kw)
    return PlannerConfig(**base)


def restored(p: Plan) -> set[str]:
    return {a.file_name for a in p.of(RequestRestore)}


def slack_job(job_id: str, deadline: float, owner: str = "carol", submitted_at: float = T0) -> JobRecord:
    return JobRecord(job_id, owner, submitted_at, JobState.OPEN, deadline=deadline)


# --- the model and the planner -----------------------------------------------------------------


def test_deadlines_reach_the_snapshot_and_absent_ones_are_nan() -> None:
    snap = snapshot([file(o) for o in ORB[:2]], [job("a"), slack_job("b", T0 + 5 * DAY)], wants("a", ORB[:1]))
    assert np.isnan(snap.jobs.deadline[snap.jobs.position["a"]])
    assert snap.jobs.deadline[snap.jobs.position["b"]] == T0 + 5 * DAY
    assert not snap.jobs.deadline.flags.writeable


def test_a_restore_only_jobs_with_slack_wait_for_is_held_back_until_its_deadline_draws_near() -> None:
    files = [file(o) for o in ORB[:4]]
    config = cfg()
    far = snapshot(files, [slack_job("s", T0 + 20 * DAY)], wants("s", ORB[:4]))
    assert restored(plan(far, T0, config)) == set()
    # lead = the tier's longest latency + the margin + the window's turnover for these bytes: then released
    lead = TIER_MAX_LATENCY_S[RestoreTier.BULK] + config.slack_margin_s
    assert restored(plan(far, T0 + 20 * DAY - lead - DAY, config)) == set()
    assert restored(plan(far, T0 + 20 * DAY - lead, config)) == {f.file_name for f in files}
    # the same job without a deadline: restored at once
    prompt = snapshot(files, [job("s")], wants("s", ORB[:4]))
    assert restored(plan(prompt, T0, config)) == {f.file_name for f in files}


def test_a_file_a_prompt_job_also_waits_for_is_not_held_and_goes_first() -> None:
    files = [file(o) for o in ORB[:3]]
    snap = snapshot(
        files,
        [slack_job("s", T0 + 30 * DAY), job("p", owner="alice"), slack_job("t", T0 + 3 * DAY, owner="dave")],
        wants("s", ORB[:3]),
        wants("p", ORB[1:2]),
        wants("t", ORB[2:3]),
    )
    # ORB[1]: a prompt job waits; ORB[2]: slack ends in 3 days (its release is due); ORB[0]: slack left
    assert restored(plan(snap, T0, cfg())) == {files[1].file_name, files[2].file_name}
    # one file of room: the prompt job's file goes first
    assert restored(plan(snap, T0, cfg(window_files=1))) == {files[1].file_name}


def test_released_files_go_earliest_deadline_first_when_the_window_is_short() -> None:
    files = [file(o) for o in ORB[:2]]
    snap = snapshot(
        files,
        [slack_job("late", T0 + 3 * DAY, owner="a"), slack_job("soon", T0 + 2.5 * DAY, owner="b")],
        wants("late", ORB[:1]),
        wants("soon", ORB[1:2]),
    )
    assert restored(plan(snap, T0, cfg(window_files=1))) == {files[1].file_name}  # the policy would take ORB[0]
    assert restored(plan(snap, T0, cfg())) == {f.file_name for f in files}  # both are due


def test_backlog_releases_held_restores_earlier() -> None:
    """Ten files that need ten window turnovers are released long before one file would be."""
    files = [file(o, size=30 * GIB) for o in ORB[:10]]
    config = cfg(window_bytes=30 * GIB, window_files=1)
    deadline = T0 + 60 * DAY
    snap = snapshot(files, [slack_job("s", deadline)], wants("s", ORB[:10]))
    turnover = turnover_s(TIER_MAX_LATENCY_S[RestoreTier.BULK], config.lease_days)
    lead = TIER_MAX_LATENCY_S[RestoreTier.BULK] + config.slack_margin_s
    assert restored(plan(snap, deadline - lead - 10 * turnover - HOUR, config)) == set()
    assert len(restored(plan(snap, deadline - lead - 10 * turnover, config))) == 1


def test_holding_back_can_be_turned_off_and_the_margin_is_validated() -> None:
    snap = snapshot([file(ORB[0])], [slack_job("s", T0 + 30 * DAY)], wants("s", ORB[:1]))
    assert restored(plan(snap, T0, cfg(hold_back=False))) == {file(ORB[0]).file_name}
    with pytest.raises(BadInput, match="slack_margin_s"):
        cfg(slack_margin_s=-1.0)


FILE_STATES = [FileState.ARCHIVED, FileState.RESTORING, FileState.RESTORED, FileState.INDEXED]
ROW_STATES = [JobFileState.WAITING, JobFileState.QUEUED, JobFileState.RUNNING, JobFileState.DONE]


@st.composite
def prompt_snapshots(draw: st.DrawFn) -> tuple[list[FileRecord], list[JobRecord], list[JobFileRecord]]:
    """Random states of the window and of a few prompt jobs (no deadline) over ORB."""
    n = draw(st.integers(2, 20))
    files = []
    for o in ORB[:n]:
        state = draw(st.sampled_from(FILE_STATES))
        readable = state in (FileState.RESTORED, FileState.INDEXED)
        files.append(
            file(
                o,
                state,
                size=draw(st.integers(1, 40)) * GIB,
                requested_at=T0 - draw(st.integers(0, 60)) * HOUR if state is not FileState.ARCHIVED else None,
                expiry=T0 + draw(st.integers(-6, 40)) * HOUR if readable else None,
            )
        )
    job_list, rows = [], []
    for k in range(draw(st.integers(1, 4))):
        job_list.append(job(f"p{k}", owner=draw(st.sampled_from(["alice", "bob"])), submitted_at=T0 - k * HOUR))
        chosen = draw(st.lists(st.sampled_from(ORB[:n]), min_size=1, max_size=n, unique=True))
        rows += [JobFileRecord(f"p{k}", file(o).file_name, draw(st.sampled_from(ROW_STATES))) for o in chosen]
    return files, job_list, rows


@settings(max_examples=60, deadline=None)
@given(prompt_snapshots(), st.data())
def test_jobs_without_slack_are_planned_exactly_as_before(
    case: tuple[list[FileRecord], list[JobRecord], list[JobFileRecord]], data: st.DataObject
) -> None:
    """With no deadline the plan is the one without the feature; a job with slack far off (over files of its
    own, all held back) changes nothing of the prompt jobs' plan."""
    files, job_list, rows = case
    config = cfg(
        window_bytes=data.draw(st.integers(1, 400)) * GIB,
        window_files=data.draw(st.integers(1, 12)),
        policy=data.draw(st.sampled_from([Policy.DEMAND, Policy.ROTATION])),
        keep_s=data.draw(st.sampled_from([0.0, 2 * DAY])),
        max_restore_requests_per_step=data.draw(st.integers(1, 30)),
    )
    before = plan(Snapshot.from_records(files, job_list, rows), T0, replace(config, hold_back=False))
    assert plan(Snapshot.from_records(files, job_list, rows), T0, config) == before
    # a deadline past any backlog these snapshots can estimate: its files stay held
    slack = slack_job("s", T0 + 100_000 * DAY, owner=data.draw(st.sampled_from(["alice", "carol"])))
    with_slack = Snapshot.from_records([*files, *(file(o) for o in FAR)], [*job_list, slack], [*rows, *wants("s", FAR)])
    assert plan(with_slack, T0, config) == before


# --- the simulator ----------------------------------------------------------------------------------

SLICE = CatalogueArrays.from_entries(fallback_entries(seed=3, orbits=range(40_000, 40_060)))


def overlapping(slack_s: float | None, n: int = 10) -> list[JobSpec]:
    """Jobs over overlapping orbit ranges of the slice, arriving a day apart."""
    rng = np.random.default_rng(4)
    out = []
    for k in range(n):
        lo = int(rng.integers(0, 30))
        rows = np.arange(lo, lo + 30)
        arrival = EPOCH + k * DAY
        deadline = None if slack_s is None else arrival + slack_s
        query = JobQuery(orbit_min=int(SLICE.orbit[lo]))
        out.append(JobSpec(f"j{k}", f"o{k % 3}", arrival, query, rows, deadline=deadline))
    return out


def test_holding_back_serves_overlapping_jobs_with_fewer_restores_and_no_job_late() -> None:
    config = SimConfig(window_bytes=4 * 10**12, window_files=100, workers=16, step_s=2 * HOUR, keep_s=0.0)
    prompt = simulate(SLICE, overlapping(None), Policy.DEMAND, config)
    held = simulate(SLICE, overlapping(20 * DAY), Policy.DEMAND, config)
    assert prompt.jobs_completed == held.jobs_completed == 10
    assert held.jobs_late == 0
    assert held.restored_bytes < prompt.restored_bytes
    assert held.amplification == pytest.approx(1.0)  # every job arrived within its slack: one restore each
    assert prompt.amplification > 1.5
    assert all(v == 0 for v in held.violations.values()), held.violations
    # no holding back (same deadlines): restored as the prompt run does
    off = simulate(SLICE, overlapping(20 * DAY), Policy.DEMAND, replace(config, hold_back=False))
    assert off.restored_bytes == prompt.restored_bytes


@st.composite
def slack_workloads(draw: st.DrawFn) -> tuple[list[JobSpec], SimConfig, Policy]:
    """Jobs with one slack each, long enough for every job even if all the work came first."""
    config = SimConfig(
        seed=draw(st.integers(0, 1000)),
        window_files=draw(st.integers(2, 12)),
        window_bytes=draw(st.integers(10, 30)) * 60 * 10**9,  # at least ten of the slice's largest files
        step_s=2 * HOUR,
        horizon_s=300 * DAY,
        workers=16,
        event_loss=draw(st.sampled_from([0.0, 0.2, 0.5])),
        event_duplication=draw(st.sampled_from([0.0, 0.3])),
        bad_file_rate=0.0,
        job_file_failure_rate=0.0,
        lease_days=draw(st.integers(1, 2)),
        keep_s=draw(st.sampled_from([0.0, DAY, 3 * DAY])),
        keep_fraction=draw(st.sampled_from([0.25, 0.5])),
    )
    picks = []
    for _ in range(draw(st.integers(1, 6))):
        rows = draw(st.lists(st.integers(0, len(SLICE) - 1), min_size=1, max_size=25, unique=True))
        picks.append((np.array(sorted(rows)), draw(st.floats(0, 10 * DAY, allow_nan=False))))
    all_rows = np.concatenate([rows for rows, _ in picks])
    room = 1.0 - config.keep_fraction if config.keep_s > 0 else 1.0
    latency = TIER_MAX_LATENCY_S[config.tier]
    # the planner's own estimate with every job's bytes ahead, plus one turnover for the window's content
    need = max(SLICE.size[all_rows].sum() / config.window_bytes, len(all_rows) / config.window_files) + 1
    feasible = latency + config.slack_margin_s + turnover_s(latency, config.lease_days) * need / room
    slack = feasible + draw(st.floats(0, 10 * DAY))
    jobs_ = [
        JobSpec(f"j{k}", f"o{k % 3}", EPOCH + at, JobQuery(orbit_min=40_000), rows, deadline=EPOCH + at + slack)
        for k, (rows, at) in enumerate(picks)
    ]
    return jobs_, config, draw(st.sampled_from([Policy.DEMAND, Policy.ROTATION]))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slack_workloads())
def test_no_job_finishes_after_a_feasible_deadline(case: tuple[list[JobSpec], SimConfig, Policy]) -> None:
    workload, config, policy = case
    result = simulate(SLICE, workload, policy, config)
    assert result.jobs_completed == len(workload)
    assert result.jobs_late == 0
    assert all(v == 0 for v in result.violations.values()), result.violations


def test_a_job_that_never_completes_by_its_deadline_counts_as_late() -> None:
    config = SimConfig(window_bytes=4 * 10**12, window_files=100, workers=16, step_s=2 * HOUR, horizon_s=DAY)
    result = simulate(SLICE, overlapping(2 * HOUR, n=1), Policy.DEMAND, config)  # Bulk takes a day at least
    assert result.jobs_completed == 0
    assert result.jobs_late == 1
    assert result.max_late_s == float("inf")
    late = simulate(SLICE, overlapping(2 * HOUR, n=1), Policy.DEMAND, replace(config, horizon_s=10 * DAY))
    assert late.jobs_late == 1
    assert DAY - 2 * HOUR <= late.max_late_s < 3 * DAY  # Bulk: a day or two, then indexing and processing


# --- the jobs table: submit stores the deadline, the store reads it back ---------------------------


def test_deadline_validation() -> None:
    assert jobs.validate_deadline(T0) is None
    assert jobs.validate_deadline(T0, slack_s=2 * DAY) == T0 + 2 * DAY
    assert jobs.validate_deadline(T0, deadline=T0 + DAY) == T0 + DAY
    for bad in (
        {"deadline": T0 + DAY, "slack_s": DAY},
        {"slack_s": 0.0},
        {"slack_s": -DAY},
        {"slack_s": float("nan")},
        {"slack_s": True},
        {"deadline": T0},
        {"deadline": float("inf")},
        {"deadline": T0 + 400 * DAY},
    ):
        with pytest.raises(BadInput):
            jobs.validate_deadline(T0, **bad)


def test_job_record_reads_the_deadline_as_iso_or_seconds_and_absent_as_prompt() -> None:
    base = {JobAttr.JOB_ID: "j", JobAttr.OWNER: "o", JobAttr.SUBMITTED_AT: "2026-01-01T00:00:00Z"}
    assert store.job_record(base).deadline is None
    assert store.job_record({**base, JobAttr.DEADLINE: "2026-01-03T00:00:00Z"}).deadline == T0 + 2 * DAY
    assert store.job_record({**base, JobAttr.DEADLINE: T0 + DAY}).deadline == T0 + DAY


def test_submit_with_slack_stores_a_deadline_the_planner_sees(fake_aws: Any) -> None:
    from datacarousel import files_table, naming, registry  # noqa: PLC0415
    from datacarousel.contract import FILES_TABLE, JOB_FILES_TABLE, JOBS_TABLE, FileAttr  # noqa: PLC0415

    for schema in (FILES_TABLE, JOBS_TABLE, JOB_FILES_TABLE):
        fake_aws.table(schema)
    tables = store.Tables.from_names(
        fake_aws.ddb, FILES_TABLE.table_name, JOBS_TABLE.table_name, JOB_FILES_TABLE.table_name
    )
    bf = naming.BasicFusionName.for_orbit(ORB[0])
    item = {
        FileAttr.FILE_NAME: bf.file_name,
        FileAttr.ORBIT: bf.orbit,
        FileAttr.YEAR_MONTH: bf.year_month,
        FileAttr.MISR_PATH: bf.misr_path,
        FileAttr.STATE: FileState.ARCHIVED.value,
        FileAttr.STATE_VERSION: 0,
        FileAttr.SIZE: 30 * GIB,
    }
    fake_aws.ddb.put_item(TableName=FILES_TABLE.table_name, Item={k: files_table.serialize(v) for k, v in item.items()})
    config = PlannerConfig(window_bytes=10**12, window_files=10)
    definition = registry.get("ComputeRadiance")
    query = JobQuery(orbit_min=ORB[0], orbit_max=ORB[0])
    submitted = jobs.submit(tables, config, owner="alice", definition=definition, query=query, now=T0, slack_s=3 * DAY)
    assert submitted.as_dict()["deadline"] == "2026-01-04T00:00:00Z"
    prompt = jobs.submit(tables, config, owner="bob", definition=definition, query=query, now=T0)
    assert prompt.as_dict()["deadline"] is None
    snap = store.load(tables).snapshot
    assert snap.jobs.deadline[snap.jobs.position[submitted.job_id]] == T0 + 3 * DAY
    assert np.isnan(snap.jobs.deadline[snap.jobs.position[prompt.job_id]])
    with pytest.raises(BadInput, match="not in the future"):
        jobs.submit(tables, config, owner="carol", definition=definition, query=query, now=T0, deadline=T0 - 1)
