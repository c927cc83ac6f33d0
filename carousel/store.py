"""DynamoDB adapters of the carousel: jobs, job-files, and loading a `Snapshot` (its writes on files: `file_writes`).

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
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from carousel.dynamo_items import _conditional_failure, to_seconds, update
from carousel.file_writes import READABLE_STATES, CarouselFiles
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
from datacarousel.files_table import Expr, FilesTable, batch_put, deserialize, query_all, serialize
from datacarousel.times import iso_seconds

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

# Names other modules use from here, where they were before the store was split (dynamo_items, file_writes).
__all__ = [
    "READABLE_STATES",
    "CarouselFiles",
    "JobFilesTable",
    "JobsTable",
    "LaunchLease",
    "Lease",
    "Loaded",
    "Tables",
    "batch_put",
    "file_record",
    "iso_seconds",
    "job_record",
    "load",
    "to_seconds",
]

WINDOW_STATES = (FileState.RESTORING, FileState.RESTORED, FileState.INDEXED, FileState.FAILED)


# --- jobs ------------------------------------------------------------------------------------


class JobsTable:
    """The jobs table (a low-level DynamoDB client is passed in)."""

    def __init__(self, ddb: DynamoDBClient, table: str) -> None:
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
    def __init__(self, ddb: DynamoDBClient, table: str) -> None:
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
        deadline=to_seconds(item.get(JobAttr.DEADLINE)),  # None (absent or unparseable): prompt
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
    def from_names(cls, ddb: DynamoDBClient, files_table: str, jobs_table: str, job_files_table: str) -> Tables:
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
