"""The queue worker framework against real SQS semantics (moto server of the embedded environment)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from datacarousel import aws
from datacarousel.contract import FAILURE_REASON_ATTRIBUTE
from datacarousel.errors import BadFileName, BadInput, MalformedMessage, TransientError
from datacarousel.queue_worker import DrainReport, drain
from datacarousel.work_queues import WorkQueues

pytestmark = pytest.mark.integration


@pytest.fixture()
def sqs(local_env: Any) -> Any:
    return aws.client("sqs")


@pytest.fixture()
def queues(sqs: Any, local_env: Any) -> Iterator[tuple[str, str]]:
    """ComputeRadiance's work queue and its dead-letter queue, emptied before and after the test."""
    radiance = WorkQueues(sqs, local_env.env["DC_STACK_NAME"]).of("ComputeRadiance")
    queue_url, dlq_url = radiance.url, radiance.dead_letter_url
    for url in (queue_url, dlq_url):
        _empty(sqs, url)
    yield queue_url, dlq_url
    for url in (queue_url, dlq_url):
        _empty(sqs, url)


def _empty(sqs: Any, queue_url: str, timeout: float = 10.0) -> None:
    """Delete every message, waiting for in-flight ones to return (PurgeQueue is limited to one a minute)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _receive_all(sqs, queue_url)
        if _counts(sqs, queue_url) == (0, 0):
            return
        time.sleep(0.2)
    raise AssertionError(f"{queue_url} still holds messages in flight after {timeout} s")


def _send(sqs: Any, queue_url: str, body: str) -> None:
    params: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
    if queue_url.endswith(".fifo"):
        params["MessageGroupId"] = uuid.uuid4().hex  # independent messages
        params["MessageDeduplicationId"] = uuid.uuid4().hex
    sqs.send_message(**params)


def _counts(sqs: Any, queue_url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return out
        out += got
        for m in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_success_deletes_the_message(sqs: Any, queues: tuple[str, str]) -> None:
    queue_url, dlq_url = queues
    for i in range(3):
        _send(sqs, queue_url, f"good-{i}")
    seen: list[str] = []
    report = drain(sqs, queue_url, dlq_url, seen.append, wait_seconds=0, visibility_timeout=5)
    assert sorted(seen) == ["good-0", "good-1", "good-2"]
    assert (report.received, report.processed, report.dead_lettered, report.left) == (3, 3, 0, 0)
    assert _counts(sqs, queue_url) == (0, 0)
    assert _counts(sqs, dlq_url) == (0, 0)


@pytest.mark.parametrize("error", [MalformedMessage, BadInput, BadFileName])
def test_poison_goes_to_the_dlq_with_its_reason(sqs: Any, queues: tuple[str, str], error: type[Exception]) -> None:
    queue_url, dlq_url = queues
    _send(sqs, queue_url, "poison")

    def handle(body: str) -> None:
        raise error(f"cannot ever work: {body}")

    report = drain(sqs, queue_url, dlq_url, handle, wait_seconds=0, visibility_timeout=5)
    assert (report.processed, report.dead_lettered, report.left) == (0, 1, 0)
    assert _counts(sqs, queue_url) == (0, 0)
    dead = _receive_all(sqs, dlq_url)
    assert [m["Body"] for m in dead] == ["poison"]
    attrs = dead[0]["MessageAttributes"]
    assert attrs[FAILURE_REASON_ATTRIBUTE]["StringValue"] == "cannot ever work: poison"
    assert attrs["ErrorType"]["StringValue"] == error.__name__
    assert report.failures[0].reason == "cannot ever work: poison"


@pytest.mark.parametrize("error", [TransientError, RuntimeError, KeyError])
def test_transient_and_unexpected_errors_leave_the_message(
    sqs: Any, queues: tuple[str, str], error: type[Exception]
) -> None:
    queue_url, dlq_url = queues
    _send(sqs, queue_url, "retry-me")

    def handle(body: str) -> None:
        raise error("briefly down")

    report = drain(sqs, queue_url, dlq_url, handle, wait_seconds=0, visibility_timeout=1)
    assert report.left >= 1 and report.processed == 0 and report.dead_lettered == 0
    assert _counts(sqs, dlq_url) == (0, 0)
    # It comes back after its visibility timeout and can then succeed.
    time.sleep(1.5)
    seen: list[str] = []
    report = drain(sqs, queue_url, dlq_url, seen.append, wait_seconds=1, visibility_timeout=5)
    assert seen == ["retry-me"] and report.processed == 1
    assert _counts(sqs, queue_url) == (0, 0)


def test_heartbeat_keeps_a_long_message_invisible(sqs: Any, queues: tuple[str, str]) -> None:
    queue_url, dlq_url = queues
    _send(sqs, queue_url, "long")
    stolen: list[str] = []
    started = threading.Event()

    def handle(body: str) -> None:
        started.set()
        deadline = time.monotonic() + 4.0  # four visibility timeouts
        while time.monotonic() < deadline:
            got = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0, VisibilityTimeout=1).get("Messages", [])
            stolen.extend(m["Body"] for m in got)
            time.sleep(0.3)

    report = drain(sqs, queue_url, dlq_url, handle, wait_seconds=0, visibility_timeout=1, heartbeat_interval=0.3)
    assert started.is_set()
    assert stolen == [], "another consumer received the message while it was being handled"
    assert report.processed == 1
    assert _counts(sqs, queue_url) == (0, 0)


def test_one_bad_message_never_stops_the_drain(sqs: Any, queues: tuple[str, str]) -> None:
    queue_url, dlq_url = queues
    bodies = ["good-1", "malformed", "transient", "good-2", "crash", "good-3"]
    for body in bodies:
        _send(sqs, queue_url, body)
    done: list[str] = []

    def handle(body: str) -> None:
        if body == "malformed":
            raise MalformedMessage("not JSON")
        if body == "transient":
            raise TransientError("HSDS down")
        if body == "crash":
            raise ZeroDivisionError("bug")
        done.append(body)

    report = drain(sqs, queue_url, dlq_url, handle, wait_seconds=0, visibility_timeout=2)
    assert sorted(done) == ["good-1", "good-2", "good-3"]
    assert (report.processed, report.dead_lettered) == (3, 1)
    assert report.left >= 2  # the left ones may come back once more within the drain
    assert report.received == report.processed + report.dead_lettered + report.left
    assert [m["Body"] for m in _receive_all(sqs, dlq_url)] == ["malformed"]
    # The two left messages were not lost: they come back after their visibility timeout.
    time.sleep(2.5)
    assert sorted(m["Body"] for m in _receive_all(sqs, queue_url)) == ["crash", "transient"]


def test_max_messages_bounds_the_drain(sqs: Any, queues: tuple[str, str]) -> None:
    queue_url, dlq_url = queues
    for i in range(4):
        _send(sqs, queue_url, f"m{i}")
    report = drain(sqs, queue_url, dlq_url, lambda body: None, max_messages=2, wait_seconds=0, visibility_timeout=5)
    assert report.received == 2 and report.processed == 2
    assert _counts(sqs, queue_url) == (2, 0)


def test_a_failed_dead_letter_send_leaves_the_message(sqs: Any, queues: tuple[str, str]) -> None:
    queue_url, dlq_url = queues
    _send(sqs, queue_url, "poison")
    missing_dlq = dlq_url.rsplit("/", 1)[0] + "/no-such-queue-" + uuid.uuid4().hex[:8]
    if dlq_url.endswith(".fifo"):
        missing_dlq += ".fifo"

    def handle(body: str) -> None:
        raise BadInput("never")

    report = drain(sqs, queue_url, missing_dlq, handle, wait_seconds=0, visibility_timeout=2)
    assert report.left >= 1 and report.dead_lettered == 0
    assert _counts(sqs, queue_url) == (0, 1)


def test_report_counts_add_up() -> None:
    report = DrainReport(received=5, processed=2, dead_lettered=1, left=2)
    assert report.as_dict()["received"] == report.processed + report.dead_lettered + report.left
