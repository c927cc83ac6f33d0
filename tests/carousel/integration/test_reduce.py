"""A job's reduce step: the carousel requests it once, a worker of the definition runs it, the job completes.

ComputeRadiance's reducer composes the monthly composites (`batch_jobs.compute_radiance.reduce`);
the carousel only sends a ReduceRequest on the work queue and waits for the reduced marker.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from batch_jobs.compute_radiance import worker
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.reduce import results_by_period
from batch_jobs.compute_radiance.result import Parameters, load_npz, npz_bytes
from carousel import jobs
from carousel.actions import CompleteJob
from carousel.query import JobQuery
from carousel.runtime import Context
from carousel.step import Step, StepReport
from carousel.store import load
from datacarousel import aws, job, naming, registry
from datacarousel import orbit as readers
from datacarousel.contract import FAILURE_REASON_ATTRIBUTE, JobAttr, JobState
from datacarousel.messages import ReduceRequest
from tests.carousel.integration.carousel_world import World, job_state

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


def body_of(world: World, key: str) -> bytes:
    return bytes(world.s3.get_object(Bucket=world.results, Key=key)["Body"].read())


def reducer(world: World) -> job.Handler:
    return worker.WorkItemHandler(world.s3, world.results, Parameters())


@pytest.mark.integration
def test_the_reducer_composes_every_month_once_and_writes_its_marker_last(
    world: World, orbit_results: dict[int, bytes]
) -> None:
    job_id = f"reduce-{uuid.uuid4().hex[:8]}"
    upload_results(world, job_id, orbit_results)
    puts: list[str] = []
    world.s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: puts.append(params["Key"]))
    request = ReduceRequest(job_id, "ComputeRadiance")

    first = reducer(world).handle_reduce(request)
    assert first == composite_keys(job_id)
    marker = naming.reduced_marker_key(job_id)
    assert sorted(puts[:-1]) == composite_keys(job_id) and puts[-1] == marker  # the marker last
    assert json.loads(body_of(world, marker)) == {"job_id": job_id, "keys": composite_keys(job_id)}
    assert [int(load_npz(body_of(world, naming.composite_key(job_id, m)))["n_orbits"]) for m in MONTHS] == [2, 1]

    # Run again (a redelivered request): nothing is composed twice, the marker lists every composite.
    puts.clear()
    assert reducer(world).handle_reduce(request) == composite_keys(job_id) and puts == [marker]
    # A month whose `.npz` is missing (a worker died after its quick-looks) is composed again, to the same bytes.
    july = naming.composite_key(job_id, MONTHS[1])
    july_bytes = body_of(world, july)
    world.s3.delete_object(Bucket=world.results, Key=july)
    puts.clear()
    reducer(world).handle_reduce(request)
    assert [k for k in puts if k.endswith(".npz")] == [july]
    assert body_of(world, july) == july_bytes


def done_job(world: World, ctx: Context, owner: str, results: Mapping[int, bytes], **changes: Any) -> CompleteJob:
    """A job over ORBITS whose results are in place, as its workers would have written them; the step
    is asked to complete it as the planner asks once every job-file is DONE."""
    prefix = "carousel-it/reduce/"
    world.stage(ORBITS, prefix, storage_class="STANDARD")  # (a second time: the same objects)
    world.inventory(ctx, prefix)
    query = JobQuery(orbit_min=ORBITS[0], orbit_max=ORBITS[-1])
    definition = dataclasses.replace(registry.get("ComputeRadiance"), **changes)
    job_id = jobs.submit(ctx.tables, ctx.config, owner=owner, definition=definition, query=query).job_id
    upload_results(world, job_id, results)
    return CompleteJob(job_id, done=len(ORBITS), failed=0)


def reduce_requests(world: World, job_id: str) -> list[Mapping[str, Any]]:
    """Receive the work queue's ReduceRequests of the job (others are left for their own tests)."""
    url = world.work_queue.url
    found: list[Mapping[str, Any]] = []
    for _ in range(5):
        got = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
        for message in got.get("Messages", []):
            if f'"job_id":"{job_id}"' in message["Body"] and ReduceRequest.kind in message["Body"]:
                found.append(message)
    return found


def step_once(ctx: Context, done: CompleteJob) -> StepReport:
    report = StepReport(started_at=time.time())
    Step(ctx).completer.complete_jobs([done], time.time(), load(ctx.tables), report)
    return report


@pytest.mark.integration
def test_a_job_with_a_reducer_stays_open_until_its_worker_has_reduced_it(
    world: World, orbit_results: dict[int, bytes]
) -> None:
    ctx = world.context()
    done = done_job(world, ctx, "reducer", orbit_results)
    job_id = done.job_id

    first = step_once(ctx, done)
    assert first.reducing == [job_id] and first.reduce_requests == 1 and first.completed_jobs == []
    assert job_state(ctx, job_id) is JobState.OPEN
    item = ctx.tables.jobs.get(job_id)
    assert item is not None and item[JobAttr.REDUCE_REQUESTED_AT]
    # A second step sends no second request while the first waits on the queue.
    second = step_once(ctx, done)
    assert second.reducing == [job_id] and second.reduce_requests == 0
    sent = reduce_requests(world, job_id)
    assert len(sent) == 1
    request = ReduceRequest.from_json(sent[0]["Body"])
    assert request.job_definition == "ComputeRadiance" and request.parameters["resolution"] == "0.5"

    # The definition's worker takes it from the queue like any work item.
    worker.WorkItemHandler(world.s3, world.results, Parameters())(sent[0]["Body"])
    third = step_once(ctx, done)
    assert third.completed_jobs == [job_id] and job_state(ctx, job_id) is JobState.COMPLETE
    item = ctx.tables.jobs.get(job_id)
    assert item is not None and sorted(item[JobAttr.COMPOSITE_KEY]) == composite_keys(job_id)


@pytest.mark.integration
def test_a_dead_lettered_reduce_request_ends_the_job_with_its_reason(
    world: World, orbit_results: dict[int, bytes]
) -> None:
    ctx = world.context()
    done = done_job(world, ctx, "reducer2", orbit_results)
    request = ReduceRequest(job_id=done.job_id, job_definition="ComputeRadiance")
    aws.client("sqs").send_message(
        QueueUrl=world.work_queue.dead_letter_url,
        MessageBody=request.to_json(),
        MessageAttributes={FAILURE_REASON_ATTRIBUTE: {"DataType": "String", "StringValue": "BadInput: no results"}},
    )
    report = StepReport(started_at=time.time())
    Step(ctx).dead_letters.record_work_failures(load(ctx.tables), time.time(), report)
    assert report.completed_jobs == [done.job_id] and job_state(ctx, done.job_id) is JobState.COMPLETE
    item = ctx.tables.jobs.get(done.job_id)
    assert item is not None and "reducer failed" in item[JobAttr.ERROR] and "no results" in item[JobAttr.ERROR]


@pytest.mark.integration
def test_a_job_without_a_reducer_completes_at_once(world: World, orbit_results: dict[int, bytes]) -> None:
    ctx = world.context()
    done = done_job(world, ctx, "noreducer", orbit_results, reducer=False)
    report = step_once(ctx, done)
    assert report.completed_jobs == [done.job_id] and report.reduce_requests == 0
    assert job_state(ctx, done.job_id) is JobState.COMPLETE
