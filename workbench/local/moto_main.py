"""`python -m workbench.local.moto_main -H 127.0.0.1 -p PORT`: moto's server, with three of its
costs brought back to what the real services charge, and DynamoDB's atomic conditional writes.

moto emulates the APIs faithfully, but three of its costs grow with the data where AWS's do not, and
the carousel's own paths hit them at archive scale:

1. **S3 ranged GET** reads the whole object and slices the range out of it: a 4-byte read of a
   1.35 GB object costs 0.6 s, so a job reading chunks straight from a restored orbit measured
   moto, not itself. Here a plain `Range: bytes=a-b` GET reads only those bytes from the object's
   buffer (same status, headers and body as before; anything else takes moto's own path).
2. **SQS SendMessage** recomputes every queue attribute, including the message counts (a walk
   over every message in the queue), to read one flag: sending N messages costs O(N²). Here the
   send path reads only the flag it needs.
3. **S3 ListObjects with a prefix** walks every key of the bucket for every page: listing a
   bucket of N keys folder by folder costs O(folders × N) (84,303 catalogue keys in 233 MISR-path
   folders: 19.6 million key visits). Here a prefixed listing visits only the keys under its
   prefix, found by bisection in a sorted copy of the bucket's key names that is rebuilt after
   any change to the bucket's keys. moto's own code then filters, sorts and pages them as before.

And one guarantee moto's server does not keep:

4. **DynamoDB conditional writes are atomic** in DynamoDB (the condition is checked and the item
   written as one step). moto's server answers each request on its own thread and checks the
   condition, then writes, with no lock between: two racing `UpdateItem`s on one key conditioned
   on the same old value can both succeed. The carousel's claims rely on exactly one winning (the
   launch lease, index and release claims); two racing steps under moto both took the launch lease
   and started twice the worker cap. Here every item read and write of the DynamoDB backend runs
   under one lock (moto serves DynamoDB from one process anyway).

Everything else is moto's code, unchanged; `tests/workbench/local/test_moto_main.py` checks
that each patched answer equals moto's own.
"""

from __future__ import annotations

import bisect
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.s3 import models as s3_models
from moto.s3 import responses as s3_responses
from moto.s3 import utils as s3_utils
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


class PrefixedKeys:
    """`bucket.keys` as moto's `list_objects` reads it (`.items()`), holding only the names under one prefix."""

    def __init__(self, store: Any, prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    def items(self) -> Iterator[tuple[str, Any]]:
        names = sorted_names(self._store)
        at = bisect.bisect_left(names, self._prefix)
        while at < len(names) and names[at].startswith(self._prefix):
            name = names[at]
            at += 1
            try:
                yield name, self._store[name]  # the newest version, as moto's own walk gives it
            except (KeyError, IndexError):
                continue  # deleted since the names were sorted


class PrefixedBucket:
    """The one attribute of a bucket that `list_objects` reads, narrowed to a prefix."""

    def __init__(self, bucket: Any, prefix: str) -> None:
        self.keys = PrefixedKeys(bucket.keys, prefix)


_KEY_STORE_MUTATORS = ("__setitem__", "__delitem__", "setlist", "pop", "clear", "update", "setdefault", "popitem")


def sorted_names(store: Any) -> list[str]:
    """The store's key names, sorted; rebuilt only after the store changed (see patch_s3_prefixed_listing)."""
    changes = store.__dict__.get("_dc_changes", 0)
    cached = store.__dict__.get("_dc_sorted")
    if cached is None or cached[0] != changes:
        cached = (changes, sorted(dict.keys(store)))
        store.__dict__["_dc_sorted"] = cached
    names: list[str] = cached[1]
    return names


def patch_s3_prefixed_listing() -> None:
    store_class = s3_utils._VersionedKeyStore

    def counting(method: Any) -> Any:
        def changed(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            finally:
                self.__dict__["_dc_changes"] = self.__dict__.get("_dc_changes", 0) + 1

        return changed

    for name in _KEY_STORE_MUTATORS:
        setattr(store_class, name, counting(getattr(store_class, name)))

    list_objects = s3_models.S3Backend.list_objects

    def prefixed_list_objects(self: Any, bucket: Any, prefix: str | None, *args: Any, **kwargs: Any) -> Any:
        table_bucket = isinstance(bucket, s3_models.FakeTableStorageBucket)
        if not prefix or table_bucket or not isinstance(bucket.keys, store_class):
            return list_objects(self, bucket, prefix, *args, **kwargs)
        narrowed: Any = PrefixedBucket(bucket, prefix)  # moto reads only `.keys` of it
        return list_objects(self, narrowed, prefix, *args, **kwargs)

    s3_models.S3Backend.list_objects = prefixed_list_objects  # type: ignore[method-assign]


# The backend's item operations: a write's condition check and its write, and reads that walk a table
# another request may be changing. A transaction calls the single-item ones inside (hence re-entrant).
DYNAMODB_ITEM_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "get_item",
    "query",
    "scan",
)


def patch_dynamodb_atomic_writes() -> None:
    lock = threading.RLock()
    backend = dynamodb_models.DynamoDBBackend

    def serialized(method: Any) -> Any:
        def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return one_at_a_time

    for name in DYNAMODB_ITEM_OPERATIONS:
        setattr(backend, name, serialized(getattr(backend, name)))


def apply() -> None:
    patch_s3_ranged_get()
    patch_sqs_send_message()
    patch_s3_prefixed_listing()
    patch_dynamodb_atomic_writes()
    log.info(
        "moto patched: S3 ranged GETs read only their range; SQS sends skip the message counts; "
        "prefixed S3 listings visit only their prefix; DynamoDB conditional writes are atomic"
    )


def main(argv: list[str] | None = None) -> None:
    apply()
    moto_server_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
