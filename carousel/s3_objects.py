"""The S3 calls of a carousel step on an archived object: RestoreObject and HeadObject.

`restore_object` asks for (or extends) a restored copy, retrying throttling; `head_restore` says
what S3 holds now (`carousel.restore.observe_head`), a 404 being an object gone; `s3_answer` is
S3's refusal as evidence recorded on a file.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from carousel.restore import ObservedRestore, object_missing, observe_head
from datacarousel.archive import error_code, is_not_found

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import TierType

log = logging.getLogger(__name__)

THROTTLING_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)
RESTORE_DONE_CODES = frozenset({"RestoreAlreadyInProgress"})


def _throttled(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in THROTTLING_CODES


@retry(
    retry=retry_if_exception(_throttled),
    stop=stop_after_attempt(6),
    wait=wait_exponential_jitter(initial=1, max=30),
    reraise=True,
)
def restore_object(s3: S3Client, bucket: str, key: str, days: int, tier: TierType) -> str:
    """RestoreObject; 'accepted' (202), 'extended' (200: a copy existed) or 'in-progress'. Throttling is retried
    (botocore's standard retries first, then these, with backoff)."""
    try:
        response = s3.restore_object(
            Bucket=bucket, Key=key, RestoreRequest={"Days": int(days), "GlacierJobParameters": {"Tier": tier}}
        )
    except ClientError as exc:
        if error_code(exc) in RESTORE_DONE_CODES:
            return "in-progress"
        raise
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 202))
    return "extended" if status == 200 else "accepted"


def s3_answer(call: str, exc: ClientError) -> str:
    """What S3 answered, as evidence: e.g. "HeadObject answered HTTP 404 (404)"."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    return f"{call} answered HTTP {status} ({error_code(exc) or '-'})"


def head_restore(s3: S3Client, bucket: str, key: str, now: float) -> ObservedRestore:
    """What S3 says about the object (`restore.observe_head`: its storage class, then its `Restore` header);
    MISSING when HeadObject answers 404: the object is gone, whatever a restore event said."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            log.warning("head s3://%s/%s: no such object", bucket, key)
            return object_missing(bucket, key, s3_answer("HeadObject", exc), now)
        raise
    return observe_head(head, now)
