"""The carousel end to end on the embedded environment: two overlapping jobs, real workers, racing steps.

moto's server and a real HSDS server; the stack's own buckets, queues and tables; synthetic tiny
orbits uploaded as DEEP_ARCHIVE with a restore delay set through moto's state manager; index_file,
record_metadata and ComputeRadiance run as local processes started by the step's launcher.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from batch_jobs.compute_radiance.result import load_npz
from carousel import jobs, status
from carousel.query import JobQuery
from carousel.step import Step
from datacarousel import aws, hsds, naming, registry
from datacarousel.contract import Env, FileAttr, JobFileAttr, JobFileState, JobState
from datacarousel.messages import IndexRequest, ReduceRequest, WorkItem, parse_job_message
from tests.carousel.integration.carousel_world import JUNE_2014, Calls, World, job_state, restore_counts, steps_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORBITS = (JUNE_2014, JUNE_2014 + 1, JUNE_2014 + 2)
PREFIX = "carousel-it/flow/"
DELAY_S = 6.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_two_overlapping_jobs_share_each_restore_and_complete(world: World, launcher: Any, no_scan: list[str]) -> None:
    world.set_restore_delay(DELAY_S)
    try:
        names = world.stage(ORBITS, PREFIX)
        uploaded = time.monotonic()  # after the last upload
        keys = [naming.archive_key(naming.BasicFusionName.parse(n), PREFIX) for n in names]
        sizes = [world.s3.head_object(Bucket=world.archive, Key=k)["ContentLength"] for k in keys]
        ctx = world.context(probe_after_s=2.0)
        assert world.inventory(ctx, PREFIX).created == 3

        a = jobs.submit(
            ctx.tables,
            ctx.config,
            owner="alice",
            definition=registry.get("ComputeRadiance"),
            query=JobQuery(orbit_min=ORBITS[0], orbit_max=ORBITS[1]),
            parameters={"resolution": 5},
        )
        b = jobs.submit(
            ctx.tables,
            ctx.config,
            owner="bob",
            definition=registry.get("ComputeRadiance"),
            query=JobQuery(orbit_min=ORBITS[1], orbit_max=ORBITS[2]),
            parameters={"resolution": 5},
        )
        # The submission answers at once: files, bytes, what is readable, cost and start.
        assert (a.estimate.file_count, a.estimate.total_bytes) == (2, sizes[0] + sizes[1])
        assert a.estimate.readable_files == 0 and a.estimate.to_restore_files == 2
        assert a.estimate.estimated_cost.total > 0 and a.estimate.estimated_start is not None
        assert b.estimate.shared_files == 1  # the middle orbit: alice waits for it too
        assert b.estimate.estimated_cost.total < b.estimate.estimated_cost_alone.total

        # Two steps, each with its own clients, race in every round.
        calls = Calls()
        steps = []
        for _ in range(2):
            step_ctx = world.context(probe_after_s=2.0)
            calls.watch(step_ctx.s3, "RestoreObject")
            calls.watch(step_ctx.sqs, "SendMessage")
            steps.append(Step(step_ctx, launcher=launcher))
        heads: dict[str, list[str]] = defaultdict(list)  # every Restore header the steps saw

        def seen(parsed: dict[str, Any], **_: Any) -> None:
            heads[parsed.get("ETag", "")].append(parsed.get("Restore", ""))

        for step in steps:
            step.s3.meta.events.register("after-call.s3.HeadObject", seen)
        checker = aws.client("s3")
        released_when: list[str] = []  # the object's Restore header at the moment its WorkItem is sent

        def at_send(op: str, params: dict[str, Any]) -> bool:
            if op == "SendMessage" and params["QueueUrl"] == world.work_queue.url:
                item = parse_job_message(params["MessageBody"])
                if isinstance(item, WorkItem):
                    released_when.append(checker.head_object(Bucket=item.bucket, Key=item.key).get("Restore", ""))
            return False

        calls.fail = at_send
        # moto counts the delay from the upload: restore once it has passed, so each copy takes DELAY_S more.
        time.sleep(max(0.0, DELAY_S + 0.5 - (time.monotonic() - uploaded)))
        rounds = steps_until(
            steps,
            lambda: job_state(ctx, a.job_id) is JobState.COMPLETE and job_state(ctx, b.job_id) is JobState.COMPLETE,
            timeout=240,
            pause=1.0,
        )
    finally:
        world.set_restore_delay(None)

    # Each file restored exactly once, though two jobs wanted the middle one and two steps raced.
    assert calls.restores() == Counter(dict.fromkeys(keys, 1))
    assert restore_counts(ctx, names) == dict.fromkeys(names, 1)
    # The delay was honoured: the steps saw every copy still being restored, and released none before it was readable.
    ongoing = [h for hs in heads.values() for h in hs if 'ongoing-request="true"' in h]
    assert len({etag for etag, hs in heads.items() if any('ongoing-request="true"' in h for h in hs)}) == 3, heads
    assert ongoing and released_when and all('ongoing-request="false"' in h for h in released_when)
    # Indexed once: one index request per file.
    index_requests = [IndexRequest.from_json(body) for body in calls.sent(world.env[Env.INDEX_QUEUE_URL])]
    assert Counter(r.key for r in index_requests) == Counter(dict.fromkeys(keys, 1))
    # Computed once per job: one WorkItem per (job, file), with the job's parameters.
    sent = [parse_job_message(body) for body in calls.sent(world.work_queue.url)]
    items = [m for m in sent if isinstance(m, WorkItem)]
    # Reduced once per job: the steps sent one ReduceRequest per job (a worker composed its months).
    assert Counter(m.job_id for m in sent if isinstance(m, ReduceRequest)) == Counter({a.job_id: 1, b.job_id: 1})
    wanted = {(a.job_id, names[0]), (a.job_id, names[1]), (b.job_id, names[1]), (b.job_id, names[2])}
    assert Counter((i.job_id, i.file_name) for i in items) == Counter(dict.fromkeys(wanted, 1))
    wanted_parameters = registry.get("ComputeRadiance").validate({"resolution": 5})  # defaults filled in
    assert all(i.parameters == wanted_parameters for i in items)
    assert all(i.domain for i in items)  # released only once indexed

    for job, mine in ((a.job_id, names[:2]), (b.job_id, names[1:])):
        for name in mine:
            key = naming.result_key(job, naming.BasicFusionName.parse(name))
            assert world.s3.head_object(Bucket=world.results, Key=key)["ContentLength"] > 0
            row = next(r for r in ctx.tables.job_files.of_job(job) if r[JobFileAttr.FILE_NAME] == name)
            assert row[JobFileAttr.STATE] == JobFileState.DONE.value and row[JobFileAttr.RESULT_KEY] == key
        composite = load_npz(
            world.s3.get_object(Bucket=world.results, Key=naming.composite_key(job, "2014.06"))["Body"].read()
        )
        assert int(composite["n_orbits"]) == 2
        for instrument in ("modis", "misr", "ceres"):
            png_key = naming.composite_key(job, "2014.06", f"_{instrument}.png")
            assert world.s3.get_object(Bucket=world.results, Key=png_key)["Body"].read()[:8] == PNG_MAGIC
        shown = status.job_status(ctx.tables, ctx.config, job)
        assert shown["state"] == "COMPLETE" and shown["files"]["done"] == 2 and shown["files"]["failed"] == 0
        assert shown["cost_so_far"]["total"] > 0 and shown["eta"] is None
        assert naming.composite_key(job, "2014.06") in shown["composites"]
    for name in names:
        item = world.file_item(ctx, name)
        assert item[FileAttr.STATE] == "INDEXED" and hsds.domain_exists(item[FileAttr.DOMAIN])
    assert rounds >= 3 and not no_scan
