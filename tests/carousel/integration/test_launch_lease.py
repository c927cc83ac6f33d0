"""Racing carousel steps start at most the cap of workers: one step at a time holds the launch lease."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from carousel.launcher import LaunchRequest
from carousel.step import Step, StepReport
from carousel.store import LaunchLease
from datacarousel import work_queues
from datacarousel.contract import JobAttr, JobDefinitionName
from tests.carousel.integration.carousel_world import World


def test_the_lease_admits_one_holder_until_released_or_lapsed(world: World) -> None:
    lease = LaunchLease(world.context().tables.jobs)
    now = time.time()
    assert lease.acquire("step-a", now, ttl_s=60)
    assert not lease.acquire("step-b", now + 1, ttl_s=60)  # held
    assert lease.acquire("step-a", now + 2, ttl_s=60)  # the holder may renew
    assert not lease.release("step-b")  # only the holder releases
    assert lease.release("step-a")
    assert lease.acquire("step-b", now + 3, ttl_s=5)
    assert not lease.acquire("step-a", now + 4, ttl_s=60)
    assert lease.acquire("step-a", now + 9, ttl_s=60)  # step-b's claim lapsed (killed while holding it)
    assert lease.release("step-a")


class SlowLauncher:
    """Records launches and counts them as active at once, taking its time to launch (as Batch's
    SubmitJob does), so that two steps counting active workers would both see none started."""

    def __init__(self) -> None:
        self.started: Counter[str] = Counter()
        self.lock = threading.Lock()

    def launch(self, request: LaunchRequest) -> list[str]:
        time.sleep(0.5)
        with self.lock:
            self.started[request.job_definition] += request.array_size
        return [f"{request.job_definition}-{i}" for i in range(request.array_size)]

    def active(self, job_definition: str) -> int:
        with self.lock:
            return self.started[job_definition]


@pytest.fixture()
def deep_work_queue(world: World) -> Iterator[str]:
    """ComputeRadiance's work queues of a private stack name, 20 messages waiting: the work queue's backlog.

    Returns the stack name."""
    stack = f"launch-lease-{uuid.uuid4().hex[:8]}"
    url = world.sqs.create_queue(QueueName=work_queues.queue_name(stack, "ComputeRadiance"))["QueueUrl"]
    dead = world.sqs.create_queue(QueueName=work_queues.dead_letter_queue_name(stack, "ComputeRadiance"))["QueueUrl"]
    for batch in range(2):
        entries = [{"Id": str(i), "MessageBody": f"{batch}-{i}"} for i in range(10)]
        world.sqs.send_message_batch(QueueUrl=url, Entries=entries)
    yield stack
    world.sqs.delete_queue(QueueUrl=url)
    world.sqs.delete_queue(QueueUrl=dead)


def test_racing_steps_start_no_more_than_the_cap(world: World, deep_work_queue: str) -> None:
    ctx = world.context(max_job_workers=3, max_index_workers=1)
    empty = world.sqs.create_queue(QueueName=f"launch-lease-empty-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        settings = dataclasses.replace(ctx.settings, stack_name=deep_work_queue, index_queue_url=empty)
        ctx = dataclasses.replace(ctx, settings=settings)
        launcher = SlowLauncher()
        steps = [Step(ctx, launcher=launcher) for _ in range(3)]
        reports = [StepReport(started_at=time.time()) for _ in steps]
        # One open ComputeRadiance job: its definition's pool drains the deep queue.
        nothing_loaded: Any = SimpleNamespace(files={}, jobs={"a-job": {JobAttr.DEFINITION: "ComputeRadiance"}})
        threads = [
            threading.Thread(target=step.launching.launch_workers, args=(nothing_loaded, report))
            for step, report in zip(steps, reports, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert launcher.started["ComputeRadiance"] == 3  # the cap, not 3 per step
        assert sum(r.launch_deferred for r in reports) >= 1  # someone waited its turn
        assert launcher.started[JobDefinitionName.INDEX_FILE.value] == 0
    finally:
        world.sqs.delete_queue(QueueUrl=empty)
