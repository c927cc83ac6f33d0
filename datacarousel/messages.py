"""Queue message formats: frozen dataclasses with strict JSON round trips.

A message that is not valid JSON, is not an object, misses a field, carries
an unknown field, or has a field of the wrong type raises `MalformedMessage`
naming every problem at once. Workers send such messages to the dead-letter
queue with that text as the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from datacarousel.errors import MalformedMessage

# Larger messages are refused before parsing: SQS itself caps bodies at 256 KiB.
MAX_MESSAGE_BYTES = 256 * 1024

M = TypeVar("M", bound="Message")


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether `value` (decoded from JSON) fits the field annotation exactly."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        return isinstance(value, dict) and all(
            _type_ok(k, key_type) and _type_ok(v, value_type) for k, v in value.items()
        )
    raise TypeError(f"unsupported message field type {annotation!r}")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _to_python(value: Any, annotation: Any) -> Any:
    """JSON lists become tuples where the field is a tuple (frozen messages stay hashable)."""
    if typing.get_origin(annotation) is tuple and isinstance(value, list):
        return tuple(value)
    if annotation is float and isinstance(value, int):
        return float(value)
    return value


@dataclass(frozen=True)
class Message:
    """Base of every queue message. Subclasses set `kind` and declare typed fields."""

    kind: ClassVar[str] = ""

    def to_json(self) -> str:
        body = {"kind": self.kind, **dataclasses.asdict(self)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls: type[M], text: str | bytes) -> M:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedMessage(f"{cls.__name__}: body is not UTF-8: {exc}") from exc
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise MalformedMessage(f"{cls.__name__}: body exceeds {MAX_MESSAGE_BYTES} bytes")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MalformedMessage(f"{cls.__name__}: not valid JSON: {exc}") from exc
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls: type[M], raw: Any) -> M:
        name = cls.__name__
        if not isinstance(raw, dict):
            raise MalformedMessage(f"{name}: expected a JSON object, got {type(raw).__name__}")
        raw = dict(raw)
        kind = raw.pop("kind", cls.kind)
        problems: list[str] = []
        if kind != cls.kind:
            problems.append(f"kind is {kind!r}, expected {cls.kind!r}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for fname, fdef in fields.items():
            annotation = hints[fname]
            if fname not in raw:
                has_default = fdef.default is not dataclasses.MISSING or fdef.default_factory is not dataclasses.MISSING
                if not has_default:
                    problems.append(f"missing field {fname!r}")
                continue
            value = raw[fname]
            if not _type_ok(value, annotation):
                problems.append(f"field {fname!r} must be {_type_name(annotation)}, got {type(value).__name__}")
                continue
            values[fname] = _to_python(value, annotation)
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            problems.append(f"unknown field(s) {', '.join(map(repr, unknown))}")
        if problems:
            raise MalformedMessage(f"{name}: " + "; ".join(problems))
        try:
            return cls(**values)
        except (ValueError, TypeError) as exc:  # __post_init__ validation
            raise MalformedMessage(f"{name}: {exc}") from exc


def _require_nonempty(obj: Any, *names: str) -> None:
    for n in names:
        if not getattr(obj, n):
            raise ValueError(f"field {n!r} must not be empty")


# A job id names a folder of the results bucket (`results/<job_id>/`): letters, digits, '.', '_', '-',
# starting with a letter or digit, no '..'. The carousel's own are `job-<UTC stamp>-<8 hex>`.
JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A job definition's name, as its description requires (datacarousel.definitions).
JOB_DEFINITION_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
# Who submits a job: checked at submission and on every message that carries it (a reducer puts it in titles).
OWNER_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class BadMessageField(MalformedMessage, ValueError):
    """A field whose value can never be right: the message is malformed (raised while constructing one)."""


def check_job_id(job_id: str) -> str:
    """`job_id` if it is a job id the carousel could have made; `BadMessageField` otherwise."""
    if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id) or ".." in job_id:
        raise BadMessageField(
            f"field 'job_id' {str(job_id)[:80]!r} is not a job id "
            f"(letters, digits, '.', '_', '-', at most 128, starting with a letter or digit, no '..')"
        )
    return job_id


def _check_job_fields(obj: Any) -> None:
    check_job_id(obj.job_id)
    if not JOB_DEFINITION_RE.fullmatch(obj.job_definition):
        raise BadMessageField(
            f"field 'job_definition' {obj.job_definition[:80]!r} is not a job definition name "
            f"({JOB_DEFINITION_RE.pattern})"
        )


@dataclass(frozen=True)
class IndexRequest(Message):
    """loader -> index_file: link one readable archive object into HSDS."""

    kind: ClassVar[str] = "index-request"
    bucket: str
    key: str
    size: int = 0
    etag: str = ""

    def __post_init__(self) -> None:
        _require_nonempty(self, "bucket", "key")
        if self.size < 0:
            raise ValueError("field 'size' must be >= 0")

    def deduplication_id(self) -> str:
        """Same object version -> same id, so SQS FIFO drops a repeat within 5 minutes."""
        return hashlib.sha256(f"{self.bucket}/{self.key}/{self.etag}".encode()).hexdigest()[:64]


@dataclass(frozen=True)
class WorkItem(Message):
    """carousel -> job worker: run one job definition on one file."""

    kind: ClassVar[str] = "work-item"
    job_id: str
    job_definition: str
    file_name: str
    bucket: str
    key: str
    domain: str = ""
    parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_nonempty(self, "job_id", "job_definition", "file_name", "bucket", "key")
        _check_job_fields(self)

    def __hash__(self) -> int:  # parameters is a dict; hash by identity fields
        return hash((self.job_id, self.job_definition, self.file_name))


@dataclass(frozen=True)
class ReduceRequest(Message):
    """carousel -> job worker: every file of the job is final; run the definition's reducer once.

    It travels on the same work queue as the job's WorkItems, so the same workers (the same image)
    take it, with the same heartbeat, retries and dead-letter queue.
    """

    kind: ClassVar[str] = "reduce-request"
    job_id: str
    job_definition: str
    parameters: dict[str, str] = field(default_factory=dict)
    owner: str = ""  # who submitted the job: the reducer's maps name them ("" when not known)

    def __post_init__(self) -> None:
        _require_nonempty(self, "job_id", "job_definition")
        _check_job_fields(self)
        if self.owner and not OWNER_RE.fullmatch(self.owner):
            raise BadMessageField(f"field 'owner' {self.owner[:80]!r} is not an owner ({OWNER_RE.pattern})")

    def __hash__(self) -> int:
        return hash((self.job_id, self.job_definition))


JobMessage = WorkItem | ReduceRequest


def parse_job_message(body: str | bytes) -> JobMessage:
    """A work queue's message: a WorkItem or a ReduceRequest, told apart by its `kind`."""
    try:
        kind = json.loads(body).get("kind") if body else None
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        kind = None
    if kind == ReduceRequest.kind:
        return ReduceRequest.from_json(body)
    return WorkItem.from_json(body)  # names every problem, the kind included


MESSAGE_TYPES: dict[str, type[Message]] = {m.kind: m for m in (IndexRequest, WorkItem, ReduceRequest)}
