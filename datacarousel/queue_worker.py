"""Draining an SQS queue at least once, without losing or repeating work.

`drain` receives messages one at a time and hands each body to `handle`:

- `handle` returns: the work is durably done, the message is deleted;
- `handle` raises `MalformedMessage`, `BadInput` or `BadFileName` (poison: it
  can never succeed): the body goes to the dead-letter queue with the reason
  in the message attribute `contract.FAILURE_REASON_ATTRIBUTE`, and only then
  is the original deleted;
- `handle` raises `TransientError` or anything else: the message is left on
  the queue; it returns after its visibility timeout, and SQS's redrive policy
  moves it to the dead-letter queue after `contract.MAX_RECEIVE_COUNT` receives.

While `handle` runs, a heartbeat thread keeps extending the message's
visibility, so a long load is never handed to a second worker. If the worker
dies, the heartbeat dies with it and the message returns to the queue.
One bad message never stops the drain. A receive that fails for now (the
queue unreachable) ends or pauses the drain; one that no later receive fixes
(no credentials, no region, no such queue) is raised, for the worker's edge to
end in one line and exit code 2.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from datacarousel.contract import FAILURE_REASON_ATTRIBUTE
from datacarousel.errors import EXIT_USAGE, BadFileName, BadInput, MalformedMessage, outcome

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

POISON_ERRORS: tuple[type[Exception], ...] = (MalformedMessage, BadInput, BadFileName)
"""Errors that can never succeed on retry: the message goes to the dead-letter queue at once."""

DEFAULT_VISIBILITY_TIMEOUT = 120
DEFAULT_WAIT_SECONDS = 2
MAX_REASON_CHARS = 4000  # a message attribute counts against the 256 KiB message size
SOURCE_QUEUE_ATTRIBUTE = "SourceQueueUrl"
SOURCE_MESSAGE_ID_ATTRIBUTE = "SourceMessageId"
ERROR_TYPE_ATTRIBUTE = "ErrorType"

Handler = Callable[[str], None]


@dataclass
class Failure:
    """One message that did not succeed in this drain."""

    message_id: str
    error_type: str
    reason: str
    dead_lettered: bool


@dataclass
class DrainReport:
    """What one drain did. `received == processed + dead_lettered + left`."""

    received: int = 0
    processed: int = 0
    dead_lettered: int = 0
    left: int = 0
    failures: list[Failure] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "processed": self.processed,
            "dead_lettered": self.dead_lettered,
            "left": self.left,
            "failures": [f.__dict__ for f in self.failures],
        }


def is_fifo(queue_url: str) -> bool:
    return queue_url.endswith(".fifo")


class Heartbeat:
    """Keeps one message invisible to other consumers while it is being worked on.

    Every `interval` seconds it sets the message's visibility timeout to
    `visibility_timeout` seconds from now. A failed extension is logged, never raised.
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        receipt_handle: str,
        visibility_timeout: int,
        interval: float | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._receipt = receipt_handle
        self._timeout = visibility_timeout
        self._interval = interval if interval is not None else max(visibility_timeout / 3.0, 0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-heartbeat", daemon=True)
        self.extensions = 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._queue_url, ReceiptHandle=self._receipt, VisibilityTimeout=self._timeout
                )
                self.extensions += 1
            except (ClientError, BotoCoreError) as exc:
                log.warning("heartbeat: could not extend visibility on %s: %s", self._queue_url, exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _truncate(text: str, limit: int = MAX_REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def send_to_dead_letter_queue(
    sqs: SQSClient, dlq_url: str, body: str, reason: str, *, error_type: str, source_queue_url: str, message_id: str
) -> None:
    """Put `body` on the dead-letter queue, with why it failed and where it came from."""

    def attr(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value or "-"}

    params: dict[str, Any] = {
        "QueueUrl": dlq_url,
        "MessageBody": body if body else "(empty body)",
        "MessageAttributes": {
            FAILURE_REASON_ATTRIBUTE: attr(_truncate(reason)),
            ERROR_TYPE_ATTRIBUTE: attr(error_type),
            SOURCE_QUEUE_ATTRIBUTE: attr(source_queue_url),
            SOURCE_MESSAGE_ID_ATTRIBUTE: attr(message_id),
        },
    }
    if is_fifo(dlq_url):
        params["MessageGroupId"] = "dead-letters"
        params["MessageDeduplicationId"] = message_id[:128]
    sqs.send_message(**params)


def _delete(sqs: SQSClient, queue_url: str, receipt: str, message_id: str) -> None:
    try:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
    except (ClientError, BotoCoreError) as exc:
        # The work is done; a redelivery finds it done (every handler is idempotent).
        log.warning("message %s: done but could not be deleted (it will be redelivered): %s", message_id, exc)


def process_message(
    sqs: SQSClient,
    queue_url: str,
    dlq_url: str,
    handle: Handler,
    message: MessageTypeDef,
    *,
    report: DrainReport,
    visibility_timeout: int,
    heartbeat_interval: float | None = None,
) -> None:
    """Handle one received message and settle it (delete, dead-letter or leave). Never raises `Exception`."""
    body = message.get("Body", "")
    receipt = message["ReceiptHandle"]
    message_id = message.get("MessageId", "?")
    receives = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
    report.received += 1
    started = time.monotonic()
    try:
        with Heartbeat(sqs, queue_url, receipt, visibility_timeout, heartbeat_interval):
            handle(body)
    except POISON_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        try:
            send_to_dead_letter_queue(
                sqs,
                dlq_url,
                body,
                reason,
                error_type=type(exc).__name__,
                source_queue_url=queue_url,
                message_id=message_id,
            )
        except (ClientError, BotoCoreError) as send_exc:
            log.error("message %s: poison (%s) but the DLQ send failed, leaving it: %s", message_id, reason, send_exc)
            report.left += 1
            report.failures.append(Failure(message_id, type(exc).__name__, reason, dead_lettered=False))
            return
        _delete(sqs, queue_url, receipt, message_id)
        report.dead_lettered += 1
        report.failures.append(Failure(message_id, type(exc).__name__, reason, dead_lettered=True))
        log.warning("message %s: dead-lettered: %s: %s", message_id, type(exc).__name__, reason)
    except Exception as exc:  # TransientError or a bug: leave it for redelivery / redrive
        reason = f"{exc}" or type(exc).__name__
        report.left += 1
        report.failures.append(Failure(message_id, type(exc).__name__, reason, dead_lettered=False))
        log.warning(
            "message %s: left on the queue (receive %s): %s: %s", message_id, receives, type(exc).__name__, reason
        )
    else:
        _delete(sqs, queue_url, receipt, message_id)
        report.processed += 1
        log.info("message %s: done in %.2f s (receive %s)", message_id, time.monotonic() - started, receives)


def drain(
    sqs: SQSClient,
    queue_url: str,
    dlq_url: str,
    handle: Handler,
    *,
    max_messages: int | None = None,
    wait_seconds: int = DEFAULT_WAIT_SECONDS,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
    stop_when_empty: bool = True,
    heartbeat_interval: float | None = None,
    stop: threading.Event | None = None,
) -> DrainReport:
    """Receive and handle messages until the queue is empty (or `max_messages`, or `stop` is set).

    `visibility_timeout` is set on every receive and renewed by the heartbeat
    while `handle` runs. Messages are received one at a time, so messages this
    worker has not started stay available to other workers.
    """
    if max_messages is not None and max_messages < 0:
        raise ValueError("max_messages must be >= 0")
    report = DrainReport()
    while max_messages is None or report.received < max_messages:
        if stop is not None and stop.is_set():
            break
        try:
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility_timeout,
                AttributeNames=["ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError) as exc:
            if outcome(exc).code == EXIT_USAGE:
                raise  # no credentials, no region, no such queue: no later receive succeeds (the edge says it)
            # The client already retried with backoff; the queue is unreachable for now.
            log.error("receive from %s failed: %s", queue_url, exc)
            if stop_when_empty:
                break
            time.sleep(min(max(wait_seconds, 1), 20))
            continue
        messages = response.get("Messages", [])
        if not messages:
            if stop_when_empty:
                break
            continue
        for message in messages:
            process_message(
                sqs,
                queue_url,
                dlq_url,
                handle,
                message,
                report=report,
                visibility_timeout=visibility_timeout,
                heartbeat_interval=heartbeat_interval,
            )
    log.info(
        "drained %s: received=%d processed=%d dead_lettered=%d left=%d",
        queue_url,
        report.received,
        report.processed,
        report.dead_lettered,
        report.left,
    )
    return report
