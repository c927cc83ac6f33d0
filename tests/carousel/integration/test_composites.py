"""A completed ComputeRadiance job's monthly composites, a bounded amount per carousel step (moto's S3)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from carousel_world import World, job_state

from batch_jobs.compute_radiance import readers
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import load_npz, npz_bytes
from carousel import jobs
from carousel.actions import CompleteJob
from carousel.composites import compose_radiance, results_by_period
from carousel.query import JobQuery
from carousel.runtime import Context
from carousel.step import Step, StepReport
from carousel.store import ComposeLease, load
from datacarousel import naming
from datacarousel.contract import JobAttr, JobState

# The last two orbits of June 2014 and the first of July: a job of two months.
ORBITS = (77306, 77307, 77308)
MONTHS = ("2014.06", "2014.07")
INSTRUMENTS = ("modis", "misr", "ceres")


def test_results_by_period_groups_a_jobs_orbit_results_and_leaves_out_its_composites() -> None:
    keys = [
        "results/j/2014.07/CLIMARBLE_O77308_20140701010039_F000_V001.npz",
        "results/j/2014.06/CLIMARBLE_O77307_20140630232146_F000_V001.npz",
        "results/j/2014.06/CLIMARBLE_O77306_20140630214253_F000_V001.npz",
        "results/j/composites/2014.06.npz",  # a composite, not an orbit result
        "results/j/composites/2014.06_modis.png",
        "results/j/2014.06/notes.txt",  # not a result
        "results/j/stray.npz",  # no period folder
        "results/other/2014.06/CLIMARBLE_O77306_20140630214253_F000_V001.npz",  # another job
    ]
    assert results_by_period(keys, "j") == {
        "2014.06": [keys[2], keys[1]],
        "2014.07": [keys[0]],
    }


@pytest.fixture(scope="module")
def orbit_results(orbit_files: Callable[[int], Path]) -> dict[int, bytes]:
    """ComputeRadiance's `.npz` of each orbit of ORBITS (computed locally, once)."""
    made = {}
    for orbit in ORBITS:
        with readers.open_local(orbit_files(orbit)) as source:
            made[orbit] = npz_bytes(compute_orbit(source).arrays())
    return made


def upload_results(world: World, job_id: str, results: Mapping[int, bytes]) -> None:
    for orbit, body in results.items():
        key = naming.result_key(job_id, naming.BasicFusionName.for_orbit(orbit))
        world.s3.put_object(Bucket=world.results, Key=key, Body=body)


def composite_keys(job_id: str) -> list[str]:
    return sorted(
        naming.composite_key(job_id, month, suffix)
        for month in MONTHS
        for suffix in (".npz", *(f"_{i}.png" for i in INSTRUMENTS))
    )


def ticking() -> Callable[[], float]:
    """A clock that advances one second each time it is read: a deadline of now + 1 allows one month."""
    ticks: Iterator[int] = itertools.count()
    return lambda: float(next(ticks))


@pytest.mark.integration
def test_each_call_composes_until_its_deadline_and_never_a_month_twice(
    world: World, orbit_results: dict[int, bytes]
) -> None:
    job_id = f"composites-{uuid.uuid4().hex[:8]}"
    upload_results(world, job_id, orbit_results)

    first = compose_radiance(world.s3, world.results, job_id, 1.0, clock=ticking())
    june = naming.composite_key(job_id, MONTHS[0])
    assert first.written == [*(naming.composite_key(job_id, MONTHS[0], f"_{i}.png") for i in INSTRUMENTS), june]
    assert first.remaining == [MONTHS[1]] and not first.complete

    second = compose_radiance(world.s3, world.results, job_id, 1.0, clock=ticking())
    assert second.remaining == [] and second.complete
    assert [k for k in second.written if k.endswith(".npz")] == [naming.composite_key(job_id, MONTHS[1])]
    assert second.keys == composite_keys(job_id)

    # Nothing left: a further call writes nothing and reports the same keys.
    third = compose_radiance(world.s3, world.results, job_id, float("inf"))
    assert third.written == [] and third.keys == composite_keys(job_id)

    def body(key: str) -> bytes:
        return bytes(world.s3.get_object(Bucket=world.results, Key=key)["Body"].read())

    assert [int(load_npz(body(naming.composite_key(job_id, m)))["n_orbits"]) for m in MONTHS] == [2, 1]
    # A month whose `.npz` is missing (a step died after its quick-looks) is composed again, to the same bytes.
    july = naming.composite_key(job_id, MONTHS[1])
    july_bytes = body(july)
    world.s3.delete_object(Bucket=world.results, Key=july)
    again = compose_radiance(world.s3, world.results, job_id, float("inf"))
    assert [k for k in again.written if k.endswith(".npz")] == [july] and again.complete
    assert body(july) == july_bytes


