"""The loader's ledger of the index requests it sent (table `DataCarouselIndexRequests`).

One item per file: the last request sent for it (object version, when, until when it counts).
The loader alone writes these items, so it writes them with BatchWriteItem (25 a call): a put
cannot overwrite another writer's state here, unlike a put on BasicFusionFiles, which the index
and metadata workers update concurrently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from datacarousel.contract import IndexRequestAttr
from datacarousel.files_table import BATCH_WRITE_MAX, UnprocessedWrites, batch_get, batch_put, iso
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

UNPROCESSED_ATTEMPTS = 8


class LedgerWriteError(RuntimeError):
    """DynamoDB kept some ledger writes unprocessed after every retry."""


def ledger_item(
    request: IndexRequest, name: BasicFusionName, now: datetime, requeue_after: timedelta
) -> dict[str, Any]:
    """The ledger item recording that `request` was sent at `now`."""
    return {
        IndexRequestAttr.FILE_NAME: name.file_name,
        IndexRequestAttr.KEY: request.key,
        IndexRequestAttr.ETAG: request.etag,
        IndexRequestAttr.QUEUED_AT: iso(now),
        IndexRequestAttr.EXPIRES_AT: int((now + requeue_after).timestamp()),
    }


class IndexRequestLedger:
    """Adapter over the ledger table (a low-level boto3 DynamoDB client is passed in)."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self.ddb = dynamodb
        self.table = table_name

    def get_many(self, file_names: Iterable[str], attributes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Ledger items by file name (only `attributes` of each, and its name, when given)."""
        return batch_get(self.ddb, self.table, IndexRequestAttr.FILE_NAME, file_names, attributes)

    def record(self, items: Sequence[dict[str, Any]]) -> None:
        """Put up to 25 ledger items in one BatchWriteItem, retrying what DynamoDB leaves unprocessed.

        Raises LedgerWriteError if some stay unprocessed: their requests were sent, so the worst
        outcome is that a later run sends them again, which index_file absorbs.
        """
        if len(items) > BATCH_WRITE_MAX:
            raise ValueError(f"at most {BATCH_WRITE_MAX} items a batch")
        try:
            batch_put(self.ddb, self.table, items, attempts=UNPROCESSED_ATTEMPTS)
        except UnprocessedWrites as exc:
            raise LedgerWriteError(
                f"{exc.left} of {exc.total} ledger writes unprocessed after {exc.attempts} tries"
            ) from exc
