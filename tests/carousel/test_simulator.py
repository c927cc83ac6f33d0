"""Simulator smoke test on a catalogue slice: sharing pays, naive does not, invariants hold."""

from __future__ import annotations

from dataclasses import replace as dataclass_replace
from pathlib import Path

import numpy as np
import pytest

from carousel.catalogue import CatalogueArrays, fallback_entries, load
from carousel.planner import Policy
from carousel.plot import plot
from carousel.query import JobQuery
from carousel.simulator import EPOCH, JobSpec, SimConfig, SimResult, compare, make_workload, need_bound, simulate
from datacarousel.contract import RestoreTier

DAY = 86_400.0
TB = 10**12


@pytest.fixture(scope="module")
def catalogue_slice() -> CatalogueArrays:
    """About a month of orbits (450 files) in 2005."""
    return CatalogueArrays.from_entries(fallback_entries(seed=5, orbits=range(28_000, 28_450)))


@pytest.fixture(scope="module")
def overlapping_jobs(catalogue_slice: CatalogueArrays) -> list[JobSpec]:
    """Twelve jobs over overlapping orbit ranges and path sets, arriving over two days."""
    rng = np.random.default_rng(11)
    jobs = []
    for k in range(12):
        lo = 28_000 + int(rng.integers(0, 200))
        query = JobQuery(orbit_min=lo, orbit_max=lo + int(rng.integers(100, 250)))
        if k % 3 == 0:
            query = JobQuery(orbit_min=query.orbit_min, orbit_max=query.orbit_max, misr_paths=tuple(range(1, 120)))
        rows = np.nonzero(catalogue_slice.mask(query))[0]
        jobs.append(JobSpec(f"job-{k:02d}", f"owner-{k % 4}", EPOCH + k * 4 * 3600.0, query, rows))
    return jobs


@pytest.fixture(scope="module")
def results(catalogue_slice: CatalogueArrays, overlapping_jobs: list[JobSpec]) -> dict[Policy, SimResult]:
    config = SimConfig(window_bytes=3 * TB, window_files=100, workers=32, step_s=3600.0)
    return {p: simulate(catalogue_slice, overlapping_jobs, p, config) for p in Policy}


def test_carousel_policies_restore_each_needed_byte_once(results: dict[Policy, SimResult]) -> None:
    for policy in (Policy.DEMAND, Policy.ROTATION):
        r = results[policy]
        assert r.jobs_completed == r.jobs == 12
        assert r.restored_bytes == r.unique_bytes_needed
        assert r.amplification == pytest.approx(1.0)
        assert r.peak_window_bytes <= 3 * TB
        assert r.peak_staged_bytes <= 3 * TB
        assert all(v == 0 for v in r.violations.values()), r.violations


def test_naive_restores_overlapping_files_once_per_job(
    results: dict[Policy, SimResult], overlapping_jobs: list[JobSpec]
) -> None:
    naive = results[Policy.NAIVE]
    assert naive.jobs_completed == 12
    assert naive.amplification > 1.5
    total_rows = sum(len(j.files) for j in overlapping_jobs)
    assert naive.restore_requests == total_rows  # one private restore per (job, file)
    assert naive.cost.total > 1.5 * results[Policy.DEMAND].cost.total
    assert naive.peak_staged_bytes > results[Policy.DEMAND].peak_staged_bytes


def test_costs_are_at_least_the_lower_bound(results: dict[Policy, SimResult]) -> None:
    for r in results.values():
        assert r.cost.retrieval >= r.lower_bound.retrieval * 0.999
        assert r.cost.total >= r.lower_bound.total * 0.999
        assert r.completion_s and r.median_completion_s <= r.p95_completion_s


