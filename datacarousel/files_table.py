"""The `BasicFusionFiles` table: conditional writes and index queries (never a Scan).

Every writer updates only the attributes it owns (UpdateItem, never PutItem),
so index_file, record_metadata and the carousel can write the same
item without erasing each other's attributes. Each write is conditional, so a
redelivered message changes nothing and an older view never overwrites newer
state. Every researcher query is a DynamoDB Query on a global secondary index
of `contract.FILES_TABLE`; values are passed as typed expression values, never
pasted into expressions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from datacarousel import naming
from datacarousel.contract import FileAttr, FileIndex, FileState
from datacarousel.errors import TransientError
from datacarousel.naming import BasicFusionName
from datacarousel.times import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

log = logging.getLogger(__name__)

_SER = TypeSerializer()
_DESER = TypeDeserializer()
_BATCH_GET_MAX = 100


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int (every number in this table is an integer)."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESER.deserialize(v)) for k, v in item.items()}


def serialize(value: Any) -> AttributeValueTypeDef:
    return _SER.serialize(value)


def identity_attributes(name: BasicFusionName) -> dict[str, Any]:
    """Attributes that follow from the file name alone: every writer sets them, so a new
    item shows in every index (an item without an index's keys is missing from it)."""
    return {
        FileAttr.ORBIT: name.orbit,
        FileAttr.YEAR_MONTH: name.year_month,
        FileAttr.MISR_PATH: name.misr_path,
    }


@dataclass(frozen=True)
class FileMetadata:
    """What record_metadata learns about one file from its HSDS domain."""

    file_name: str
    orbit: int
    start_time: str
    end_time: str
    year: int
    month: int
    day: int
    year_month: str
    misr_path: int
    instruments: tuple[str, ...]
    modis_day_granules: int
    modis_night_granules: int
    ceres_granules: int
    misr_first_daylit_block: int | None
    misr_last_daylit_block: int | None
    size_bytes: int
    domain: str

    def attributes(self) -> dict[str, Any]:
        """Item attributes (None values are not stored)."""
        values: dict[str, Any] = {
            FileAttr.ORBIT: self.orbit,
            FileAttr.START_TIME: self.start_time,
            FileAttr.END_TIME: self.end_time,
            FileAttr.YEAR: self.year,
            FileAttr.MONTH: self.month,
            FileAttr.DAY: self.day,
            FileAttr.YEAR_MONTH: self.year_month,
            FileAttr.MISR_PATH: self.misr_path,
            FileAttr.INSTRUMENTS: list(self.instruments),
            FileAttr.MODIS_DAY_GRANULES: self.modis_day_granules,
            FileAttr.MODIS_NIGHT_GRANULES: self.modis_night_granules,
            FileAttr.CERES_GRANULES: self.ceres_granules,
            FileAttr.MISR_FIRST_BLOCK: self.misr_first_daylit_block,
            FileAttr.MISR_LAST_BLOCK: self.misr_last_daylit_block,
            FileAttr.SIZE: self.size_bytes,
            FileAttr.DOMAIN: self.domain,
        }
        return {k: v for k, v in values.items() if v is not None}


def _is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def metadata_is_current(item: Mapping[str, Any] | None, domain: str | None = None) -> bool:
    """True when an item's metadata was recorded for its current index (and, if given, `domain`):
    a file re-indexed since (its copy expired and came back) needs its metadata recorded again."""
    if not item or item.get(FileAttr.STATE) != FileState.INDEXED.value:
        return False
    if domain is not None and item.get(FileAttr.DOMAIN) != domain:
        return False
    recorded = str(item.get(FileAttr.METADATA_AT) or "")
    return bool(recorded) and recorded >= str(item.get(FileAttr.INDEXED_AT) or "~")


def retry_pause(attempt: int) -> None:
    """The pause before try `attempt` (1, 2, ...) of a batch call whose items DynamoDB left
    unprocessed: exponential from 0.1 s, at most 2 s (AWS asks batch callers to back off)."""
    time.sleep(min(0.05 * 2**attempt, 2.0))


def batch_get(
    ddb: DynamoDBClient, table: str, key_attr: str, keys: Iterable[str], attributes: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The items of `table` whose hash key `key_attr` is one of `keys`, by key (BatchGetItem,
    100 keys a call, consistent reads; unprocessed keys retried with a short backoff).

    `attributes`: read only these (and the key); None reads whole items.
    """
    names = list(dict.fromkeys(keys))
    found: dict[str, dict[str, Any]] = {}
    projection: dict[str, Any] = {}
    if attributes is not None:
        expr = Expr()
        wanted = dict.fromkeys([key_attr, *attributes])
        projection = {
            "ProjectionExpression": ", ".join(expr.name(a) for a in wanted),
            "ExpressionAttributeNames": expr.names,
        }
    for start in range(0, len(names), _BATCH_GET_MAX):
        batch = [{key_attr: serialize(n)} for n in names[start : start + _BATCH_GET_MAX]]
        request: dict[str, Any] = {table: {"Keys": batch, "ConsistentRead": True, **projection}}
        attempt = 0
        while request:
            if attempt:
                retry_pause(attempt)
            response = ddb.batch_get_item(RequestItems=request)
            for raw in response.get("Responses", {}).get(table, []):
                item = deserialize(raw)
                found[item[key_attr]] = item
            request = response.get("UnprocessedKeys") or {}
            attempt += 1
    return found


def query_all(ddb: DynamoDBClient, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Query, page after page."""
    while True:
        response = ddb.query(**params)
        for raw in response.get("Items", []):
            yield deserialize(raw)
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        params["ExclusiveStartKey"] = last


BATCH_WRITE_MAX = 25  # puts per BatchWriteItem call (DynamoDB's limit)
# Calls of one batch of puts before giving up on its unprocessed items (with retry_pause between:
# 0.1, 0.2, 0.4, 0.8, 1.6, then 2 s each, about 11 s in all).
BATCH_WRITE_ATTEMPTS = 10


class UnprocessedWrites(TransientError):
    """DynamoDB kept some puts of a batch unprocessed after every attempt (a throttled table)."""

    def __init__(self, table: str, left: int, total: int, attempts: int) -> None:
        super().__init__(f"{table}: {left} of {total} puts still unprocessed after {attempts} BatchWriteItem calls")
        self.left, self.total, self.attempts = left, total, attempts


def batch_put(
    ddb: DynamoDBClient, table: str, items: Sequence[Mapping[str, Any]], *, attempts: int = BATCH_WRITE_ATTEMPTS
) -> None:
    """BatchWriteItem puts, 25 a call. Unprocessed items (DynamoDB throttled part of a batch) are sent
    again after a growing pause (`retry_pause`), at most `attempts` calls per batch; items still
    unprocessed then raise `UnprocessedWrites` (the puts are idempotent: the caller may start over)."""
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    for start in range(0, len(items), BATCH_WRITE_MAX):
        requests: list[dict[str, Any]] = [
            {"PutRequest": {"Item": {k: serialize(v) for k, v in item.items()}}}
            for item in items[start : start + BATCH_WRITE_MAX]
        ]
        pending: dict[str, Any] = {table: requests}
        for attempt in range(attempts):
            if attempt:
                retry_pause(attempt)
            response = ddb.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
        else:
            raise UnprocessedWrites(table, sum(len(v) for v in pending.values()), len(requests), attempts)


class Expr:
    """Builds an update / condition expression with placeholders for every attribute name and
    value: nothing a caller passes is ever pasted into an expression."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValueTypeDef] = {}

    def name(self, attr: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for existing, value in self.names.items():
            if value == attr:
                return existing
        self.names[placeholder] = attr
        return placeholder

    def value(self, val: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = serialize(val)
        return placeholder

    def set_clause(self, attrs: Mapping[str, Any]) -> list[str]:
        return [f"{self.name(k)} = {self.value(v)}" for k, v in attrs.items()]

    def one_of(self, attr: str, values: Iterable[str]) -> str:
        return "(" + " OR ".join(f"{self.name(attr)} = {self.value(v)}" for v in values) + ")"

    def version_is(self, attr: str, expected: int) -> str:
        """`attr = expected`; version 0 also matches an item that never had the attribute."""
        if expected == 0:
            return f"(attribute_not_exists({self.name(attr)}) OR {self.name(attr)} = {self.value(0)})"
        return f"{self.name(attr)} = {self.value(int(expected))}"

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ExpressionAttributeNames": self.names}
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


class FilesTable:
    """Adapter over the BasicFusionFiles table (a low-level boto3 DynamoDB client is passed in)."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str, *, page_size: int | None = None) -> None:
        self.ddb = dynamodb
        self.table = table_name
        self.page_size = page_size  # Query Limit; None: DynamoDB's own 1 MB pages

    # --- reads --------------------------------------------------------------------

    def get(self, file_name: str) -> dict[str, Any] | None:
        response = self.ddb.get_item(
            TableName=self.table, Key={FileAttr.FILE_NAME: serialize(file_name)}, ConsistentRead=True
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def get_many(self, file_names: Iterable[str], attributes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Items by file name (BatchGetItem, 100 keys a call, unprocessed keys retried); only
        `attributes` of each (and its name) when given."""
        return batch_get(self.ddb, self.table, FileAttr.FILE_NAME, file_names, attributes)

    def _query(self, index: str, key_condition: str, expr: Expr) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": key_condition,
            **expr.params(),
        }
        if self.page_size:
            params["Limit"] = self.page_size
        yield from query_all(self.ddb, **params)

    def by_year_month(self, year_month: str, orbits: tuple[int, int] | None = None) -> Iterator[dict[str, Any]]:
        """Files of one month (`YYYY.MM`), in orbit order, optionally within an orbit range."""
        if not _valid_year_month(year_month):
            raise ValueError(f"year-month must be YYYY.MM, got {year_month!r}")
        expr = Expr()
        condition = f"{expr.name(FileAttr.YEAR_MONTH)} = {expr.value(year_month)}"
        if orbits is not None:
            condition += f" AND {expr.name(FileAttr.ORBIT)} BETWEEN {expr.value(orbits[0])} AND {expr.value(orbits[1])}"
        return self._query(FileIndex.BY_YEAR_MONTH, condition, expr)

    def by_misr_path(self, path: int, orbits: tuple[int, int] | None = None) -> Iterator[dict[str, Any]]:
        """Files of one MISR path (1..233), in orbit order."""
        if not 1 <= int(path) <= 233:
            raise ValueError(f"MISR path must be 1..233, got {path}")
        expr = Expr()
        condition = f"{expr.name(FileAttr.MISR_PATH)} = {expr.value(int(path))}"
        if orbits is not None:
            condition += f" AND {expr.name(FileAttr.ORBIT)} BETWEEN {expr.value(orbits[0])} AND {expr.value(orbits[1])}"
        return self._query(FileIndex.BY_MISR_PATH, condition, expr)

    def by_state(self, state: FileState | str, orbits: tuple[int, int] | None = None) -> Iterator[dict[str, Any]]:
        """Files in one carousel state, in orbit order."""
        value = FileState(state).value
        expr = Expr()
        condition = f"{expr.name(FileAttr.STATE)} = {expr.value(value)}"
        if orbits is not None:
            condition += f" AND {expr.name(FileAttr.ORBIT)} BETWEEN {expr.value(orbits[0])} AND {expr.value(orbits[1])}"
        return self._query(FileIndex.BY_STATE, condition, expr)

    def by_orbits(self, first: int, last: int) -> Iterator[dict[str, Any]]:
        """Files with `first <= orbit <= last`: one index query per year-month the range spans."""
        first, last = naming.check_orbit(int(first)), naming.check_orbit(int(last))
        if first > last:
            raise ValueError(f"orbit range is empty: {first}-{last}")
        for year_month in year_months_of_orbits(first, last):
            yield from self.by_year_month(year_month, orbits=(first, last))

    # --- writes -------------------------------------------------------------------

    def _update(
        self,
        file_name: str,
        set_attrs: Mapping[str, Any],
        condition: str,
        expr: Expr,
        extra: str = "",
        *,
        remove: Sequence[str] = (),
    ) -> bool:
        """One conditional UpdateItem; False when the condition does not hold."""
        clauses = expr.set_clause(set_attrs)
        if extra:
            clauses.append(extra)
        update = "SET " + ", ".join(clauses)
        if remove:
            update += " REMOVE " + ", ".join(expr.name(attr) for attr in remove)
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={FileAttr.FILE_NAME: serialize(file_name)},
                UpdateExpression=update,
                ConditionExpression=condition,
                **expr.params(),
            )
        except ClientError as exc:
            if _is_conditional_failure(exc):
                return False
            raise
        return True

    def mark_indexed(
        self,
        name: BasicFusionName,
        *,
        bucket: str,
        key: str,
        etag: str,
        size: int,
        domain: str,
        now: datetime,
        expected_version: int | None,
        readable_until: datetime | None = None,
    ) -> bool:
        """Set state INDEXED for this object version and domain.

        `readable_until` is the read copy's restore expiry (None: the object is in a readable
        class): written as the item's `restore_expiry`, so an INDEXED file of an archive class
        always has one and the carousel expires it in time.

        `expected_version` is the `state_version` read before the domain was built
        (None: the item did not exist); if another writer changed the state since,
        nothing is written and False is returned. Writing the same result twice is
        also refused (False): see `is_indexed`.
        """
        expr = Expr()
        version = expr.name(FileAttr.STATE_VERSION)
        if expected_version is None:
            condition = f"attribute_not_exists({expr.name(FileAttr.FILE_NAME)})"
        else:
            condition = f"{version} = {expr.value(expected_version)}"
            if expected_version == 0:
                fn = expr.name(FileAttr.FILE_NAME)
                condition = f"attribute_exists({fn}) AND (attribute_not_exists({version}) OR {condition})"
        attrs = {
            **identity_attributes(name),
            FileAttr.STATE: FileState.INDEXED.value,
            FileAttr.BUCKET: bucket,
            FileAttr.KEY: key,
            FileAttr.ETAG: etag,
            FileAttr.SIZE: size,
            FileAttr.DOMAIN: domain,
            FileAttr.INDEXED_AT: iso(now),
            FileAttr.UPDATED_AT: iso(now),
        }
        remove: list[str] = []
        if readable_until is None:
            remove.append(FileAttr.RESTORE_EXPIRY)
        else:
            attrs[FileAttr.RESTORE_EXPIRY] = iso(readable_until)
        # Never over a FAILED file: only the carousel fails a file and only an operator's retry undoes it.
        condition = f"({condition}) AND NOT {expr.name(FileAttr.STATE)} = {expr.value(FileState.FAILED.value)}"
        extra = f"{version} = if_not_exists({version}, {expr.value(0)}) + {expr.value(1)}"
        return self._update(name.file_name, attrs, condition, expr, extra, remove=remove)

    def record_metadata(self, meta: FileMetadata, now: datetime) -> str:
        """Write what record_metadata measured. Returns "written", "unchanged" or "conflict".

        Only metadata attributes are written (never the state). The write holds
        only while the item is still INDEXED on this very domain (or does not exist
        yet), so metadata never lands on a file that was invalidated meanwhile.
        Identical metadata is not written again (a second run changes nothing).
        """
        current = self.get(meta.file_name)
        wanted = meta.attributes()
        # Unchanged only if recorded for the current indexing too: a file indexed again (after an
        # expiry) gets a fresh timestamp, or the carousel would ask for its metadata forever.
        recorded_since_indexing = (current or {}).get(FileAttr.METADATA_AT, "") >= (current or {}).get(
            FileAttr.INDEXED_AT, ""
        )
        if current is not None and recorded_since_indexing and all(current.get(k) == v for k, v in wanted.items()):
            return "unchanged"
        expr = Expr()
        fn, state, domain = expr.name(FileAttr.FILE_NAME), expr.name(FileAttr.STATE), expr.name(FileAttr.DOMAIN)
        condition = (
            f"attribute_not_exists({fn}) OR "
            f"({state} = {expr.value(FileState.INDEXED.value)} AND {domain} = {expr.value(meta.domain)})"
        )
        attrs = {**wanted, FileAttr.METADATA_AT: iso(now), FileAttr.UPDATED_AT: iso(now)}
        extra = (
            f"{state} = if_not_exists({state}, {expr.value(FileState.INDEXED.value)}), "
            f"{expr.name(FileAttr.STATE_VERSION)} = if_not_exists({expr.name(FileAttr.STATE_VERSION)}, {expr.value(1)})"
        )
        if self._update(meta.file_name, attrs, condition, expr, extra):
            return "written"
        return "conflict"


def is_indexed(item: Mapping[str, Any] | None, *, etag: str, domain: str) -> bool:
    """Whether an item already records this object version as indexed in this domain."""
    return (
        item is not None
        and item.get(FileAttr.STATE) == FileState.INDEXED.value
        and item.get(FileAttr.ETAG) == etag
        and item.get(FileAttr.DOMAIN) == domain
    )


def _valid_year_month(text: str) -> bool:
    parts = text.split(".")
    return (
        len(parts) == 2
        and len(parts[0]) == 4
        and len(parts[1]) == 2
        and parts[0].isdigit()
        and parts[1].isdigit()
        and 1 <= int(parts[1]) <= 12
    )


def year_months_of_orbits(first: int, last: int) -> list[str]:
    """Every `YYYY.MM` that orbits `first..last` may start in.

    Two days of margin on each side: a file name's start time may differ a little
    from the interpolated orbit timing near a month boundary.
    """
    margin = timedelta(days=2)
    start, end = naming.orbit_start(first) - margin, naming.orbit_start(last) + margin
    months: list[str] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}.{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months
