"""The carousel under faults: duplicated, lost, lying and malformed restore events; an expired copy;
a step killed halfway and run again."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import pytest

from carousel import jobs
from carousel.query import JobQuery
from carousel.step import MAX_INDEX_REDRIVES, Step
from carousel.store import iso_seconds, to_seconds
from datacarousel import hsds, naming, registry
from datacarousel.contract import (
    DEFAULT_PROBE_AFTER_S,
    FAILURE_REASON_ATTRIBUTE,
    Env,
    FileAttr,
    FileState,
    JobDefinitionName,
    JobFileAttr,
    JobFileState,
    JobState,
)
from datacarousel.messages import IndexRequest, WorkItem, parse_job_message
from tests.carousel.integration.carousel_world import (
    JUNE_2014,
    Calls,
    OnlyLauncher,
    World,
    job_state,
    restore_counts,
    steps_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def s3_event(bucket: str, key: str, event: str = "ObjectRestore:Completed") -> str:
    """An S3 event notification as S3 sends it to SQS."""
    now = datetime.now(UTC)
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "eventName": event,
                    "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1}},
                    "glacierEventData": {
                        "restoreEventData": {
                            "lifecycleRestorationExpiryTime": "2099-01-01T00:00:00.000Z",
                            "lifecycleRestoreStorageClass": "DEEP_ARCHIVE",
                        }
                    },
                }
            ]
        }
    )


def submit(ctx: Any, owner: str, first: int, last: int) -> jobs.Submission:
    query = JobQuery(orbit_min=first, orbit_max=last)
    return jobs.submit(ctx.tables, ctx.config, owner=owner, definition=registry.get("ComputeRadiance"), query=query)


def set_expiry(ctx: Any, name: str, when: float) -> None:
    """Move a file's recorded copy expiry (moto keeps a restored copy for its whole Days: time is simulated)."""
    ctx.tables.files.ddb.update_item(
        TableName=ctx.tables.files.table,
        Key={FileAttr.FILE_NAME: {"S": name}},
        UpdateExpression="SET #e = :e",
        ExpressionAttributeNames={"#e": FileAttr.RESTORE_EXPIRY},
        ExpressionAttributeValues={":e": {"S": iso_seconds(when)}},
    )


def job_files(ctx: Any, job_id: str) -> dict[str, dict[str, Any]]:
    return {r[JobFileAttr.FILE_NAME]: r for r in ctx.tables.job_files.of_job(job_id)}


def queue_bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return out
        out.extend(batch)


