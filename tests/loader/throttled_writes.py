"""DynamoDB BatchWriteItem leaving items unprocessed, as a throttled table does (botocore event hooks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Withhold:
    """Makes DynamoDB's BatchWriteItem leave items unprocessed, as a throttled table does: on the
    first `times` calls only `keep(n)` of its n items are sent, the rest come back in `UnprocessedItems`.
    `refuse_all`: every item comes back (one is still sent: a BatchWriteItem cannot be empty)."""

    def __init__(
        self, ddb: Any, table: str, *, times: int, keep: Callable[[int], int], refuse_all: bool = False
    ) -> None:
        self.ddb, self.table, self.times, self.keep, self.refuse_all = ddb, table, times, keep, refuse_all
        self.withheld: list[dict[str, Any]] = []
        self.calls = 0

    def before(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls += 1
        requests = params["RequestItems"][self.table]
        if self.calls <= self.times and (len(requests) > 1 or self.refuse_all):
            kept = max(1, self.keep(len(requests)))
            params["RequestItems"][self.table] = requests[:kept]
            self.withheld = list(requests) if self.refuse_all else requests[kept:]
        else:
            self.withheld = []

    def after(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        if self.withheld:
            parsed["UnprocessedItems"] = {self.table: self.withheld}

    def __enter__(self) -> Withhold:
        self.ddb.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.before)
        self.ddb.meta.events.register("after-call.dynamodb.BatchWriteItem", self.after)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ddb.meta.events.unregister("provide-client-params.dynamodb.BatchWriteItem", self.before)
        self.ddb.meta.events.unregister("after-call.dynamodb.BatchWriteItem", self.after)
