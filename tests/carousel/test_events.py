"""Parsing S3 restore event notifications (what reaches the restore-events queue)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import pytest

from carousel import restore
from carousel.events import parse_event_message
from carousel.model import FileRecord, Snapshot
from carousel.restore import RestoreEventKind, reconcile
from datacarousel import naming
from datacarousel.contract import FileState
from datacarousel.errors import MalformedMessage

NAME = naming.BasicFusionName.for_orbit(76971)
KEY = naming.archive_key(NAME, "archive prefix/")  # a space: S3 URL-encodes keys in events


def record(event: str, key: str = KEY, **extra: Any) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-11-25T10:00:00.000Z",
        "eventName": event,
        "s3": {"bucket": {"name": "archive"}, "object": {"key": quote_plus(key), "size": 10}},
        **extra,
    }


def test_completed_event_names_the_file_its_time_and_expiry() -> None:
    body = json.dumps(
        {
            "Records": [
                record(
                    "ObjectRestore:Completed",
                    glacierEventData={
                        "restoreEventData": {
                            "lifecycleRestorationExpiryTime": "2026-12-02T00:00:00.000Z",
                            "lifecycleRestoreStorageClass": "DEEP_ARCHIVE",
                        }
                    },
                )
            ]
        }
    )
    (parsed,) = parse_event_message(body)
    assert parsed.bucket == "archive" and parsed.key == KEY
    assert parsed.event.file_name == NAME.file_name
    assert parsed.event.kind is RestoreEventKind.COMPLETED
    assert parsed.event.event_time == datetime(2026, 11, 25, 10, tzinfo=UTC).timestamp()
    assert parsed.event.restore_expiry == datetime(2026, 12, 2, tzinfo=UTC).timestamp()


def test_post_and_delete_events_and_the_s3_prefix_form() -> None:
    body = json.dumps({"Records": [record("ObjectRestore:Post"), record("s3:ObjectRestore:Delete")]})
    kinds = [p.event.kind for p in parse_event_message(body)]
    assert kinds == [RestoreEventKind.INITIATED, RestoreEventKind.EXPIRED]


def test_test_events_other_events_and_foreign_keys_carry_nothing() -> None:
    assert parse_event_message(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    body = json.dumps(
        {"Records": [record("ObjectCreated:Put"), record("ObjectRestore:Completed", key="notes/readme.txt")]}
    )
    assert parse_event_message(body) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"foo": 1}', "no 'Records' list"),
        ('{"Records": [3]}', "record 0 is not an object"),
        (json.dumps({"Records": [{"eventName": "ObjectRestore:Completed", "eventTime": "x"}]}), "record 0"),
        (json.dumps({"Records": [{**record("ObjectRestore:Completed"), "eventTime": "yesterday"}]}), "record 0"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(body: str, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        parse_event_message(body)


def _events(*names: str) -> list[Any]:
    body = json.dumps(
        {
            "Records": [
                record(
                    name,
                    glacierEventData={"restoreEventData": {"lifecycleRestorationExpiryTime": "2026-12-02T00:00:00Z"}},
                )
                for name in names
            ]
        }
    )
    return [p.event for p in parse_event_message(body)]


NOW = datetime(2026, 11, 25, 11, tzinfo=UTC).timestamp()


def test_a_restore_event_is_a_hint_and_head_object_the_truth() -> None:
    """The module's contract: the step looks at the object before changing anything. A 404 means the object is
    gone (FAILED, with the evidence), never RESTORED by a Completed event; an object in a readable class has no
    restore to complete or expire, so an event about it changes nothing."""
    events = _events("ObjectRestore:Post", "ObjectRestore:Completed")
    restoring = Snapshot.from_records(
        [FileRecord(NAME.file_name, NAME.orbit, 10, FileState.RESTORING, key=KEY, restore_requested_at=NOW - 86_400)],
        [],
        [],
    )
    (trusted,) = reconcile(restoring, events, {}, NOW)  # alone, a Completed event is believed
    assert trusted.to_state is FileState.RESTORED
    gone = {NAME.file_name: restore.object_missing("archive", KEY, "HeadObject answered HTTP 404 (404)", NOW)}
    (update,) = reconcile(restoring, events, gone, NOW)
    assert update.to_state is FileState.FAILED and KEY in str(update.reason)
    standard = Snapshot.from_records(
        [FileRecord(NAME.file_name, NAME.orbit, 10, FileState.INDEXED, key=KEY, domain="/home/d")], [], []
    )
    deleted = _events("ObjectRestore:Delete")
    assert reconcile(standard, deleted, {}, NOW) == ()
    assert reconcile(standard, deleted, {NAME.file_name: restore.observe_head({}, NOW)}, NOW) == ()
