"""Small hand-made snapshots for the carousel tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from carousel.model import FileRecord, JobFileRecord, JobRecord, Snapshot
from datacarousel import naming
from datacarousel.contract import FileState, JobFileState, JobState

GIB = 2**30
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HOUR = 3600.0
DAY = 86_400.0


def name(orbit: int) -> str:
    return naming.BasicFusionName.for_orbit(orbit).file_name


def file(
    orbit: int,
    state: FileState = FileState.ARCHIVED,
    *,
    size: int = 30 * GIB,
    expiry: float | None = None,
    requested_at: float | None = None,
    index_requested_at: float | None = None,
    domain: str = "",
    version: int = 0,
    restore_count: int = 0,
) -> FileRecord:
    bf = naming.BasicFusionName.for_orbit(orbit)
    if state in (FileState.INDEXED,) and not domain:
        domain = f"/home/test/basicfusion/{bf.year_month}/{bf.file_name}"
    return FileRecord(
        file_name=bf.file_name,
        orbit=orbit,
        size_bytes=size,
        state=state,
        key=naming.archive_key(bf),
        domain=domain,
        state_version=version,
        restore_requested_at=requested_at,
        restore_expiry=expiry,
        index_requested_at=index_requested_at,
        restore_count=restore_count,
        year_month=bf.year_month,
        misr_path=bf.misr_path,
    )


def job(job_id: str, owner: str = "alice", submitted_at: float = T0, state: JobState = JobState.OPEN) -> JobRecord:
    return JobRecord(job_id, owner, submitted_at, state)


def wants(job_id: str, orbits: Iterable[int], state: JobFileState = JobFileState.WAITING) -> list[JobFileRecord]:
    return [JobFileRecord(job_id, name(o), state) for o in orbits]


def snapshot(files: Sequence[FileRecord], jobs: Sequence[JobRecord], *rows: Iterable[JobFileRecord]) -> Snapshot:
    return Snapshot.from_records(files, jobs, [r for group in rows for r in group])
