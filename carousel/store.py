"""DynamoDB adapters of the carousel: jobs, job-files, carousel writes on files, and loading a `Snapshot`.

Every write is one conditional UpdateItem (or a batch of puts of new job-files);
a condition that fails means another writer moved the item first and the
caller drops its action (`False` is returned). Reads are Queries on the tables'
keys or global secondary indexes, never a Scan:

- open jobs: `JobIndex.BY_STATE` (state = OPEN);
- a job's job-files: the job-files table's hash key (job_id);
- the files of the window: `FileIndex.BY_STATE` for RESTORING / RESTORED / INDEXED / FAILED;
- the archived files jobs wait for: BatchGetItem by name (`FilesTable.get_many`).

Times are stored as ISO 8601 UTC text (`files_table.iso`), like the rest of the
files table; the planner's POSIX seconds are converted at this edge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from carousel.model import FileRecord, JobFileRecord, JobRecord, Snapshot
from datacarousel.contract import (
    LAUNCH_LEASE_ID,
    FileAttr,
    FileState,
    JobAttr,
    JobFileAttr,
    JobFileIndex,
    JobFileState,
    JobIndex,
    JobState,
)
from datacarousel.errors import TransientError
from datacarousel.files_table import Expr, FilesTable, deserialize, retry_pause, serialize

log = logging.getLogger(__name__)

BATCH_WRITE_MAX = 25
# Calls of one batch of puts before giving up on its unprocessed items (with retry_pause between:
# 0.1, 0.2, 0.4, 0.8, 1.6, then 2 s each, about 11 s in all).
BATCH_WRITE_ATTEMPTS = 10
WINDOW_STATES = (FileState.RESTORING, FileState.RESTORED, FileState.INDEXED, FileState.FAILED)
READABLE_STATES = (FileState.RESTORED, FileState.INDEXED)


# --- time conversions ----------------------------------------------------------------------


def iso_seconds(t: float) -> str:
    """POSIX seconds -> `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, rounded down)."""
    return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_seconds(value: Any) -> float | None:
    """An item's time attribute (ISO text, or a number of POSIX seconds) -> POSIX seconds; None if unset."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        log.warning("unparseable time attribute %r: treated as unset", text[:64])
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --- expressions ---------------------------------------------------------------------------


def _conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def update(
    ddb: Any,
    table: str,
    key: Mapping[str, Any],
    expr: Expr,
    *,
    set_: Mapping[str, Any] | None = None,
    extra_set: Sequence[str] = (),
    remove: Sequence[str] = (),
    condition: str,
) -> bool:
    """One conditional UpdateItem; False when the condition does not hold."""
    clauses = [f"{expr.name(k)} = {expr.value(v)}" for k, v in (set_ or {}).items()] + list(extra_set)
    text = ""
    if clauses:
        text = "SET " + ", ".join(clauses)
    if remove:
        text += " REMOVE " + ", ".join(expr.name(r) for r in remove)
    try:
        ddb.update_item(
            TableName=table,
            Key={k: serialize(v) for k, v in key.items()},
            UpdateExpression=text.strip(),
            ConditionExpression=condition,
            **expr.params(),
        )
    except ClientError as exc:
        if _conditional_failure(exc):
            return False
        raise
    return True


def query_all(ddb: Any, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Query, page after page."""
    while True:
        response = ddb.query(**params)
        for raw in response.get("Items", []):
            yield deserialize(raw)
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        params["ExclusiveStartKey"] = last


def batch_put(
    ddb: Any, table: str, items: Sequence[Mapping[str, Any]], *, attempts: int = BATCH_WRITE_ATTEMPTS
) -> None:
    """BatchWriteItem puts, 25 a call. Unprocessed items (DynamoDB throttled part of a batch) are sent
    again after a growing pause (`files_table.retry_pause`), at most `attempts` calls per batch; items
    still unprocessed then raise `TransientError` (the puts are idempotent: the caller may start over)."""
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
            left = sum(len(v) for v in pending.values())
            raise TransientError(
                f"{table}: {left} of {len(requests)} puts still unprocessed after {attempts} BatchWriteItem calls"
            )


# --- jobs ------------------------------------------------------------------------------------


class JobsTable:
    """The jobs table (a low-level DynamoDB client is passed in)."""

    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb = ddb
        self.table = table

    def create(self, item: Mapping[str, Any]) -> bool:
        """Put a new job; False if the id is taken."""
        expr = Expr()
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={k: serialize(v) for k, v in item.items()},
                ConditionExpression=f"attribute_not_exists({expr.name(JobAttr.JOB_ID)})",
                ExpressionAttributeNames=expr.names,
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise
        return True

    def get(self, job_id: str) -> dict[str, Any] | None:
        response = self.ddb.get_item(TableName=self.table, Key={JobAttr.JOB_ID: serialize(job_id)}, ConsistentRead=True)
        item = response.get("Item")
        return deserialize(item) if item else None

    def by_state(self, state: JobState) -> Iterator[dict[str, Any]]:
        expr = Expr()
        return query_all(
            self.ddb,
            TableName=self.table,
            IndexName=JobIndex.BY_STATE,
            KeyConditionExpression=f"{expr.name(JobAttr.STATE)} = {expr.value(JobState(state).value)}",
            **expr.params(),
        )

    def transition(self, job_id: str, from_state: JobState, to_state: JobState, now: float, **attrs: Any) -> bool:
        expr = Expr()
        values = {JobAttr.STATE: to_state.value, **attrs}
        if to_state in (JobState.COMPLETE, JobState.CANCELLED):
            values[JobAttr.COMPLETED_AT] = iso_seconds(now)
        return update(
            self.ddb,
            self.table,
            {JobAttr.JOB_ID: job_id},
            expr,
            set_=values,
            condition=f"{expr.name(JobAttr.STATE)} = {expr.value(from_state.value)}",
        )

    def claim_reduce_redrive(self, job_id: str, now: float, limit: int) -> bool:
        """Count one more redrive of an OPEN job's ReduceRequest; False once `limit` were used."""
        expr = Expr()
        redrives = expr.name(JobAttr.REDUCE_REDRIVES)
        return update(
            self.ddb,
            self.table,
            {JobAttr.JOB_ID: job_id},
            expr,
            set_={JobAttr.REDUCE_REQUESTED_AT: iso_seconds(now)},
            extra_set=[f"{redrives} = if_not_exists({redrives}, {expr.value(0)}) + {expr.value(1)}"],
            condition=f"{expr.name(JobAttr.STATE)} = {expr.value(JobState.OPEN.value)} AND "
            + f"(attribute_not_exists({redrives}) OR {redrives} < {expr.value(limit)})",
        )

    def set_open(self, job_id: str, **attrs: Any) -> bool:
        """Set attributes of a job that is still OPEN; False if it is not (or does not exist)."""
        expr = Expr()
        return update(
            self.ddb,
            self.table,
            {JobAttr.JOB_ID: job_id},
            expr,
            set_=dict(attrs),
            condition=f"{expr.name(JobAttr.STATE)} = {expr.value(JobState.OPEN.value)}",
        )

    def reopen(self, job_id: str, reopened_at: float) -> bool:
        """COMPLETE -> OPEN (`datacarousel retry`): its end and its reduction forgotten; False if not COMPLETE.

        `reopened_at` (`JobAttr.REOPENED_AT`): a reduced marker not newer than it is the old job's
        (`carousel.recovery.marker_is_stale`), so the job completes only after a new reduction.
        """
        expr = Expr()
        return update(
            self.ddb,
            self.table,
            {JobAttr.JOB_ID: job_id},
            expr,
            set_={JobAttr.STATE: JobState.OPEN.value, JobAttr.REOPENED_AT: iso_seconds(reopened_at)},
            remove=[
                JobAttr.COMPLETED_AT,
                JobAttr.ERROR,
                JobAttr.DONE_FILES,
                JobAttr.FAILED_FILES,
                JobAttr.COMPOSITE_KEY,
                JobAttr.REDUCE_REQUESTED_AT,
                JobAttr.REDUCE_REDRIVES,
            ],
            condition=f"{expr.name(JobAttr.STATE)} = {expr.value(JobState.COMPLETE.value)}",
        )

    def restart_reduction(self, job_id: str, reopened_at: float) -> bool:
        """An OPEN job whose reducer was already asked for got files back (`datacarousel retry`): the
        reduction in hand is the old one, so a marker not newer than `reopened_at` no longer completes
        the job, and the step asks for a new reduction once every file is final again."""
        expr = Expr()
        return update(
            self.ddb,
            self.table,
            {JobAttr.JOB_ID: job_id},
            expr,
            set_={JobAttr.REOPENED_AT: iso_seconds(reopened_at)},
            remove=[JobAttr.REDUCE_REQUESTED_AT, JobAttr.REDUCE_REDRIVES],
            condition=f"{expr.name(JobAttr.STATE)} = {expr.value(JobState.OPEN.value)}",
        )


class Lease:
    """One holder at a time of an item of the jobs table; the holder's claim lapses after `ttl_s`, so
    a step killed while holding it blocks the others for at most that long."""

    def __init__(self, jobs: JobsTable, item_id: str) -> None:
        self.jobs = jobs
        self.item_id = item_id

    def acquire(self, holder: str, now: float, ttl_s: float) -> bool:
        expr = Expr()
        until, who = expr.name(JobAttr.LEASE_UNTIL_MS), expr.name(JobAttr.LEASE_HOLDER)
        now_ms = int(now * 1000)
        free = f"(attribute_not_exists({until}) OR {until} < {expr.value(now_ms)} OR {who} = {expr.value(holder)})"
        return update(
            self.jobs.ddb,
            self.jobs.table,
            {JobAttr.JOB_ID: self.item_id},
            expr,
            set_={JobAttr.LEASE_HOLDER: holder, JobAttr.LEASE_UNTIL_MS: now_ms + int(ttl_s * 1000)},
            condition=free,
        )

    def release(self, holder: str) -> bool:
        expr = Expr()
        return update(
            self.jobs.ddb,
            self.jobs.table,
            {JobAttr.JOB_ID: self.item_id},
            expr,
            remove=[JobAttr.LEASE_HOLDER, JobAttr.LEASE_UNTIL_MS],
            condition=f"{expr.name(JobAttr.LEASE_HOLDER)} = {expr.value(holder)}",
        )


class LaunchLease(Lease):
    """At most one carousel step at a time decides how many workers to start.

    Racing steps each count the active workers and start the difference to the cap; without the
    lease two steps could both start that difference. Its item (LAUNCH_LEASE_ID) is in no index.
    """

    def __init__(self, jobs: JobsTable) -> None:
        super().__init__(jobs, LAUNCH_LEASE_ID)


# --- job-files -------------------------------------------------------------------------------


class JobFilesTable:
    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb = ddb
        self.table = table

    def put_new(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Write a new job's job-files (batch puts: the job id is fresh, nobody else writes them)."""
        batch_put(self.ddb, self.table, items)

    def of_job(self, job_id: str) -> Iterator[dict[str, Any]]:
        expr = Expr()
        return query_all(
            self.ddb,
            TableName=self.table,
            KeyConditionExpression=f"{expr.name(JobFileAttr.JOB_ID)} = {expr.value(job_id)}",
            ConsistentRead=True,
            **expr.params(),
        )

    def _key(self, job_id: str, file_name: str) -> dict[str, str]:
        return {JobFileAttr.JOB_ID: job_id, JobFileAttr.FILE_NAME: file_name}

    def claim_release(self, job_id: str, file_name: str, now: float) -> bool:
        """WAITING -> QUEUED, marked pending until the WorkItem is sent (`release_sent`)."""
        expr = Expr()
        attempts = expr.name(JobFileAttr.ATTEMPTS)
        return update(
            self.ddb,
            self.table,
            self._key(job_id, file_name),
            expr,
            set_={
                JobFileAttr.STATE: JobFileState.QUEUED.value,
                JobFileAttr.RELEASE_PENDING_AT: iso_seconds(now),
                JobFileAttr.UPDATED_AT: iso_seconds(now),
            },
            extra_set=[f"{attempts} = if_not_exists({attempts}, {expr.value(0)}) + {expr.value(1)}"],
            condition=f"{expr.name(JobFileAttr.STATE)} = {expr.value(JobFileState.WAITING.value)}",
        )

    def release_sent(self, job_id: str, file_name: str) -> bool:
        expr = Expr()
        return update(
            self.ddb,
            self.table,
            self._key(job_id, file_name),
            expr,
            remove=[JobFileAttr.RELEASE_PENDING_AT],
            condition=f"attribute_exists({expr.name(JobFileAttr.JOB_ID)})",
        )

    def claim_redrive(self, job_id: str, file_name: str, now: float, limit: int) -> int | None:
        """Count one more redrive of a QUEUED/RUNNING job-file's work item; its new count, or None once
        `limit` were used (or the job-file is in another state: nothing to send again)."""
        expr = Expr()
        redrives = expr.name(JobFileAttr.REDRIVES)
        condition = (
            expr.one_of(JobFileAttr.STATE, (JobFileState.QUEUED.value, JobFileState.RUNNING.value))
            + f" AND (attribute_not_exists({redrives}) OR {redrives} < {expr.value(limit)})"
        )
        try:
            response = self.ddb.update_item(
                TableName=self.table,
                Key={k: serialize(v) for k, v in self._key(job_id, file_name).items()},
                UpdateExpression=f"SET {redrives} = if_not_exists({redrives}, {expr.value(0)}) + {expr.value(1)}, "
                + f"{expr.name(JobFileAttr.UPDATED_AT)} = {expr.value(iso_seconds(now))}",
                ConditionExpression=condition,
                ReturnValues="UPDATED_NEW",
                **expr.params(),
            )
        except ClientError as exc:
            if _conditional_failure(exc):
                return None
            raise
        return int(deserialize(response["Attributes"])[JobFileAttr.REDRIVES])

    def transition(
        self,
        job_id: str,
        file_name: str,
        from_states: Iterable[JobFileState],
        to_state: JobFileState,
        now: float,
        *,
        error: str | None = None,
        result_key: str | None = None,
    ) -> bool:
        expr = Expr()
        values: dict[str, Any] = {JobFileAttr.STATE: to_state.value, JobFileAttr.UPDATED_AT: iso_seconds(now)}
        if error is not None:
            values[JobFileAttr.ERROR] = error[:2000]
        if result_key is not None:
            values[JobFileAttr.RESULT_KEY] = result_key
        remove = [JobFileAttr.RELEASE_PENDING_AT] if to_state is not JobFileState.QUEUED else []
        return update(
            self.ddb,
            self.table,
            self._key(job_id, file_name),
            expr,
            set_=values,
            remove=remove,
            condition=expr.one_of(JobFileAttr.STATE, (s.value for s in from_states)),
        )

    def of_file(self, file_name: str) -> Iterator[dict[str, Any]]:
        """Every job-file naming `file_name`, whatever its job (`JobFileIndex.BY_FILE`; eventually consistent)."""
        expr = Expr()
        return query_all(
            self.ddb,
            TableName=self.table,
            IndexName=JobFileIndex.BY_FILE,
            KeyConditionExpression=f"{expr.name(JobFileAttr.FILE_NAME)} = {expr.value(file_name)}",
            **expr.params(),
        )

    def retry_failed(self, job_id: str, file_name: str, now: float) -> bool:
        """FAILED -> WAITING (`datacarousel retry`), its reason and redrive count removed; False if not FAILED."""
        expr = Expr()
        return update(
            self.ddb,
            self.table,
            self._key(job_id, file_name),
            expr,
            set_={JobFileAttr.STATE: JobFileState.WAITING.value, JobFileAttr.UPDATED_AT: iso_seconds(now)},
            remove=[JobFileAttr.ERROR, JobFileAttr.REDRIVES, JobFileAttr.RELEASE_PENDING_AT],
            condition=f"{expr.name(JobFileAttr.STATE)} = {expr.value(JobFileState.FAILED.value)}",
        )


# --- carousel writes on BasicFusionFiles -------------------------------------------------------


class CarouselFiles:
    """The carousel's own writes on BasicFusionFiles items (state, restore and lease attributes).

    A state change bumps `state_version` (index_file's `mark_indexed` checks it, so an
    index built before an invalidation never lands); bookkeeping writes (lease expiry,
    probe and index-request times) leave it alone.
    """

    def __init__(self, files: FilesTable) -> None:
        self.files = files
        self.ddb = files.ddb
        self.table = files.table

    def _update(self, name: str, expr: Expr, **changes: Any) -> bool:
        """One conditional UpdateItem of file `name` (see `update`)."""
        return update(self.ddb, self.table, self._key(name), expr, **changes)

    def _key(self, name: str) -> dict[str, str]:
        return {FileAttr.FILE_NAME: name}

    def _bump(self, expr: Expr) -> str:
        version = expr.name(FileAttr.STATE_VERSION)
        return f"{version} = if_not_exists({version}, {expr.value(0)}) + {expr.value(1)}"

    def set_state(
        self,
        name: str,
        expected_version: int,
        to_state: FileState,
        restore_expiry: float | None,
        now: float,
        *,
        uncount_restore: bool = False,
        error: str | None = None,
    ) -> bool:
        """Reconciliation: the state (and expiry) S3 reports, at the version the planner saw.

        `uncount_restore`: the last restore request never took (nothing to pay): restore_count - 1.
        `error`: why (a FAILED file's reason, written in the same write as its state).
        """
        expr = Expr()
        extra = [self._bump(expr)]
        if uncount_restore:
            count = expr.name(FileAttr.RESTORE_COUNT)
            extra.append(f"{count} = if_not_exists({count}, {expr.value(1)}) - {expr.value(1)}")
        values: dict[str, Any] = {FileAttr.STATE: to_state.value, FileAttr.UPDATED_AT: iso_seconds(now)}
        if error is not None:
            values[FileAttr.ERROR] = error[:2000]
        remove: list[str] = []
        if restore_expiry is None:
            remove.append(FileAttr.RESTORE_EXPIRY)
        else:
            values[FileAttr.RESTORE_EXPIRY] = iso_seconds(restore_expiry)
        return self._update(
            name,
            expr,
            set_=values,
            extra_set=extra,
            remove=remove,
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)}) AND "
            + expr.version_is(FileAttr.STATE_VERSION, expected_version),
        )

    def claim_restore(self, name: str, expected_version: int, now: float) -> bool:
        """ARCHIVED at `expected_version` -> RESTORING; only the winner then calls RestoreObject."""
        expr = Expr()
        count = expr.name(FileAttr.RESTORE_COUNT)
        return self._update(
            name,
            expr,
            set_={
                FileAttr.STATE: FileState.RESTORING.value,
                FileAttr.RESTORE_REQUESTED_AT: iso_seconds(now),
                FileAttr.UPDATED_AT: iso_seconds(now),
            },
            extra_set=[self._bump(expr), f"{count} = if_not_exists({count}, {expr.value(0)}) + {expr.value(1)}"],
            remove=[FileAttr.RESTORE_EXPIRY, FileAttr.RESTORE_CHECKED_AT],
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.ARCHIVED.value)} AND "
            + expr.version_is(FileAttr.STATE_VERSION, expected_version),
        )

    def unclaim_restore(self, name: str, claimed_version: int, now: float) -> bool:
        """RestoreObject failed for good: back to ARCHIVED (the request did not count)."""
        expr = Expr()
        count = expr.name(FileAttr.RESTORE_COUNT)
        return self._update(
            name,
            expr,
            set_={FileAttr.STATE: FileState.ARCHIVED.value, FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[self._bump(expr), f"{count} = {count} - {expr.value(1)}"],
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.RESTORING.value)} AND "
            + expr.version_is(FileAttr.STATE_VERSION, claimed_version),
        )

    def set_lease(self, name: str, restore_expiry: float, now: float) -> bool:
        """A renewal: the readable copy now lives until `restore_expiry`."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.RESTORE_EXPIRY: iso_seconds(restore_expiry), FileAttr.UPDATED_AT: iso_seconds(now)},
            condition=expr.one_of(FileAttr.STATE, (s.value for s in READABLE_STATES)),
        )

    def mark_probed(self, name: str, now: float) -> bool:
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.RESTORE_CHECKED_AT: iso_seconds(now)},
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)})",
        )

    def claim_index_request(self, name: str, now: float, retry_s: float) -> bool:
        """RESTORED and no index request within `retry_s`: record one now (the winner sends it)."""
        expr = Expr()
        at = expr.name(FileAttr.INDEX_REQUESTED_AT)
        return self._update(
            name,
            expr,
            set_={FileAttr.INDEX_REQUESTED_AT: iso_seconds(now)},
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.RESTORED.value)} AND "
            f"(attribute_not_exists({at}) OR {at} <= {expr.value(iso_seconds(now - retry_s))})",
        )

    def invalidate(self, name: str, expected_version: int, now: float) -> bool:
        """A readable file whose copy expired -> ARCHIVED, its domain forgotten (deleted before this write)."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.STATE: FileState.ARCHIVED.value, FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[self._bump(expr)],
            remove=[FileAttr.DOMAIN, FileAttr.RESTORE_EXPIRY, FileAttr.INDEX_REQUESTED_AT, FileAttr.RESTORE_CHECKED_AT],
            condition=expr.one_of(FileAttr.STATE, (s.value for s in READABLE_STATES))
            + " AND "
            + expr.version_is(FileAttr.STATE_VERSION, expected_version),
        )

    def claim_index_redrive(self, name: str, now: float, limit: int) -> bool:
        """Count one more redrive of a file's index request; False once `limit` were used.

        A request that reached the dead-letter queue without a reason failed transiently at
        every receive (an HSDS or S3 outage): the file is good, so it is tried again, a few times.
        """
        expr = Expr()
        redrives = expr.name(FileAttr.INDEX_REDRIVES)
        return self._update(
            name,
            expr,
            set_={FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[f"{redrives} = if_not_exists({redrives}, {expr.value(0)}) + {expr.value(1)}"],
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)}) AND "
            + f"(attribute_not_exists({redrives}) OR {redrives} < {expr.value(limit)})",
        )

    def fail(self, name: str, reason: str, now: float) -> bool:
        """A file that cannot be indexed (its request reached the index dead-letter queue)."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={
                FileAttr.STATE: FileState.FAILED.value,
                FileAttr.ERROR: reason[:2000],
                FileAttr.UPDATED_AT: iso_seconds(now),
            },
            extra_set=[self._bump(expr)],
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)}) AND "
            + f"NOT {expr.name(FileAttr.STATE)} IN "
            + f"({expr.value(FileState.INDEXED.value)}, {expr.value(FileState.FAILED.value)})",
        )

    def retry_failed(self, name: str, now: float) -> bool:
        """FAILED -> ARCHIVED (`datacarousel retry`): a state change (version bumped), its reason, redrive
        count and every trace of the last restore and index forgotten, like `invalidate`. The next steps
        restore and index it again for the jobs that wait for it. False if it is no longer FAILED."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.STATE: FileState.ARCHIVED.value, FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[self._bump(expr)],
            remove=[
                FileAttr.ERROR,
                FileAttr.INDEX_REDRIVES,
                FileAttr.DOMAIN,
                FileAttr.RESTORE_EXPIRY,
                FileAttr.INDEX_REQUESTED_AT,
                FileAttr.RESTORE_CHECKED_AT,
            ],
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.FAILED.value)}",
        )


# --- snapshots -------------------------------------------------------------------------------


def file_record(item: Mapping[str, Any]) -> FileRecord:
    return FileRecord(
        file_name=str(item[FileAttr.FILE_NAME]),
        orbit=int(item.get(FileAttr.ORBIT, 0)),
        size_bytes=int(item.get(FileAttr.SIZE, 0)),
        state=FileState(item.get(FileAttr.STATE, FileState.ARCHIVED.value)),
        key=str(item.get(FileAttr.KEY, "")),
        domain=str(item.get(FileAttr.DOMAIN, "")),
        state_version=int(item.get(FileAttr.STATE_VERSION, 0)),
        restore_requested_at=to_seconds(item.get(FileAttr.RESTORE_REQUESTED_AT)),
        restore_expiry=to_seconds(item.get(FileAttr.RESTORE_EXPIRY)),
        index_requested_at=to_seconds(item.get(FileAttr.INDEX_REQUESTED_AT)),
        updated_at=to_seconds(item.get(FileAttr.UPDATED_AT)),
        restore_count=max(0, int(item.get(FileAttr.RESTORE_COUNT, 0))),
        restore_checked_at=to_seconds(item.get(FileAttr.RESTORE_CHECKED_AT)),
        year_month=str(item.get(FileAttr.YEAR_MONTH, "")),
        misr_path=int(item.get(FileAttr.MISR_PATH, 0)),
    )


def job_record(item: Mapping[str, Any]) -> JobRecord:
    return JobRecord(
        job_id=str(item[JobAttr.JOB_ID]),
        owner=str(item.get(JobAttr.OWNER, "")),
        submitted_at=to_seconds(item.get(JobAttr.SUBMITTED_AT)) or 0.0,
        state=JobState(item.get(JobAttr.STATE, JobState.OPEN.value)),
    )


@dataclass
class Loaded:
    """A snapshot and the raw items it came from (for attributes the planner does not model)."""

    snapshot: Snapshot
    files: dict[str, dict[str, Any]]
    jobs: dict[str, dict[str, Any]]
    job_files: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Tables:
    """The three tables, as the carousel reaches them."""

    files: FilesTable
    jobs: JobsTable
    job_files: JobFilesTable

    @property
    def carousel_files(self) -> CarouselFiles:
        return CarouselFiles(self.files)

    @classmethod
    def from_names(cls, ddb: Any, files_table: str, jobs_table: str, job_files_table: str) -> Tables:
        return cls(FilesTable(ddb, files_table), JobsTable(ddb, jobs_table), JobFilesTable(ddb, job_files_table))


def load(tables: Tables, *, job_ids: Iterable[str] = (), extra_files: Iterable[str] = ()) -> Loaded:
    """Open jobs (plus `job_ids` whatever their state), their job-files, the window and the files they need."""
    jobs = {str(item[JobAttr.JOB_ID]): item for item in tables.jobs.by_state(JobState.OPEN)}
    for job_id in job_ids:
        if job_id not in jobs:
            item = tables.jobs.get(job_id)
            if item is not None:
                jobs[job_id] = item
    job_files: dict[tuple[str, str], dict[str, Any]] = {}
    for job_id in jobs:
        for item in tables.job_files.of_job(job_id):
            job_files[(job_id, str(item[JobFileAttr.FILE_NAME]))] = item
    files: dict[str, dict[str, Any]] = {}
    for state in WINDOW_STATES:
        for item in tables.files.by_state(state):
            files[str(item[FileAttr.FILE_NAME])] = item
    wanted = {name for _, name in job_files} | set(extra_files)
    missing = [name for name in sorted(wanted) if name not in files]
    if missing:
        files.update(tables.files.get_many(missing))
    unknown = {key for key in job_files if key[1] not in files}
    for key in sorted(unknown):
        log.warning("job %s names file %s, which is not in the files table: left out", *key)
        del job_files[key]
    snapshot = Snapshot.from_records(
        (file_record(item) for item in files.values()),
        (job_record(item) for item in jobs.values()),
        (
            JobFileRecord(job_id, name, JobFileState(item.get(JobFileAttr.STATE, JobFileState.WAITING.value)))
            for (job_id, name), item in job_files.items()
        ),
    )
    return Loaded(snapshot=snapshot, files=files, jobs=jobs, job_files=job_files)