def test_restore_events_are_hints_duplicates_lies_and_losses_change_nothing(world: World, no_scan: list[str]) -> None:
    prefix = "carousel-it/events/"
    x, y, z = world.stage([JUNE_2014 + 10, JUNE_2014 + 11, JUNE_2014 + 12], prefix)
    key = {n: naming.archive_key(naming.BasicFusionName.parse(n), prefix) for n in (x, y, z)}
    # AWS's default probing (`up`'s env file probes after seconds): only an event (or a probe 6 h later) makes
    # the step look
    ctx = world.context(probe_after_s=DEFAULT_PROBE_AFTER_S)
    world.inventory(ctx, prefix)
    job = submit(ctx, "erin", JUNE_2014 + 10, JUNE_2014 + 11)
    step = Step(ctx)
    try:
        step.run()  # restores x and y; also consumes whatever earlier tests left on the events queue
        assert {n: world.file_item(ctx, n)[FileAttr.STATE] for n in (x, y, z)} == {
            x: "RESTORING",
            y: "RESTORING",
            z: "ARCHIVED",  # no job wants it
        }
        before = {n: int(world.file_item(ctx, n)[FileAttr.STATE_VERSION]) for n in (x, y, z)}
        events_url = world.env[Env.RESTORE_EVENTS_QUEUE_URL]
        # x's completion arrives twice; z's "completion" is a lie (it was never restored); one body is garbage.
        mine = [s3_event(world.archive, key[x]), s3_event(world.archive, key[x]), s3_event(world.archive, key[z])]
        garbage = f"not an event {time.time()}"
        for body in [*mine, garbage]:
            world.sqs.send_message(QueueUrl=events_url, MessageBody=body)

        report = step.run()
        # (moto also sends the real completion events once it is asked about an object: more may arrive.)
        assert report.events_received >= 4 and report.events_deleted >= 3 and report.events_malformed == 1
        after = {n: world.file_item(ctx, n) for n in (x, y, z)}
        assert after[x][FileAttr.STATE] == "RESTORED" and int(after[x][FileAttr.STATE_VERSION]) == before[x] + 1
        assert after[y][FileAttr.STATE] == "RESTORING" and int(after[y][FileAttr.STATE_VERSION]) == before[y]  # lost
        assert after[z][FileAttr.STATE] == "ARCHIVED" and int(after[z][FileAttr.STATE_VERSION]) == before[z]  # a lie
        left = queue_bodies(world.sqs, events_url)
        assert not [m for m in left if m["Body"] in mine]  # consumed: recorded, then deleted
        dead = [m for m in queue_bodies(world.sqs, world.env[Env.RESTORE_EVENTS_DLQ_URL]) if m["Body"] == garbage]
        assert len(dead) == 1
        assert "not valid JSON" in dead[0]["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]
        for message in left:  # what moto sent meanwhile goes back for the next step
            world.sqs.change_message_visibility(
                QueueUrl=events_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )

        # The same completion again, later: nothing changes.
        world.sqs.send_message(QueueUrl=events_url, MessageBody=s3_event(world.archive, key[x]))
        step.run()
        assert int(world.file_item(ctx, x)[FileAttr.STATE_VERSION]) == before[x] + 1

        # y's event was lost: once its restore is older than the tier's probe time, the step looks by itself.
        step.run(now=time.time() + 7 * 3600)
        assert world.file_item(ctx, y)[FileAttr.STATE] == "RESTORED"
        assert restore_counts(ctx, [x, y, z]) == {x: 1, y: 1, z: 0}

        # Leases: x's copy has an hour left and the job still needs it: the step renews it (RestoreObject again).
        calls = Calls()
        calls.watch(ctx.s3, "RestoreObject")
        set_expiry(ctx, x, time.time() + 3600)
        assert step.run().renewals >= 1
        assert calls.restores()[key[x]] == 1
        renewed = world.file_item(ctx, x)
        assert (to_seconds(renewed[FileAttr.RESTORE_EXPIRY]) or 0.0) > time.time() + 6 * 86_400  # 7 restore days
        assert int(renewed[FileAttr.RESTORE_COUNT]) == 1  # a renewal is no new restore
    finally:
        jobs.cancel(ctx.tables, job.job_id)  # nothing drains this test's index requests into a finished job
    assert not no_scan


def test_expired_copy_is_invalidated_and_the_job_still_needing_it_waits_then_completes(
    world: World, launcher: Any, no_scan: list[str]
) -> None:
    prefix = "carousel-it/expiry/"
    (name,) = world.stage([JUNE_2014 + 20], prefix)
    ctx = world.context(probe_after_s=2.0)
    world.inventory(ctx, prefix)
    job = submit(ctx, "frank", JUNE_2014 + 20, JUNE_2014 + 20)
    # Phase 1: restore, index and release, but hold the job's workers back (the job still needs the file).
    held = Step(
        ctx,
        launcher=OnlyLauncher(launcher, {JobDefinitionName.INDEX_FILE.value, JobDefinitionName.RECORD_METADATA.value}),
    )
    steps_until([held], lambda: job_files(ctx, job.job_id)[name][JobFileAttr.STATE] == "QUEUED", timeout=120)
    domain = world.file_item(ctx, name)[FileAttr.DOMAIN]
    assert hsds.domain_exists(domain)

    # The copy's expiry date arrives. (moto keeps a restored copy for its whole Days; the recorded
    # expiry is moved into the past, as a day passing would.)
    set_expiry(ctx, name, time.time() - 60)
    report = held.run()
    assert report.invalidated == 1
    assert not hsds.domain_exists(domain)  # the index of an expired copy is gone
    item = world.file_item(ctx, name)
    assert FileAttr.DOMAIN not in item and item[FileAttr.STATE] in ("ARCHIVED", "RESTORING")
    assert job_files(ctx, job.job_id)[name][JobFileAttr.STATE] == "WAITING"  # waits for the file again

    # Phase 2: the carousel restores it again for the waiting job, which then completes.
    steps_until([Step(ctx, launcher=launcher)], lambda: job_state(ctx, job.job_id) is JobState.COMPLETE, timeout=240)
    assert restore_counts(ctx, [name]) == {name: 2}
    assert job_files(ctx, job.job_id)[name][JobFileAttr.STATE] == "DONE"
    assert hsds.domain_exists(world.file_item(ctx, name)[FileAttr.DOMAIN])
    key = naming.result_key(job.job_id, naming.BasicFusionName.parse(name))
    assert world.s3.head_object(Bucket=world.results, Key=key)["ContentLength"] > 0
    assert not no_scan


def test_step_killed_halfway_then_run_again_loses_and_repeats_nothing(
    world: World, launcher: Any, no_scan: list[str]
) -> None:
    prefix = "carousel-it/killed/"
    names = world.stage([JUNE_2014 + 30, JUNE_2014 + 31], prefix)
    keys = [naming.archive_key(naming.BasicFusionName.parse(n), prefix) for n in names]
    ctx = world.context(probe_after_s=2.0)
    world.inventory(ctx, prefix)
    job = submit(ctx, "grace", JUNE_2014 + 30, JUNE_2014 + 31)
    calls = Calls()
    calls.watch(ctx.s3, "RestoreObject")
    calls.watch(ctx.sqs, "SendMessage")
    work_url = world.work_queue.url
    step = Step(ctx, launcher=OnlyLauncher(launcher, {JobDefinitionName.INDEX_FILE.value}), pending_release_grace_s=2.0)

    # Killed 1: both restores claimed, the process dies before the second RestoreObject.
    seen = Counter[str]()

    def die_at_second_restore(op: str, params: dict[str, Any]) -> bool:
        seen[op] += 1
        return op == "RestoreObject" and seen[op] == 2

    calls.fail = die_at_second_restore
    with pytest.raises(RuntimeError, match="injected crash"):
        step.run()
    assert {world.file_item(ctx, n)[FileAttr.STATE] for n in names} == {"RESTORING"}
    assert sum(calls.restores().values()) == 1

    # Killed 2: the first release is claimed (QUEUED), the process dies before its WorkItem is sent.
    def die_at_first_work_item(op: str, params: dict[str, Any]) -> bool:
        if op == "SendMessage" and params["QueueUrl"] == work_url:
            calls.fail = None
            return True
        return False

    calls.fail = die_at_first_work_item

    def run_once() -> None:
        try:
            step.run()
        except RuntimeError as exc:
            assert "injected crash" in str(exc)

    deadline = time.monotonic() + 180
    while not all(
        r[JobFileAttr.STATE] == "QUEUED" and JobFileAttr.RELEASE_PENDING_AT not in r
        for r in job_files(ctx, job.job_id).values()
    ):
        assert time.monotonic() < deadline, job_files(ctx, job.job_id)
        run_once()
        time.sleep(1.0)
    assert calls.fail is None  # the release crash did happen

    # Nothing lost, nothing twice: one RestoreObject and one WorkItem per file.
    assert calls.restores() == Counter(dict.fromkeys(keys, 1))
    assert restore_counts(ctx, names) == dict.fromkeys(names, 1)  # the request that never took is not counted
    items = [m for m in map(parse_job_message, calls.sent(work_url)) if isinstance(m, WorkItem)]
    assert Counter(i.file_name for i in items) == Counter(dict.fromkeys(names, 1))

    steps_until([Step(ctx, launcher=launcher)], lambda: job_state(ctx, job.job_id) is JobState.COMPLETE, timeout=240)
    assert {r[JobFileAttr.STATE] for r in job_files(ctx, job.job_id).values()} == {JobFileState.DONE.value}
    assert all(world.file_item(ctx, n)[FileAttr.STATE] == FileState.INDEXED.value for n in names)
    assert not no_scan


def test_dead_lettered_work_and_index_requests_fail_their_job_files_with_the_reason(
    world: World, no_scan: list[str]
) -> None:
    prefix = "carousel-it/dead/"
    bad, slow = world.stage([JUNE_2014 + 50, JUNE_2014 + 51], prefix)
    ctx = world.context()
    world.inventory(ctx, prefix)
    job = submit(ctx, "heidi", JUNE_2014 + 50, JUNE_2014 + 51)
    step = Step(ctx)
    step.run()  # both restoring
    # index_file gave up on `bad` (poison: the reason rides along); `slow`'s analysis found its data corrupt.
    # (Work that failed only transiently is sent again first: tests/carousel/test_step_dead_letters.py.)
    request = IndexRequest(bucket=world.archive, key=naming.archive_key(naming.BasicFusionName.parse(bad), prefix))
    world.sqs.send_message(
        QueueUrl=world.env[Env.INDEX_DLQ_URL],
        MessageBody=request.to_json(),
        MessageAttributes={FAILURE_REASON_ATTRIBUTE: {"DataType": "String", "StringValue": "truncated HDF5 file"}},
    )
    assert ctx.tables.job_files.claim_release(job.job_id, slow, time.time())  # as a release does
    item = WorkItem(
        job_id=job.job_id,
        job_definition="ComputeRadiance",
        file_name=slow,
        bucket=world.archive,
        key=naming.archive_key(naming.BasicFusionName.parse(slow), prefix),
    )
    world.sqs.send_message(
        QueueUrl=world.work_queue.dead_letter_url,
        MessageBody=item.to_json(),
        MessageAttributes={FAILURE_REASON_ATTRIBUTE: {"DataType": "String", "StringValue": "CorruptData: chunk 4096"}},
    )

    report = step.run()
    assert report.failed_files == 1
    assert world.file_item(ctx, bad)[FileAttr.STATE] == "FAILED"
    assert "truncated HDF5 file" in world.file_item(ctx, bad)[FileAttr.ERROR]
    rows = job_files(ctx, job.job_id)
    assert rows[bad][JobFileAttr.STATE] == "FAILED" and "truncated HDF5 file" in rows[bad][JobFileAttr.ERROR]
    assert rows[slow][JobFileAttr.STATE] == "FAILED" and rows[slow][JobFileAttr.ERROR] == "CorruptData: chunk 4096"
    # Recorded, then deleted from the dead-letter queues.
    assert not [m for m in queue_bodies(world.sqs, world.work_queue.dead_letter_url) if m["Body"] == item.to_json()]
    assert not [m for m in queue_bodies(world.sqs, world.env[Env.INDEX_DLQ_URL]) if m["Body"] == request.to_json()]
    step.run()
    assert job_state(ctx, job.job_id) is JobState.COMPLETE  # every file finished (failed): the job is done
    assert not no_scan


def test_an_index_request_dead_lettered_without_reason_is_tried_again_a_few_times(
    world: World, no_scan: list[str]
) -> None:
    """No reason means every receive failed transiently (an HSDS outage): a readable file is good, so it is
    redriven. (Its own orbit: test_analyses_flow indexes JUNE_2014 + 60 under another key.)"""
    prefix = "carousel-it/redrive/"
    (name,) = world.stage([JUNE_2014 + 65], prefix, storage_class="STANDARD")  # readable: RESTORED at inventory
    # Redriven at once (the growing delays are the unit tests'): a delayed message would stay in the shared
    # index queue for 15 minutes, where later tests would find it.
    ctx = world.context(redrive_delays_s=(0,))
    world.inventory(ctx, prefix)
    step = Step(ctx)
    request = IndexRequest(bucket=world.archive, key=naming.archive_key(naming.BasicFusionName.parse(name), prefix))
    for attempt in range(MAX_INDEX_REDRIVES + 1):
        world.sqs.send_message(QueueUrl=world.env[Env.INDEX_DLQ_URL], MessageBody=request.to_json())
        report = step.run()
        redriven = [
            m for m in queue_bodies(world.sqs, world.env[Env.INDEX_QUEUE_URL]) if m["Body"] == request.to_json()
        ]
        if attempt < MAX_INDEX_REDRIVES:
            assert report.redriven == 1 and redriven, f"redrive {attempt + 1} did not send the request back"
            assert world.file_item(ctx, name)[FileAttr.STATE] != FileState.FAILED.value
            assert report.failed_files == 0
        for message in redriven:  # as if index_file failed transiently again until redrive
            world.sqs.delete_message(QueueUrl=world.env[Env.INDEX_QUEUE_URL], ReceiptHandle=message["ReceiptHandle"])
    # After the last redrive, the file fails with the reason.
    item = world.file_item(ctx, name)
    assert item[FileAttr.STATE] == FileState.FAILED.value
    assert "exceeded max receives" in item[FileAttr.ERROR]
    assert int(item[FileAttr.INDEX_REDRIVES]) == MAX_INDEX_REDRIVES
    assert not no_scan


def test_a_stale_index_request_is_repeated_only_once_the_index_queue_is_empty(world: World) -> None:
    prefix = "carousel-it/index-repeat/"
    (name,) = world.stage([JUNE_2014 + 70], prefix)
    key = naming.archive_key(naming.BasicFusionName.parse(name), prefix)
    ctx = world.context(probe_after_s=0.5, index_retry_s=1.0)
    assert world.inventory(ctx, prefix).created == 1
    index_url = world.env[Env.INDEX_QUEUE_URL]

    def drained_keys() -> Counter[str]:
        keys: Counter[str] = Counter()
        while got := world.sqs.receive_message(QueueUrl=index_url, MaxNumberOfMessages=10).get("Messages", []):
            for m in got:
                keys[IndexRequest.from_json(m["Body"]).key] += 1
                world.sqs.delete_message(QueueUrl=index_url, ReceiptHandle=m["ReceiptHandle"])
        return keys

    drained_keys()
    job = submit(ctx, "ivan", JUNE_2014 + 70, JUNE_2014 + 70)
    try:
        step = Step(ctx)  # no launcher: nothing consumes the index queue
        steps_until([step], lambda: FileAttr.INDEX_REQUESTED_AT in world.file_item(ctx, name), timeout=60, pause=0.5)
        time.sleep(1.5)  # the request is now older than index_retry_s, but still in the queue
        held = step.run()
        assert held.index_repeats_held >= 1 and world.file_item(ctx, name)[FileAttr.STATE] == "RESTORED"
        assert drained_keys()[key] == 1  # not repeated while it waited
        # The queue is empty now, as after a claim whose send never happened: the next step repeats it.
        time.sleep(1.5)
        again = step.run()
        assert again.index_requests >= 1 and again.index_repeats_held == 0
        assert drained_keys()[key] == 1
    finally:
        # Its file is never indexed here: the open job would have later tests' steps index and release it.
        jobs.cancel(ctx.tables, job.job_id)
