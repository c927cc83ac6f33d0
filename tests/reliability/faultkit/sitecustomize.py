"""Test tooling for the reliability suite: record every AWS call a process makes and inject throttling.

Python imports `sitecustomize` at start-up from `sys.path`; the suite puts a private copy of
this directory on the PYTHONPATH of the worker processes it starts (next to a `config.json`),
so the workers run their real, unmodified code while:

- every botocore call (boto3 and aiobotocore/s3fs alike) is recorded as one JSON line
  `{"pid", "argv", "service", "op", "detail"}` in `<record_dir>/<pid>.jsonl` (plus the object key,
  the queue, a sent work item's `job_id`/`file_name`, and a tag of each receipt handle a
  DeleteMessage names), where `service` is the IAM prefix (the signing name) and `detail` the
  sub-operations of DynamoDB transactions and batch calls (`TransactWriteItems` needs
  `UpdateItem`/`PutItem`/... rights). A call is recorded before it is sent: a process killed
  mid-call has its last call on record;
- every SQS ReceiveMessage answer is recorded as `{"kind": "received", "queue", "messages":
  [{"id", "receipt"}]}` (the message ids the process now holds and their receipt tags), so the
  suite can tell from a worker's record whether it holds a message at a given moment (each
  process's record begins with a `{"kind": "start"}` line: a PID may be reused);
- with `throttle.rate > 0`, that fraction of plain-botocore requests gets a throttling answer
  instead of reaching moto (S3: 503 SlowDown; JSON services: 400 ThrottlingException), as AWS
  answers when a caller goes too fast. The answer goes through botocore's own retry logic
  (standard mode) exactly as a real throttle would. Each injection is recorded too.

Nothing here is imported by the product; it is loaded only into processes the tests start.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"installed": False}

_XML_THROTTLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULTKIT</RequestId></Error>"
)


def _write(record_dir: str, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    path = os.path.join(record_dir, f"{os.getpid()}.jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _detail(op: str, params: Any) -> list[str]:
    if not isinstance(params, dict):
        return []
    if op == "TransactWriteItems":
        return sorted({k for item in params.get("TransactItems", []) for k in item})
    if op == "TransactGetItems":
        return ["Get"]
    return []


def receipt_tag(receipt: Any) -> str:
    """A short stable tag of an SQS receipt handle (the handles are long; the tag links a receive to its delete)."""
    return hashlib.sha256(str(receipt).encode()).hexdigest()[:16]


def _receipts(op: str, params: Any) -> list[str]:
    if not isinstance(params, dict):
        return []
    if op == "DeleteMessage" and "ReceiptHandle" in params:
        return [receipt_tag(params["ReceiptHandle"])]
    if op == "DeleteMessageBatch":
        return [receipt_tag(e.get("ReceiptHandle")) for e in params.get("Entries", []) if isinstance(e, dict)]
    return []


def _work_item(body: Any) -> dict[str, str]:
    try:
        message = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        return {}
    if not isinstance(message, dict) or not {"job_id", "file_name"} <= message.keys():
        return {}
    return {"job_id": str(message["job_id"]), "file_name": str(message["file_name"])}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def make_recorder(record_dir: str) -> Any:
    def record(params: Any = None, model: Any = None, context: Any = None, **_: Any) -> None:
        if model is None:
            return
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        entry = {
            "kind": "call",
            "pid": os.getpid(),
            "argv": list(sys.argv),
            "service": service,
            "op": model.name,
            "detail": _detail(model.name, params),
        }
        if isinstance(params, dict) and "Key" in params and isinstance(params["Key"], str):
            entry["key"] = params["Key"]
        if isinstance(params, dict) and isinstance(params.get("QueueUrl"), str):
            entry["queue"] = params["QueueUrl"].rsplit("/", 1)[-1]
            if isinstance(context, dict):
                context["faultkit_queue"] = entry["queue"]  # for the answer's record (make_receive_recorder)
        receipts = _receipts(model.name, params)
        if receipts:
            entry["receipts"] = receipts
        if model.name == "SendMessage" and isinstance(params, dict):
            # Which job's file a work item was for: the suite counts sends per (job, file) of its own jobs,
            # since the environment is shared with other tests' jobs.
            entry.update(_work_item(params.get("MessageBody")))
        _write(record_dir, entry)

    return record


def make_receive_recorder(record_dir: str) -> Any:
    """An `after-call.sqs.ReceiveMessage` handler: which messages the process now holds."""

    def received(parsed: Any = None, context: Any = None, **_: Any) -> None:
        if not isinstance(parsed, dict):
            return
        messages = [
            {"id": str(m.get("MessageId", "")), "receipt": receipt_tag(m.get("ReceiptHandle"))}
            for m in parsed.get("Messages", []) or []
            if isinstance(m, dict)
        ]
        queue = context.get("faultkit_queue", "") if isinstance(context, dict) else ""
        entry = {"kind": "received", "pid": os.getpid(), "argv": list(sys.argv), "queue": queue, "messages": messages}
        _write(record_dir, entry)

    return received


def make_throttler(rate: float, seed: int, record_dir: str | None, services: list[str] | None = None) -> Any:
    """A `before-send` handler answering a fraction `rate` of requests with a throttling error."""
    from botocore.awsrequest import AWSResponse  # noqa: PLC0415 - botocore loads only when configured

    rng = random.Random(seed)

    def throttle(request: Any = None, event_name: str = "", **_: Any) -> Any:
        parts = event_name.split(".")
        service = parts[1] if len(parts) > 1 else ""
        if services and service not in services:
            return None
        with _LOCK:
            hit = rng.random() < rate
        if not hit:
            return None
        if record_dir:
            _write(record_dir, {"kind": "throttle", "pid": os.getpid(), "argv": list(sys.argv), "event": event_name})
        url = getattr(request, "url", "")
        if service == "s3":
            # botocore-stubs type the headers HTTPHeaders; botocore takes any mapping (it wraps it in a HeadersDict).
            return AWSResponse(url, 503, {"Content-Type": "application/xml"}, _Raw(_XML_THROTTLE))  # type: ignore[arg-type]
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded (injected)"}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "ThrottlingException;Sender"}
        return AWSResponse(url, 400, headers, _Raw(body))  # type: ignore[arg-type]  # as above: any mapping

    return throttle


def install(config: dict[str, Any]) -> None:
    """Hook every botocore session created from now on (boto3's and aiobotocore's)."""
    if _STATE["installed"]:
        return
    import botocore.session  # noqa: PLC0415

    record_dir = config.get("record_dir")
    throttle_cfg = config.get("throttle") or {}
    rate = float(throttle_cfg.get("rate", 0.0))
    throttler = None
    if rate > 0:
        seed = int(throttle_cfg.get("seed", 0)) * 100_003 + os.getpid()
        throttler = make_throttler(rate, seed, record_dir, throttle_cfg.get("services"))
    recorder = make_recorder(record_dir) if record_dir else None
    receive_recorder = make_receive_recorder(record_dir) if record_dir else None
    original = botocore.session.Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if recorder is not None:
            self.register("before-parameter-build", recorder, unique_id="faultkit-record")
        if receive_recorder is not None:
            self.register("after-call.sqs.ReceiveMessage", receive_recorder, unique_id="faultkit-received")
        # aiobotocore (s3fs) expects awaitable responses: throttle plain botocore only.
        if throttler is not None and not type(self).__module__.startswith("aiobotocore"):
            self.register("before-send", throttler, unique_id="faultkit-throttle")

    botocore.session.Session.__init__ = init  # type: ignore[method-assign]  # the patch is the point
    _STATE["installed"] = True
    if record_dir:
        # Where this process's record begins in `<pid>.jsonl` (a PID may be reused by a later process).
        _write(record_dir, {"kind": "start", "pid": os.getpid()})


def _install_from_file() -> None:
    path = Path(__file__).with_name("config.json")
    if not path.exists() or __name__ != "sitecustomize":
        return
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    install(config)


_install_from_file()
