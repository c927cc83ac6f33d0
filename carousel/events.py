"""S3 restore events as they reach the restore-events queue: parsing (pure).

A message body is an S3 event notification (`{"Records": [...]}`), or S3's
`s3:TestEvent` (no records). Each record names the bucket, the URL-encoded key,
the event (`ObjectRestore:Post`, `ObjectRestore:Completed`, `ObjectRestore:Delete`)
and its time; a Completed record may carry the copy's expiry
(`glacierEventData.restoreEventData.lifecycleRestorationExpiryTime`).
Events are hints only: the step looks at the object itself (HeadObject) before
changing anything, so a lost, duplicated or reordered event changes nothing.
HeadObject's answer wins (`carousel.restore.observe_head`): a 404 means the
object is gone — its file FAILS with the key and that answer, it is never made
RESTORED by a Completed event —, and an object whose storage class is not an
archive class (STANDARD, ...) has no restore to complete or expire: an event
about it changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from carousel.restore import RestoreEvent, RestoreEventKind
from datacarousel.errors import BadFileName, MalformedMessage
from datacarousel.naming import BasicFusionName

_KINDS = {kind.value: kind for kind in RestoreEventKind}


@dataclass(frozen=True)
class ParsedEvent:
    bucket: str
    key: str
    event: RestoreEvent


def _time(text: Any) -> float:
    if not isinstance(text, str) or not text:
        raise ValueError("missing time")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_event_message(body: str) -> list[ParsedEvent]:
    """The restore events of one message; `MalformedMessage` when the body is no S3 event notification.

    Records of other events (e.g. ObjectCreated) and objects that are not BasicFusion
    files are ignored (an empty list: nothing to record).
    """
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise MalformedMessage(f"restore event: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise MalformedMessage(f"restore event: expected a JSON object, got {type(raw).__name__}")
    if raw.get("Event") == "s3:TestEvent":
        return []
    records = raw.get("Records")
    if not isinstance(records, list):
        raise MalformedMessage("restore event: no 'Records' list")
    out: list[ParsedEvent] = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise MalformedMessage(f"restore event: record {i} is not an object")
        name = str(record.get("eventName", ""))
        kind = _KINDS.get(name.removeprefix("s3:"))
        if kind is None:
            continue
        try:
            s3 = record["s3"]
            bucket = str(s3["bucket"]["name"])
            key = unquote_plus(str(s3["object"]["key"]))
            event_time = _time(record.get("eventTime"))
            expiry_text = (
                record.get("glacierEventData", {}).get("restoreEventData", {}).get("lifecycleRestorationExpiryTime")
            )
            expiry = _time(expiry_text) if expiry_text else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedMessage(f"restore event: record {i} is incomplete or malformed: {exc!r}") from exc
        try:
            file_name = BasicFusionName.parse(key).file_name
        except BadFileName:
            continue
        out.append(ParsedEvent(bucket, key, RestoreEvent(file_name, kind, event_time, expiry)))
    return out