@pytest.mark.integration
def test_a_passed_deadline_composes_nothing_unless_one_month_is_owed(
    world: World, orbit_results: dict[int, bytes]
) -> None:
    job_id = f"composites-{uuid.uuid4().hex[:8]}"
    upload_results(world, job_id, orbit_results)
    late = compose_radiance(world.s3, world.results, job_id, 0.0, clock=lambda: 10.0)
    assert late.written == [] and late.keys == [] and late.remaining == list(MONTHS)
    owed = compose_radiance(world.s3, world.results, job_id, 0.0, at_least=1, clock=lambda: 10.0)
    assert owed.remaining == [MONTHS[1]]
    assert naming.composite_key(job_id, MONTHS[0]) in owed.written


def done_job(world: World, ctx: Context, owner: str, results: Mapping[int, bytes]) -> CompleteJob:
    """A job over ORBITS whose results are in place, as its workers would have written them; the step
    is asked to complete it as the planner asks once every job-file is DONE."""
    prefix = "carousel-it/composites/"
    world.stage(ORBITS, prefix, storage_class="STANDARD")  # (a second time: the same objects)
    world.inventory(ctx, prefix)
    query = JobQuery(orbit_min=ORBITS[0], orbit_max=ORBITS[-1])
    job_id = jobs.submit(ctx.tables, ctx.config, owner=owner, definition="ComputeRadiance", query=query).job_id
    upload_results(world, job_id, results)
    return CompleteJob(job_id, done=len(ORBITS), failed=0)


@pytest.mark.integration
def test_a_step_keeps_the_job_open_until_every_month_is_composed(world: World, orbit_results: dict[int, bytes]) -> None:
    ctx = world.context()
    done = done_job(world, ctx, "composer", orbit_results)
    job_id = done.job_id
    step = Step(ctx, compose_budget_s=0.0)  # no budget: one month per step, the least a step composes

    first = StepReport(started_at=time.time())
    step.complete_jobs([done], time.time(), load(ctx.tables), first)
    assert first.composing == [job_id] and first.completed_jobs == [] and first.composed_months == 1
    assert job_state(ctx, job_id) is JobState.OPEN
    listed = world.s3.list_objects_v2(Bucket=world.results, Prefix=naming.composite_key(job_id, "", ""))
    assert {o["Key"] for o in listed.get("Contents", [])} >= {naming.composite_key(job_id, MONTHS[0])}
    assert naming.composite_key(job_id, MONTHS[1]) not in {o["Key"] for o in listed.get("Contents", [])}

    second = StepReport(started_at=time.time())
    step.complete_jobs([done], time.time(), load(ctx.tables), second)
    assert second.completed_jobs == [job_id] and second.composing == [] and second.composed_months == 1
    assert job_state(ctx, job_id) is JobState.COMPLETE
    item = ctx.tables.jobs.get(job_id)
    assert item is not None and sorted(item[JobAttr.COMPOSITE_KEY]) == composite_keys(job_id)


@pytest.mark.integration
def test_a_step_leaves_a_job_another_step_is_composing(world: World, orbit_results: dict[int, bytes]) -> None:
    ctx = world.context()
    done = done_job(world, ctx, "composer2", orbit_results)
    job_id = done.job_id
    other = ComposeLease(ctx.tables.jobs, job_id)
    assert other.acquire("another-step", time.time(), ttl_s=60)

    step = Step(ctx, compose_budget_s=0.0)
    held = StepReport(started_at=time.time())
    step.complete_jobs([done], time.time(), load(ctx.tables), held)
    assert held.compose_deferred == [job_id] and held.composed_months == 0 and held.completed_jobs == []
    listed = world.s3.list_objects_v2(Bucket=world.results, Prefix=naming.composite_key(job_id, "", ""))
    assert listed.get("KeyCount", 0) == 0 and job_state(ctx, job_id) is JobState.OPEN

    assert other.release("another-step")  # (or its claim lapses: a step killed while composing)
    for _ in MONTHS:
        report = StepReport(started_at=time.time())
        step.complete_jobs([done], time.time(), load(ctx.tables), report)
        assert report.compose_deferred == [] and report.composed_months == 1
    assert job_state(ctx, job_id) is JobState.COMPLETE
    item = ctx.tables.jobs.get(job_id)
    assert item is not None and JobAttr.LEASE_HOLDER not in item  # released after each step's composing


@pytest.mark.integration
def test_a_compose_lease_never_creates_a_job_item(world: World) -> None:
    jobs_table = world.context().tables.jobs
    missing = f"job-missing-{uuid.uuid4().hex[:8]}"
    assert not ComposeLease(jobs_table, missing).acquire("a-step", time.time(), ttl_s=60)
    assert jobs_table.get(missing) is None
