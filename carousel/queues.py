"""The SQS calls of a carousel step: how deep a queue is, receiving a batch, deleting, redriving.

Small wrappers over the boto3 SQS client, shared by the parts of a step (`carousel.observe` for
restore events, `carousel.dead_letters`, `carousel.apply`, `carousel.launching`), so that each reads
as what it does with a queue, not as SQS request syntax.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from datacarousel.contract import FAILURE_REASON_ATTRIBUTE, SQS_BATCH_SIZE

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

# A dead letter's reason when none was recorded: every receive failed transiently.
EXCEEDED_RECEIVES = "exceeded max receives"
# How much of a dead letter that names no file or job the log keeps (it is deleted after).
UNATTRIBUTED_BODY_CHARS = 2000


def _message_count(sqs: SQSClient, url: str, names: Sequence[QueueAttributeNameType]) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]
    return sum(int(attrs.get(name, 0)) for name in names)


def queue_depth(sqs: SQSClient, url: str) -> int:
    """Messages waiting to be received (what a new worker would find)."""
    return _message_count(sqs, url, ["ApproximateNumberOfMessages"])


def queue_backlog(sqs: SQSClient, url: str) -> int:
    """Messages in the queue: waiting, being worked on (in flight) or delayed."""
    return _message_count(
        sqs,
        url,
        ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
    )


def receive_all(sqs: SQSClient, url: str, *, limit: int, visibility: int) -> list[MessageTypeDef]:
    """Up to `limit` messages (10 a call, no waiting), each hidden for `visibility` seconds."""
    messages: list[MessageTypeDef] = []
    while len(messages) < limit:
        response = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(SQS_BATCH_SIZE, limit - len(messages)),
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        batch = response.get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
    return messages


def failure_reason(message: Mapping[str, Any]) -> str:
    attr = message.get("MessageAttributes", {}).get(FAILURE_REASON_ATTRIBUTE, {})
    return str(attr.get("StringValue") or EXCEEDED_RECEIVES)


def delete_message(sqs: SQSClient, url: str, message: Mapping[str, Any]) -> None:
    try:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    except (ClientError, BotoCoreError) as exc:  # recorded already; a redelivery changes nothing
        log.warning("could not delete message %s from %s: %s", message.get("MessageId"), url, exc)


def drop_unattributed(sqs: SQSClient, url: str, message: Mapping[str, Any], what: str, error: BaseException) -> None:
    """A dead letter that names no file or job: logged at ERROR with its id and (truncated) body, so a
    person can still find it, then deleted, so that later steps do not read it again until retention."""
    body = str(message.get("Body", ""))
    shown = body if len(body) <= UNATTRIBUTED_BODY_CHARS else f"{body[:UNATTRIBUTED_BODY_CHARS]}... ({len(body)} chars)"
    log.error(
        "%s dead letter %s could not be attributed to any file or job (%s: %s); deleted from %s. Its body: %r",
        what,
        message.get("MessageId"),
        type(error).__name__,
        error,
        url,
        shown,
    )
    delete_message(sqs, url, message)


def redrive(
    sqs: SQSClient, url: str, dead_letter_url: str, message: Mapping[str, Any], *, delay: int, what: str
) -> None:
    """Send a dead letter back to its queue after `delay` seconds, then delete it (sent first: a step
    killed in between sends it twice, and every handler is idempotent)."""
    sqs.send_message(QueueUrl=url, MessageBody=message.get("Body", ""), DelaySeconds=delay)
    delete_message(sqs, dead_letter_url, message)
    log.warning("%s: failed transiently at every receive; sent again in %d s", what, delay)
