"""`files_table.batch_put`, the one BatchWriteItem loop (job-files, ledger): bounded retries, growing pauses."""

from __future__ import annotations

from typing import Any

import pytest

from datacarousel import files_table
from datacarousel.errors import TransientError


class FakeDynamoDB:
    """BatchWriteItem that leaves the last `stuck` puts of every call unprocessed for the first `refusals` calls."""

    def __init__(self, refusals: int, stuck: int = 1, limit: int = 100) -> None:
        self.refusals = refusals
        self.stuck = stuck
        self.limit = limit
        self.calls: list[int] = []  # puts per call
        self.written: list[dict[str, Any]] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:  # noqa: N803
        (table, requests), *_ = RequestItems.items()
        self.calls.append(len(requests))
        if len(self.calls) > self.limit:
            raise AssertionError(f"BatchWriteItem called {len(self.calls)} times: retried without end")
        if len(self.calls) <= self.refusals:
            done, left = requests[: -self.stuck], requests[-self.stuck :]
        else:
            done, left = requests, []
        self.written += [r["PutRequest"]["Item"] for r in done]
        return {"UnprocessedItems": {table: left} if left else {}}


@pytest.fixture()
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(files_table.time, "sleep", slept.append)
    return slept


def _items(n: int) -> list[dict[str, Any]]:
    return [{"job_id": "job-1", "file_name": f"f{i:03d}"} for i in range(n)]


def test_unprocessed_items_are_sent_again_after_a_growing_pause(pauses: list[float]) -> None:
    ddb: Any = FakeDynamoDB(refusals=3)  # a fake where a DynamoDBClient is expected
    files_table.batch_put(ddb, "t", _items(5))
    assert ddb.calls == [5, 1, 1, 1]
    assert len(ddb.written) == 5
    assert len(pauses) == 3 and pauses == sorted(pauses) and pauses[0] > 0 and pauses[-1] > pauses[0]


def test_items_never_processed_raise_a_transient_error_after_bounded_attempts(pauses: list[float]) -> None:
    ddb: Any = FakeDynamoDB(refusals=10**9)
    with pytest.raises(TransientError, match="1 of 5 puts still unprocessed"):
        files_table.batch_put(ddb, "t", _items(5))
    assert len(ddb.calls) == files_table.BATCH_WRITE_ATTEMPTS
    assert len(pauses) == files_table.BATCH_WRITE_ATTEMPTS - 1
    assert pauses == sorted(pauses) and pauses[-1] > pauses[0]
    assert sum(pauses) < 30, "gives up within seconds"


def test_every_batch_of_25_gets_its_own_attempts(pauses: list[float]) -> None:
    ddb: Any = FakeDynamoDB(refusals=1)
    files_table.batch_put(ddb, "t", _items(60), attempts=2)
    assert ddb.calls == [25, 1, 25, 10]  # the first batch: one refusal, then done; the others at once
    assert sorted(i["file_name"]["S"] for i in ddb.written) == [f"f{i:03d}" for i in range(60)]
    assert len(pauses) == 1
