"""`python -m datacarousel.local.moto_main -H 127.0.0.1 -p PORT`: moto's server, with two of its
costs brought back to what the real services charge.

moto emulates the APIs faithfully, but two of its costs grow with the data where AWS's do not, and
the carousel's own paths hit both at archive scale:

1. **S3 ranged GET** reads the whole object and slices the range out of it: a 4-byte read of a
   1.35 GB object costs 0.6 s, so a job reading chunks straight from a restored orbit measured
   moto, not itself. Here a plain `Range: bytes=a-b` GET reads only those bytes from the object's
   buffer (same status, headers and body as before; anything else takes moto's own path).
2. **SQS SendMessage** recomputes every queue attribute, including the message counts (a walk
   over every message in the queue), to read one flag: sending N messages costs O(N²). Here the
   send path reads only the flag it needs.

Everything else is moto's code, unchanged; `tests/datacarousel/local/test_moto_main.py` checks
that each patched answer equals moto's own.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from moto.s3 import models as s3_models
from moto.s3 import responses as s3_responses
from moto.server import main as moto_server_main
from moto.sqs import models as sqs_models

log = logging.getLogger(__name__)

_state = threading.local()  # moto's server answers each request on its own thread


class RangeView:
    """An S3 object's bytes as `_handle_range_header` uses them (length, one slice), read lazily."""

    def __init__(self, key: Any) -> None:
        self._key = key

    def __len__(self) -> int:
        return int(self._key.size)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, item: slice) -> bytes:
        if not isinstance(item, slice):
            raise TypeError("a RangeView only serves slices")
        start, stop, step = item.indices(len(self))
        if step != 1 or stop <= start:
            return b""
        with self._key.lock:
            buffer = self._key._value_buffer
            buffer.seek(start)
            return bytes(buffer.read(stop - start))


def _simple_range(headers: Any) -> bool:
    value = (headers.get("range") or headers.get("Range") or "").strip()
    return value.startswith("bytes=") and "," not in value


def patch_s3_ranged_get() -> None:
    value_property: Any = vars(s3_models.FakeKey)["value"]
    get_object = s3_responses.S3Response.get_object

    def value(self: Any) -> Any:
        if getattr(_state, "ranged_get", False):
            return RangeView(self)
        return value_property.fget(self)

    def ranged_get_object(self: Any) -> Any:
        # (The checksum headers come from the stored checksum, never from the bytes.)
        lazy = _simple_range(self.headers) and "partNumber" not in self.querystring
        _state.ranged_get = lazy
        try:
            status, headers, body = get_object(self)
        finally:
            _state.ranged_get = False
        if isinstance(body, RangeView) and status != 200:
            body = body[:]  # only a 200 goes on to the range handler; anything else gets real bytes
        return status, headers, body

    s3_models.FakeKey.value = property(value, value_property.fset)  # type: ignore[method-assign,assignment]
    s3_responses.S3Response.get_object = ranged_get_object  # type: ignore[method-assign]


def patch_sqs_send_message() -> None:
    attributes_property: Any = vars(sqs_models.Queue)["attributes"]
    send_message = sqs_models.SQSBackend.send_message

    def attributes(self: Any) -> Any:
        if getattr(_state, "sending", False):
            # What the send path reads: ContentBasedDeduplication, present for FIFO queues only.
            if not self.fifo_queue:
                return {}
            flag = self.content_based_deduplication
            return {"ContentBasedDeduplication": str(flag).lower() if isinstance(flag, bool) else flag}
        return attributes_property.fget(self)

    def cheap_send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _state.sending = True
        try:
            return send_message(self, *args, **kwargs)
        finally:
            _state.sending = False

    sqs_models.Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]
    sqs_models.SQSBackend.send_message = cheap_send_message  # type: ignore[method-assign]


def apply() -> None:
    patch_s3_ranged_get()
    patch_sqs_send_message()
    log.info("moto patched: S3 ranged GETs read only their range; SQS sends skip the message counts")


def main(argv: list[str] | None = None) -> None:
    apply()
    moto_server_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
