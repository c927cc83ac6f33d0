"""DynamoDB items as the carousel writes them: ISO times, one conditional UpdateItem, paged queries, bounded batch puts.

Times are stored as ISO 8601 UTC text (`files_table.iso`), like the rest of the files table; the
planner's POSIX seconds are converted here, at the edge. A write is one conditional UpdateItem: a
condition that fails means another writer moved the item first (`False`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from datacarousel.files_table import Expr, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


# --- time conversions ----------------------------------------------------------------------


def to_seconds(value: Any) -> float | None:
    """An item's time attribute (ISO text, or a number of POSIX seconds) -> POSIX seconds; None if unset."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        log.warning("unparseable time attribute %r: treated as unset", text[:64])
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --- expressions ---------------------------------------------------------------------------


def _conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def update(
    ddb: DynamoDBClient,
    table: str,
    key: Mapping[str, Any],
    expr: Expr,
    *,
    set_: Mapping[str, Any] | None = None,
    extra_set: Sequence[str] = (),
    remove: Sequence[str] = (),
    condition: str,
) -> bool:
    """One conditional UpdateItem; False when the condition does not hold."""
    clauses = [f"{expr.name(k)} = {expr.value(v)}" for k, v in (set_ or {}).items()] + list(extra_set)
    text = ""
    if clauses:
        text = "SET " + ", ".join(clauses)
    if remove:
        text += " REMOVE " + ", ".join(expr.name(r) for r in remove)
    try:
        ddb.update_item(
            TableName=table,
            Key={k: serialize(v) for k, v in key.items()},
            UpdateExpression=text.strip(),
            ConditionExpression=condition,
            **expr.params(),
        )
    except ClientError as exc:
        if _conditional_failure(exc):
            return False
        raise
    return True
