"""Immutable snapshots of the carousel's state: files, jobs and job-files.

The planner is a pure function of a `Snapshot` and the time `now`. A snapshot
is columnar (numpy arrays, read-only) so that one planning step over the
whole archive (84,303 files, tens of thousands of job-files) is a handful of
vectorised operations. Adapters build one from records (`Snapshot.from_records`,
one `FileRecord` per BasicFusionFiles item and so on); the simulator builds one
straight from its arrays.

Times are POSIX seconds (float, UTC) everywhere in the pure core; `NaN` in a
time column means "not set". States are stored as small integer codes; the
`*_CODE` / `*_FROM_CODE` tables translate to and from the contract's enums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from datacarousel.contract import FileState, JobFileState, JobState
from datacarousel.errors import BadInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.int8]
IndexArray = npt.NDArray[np.int32]

# State codes. The order matters: job-file codes below DONE are "still needs the file".
FILE_CODE: dict[FileState, int] = {
    FileState.ARCHIVED: 0,
    FileState.RESTORING: 1,
    FileState.RESTORED: 2,
    FileState.INDEXED: 3,
    FileState.FAILED: 4,
}
FILE_FROM_CODE: dict[int, FileState] = {v: k for k, v in FILE_CODE.items()}
F_ARCHIVED, F_RESTORING, F_RESTORED, F_INDEXED, F_FAILED = (FILE_CODE[s] for s in FileState)

JOB_FILE_CODE: dict[JobFileState, int] = {
    JobFileState.WAITING: 0,
    JobFileState.QUEUED: 1,
    JobFileState.RUNNING: 2,
    JobFileState.DONE: 3,
    JobFileState.FAILED: 4,
}
JOB_FILE_FROM_CODE: dict[int, JobFileState] = {v: k for k, v in JOB_FILE_CODE.items()}
JF_WAITING, JF_QUEUED, JF_RUNNING, JF_DONE, JF_FAILED = (JOB_FILE_CODE[s] for s in JobFileState)

JOB_CODE: dict[JobState, int] = {JobState.OPEN: 0, JobState.COMPLETE: 1, JobState.CANCELLED: 2}
JOB_FROM_CODE: dict[int, JobState] = {v: k for k, v in JOB_CODE.items()}
J_OPEN, J_COMPLETE, J_CANCELLED = (JOB_CODE[s] for s in JobState)

NAN = float("nan")


def _frozen(values: Any, dtype: Any) -> npt.NDArray[Any]:
    array = np.array(values, dtype=dtype)  # always a copy: callers cannot mutate a snapshot
    array.setflags(write=False)
    return array


def _time(value: float | None) -> float:
    return NAN if value is None else float(value)


def _codes(table: Mapping[Any, int], states: Iterable[Any], what: str) -> list[int]:
    """State codes of enum members or their string values (str enums hash and compare as their value)."""
    values = list(states)
    try:
        return [table[v] for v in values]
    except KeyError as exc:
        raise BadInput(f"unknown {what} {exc.args[0]!r}") from None


def _opt(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


# --- records (one per table item) ------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """One BasicFusionFiles item as the planner sees it."""

    file_name: str
    orbit: int
    size_bytes: int
    state: FileState = FileState.ARCHIVED
    key: str = ""
    domain: str = ""
    state_version: int = 0
    restore_requested_at: float | None = None
    restore_expiry: float | None = None
    index_requested_at: float | None = None
    updated_at: float | None = None
    restore_count: int = 0
    restore_checked_at: float | None = None
    year_month: str = ""
    misr_path: int = 0
    error: str = ""  # why a FAILED file failed (its job-files fail with it)


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    owner: str
    submitted_at: float
    state: JobState = JobState.OPEN
    file_count: int | None = None  # job-files the submission wrote; a job completes only once all are seen
    # The researcher's slack: the latest acceptable completion (POSIX seconds). None: prompt, as before
    # (the planner restores the job's files as soon as the window allows).
    deadline: float | None = None


@dataclass(frozen=True)
class JobFileRecord:
    job_id: str
    file_name: str
    state: JobFileState = JobFileState.WAITING


# --- columnar tables -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FileTable:
    """Every file the planner knows about, one row each (row order is arbitrary but fixed)."""

    names: tuple[str, ...]
    keys: tuple[str, ...]
    domains: tuple[str, ...]
    orbit: IntArray
    size: IntArray
    state: CodeArray
    version: IntArray
    requested_at: FloatArray
    expiry: FloatArray
    index_requested_at: FloatArray
    updated_at: FloatArray
    restore_count: IntArray
    checked_at: FloatArray
    errors: tuple[str, ...] = ()  # why each FAILED file failed ("" unknown); () = none recorded

    def __post_init__(self) -> None:
        n = len(self.names)
        if not self.errors and n:
            object.__setattr__(self, "errors", ("",) * n)
        for name in ("keys", "domains", "orbit", "size", "state", "version", "requested_at", "expiry", "errors"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FileTable column {name!r} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def position(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @classmethod
    def build(
        cls,
        names: Sequence[str],
        orbit: Any,
        size: Any,
        *,
        keys: Sequence[str] | None = None,
        domains: Sequence[str] | None = None,
        state: Any = None,
        version: Any = None,
        requested_at: Any = None,
        expiry: Any = None,
        index_requested_at: Any = None,
        updated_at: Any = None,
        restore_count: Any = None,
        checked_at: Any = None,
        errors: Sequence[str] | None = None,
        position: dict[str, int] | None = None,
    ) -> FileTable:
        n = len(names)
        nan = np.full(n, np.nan)
        zeros = np.zeros(n)
        table = cls(
            names=tuple(names),
            keys=tuple(keys) if keys is not None else tuple(names),
            domains=tuple(domains) if domains is not None else ("",) * n,
            orbit=_frozen(orbit, np.int64),
            size=_frozen(size, np.int64),
            state=_frozen(zeros if state is None else state, np.int8),
            version=_frozen(zeros if version is None else version, np.int64),
            requested_at=_frozen(nan if requested_at is None else requested_at, np.float64),
            expiry=_frozen(nan if expiry is None else expiry, np.float64),
            index_requested_at=_frozen(nan if index_requested_at is None else index_requested_at, np.float64),
            updated_at=_frozen(nan if updated_at is None else updated_at, np.float64),
            restore_count=_frozen(zeros if restore_count is None else restore_count, np.int64),
            checked_at=_frozen(nan if checked_at is None else checked_at, np.float64),
            errors=tuple(errors) if errors is not None else ("",) * n,
        )
        if position is not None:  # a caller that builds many snapshots over the same names shares one dict
            table.__dict__["position"] = position
        return table

    def record(self, i: int) -> FileRecord:
        return FileRecord(
            file_name=self.names[i],
            orbit=int(self.orbit[i]),
            size_bytes=int(self.size[i]),
            state=FILE_FROM_CODE[int(self.state[i])],
            key=self.keys[i],
            domain=self.domains[i],
            state_version=int(self.version[i]),
            restore_requested_at=_opt(self.requested_at[i]),
            restore_expiry=_opt(self.expiry[i]),
            index_requested_at=_opt(self.index_requested_at[i]),
            updated_at=_opt(self.updated_at[i]),
            restore_count=int(self.restore_count[i]),
            restore_checked_at=_opt(self.checked_at[i]),
            error=self.errors[i],
        )

    def replace_rows(self, rows: Sequence[int], **columns: Sequence[Any]) -> FileTable:
        """A new table with `columns[name][k]` written at row `rows[k]` (states as enum or code)."""
        if not rows:
            return self
        idx = np.asarray(rows, dtype=np.int64)
        changes: dict[str, Any] = {}
        for name, values in columns.items():
            if name in ("domains", "errors"):  # text columns
                texts = list(getattr(self, name))
                for r, v in zip(rows, values, strict=True):
                    texts[r] = v
                changes[name] = tuple(texts)
                continue
            current = getattr(self, name)
            updated = current.copy()
            updated[idx] = np.asarray(values, dtype=current.dtype)
            updated.setflags(write=False)
            changes[name] = updated
        table = FileTable(**{**{f: getattr(self, f) for f in _FILE_FIELDS}, **changes})
        if "position" in self.__dict__:
            table.__dict__["position"] = self.__dict__["position"]
        return table


_FILE_FIELDS = (
    "names",
    "keys",
    "domains",
    "orbit",
    "size",
    "state",
    "version",
    "requested_at",
    "expiry",
    "index_requested_at",
    "updated_at",
    "restore_count",
    "checked_at",
    "errors",
)


@dataclass(frozen=True, eq=False)
class JobTable:
    ids: tuple[str, ...]
    owners: tuple[str, ...]
    submitted_at: FloatArray
    state: CodeArray
    file_count: IntArray  # -1: not known
    deadline: FloatArray  # latest acceptable completion (POSIX seconds); NaN: none, the job is prompt

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def position(self) -> dict[str, int]:
        return {job: i for i, job in enumerate(self.ids)}

    @cached_property
    def owner_names(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.owners)))

    @cached_property
    def owner_index(self) -> IndexArray:
        lookup = {o: i for i, o in enumerate(self.owner_names)}
        return _frozen([lookup[o] for o in self.owners], np.int32)

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        owners: Sequence[str],
        submitted_at: Any,
        state: Any = None,
        file_count: Any = None,
        *,
        deadline: Any = None,
    ) -> JobTable:
        n = len(ids)
        if len(set(ids)) != n:
            raise BadInput("duplicate job ids in snapshot")
        return cls(
            ids=tuple(ids),
            owners=tuple(owners),
            submitted_at=_frozen(submitted_at, np.float64),
            state=_frozen(np.zeros(n) if state is None else state, np.int8),
            file_count=_frozen(np.full(n, -1) if file_count is None else file_count, np.int64),
            deadline=_frozen(np.full(n, np.nan) if deadline is None else deadline, np.float64),
        )


@dataclass(frozen=True, eq=False)
class JobFileTable:
    """(job, file) rows as indexes into the job and file tables."""

    job: IndexArray
    file: IndexArray
    state: CodeArray

    def __len__(self) -> int:
        return len(self.job)

    @classmethod
    def build(cls, job: Any, file: Any, state: Any = None) -> JobFileTable:
        j = _frozen(job, np.int32)
        return cls(
            job=j, file=_frozen(file, np.int32), state=_frozen(np.zeros(len(j)) if state is None else state, np.int8)
        )


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything one planning step looks at. Immutable: every array is read-only."""

    files: FileTable
    jobs: JobTable
    job_files: JobFileTable
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        jf = self.job_files
        if len(jf) and (jf.job.min() < 0 or jf.job.max() >= len(self.jobs)):
            raise ValueError("job-file rows refer to jobs outside the job table")
        if len(jf) and (jf.file.min() < 0 or jf.file.max() >= len(self.files)):
            raise ValueError("job-file rows refer to files outside the file table")

    @classmethod
    def from_records(
        cls, files: Iterable[FileRecord], jobs: Iterable[JobRecord], job_files: Iterable[JobFileRecord]
    ) -> Snapshot:
        """Build a snapshot from table items; a job-file naming an unknown job or file is an error."""
        file_list = list(files)
        names = [f.file_name for f in file_list]
        if len(set(names)) != len(names):
            raise BadInput("duplicate file names in snapshot")
        table = FileTable.build(
            names,
            [f.orbit for f in file_list],
            [f.size_bytes for f in file_list],
            keys=[f.key or f.file_name for f in file_list],
            domains=[f.domain for f in file_list],
            state=_codes(FILE_CODE, (f.state for f in file_list), "file state"),
            version=[f.state_version for f in file_list],
            requested_at=[_time(f.restore_requested_at) for f in file_list],
            expiry=[_time(f.restore_expiry) for f in file_list],
            index_requested_at=[_time(f.index_requested_at) for f in file_list],
            updated_at=[_time(f.updated_at) for f in file_list],
            restore_count=[f.restore_count for f in file_list],
            checked_at=[_time(f.restore_checked_at) for f in file_list],
            errors=[f.error for f in file_list],
        )
        job_list = list(jobs)
        job_table = JobTable.build(
            [j.job_id for j in job_list],
            [j.owner for j in job_list],
            [j.submitted_at for j in job_list],
            _codes(JOB_CODE, (j.state for j in job_list), "job state"),
            [-1 if j.file_count is None else j.file_count for j in job_list],
            deadline=[_time(j.deadline) for j in job_list],
        )
        file_pos, job_pos = table.position, job_table.position
        rows = list(job_files)
        try:
            jf_job = [job_pos[r.job_id] for r in rows]
        except KeyError as exc:
            raise BadInput(f"a job-file names an unknown job {exc.args[0]!r}") from None
        try:
            jf_file = [file_pos[r.file_name] for r in rows]
        except KeyError as exc:
            raise BadInput(f"a job-file names an unknown file {exc.args[0]!r}") from None
        jf_state = _codes(JOB_FILE_CODE, (r.state for r in rows), "job-file state")
        pair_keys = np.sort(
            np.asarray(jf_job, dtype=np.int64) * max(len(table), 1) + np.asarray(jf_file, dtype=np.int64)
        )
        if len(pair_keys) > 1 and (pair_keys[1:] == pair_keys[:-1]).any():
            dup = int(pair_keys[1:][pair_keys[1:] == pair_keys[:-1]][0])
            j, f = divmod(dup, max(len(table), 1))
            raise BadInput(f"duplicate job-file ({job_table.ids[j]!r}, {table.names[f]!r})")
        return cls(table, job_table, JobFileTable.build(jf_job, jf_file, jf_state))

    def file(self, name: str) -> FileRecord:
        return self.files.record(self.files.position[name])

    def job_file_states(self, job_id: str) -> dict[str, JobFileState]:
        j = self.jobs.position[job_id]
        rows = np.nonzero(self.job_files.job == j)[0]
        return {
            self.files.names[int(self.job_files.file[r])]: JOB_FILE_FROM_CODE[int(self.job_files.state[r])]
            for r in rows
        }

    def replace(
        self, files: FileTable | None = None, jobs: JobTable | None = None, job_files: JobFileTable | None = None
    ) -> Snapshot:
        return Snapshot(
            files=self.files if files is None else files,
            jobs=self.jobs if jobs is None else jobs,
            job_files=self.job_files if job_files is None else job_files,
            extra=self.extra,
        )