def test_plot_writes_a_png(results: dict[Policy, SimResult], tmp_path: Path) -> None:
    out = tmp_path / "sim.png"
    plot(results, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


@pytest.mark.slow
def test_full_catalogue_comparison_runs_and_shares() -> None:
    catalogue = load(0)
    config = SimConfig(jobs=30)
    workload = make_workload(catalogue, config)
    assert len(workload) == 30
    rows = sum(len(j.files) for j in workload)
    unique = len(np.unique(np.concatenate([j.files for j in workload])))
    assert rows > unique  # the queries overlap
    out = compare(catalogue, config)
    assert out[Policy.NAIVE].amplification > out[Policy.DEMAND].amplification
    assert all(v == 0 for r in out.values() for v in r.violations.values())


def test_cancelled_job_stops_costing(catalogue_slice: CatalogueArrays) -> None:
    """A job cancelled early: its own files stop being restored, the other job still completes."""
    rows = np.arange(len(catalogue_slice))
    keep = JobSpec("keep", "alice", EPOCH, JobQuery(orbit_min=28_000, orbit_max=28_049), rows[:50])
    config = SimConfig(window_bytes=TB, window_files=20, workers=8)
    alone = simulate(catalogue_slice, [keep], Policy.DEMAND, config)
    other = JobSpec("other", "bob", EPOCH, JobQuery(orbit_min=28_100, orbit_max=28_399), rows[100:400])
    both = simulate(catalogue_slice, [keep, other], Policy.DEMAND, config)
    cancelled = simulate(
        catalogue_slice, [keep, dataclass_replace(other, cancel_at=EPOCH + 2 * DAY)], Policy.DEMAND, config
    )
    assert cancelled.jobs_cancelled == 1 and cancelled.jobs_completed == 1
    assert alone.restored_bytes < cancelled.restored_bytes < both.restored_bytes
    assert cancelled.cost.total < both.cost.total
    assert all(v == 0 for v in cancelled.violations.values())


def test_keeping_idle_copies_saves_the_late_jobs_restores(catalogue_slice: CatalogueArrays) -> None:
    """A campaign: a late job wants what an early one used; keeping the idle copies avoids restoring them again."""
    rows = np.arange(len(catalogue_slice))
    early = JobSpec("early", "alice", EPOCH, JobQuery(orbit_min=28_000, orbit_max=28_019), rows[:20])
    ongoing = JobSpec("ongoing", "bob", EPOCH + DAY, JobQuery(orbit_min=28_100, orbit_max=28_399), rows[100:400])
    late = JobSpec("late", "carol", EPOCH + 3.5 * DAY, JobQuery(orbit_min=28_000, orbit_max=28_019), rows[:20])
    config = SimConfig(window_bytes=3 * TB, window_files=100, workers=32, keep_s=3 * DAY)
    kept = simulate(catalogue_slice, [early, ongoing, late], Policy.DEMAND, config)
    released = simulate(catalogue_slice, [early, ongoing, late], Policy.DEMAND, dataclass_replace(config, keep_s=0.0))
    assert released.re_restored_bytes > 0  # without keeping, the late job's files are restored again
    assert kept.re_restored_bytes < released.re_restored_bytes
    assert kept.amplification < released.amplification
    for r in (kept, released):
        assert r.jobs_completed == 3
        assert all(v == 0 for v in r.violations.values()), r.violations
        assert r.peak_window_bytes <= 3 * TB
        assert r.need_bound is not None and r.cost.total >= r.lower_bound.total * 0.999


def test_need_bound_of_a_workload(catalogue_slice: CatalogueArrays, overlapping_jobs: list[JobSpec]) -> None:
    bound = need_bound(catalogue_slice, overlapping_jobs, RestoreTier.BULK)
    unique = np.unique(np.concatenate([j.files for j in overlapping_jobs]))
    assert bound.floor.retrieval == pytest.approx(catalogue_slice.size[unique].sum() / 2**30 * 0.0025)
    assert bound.prompt_restored_bytes >= catalogue_slice.size[unique].sum()
    assert bound.floor.total <= bound.prompt.total <= bound.once.total
