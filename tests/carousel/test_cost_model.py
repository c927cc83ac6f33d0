"""Cost model on hand-computed values; submission estimates and job status."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from carousel.cost import (
    ArchiveClass,
    CostBreakdown,
    PriceTable,
    RetrievalPrice,
    account,
    estimate_submission,
    expiry_after,
    job_status,
    keep_break_even_s,
    lower_bound,
    need_lower_bound,
    staging_seconds,
)
from carousel.planner import PlannerConfig
from carousel.slack import release_times
from datacarousel.contract import FileState, JobFileState, RestoreTier
from datacarousel.errors import BadInput
from tests.carousel.carousel_builders import DAY, GIB, HOUR, T0, file, job, snapshot, wants

TIB = 2**40
MONTH_S = 730 * HOUR
CONFIG = PlannerConfig(window_bytes=100 * TIB, window_files=1000, lease_days=1)


def test_deep_archive_bulk_restore_of_one_tib() -> None:
    cost = account(restored_bytes=TIB, restore_requests=1000)
    assert cost.retrieval == pytest.approx(1024 * 0.0025)  # $2.56
    assert cost.requests == pytest.approx(0.025)
    assert cost.total == pytest.approx(2.585)


def test_deep_archive_standard_restore() -> None:
    cost = account(restored_bytes=TIB, restore_requests=2000, tier=RestoreTier.STANDARD)
    assert cost.retrieval == pytest.approx(20.48)
    assert cost.requests == pytest.approx(0.20)


def test_glacier_flexible_tiers() -> None:
    expedited = account(
        restored_bytes=10 * GIB, restore_requests=1000, tier=RestoreTier.EXPEDITED, archive_class=ArchiveClass.GLACIER
    )
    assert expedited.retrieval == pytest.approx(0.30)
    assert expedited.requests == pytest.approx(10.0)
    bulk = account(restored_bytes=TIB, restore_requests=1000, archive_class=ArchiveClass.GLACIER)
    assert bulk.total == 0.0


def test_deep_archive_has_no_expedited_tier() -> None:
    with pytest.raises(BadInput, match="no Expedited retrieval tier for DEEP_ARCHIVE"):
        account(restored_bytes=1, restore_requests=1, tier=RestoreTier.EXPEDITED)


def test_staging_and_archive_storage() -> None:
    # 1 GiB staged for a 730-hour month at S3 Standard; 1 TiB in Deep Archive for the same month
    cost = account(
        restored_bytes=0, restore_requests=0, staged_byte_seconds=GIB * MONTH_S, archive_bytes=TIB, period_s=MONTH_S
    )
    assert cost.staging == pytest.approx(0.023)
    assert cost.archive_storage == pytest.approx(1024 * 0.00099)
    # 30 GiB for one day
    day = account(restored_bytes=0, restore_requests=0, staged_byte_seconds=30 * GIB * DAY)
    assert day.staging == pytest.approx(30 * 0.023 * 24 / 730)


def test_renewals_cost_only_requests() -> None:
    cost = account(restored_bytes=0, restore_requests=0, renewal_requests=4000)
    assert cost == CostBreakdown(requests=0.1)


def test_custom_price_table() -> None:
    prices = PriceTable(
        retrieval={(ArchiveClass.DEEP_ARCHIVE, RestoreTier.BULK): RetrievalPrice(1.0, 2.0)},
        staging_per_gb_month=3.0,
        bytes_per_gb=10**9,
        hours_per_month=720.0,
    )
    cost = account(restored_bytes=5e9, restore_requests=500, staged_byte_seconds=1e9 * 720 * HOUR, prices=prices)
    assert (cost.retrieval, cost.requests, cost.staging) == pytest.approx((5.0, 1.0, 3.0))


def test_s3_rounds_expiry_up_to_midnight() -> None:
    t = datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp()
    assert expiry_after(t, 1) == datetime(2026, 1, 3, tzinfo=UTC).timestamp()
    assert staging_seconds(t, 1) == 38 * HOUR
    assert expiry_after(T0, 2) == T0 + 2 * DAY  # exactly midnight stays


def test_lower_bound_restores_once_and_stages_one_day() -> None:
    bound = lower_bound(TIB, 100)
    assert bound.retrieval == pytest.approx(2.56)
    assert bound.requests == pytest.approx(0.0025)
    assert bound.staging == pytest.approx(1024 * 0.023 * 24 / 730)


def test_cost_breakdown_adds_and_scales() -> None:
    a = CostBreakdown(1, 2, 3, 4)
    assert (a + a).total == 20
    assert a.scaled(0.5).as_dict()["total"] == 5


def test_submission_estimate() -> None:
    files = [
        file(1000, FileState.INDEXED, size=GIB, expiry=T0 + DAY),
        file(1001, size=GIB),  # archived, another job waits for it: shared
        file(1002, size=GIB),  # archived, nobody else wants it
        file(1003, FileState.RESTORING, size=GIB, requested_at=T0),
    ]
    snap = snapshot(files, [job("other")], wants("other", [1001]))
    est = estimate_submission(files, snap, T0, CONFIG)
    assert (est.file_count, est.total_bytes) == (4, 4 * GIB)
    assert (est.readable_files, est.readable_bytes, est.restoring_files) == (1, GIB, 1)
    assert (est.to_restore_files, est.to_restore_bytes, est.shared_files) == (2, 2 * GIB, 1)
    assert est.estimated_start == T0  # one file is readable now
    alone = est.estimated_cost_alone
    assert alone.retrieval == pytest.approx(2 * 0.0025)
    assert alone.requests == pytest.approx(2 * 0.025 / 1000)
    assert alone.staging == pytest.approx(4 * 0.023 * 24 / 730)  # T0 is midnight: one day each
    shared = est.estimated_cost
    assert shared.retrieval == pytest.approx(0.0025 * (1 + 0.5))
    assert shared.staging == pytest.approx(0.023 * 24 / 730 * (1 + 0.5 + 1 + 1))


def test_submission_estimate_start_waits_for_the_queue() -> None:
    files = [file(1000 + i, size=50 * TIB) for i in range(4)]
    snap = snapshot(files, [job("other")], wants("other", [1000, 1001, 1002]))
    est = estimate_submission(files[3:], snap, T0, CONFIG)
    # 150 TiB waiting, 100 TiB free: 50 TiB of backlog at one window (100 TiB) per 48 h + 1 day, then 48 h
    assert est.estimated_start == pytest.approx(T0 + 0.5 * (48 * HOUR + DAY) + 48 * HOUR)
    assert estimate_submission([], snap, T0, CONFIG).estimated_start is None


def test_a_deadline_holds_the_estimated_start_back_as_the_planner_would() -> None:
    """A job with slack whose files nobody else waits for promptly starts when `carousel.slack` would release
    its restores (the planner's own release rule), plus one restore latency; the estimate says until when."""
    files = [file(1000 + i, size=GIB) for i in range(3)]
    snap = snapshot(files, [])
    prompt = estimate_submission(files, snap, T0, CONFIG)
    deadline = T0 + 20 * DAY
    held = estimate_submission(files, snap, T0, CONFIG, deadline=deadline)
    assert prompt.held_until is None and prompt.estimated_start == pytest.approx(T0 + 48 * HOUR)
    expected = release_times([deadline], [3 * GIB], [3], CONFIG, 48 * HOUR)[0]
    assert held.held_until is not None and held.held_until == pytest.approx(expected)
    assert T0 < held.held_until < deadline - 48 * HOUR  # in time for the deadline, not now
    assert held.estimated_start == pytest.approx(held.held_until + 48 * HOUR)
    assert held.estimated_cost == prompt.estimated_cost  # what later jobs will share is not known yet
    # Not held: a deadline too close to hold anything, a prompt job waiting for one of the files, a file
    # readable now, or the planner told not to hold back.
    assert estimate_submission(files, snap, T0, CONFIG, deadline=T0 + 3 * DAY).held_until is None
    other = snapshot(files, [job("other")], wants("other", [1001]))
    assert estimate_submission(files, other, T0, CONFIG, deadline=deadline).held_until is None
    readable = [file(1004, FileState.INDEXED, size=GIB, expiry=T0 + DAY), *files]
    assert estimate_submission(readable, snapshot(readable, []), T0, CONFIG, deadline=deadline).held_until is None
    no_hold = PlannerConfig(window_bytes=100 * TIB, window_files=1000, lease_days=1, hold_back=False)
    assert estimate_submission(files, snap, T0, no_hold, deadline=deadline).held_until is None
    # A file already restoring: work starts when it is readable, whatever is held (and with nothing left to
    # restore, nothing is held at all).
    restoring = [file(1005, FileState.RESTORING, size=GIB, requested_at=T0), *files]
    started = estimate_submission(restoring, snapshot(restoring, []), T0, CONFIG, deadline=deadline)
    assert started.held_until is None and started.estimated_start == pytest.approx(T0 + 48 * HOUR)
    only_restoring = restoring[:1]
    alone = estimate_submission(only_restoring, snapshot(only_restoring, []), T0, CONFIG, deadline=deadline)
    assert alone.held_until is None and alone.estimated_start == pytest.approx(T0 + 48 * HOUR)


def test_the_eta_of_a_job_with_slack_waits_for_its_release() -> None:
    """Before anything of it started, a job with a deadline is expected later by the time its restores are held
    back (`carousel.slack`); a prompt job waiting for one of its files makes it prompt too."""
    files = [file(1000 + i, size=GIB) for i in range(3)]
    deadline = T0 + 20 * DAY
    slack = dataclasses.replace(job("a"), deadline=deadline)
    prompt = job_status(snapshot(files, [job("a")], wants("a", [1000, 1001, 1002])), "a", T0, CONFIG)
    held = job_status(snapshot(files, [slack], wants("a", [1000, 1001, 1002])), "a", T0, CONFIG)
    release = release_times([deadline], [3 * GIB], [3], CONFIG, 48 * HOUR)[0]
    assert prompt.eta is not None and held.eta is not None
    assert held.eta == pytest.approx(prompt.eta + release - T0)
    assert held.eta <= deadline
    shared = snapshot(files, [slack, job("b")], wants("a", [1000, 1001, 1002]), wants("b", [1002]))
    assert job_status(shared, "a", T0, CONFIG).eta == pytest.approx(prompt.eta)


def test_job_status_counts_and_cost_share() -> None:
    files = [
        file(1000, FileState.INDEXED, size=GIB, expiry=T0 + DAY, restore_count=1),
        file(1001, FileState.INDEXED, size=GIB, expiry=T0 + DAY, restore_count=2),
        file(1002, FileState.RESTORING, size=GIB, requested_at=T0, restore_count=1),
        file(1003, size=GIB),
        file(1004, FileState.RESTORED, size=GIB, expiry=T0 + DAY, restore_count=1),
    ]
    snap = snapshot(
        files,
        [job("a", submitted_at=T0 - DAY), job("b")],
        wants("a", [1000], JobFileState.DONE),
        wants("a", [1001], JobFileState.RUNNING),
        wants("a", [1002, 1003, 1004]),
        wants("b", [1000]),
    )
    status = job_status(snap, "a", T0, CONFIG)
    assert status.files == {
        "waiting": 1, "restoring": 1, "readable": 1, "indexed": 0, "queued": 0, "running": 1, "done": 1, "failed": 0,
    }  # fmt: skip
    assert status.total_bytes == 5 * GIB and status.done_bytes == GIB
    # restores used: 1000 once shared by two jobs (0.5), 1001 twice (2), 1002 once, 1004 once -> 4.5 GiB
    assert status.cost_so_far.retrieval == pytest.approx(4.5 * 0.0025)
    assert status.estimated_cost.retrieval == pytest.approx(5.5 * 0.0025)  # + 1003 to come
    # one of five files done in one day: four more days
    assert status.eta == pytest.approx(T0 + 4 * DAY)
    with pytest.raises(BadInput):
        job_status(snap, "nope", T0, CONFIG)


def test_need_lower_bound_keeps_or_restores_again_per_file() -> None:
    size = 30 * GIB
    restore = 30 * 0.0025 + 0.025 / 1000
    stage_day = 30 * 0.023 * 24 / 730
    # needs one hour apart: one restore, one day staged; ten days apart: two restores beat ten days staged
    bound = need_lower_bound([size, size], [[T0, T0 + HOUR], [T0, T0 + 10 * DAY]])
    assert bound.prompt.total == pytest.approx(3 * restore + 3 * stage_day)
    assert bound.prompt_restored_bytes == 3 * size
    # amplification 1 while serving promptly: the second file staged for the whole ten days
    assert bound.once.total == pytest.approx(2 * restore + 11 * stage_day)
    assert bound.once_peak_bytes == 2 * size
    assert bound.floor == lower_bound(2 * size, 2)
    # three days apart: keeping (3 days) is cheaper than restoring again (restore + 1 day)
    close = need_lower_bound([size], [[T0 + 3 * DAY, T0]])
    assert close.prompt.total == pytest.approx(restore + 3 * stage_day)
    assert close.prompt_restored_bytes == size
    # the floor never exceeds the prompt bound, which never exceeds amplification 1
    assert bound.floor.total <= bound.prompt.total <= bound.once.total


def test_keep_break_even() -> None:
    # 30 GiB: a Bulk restore ($0.075) is 3.3 days of staging at $0.023/GB-month, plus the restore's own 1.5 days
    days = keep_break_even_s(30 * GIB) / DAY
    assert days == pytest.approx(0.075 / (30 * 0.023 * 24 / 730) + 1.5, rel=1e-3)
    assert keep_break_even_s(30 * GIB, tier=RestoreTier.STANDARD) > keep_break_even_s(30 * GIB)
