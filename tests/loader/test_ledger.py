"""The loader's ledger of index requests (table DataCarouselIndexRequests, moto server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from datacarousel import aws
from datacarousel.contract import IndexRequestAttr
from datacarousel.files_table import iso
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key
from datacarousel.times import utcnow
from loader.ledger import BATCH_WRITE_MAX, IndexRequestLedger, LedgerWriteError, ledger_item
from tests.loader.throttled_writes import Withhold

ORBITS = range(62001, 62001 + BATCH_WRITE_MAX)


def _items(now: Any, prefix: str, etag: str = "e1") -> list[dict[str, Any]]:
    out = []
    for orbit in ORBITS:
        name = BasicFusionName.for_orbit(orbit)
        request = IndexRequest(bucket="archive", key=archive_key(name, prefix), size=orbit, etag=etag)
        out.append(ledger_item(request, name, now, timedelta(hours=6)))
    return out


def test_ledger_item_expires_when_the_request_may_be_sent_again() -> None:
    now = utcnow()
    name = BasicFusionName.for_orbit(62000)
    item = ledger_item(IndexRequest(bucket="b", key="k", size=3, etag="e"), name, now, timedelta(hours=6))
    assert item[IndexRequestAttr.FILE_NAME] == name.file_name
    assert item[IndexRequestAttr.QUEUED_AT] == iso(now)
    assert item[IndexRequestAttr.EXPIRES_AT] == int(now.timestamp()) + 6 * 3600


@pytest.mark.integration
class TestLedgerTable:
    @pytest.fixture()
    def ledger(self, local_env: Any) -> Iterator[IndexRequestLedger]:
        table = IndexRequestLedger(aws.client("dynamodb"), local_env.env["DC_INDEX_REQUESTS_TABLE"])
        yield table
        for orbit in ORBITS:
            key = {IndexRequestAttr.FILE_NAME: {"S": BasicFusionName.for_orbit(orbit).file_name}}
            table.ddb.delete_item(TableName=table.table, Key=key)

    def test_records_a_batch_and_reads_it_back(self, ledger: IndexRequestLedger) -> None:
        prefix = f"ledger-{uuid.uuid4().hex[:6]}/"
        items = _items(utcnow(), prefix)
        ledger.record(items)
        got = ledger.get_many(i[IndexRequestAttr.FILE_NAME] for i in items)
        assert got == {i[IndexRequestAttr.FILE_NAME]: i for i in items}
        # A later request for the same file replaces the earlier one (the last request counts).
        ledger.record(_items(utcnow(), prefix, etag="e2"))
        again = ledger.get_many(i[IndexRequestAttr.FILE_NAME] for i in items)
        assert {i[IndexRequestAttr.ETAG] for i in again.values()} == {"e2"} and len(again) == len(items)

    def test_unprocessed_items_are_written_on_a_retry(self, ledger: IndexRequestLedger) -> None:
        items = _items(utcnow(), "ledger-retry/")
        with Withhold(ledger.ddb, ledger.table, times=3, keep=lambda n: n // 2) as withhold:
            ledger.record(items)
        assert withhold.calls == 4  # 25 -> 12 written, 13 back -> 6, 7 back -> 3, 4 back -> all 4
        assert len(ledger.get_many(i[IndexRequestAttr.FILE_NAME] for i in items)) == len(items)

    def test_items_still_unprocessed_after_every_retry_raise(self, ledger: IndexRequestLedger) -> None:
        items = _items(utcnow(), "ledger-fail/")
        with (
            Withhold(ledger.ddb, ledger.table, times=100, keep=lambda n: 1),
            pytest.raises(LedgerWriteError, match="17 of 25 ledger writes unprocessed"),
        ):
            ledger.record(items)  # one item written a try, 8 tries

    def test_more_than_one_batch_is_refused(self, ledger: IndexRequestLedger) -> None:
        with pytest.raises(ValueError, match="at most 25"):
            ledger.record(_items(utcnow(), "x/") + _items(utcnow(), "y/"))
