"""Operator recovery (`datacarousel retry`): FAILED files and job-files go back, and the carousel does them again.

FAILED is terminal for the carousel (only a dead-lettered index request of the file's own object fails a
file, and the planner then fails every job-file waiting for it); an operator who has fixed the cause (a
re-uploaded object, an HSDS outage that outlasted the redrives, a corrected analysis) undoes it here:

- a FAILED file goes back to ARCHIVED (`CarouselFiles.retry_failed`: only if still FAILED, a state change
  with its version bumped, its reason and the traces of its last restore and index removed). The steps
  then restore and index it again for the jobs that wait for it;
- with it, every FAILED job-file of an OPEN job that failed because of that file (its reason is the file's
  reason: the step copies it) goes back to WAITING (`JobFilesTable.retry_failed`: only if still FAILED);
- `retry --job`: every FAILED job-file of the job (whatever failed it) goes back to WAITING, the FAILED
  files they name as above, and a COMPLETE job is reopened (`JobsTable.reopen`: COMPLETE -> OPEN, its end,
  counts, composites and reduce request removed, `reopened_at` set). A CANCELLED job is refused.

Order matters, against a step running meanwhile: files first (a job-file WAITING for a file still FAILED
would be failed again by the next plan), then job-files, then the job (a job reopened while its job-files
were all still final could be completed — or reduced — before they are back). An open job that a step
completed anyway, between a file's write and its job-files' (every other job-file final), is reopened
once it has a job-file WAITING again.

Known limit: a ReduceRequest already on the work queue when a retry restarts an open job's reduction may
still be run, and its marker (newer than `reopened_at`) then counts; the reduction misses the files that
came back (telling it from the new one would need a generation in the request and the marker).

A job with a reducer that is reopened (or an OPEN one whose reducer was already asked for) must be reduced
again: its old marker `results/<job>/reduced.json` must not complete it. `marker_is_stale` is the rule
the step applies (`JobCompleter.reduced`): a marker whose S3 LastModified is not after the job's `reopened_at` is
the old one. See `reopen_moment` for why both times are S3's clock.

The decisions (`plan_for_files`, `plan_for_job`, `matching_reason`, `reopen_moment`'s arithmetic,
`marker_is_stale`) are pure; `retry_files`, `retry_job` and `retry_reason` read the tables (queries and
GetItems only, never a Scan) and apply a plan, or only describe it (`dry_run`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from carousel.store import Tables, to_seconds
from datacarousel import naming
from datacarousel.archive import is_not_found
from datacarousel.contract import FileAttr, FileState, JobAttr, JobFileAttr, JobFileState, JobState
from datacarousel.errors import BadInput, MalformedMessage
from datacarousel.messages import check_job_id

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

ERROR_CHARS = 2000  # what the step keeps of a reason (`CarouselFiles.fail`, `JobFilesTable.transition`)
LINE_REASON_CHARS = 120  # what one output line shows of a reason
FILES_HINT = "see `datacarousel files --state FAILED`"
_NOT_FINAL = (JobFileState.WAITING.value, JobFileState.QUEUED.value, JobFileState.RUNNING.value)


# --- what a retry changes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileChange:
    """A FAILED file back to ARCHIVED."""

    file_name: str
    error: str
    needed: bool  # an open job waits for it once the retry is done (else it stays ARCHIVED until one does)


@dataclass(frozen=True)
class JobFileChange:
    """A FAILED job-file back to WAITING."""

    job_id: str
    file_name: str
    error: str


@dataclass(frozen=True)
class JobChange:
    """A COMPLETE job reopened, or an OPEN job whose reduction must run again (`state` says which)."""

    job_id: str
    state: JobState
    reducer: bool


@dataclass(frozen=True)
class RetryPlan:
    files: tuple[FileChange, ...] = ()
    job_files: tuple[JobFileChange, ...] = ()
    jobs: tuple[JobChange, ...] = ()
    notes: tuple[str, ...] = ()  # what the retry leaves alone and how to retry it

    def __add__(self, other: RetryPlan) -> RetryPlan:
        return RetryPlan(
            _unique(self.files + other.files, lambda c: c.file_name),
            _unique(self.job_files + other.job_files, lambda c: (c.job_id, c.file_name)),
            _unique(self.jobs + other.jobs, lambda c: c.job_id),
            tuple(dict.fromkeys(self.notes + other.notes)),
        )

    @property
    def empty(self) -> bool:
        return not (self.files or self.job_files or self.jobs)


def _unique(changes: Sequence[Any], key: Any) -> tuple[Any, ...]:
    seen: dict[Any, Any] = {}
    for change in changes:
        seen.setdefault(key(change), change)
    return tuple(seen.values())


def _short(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= LINE_REASON_CHARS else reason[: LINE_REASON_CHARS - 1] + "…"


def _state(item: Mapping[str, Any] | None) -> str:
    return "" if item is None else str(item.get(FileAttr.STATE, ""))


def failed_because_of(file_item: Mapping[str, Any], job_file: Mapping[str, Any]) -> bool:
    """A FAILED job-file failed because its FAILED file did: the step gave it the file's reason.

    A job-file failed otherwise (its work item dead-lettered: the analysis failed on a readable file)
    carries the worker's reason; a file that has no reason (never written so by this project) takes
    every FAILED job-file along.
    """
    file_error = str(file_item.get(FileAttr.ERROR, ""))
    return not file_error or str(job_file.get(JobFileAttr.ERROR, "")) == file_error[:ERROR_CHARS]


def check_failed(names: Sequence[str], items: Mapping[str, Mapping[str, Any] | None]) -> None:
    """BadInput unless every named file exists and is FAILED (nothing is changed then)."""
    if not names:
        raise BadInput(f"name at least one file, or give --job or --reason ({FILES_HINT})")
    for name in names:
        item = items.get(name)
        if item is None:
            raise BadInput(f"no file {name!r} in BasicFusionFiles ({FILES_HINT})")
        if _state(item) != FileState.FAILED.value:
            state = _state(item) or "without state"
            raise BadInput(f"file {name} is {state}, not FAILED: only FAILED files are retried ({FILES_HINT})")


def _job_change(job: Mapping[str, Any]) -> JobChange:
    return JobChange(str(job[JobAttr.JOB_ID]), JobState(str(job[JobAttr.STATE])), bool(job.get(JobAttr.REDUCER)))


def plan_for_files(
    files: Sequence[Mapping[str, Any]],
    related: Mapping[str, Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]]],
    *,
    own_job: str | None = None,
) -> RetryPlan:
    """FAILED files back to ARCHIVED, and the FAILED job-files of open jobs that failed because of them.

    `related[name]`: each job-file naming the file with its job's item (None: the job is gone). An open
    job whose reducer was already asked for must reduce again (`JobChange` OPEN); a COMPLETE job that
    failed on the file too is left as it is, with a note (`retry --job` reopens it). `own_job`: the job
    `retry --job` retries (`plan_for_job` decides about its job-files; it waits for these files).
    """
    file_changes: list[FileChange] = []
    job_file_changes: list[JobFileChange] = []
    job_changes: list[JobChange] = []
    notes: list[str] = []
    for item in files:
        name = str(item[FileAttr.FILE_NAME])
        needed = False
        for job_file, job in related.get(name, ()):
            if job is None:
                continue
            job_id, job_state = str(job[JobAttr.JOB_ID]), str(job.get(JobAttr.STATE, ""))
            if job_id == own_job:
                needed = True
                continue
            jf_state = str(job_file.get(JobFileAttr.STATE, ""))
            if job_state == JobState.OPEN.value and jf_state in _NOT_FINAL:
                needed = True
            if jf_state != JobFileState.FAILED.value:
                continue
            if job_state == JobState.OPEN.value:
                if failed_because_of(item, job_file):
                    job_file_changes.append(JobFileChange(job_id, name, str(job_file.get(JobFileAttr.ERROR, ""))))
                    needed = True
                    if job.get(JobAttr.REDUCE_REQUESTED_AT):
                        job_changes.append(_job_change(job))
                else:
                    notes.append(
                        f"job-file {job_id}/{name} failed for another reason "
                        f"({_short(str(job_file.get(JobFileAttr.ERROR, '')))}): "
                        f"`datacarousel retry --job {job_id}` retries it"
                    )
            elif job_state == JobState.COMPLETE.value:
                notes.append(
                    f"job {job_id} is COMPLETE and failed on {name} too: `datacarousel retry --job {job_id}` reopens it"
                )
        file_changes.append(FileChange(name, str(item.get(FileAttr.ERROR, "")), needed))
        if not needed:
            notes.append(f"no open job waits for {name}: it stays ARCHIVED until a job needs it")
    return RetryPlan(tuple(file_changes), tuple(job_file_changes), tuple(job_changes), tuple(notes))


def plan_for_job(
    job: Mapping[str, Any],
    job_files: Sequence[Mapping[str, Any]],
    files: Mapping[str, Mapping[str, Any]],
    related: Mapping[str, Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]]],
) -> RetryPlan:
    """Every FAILED job-file of the job back to WAITING, the FAILED files they name back to ARCHIVED (with
    the other open jobs' job-files that failed because of them), and a COMPLETE job reopened.

    `files`: the items of the files the FAILED job-files name; `related`: as for `plan_for_files`.
    BadInput for a CANCELLED job, and for a job with nothing to retry (no FAILED job-file, and for a
    COMPLETE job no error either: a reducer's failure is retried by reopening the job).
    """
    job_id, state = str(job[JobAttr.JOB_ID]), str(job.get(JobAttr.STATE, ""))
    if state == JobState.CANCELLED.value:
        raise BadInput(f"job {job_id} is CANCELLED: a cancelled job is not retried (submit it again)")
    failed = [jf for jf in job_files if str(jf.get(JobFileAttr.STATE, "")) == JobFileState.FAILED.value]
    complete = state == JobState.COMPLETE.value
    if not failed and not (complete and job.get(JobAttr.ERROR)):
        raise BadInput(
            f"job {job_id} ({state}) has no FAILED file and no error: nothing to retry "
            f"(see `datacarousel status {job_id}`)"
        )
    failed_files = [
        files[name]
        for name in dict.fromkeys(str(jf[JobFileAttr.FILE_NAME]) for jf in failed)
        if _state(files.get(name)) == FileState.FAILED.value
    ]
    own = RetryPlan(
        job_files=tuple(
            JobFileChange(job_id, str(jf[JobFileAttr.FILE_NAME]), str(jf.get(JobFileAttr.ERROR, ""))) for jf in failed
        ),
        jobs=(_job_change(job),) if complete or job.get(JobAttr.REDUCE_REQUESTED_AT) else (),
    )
    return own + plan_for_files(failed_files, related, own_job=job_id)


def matching_reason(items: Iterable[Mapping[str, Any]], text: str) -> list[Mapping[str, Any]]:
    """The FAILED files whose reason contains `text` (case-sensitive), in the order given."""
    if not text.strip():
        raise BadInput(f"--reason needs some text of the reasons to match ({FILES_HINT})")
    return [
        item for item in items if _state(item) == FileState.FAILED.value and text in str(item.get(FileAttr.ERROR, ""))
    ]


# --- a reopened job's old reduction --------------------------------------------------------------------


def marker_is_stale(marker_modified: float | None, reopened_at: float | None) -> bool:
    """A job's reduced marker is the old reduction's: the job was reopened and the marker is not newer.

    Both times are S3's clock (`reopen_moment`); LastModified has whole seconds and `reopened_at` is
    stored rounded down, so "not newer" (<=) errs towards reducing again rather than completing a
    reopened job on its old results. A marker with no LastModified (S3 always sends one) is stale too.
    """
    if reopened_at is None:
        return False
    return marker_modified is None or marker_modified <= reopened_at


def reopen_moment(local_now: float, s3_now: float | None, old_marker_modified: float | None) -> float:
    """The `reopened_at` to record: S3's own time when its answer said it, else this machine's; never before
    the marker already there.

    The step compares a marker's LastModified (set by S3's clock) with `reopened_at`, so `reopened_at` is
    taken from the same clock when it can be (the Date header of the HeadObject that looked for the
    marker, success or 404): the operator's machine may be minutes off. When S3 did not say (moto in
    process sends no Date), the local time is used but never earlier than the old marker's LastModified:
    a clock behind S3 still makes the old marker stale. A clock ahead of S3 can only make the *new*
    marker look stale for a while — the job is reduced again after the step's resend delay rather than
    completed on its old results.
    """
    moment = s3_now if s3_now is not None else local_now
    return moment if old_marker_modified is None else max(moment, old_marker_modified)


def look_for_marker(s3: S3Client, bucket: str, job_id: str) -> tuple[float | None, float | None]:
    """(the job's reduced marker's LastModified or None, S3's time from the answer's Date header or None)."""
    try:
        response = s3.head_object(Bucket=bucket, Key=naming.reduced_marker_key(job_id))
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        return None, _date_header(exc.response)
    modified = response.get("LastModified")
    return (modified.timestamp() if modified is not None else None), _date_header(response)


def _date_header(response: Mapping[str, Any]) -> float | None:
    text = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not text:
        return None
    try:
        return parsedate_to_datetime(str(text)).timestamp()
    except (TypeError, ValueError):
        return None


# --- applying a plan -----------------------------------------------------------------------------------


@dataclass
class RetryReport:
    """What a retry changed (or, dry, would change): one line per file, job-file and job, and counts."""

    dry_run: bool = False
    lines: list[str] = field(default_factory=list)
    files: int = 0
    job_files: int = 0
    jobs: int = 0
    skipped: int = 0  # changed by another writer between the look and the conditional write

    def summary(self) -> str:
        verb = "would retry" if self.dry_run else "retried"
        text = f"{verb} {self.files} file(s) and {self.job_files} job-file(s), "
        text += f"{'would reopen' if self.dry_run else 'reopened'} {self.jobs} job(s)"
        if self.skipped:
            text += f"; {self.skipped} skipped (no longer FAILED / COMPLETE: changed meanwhile)"
        if not self.dry_run and (self.files or self.job_files or self.jobs):
            text += "; the carousel's next steps restore, index and run them again"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "files": self.files,
            "job_files": self.job_files,
            "jobs": self.jobs,
            "skipped": self.skipped,
            "lines": list(self.lines),
        }


def _file_line(change: FileChange) -> str:
    return f"file {change.file_name}: FAILED -> ARCHIVED (was: {_short(change.error) or 'no reason recorded'})"


def _job_file_line(change: JobFileChange) -> str:
    return f"job-file {change.job_id}/{change.file_name}: FAILED -> WAITING"


def _job_line(change: JobChange) -> str:
    again = "; reduced again once its files are final" if change.reducer else ""
    if change.state is JobState.COMPLETE:
        return f"job {change.job_id}: COMPLETE -> OPEN (reopened{again})"
    return f"job {change.job_id}: OPEN, its reduction runs again once its files are final"


def describe(plan: RetryPlan) -> RetryReport:
    """What `apply` would do, changing nothing (`--dry-run`)."""
    report = RetryReport(dry_run=True)
    report.lines += [f"would retry {_file_line(c)}" for c in plan.files]
    report.lines += [f"would retry {_job_file_line(c)}" for c in plan.job_files]
    report.lines += [f"would reopen {_job_line(c)}" for c in plan.jobs]
    report.lines += [f"note: {n}" for n in plan.notes]
    report.files, report.job_files, report.jobs = len(plan.files), len(plan.job_files), len(plan.jobs)
    return report


def apply(
    tables: Tables, plan: RetryPlan, *, s3: S3Client, results_bucket: str, now: float | None = None
) -> RetryReport:
    """Files, then job-files, then jobs, each one conditional write; a lost condition is skipped."""
    now = time.time() if now is None else now
    report = RetryReport()
    for file_change in plan.files:
        if tables.carousel_files.retry_failed(file_change.file_name, now):
            report.files += 1
            report.lines.append(_file_line(file_change))
            log.info("file %s: FAILED -> ARCHIVED by an operator's retry", file_change.file_name)
        else:
            report.skipped += 1
            report.lines.append(f"file {file_change.file_name}: skipped: no longer FAILED (changed meanwhile)")
    put_back: set[str] = set()  # jobs that got a job-file back
    for jf_change in plan.job_files:
        if tables.job_files.retry_failed(jf_change.job_id, jf_change.file_name, now):
            put_back.add(jf_change.job_id)
            report.job_files += 1
            report.lines.append(_job_file_line(jf_change))
        else:
            report.skipped += 1
            report.lines.append(
                f"job-file {jf_change.job_id}/{jf_change.file_name}: skipped: no longer FAILED (changed meanwhile)"
            )
    changed: set[str] = set()
    for job_change in plan.jobs:
        if _change_job(tables, job_change, s3=s3, results_bucket=results_bucket, now=now):
            changed.add(job_change.job_id)
            report.jobs += 1
            report.lines.append(_job_line(job_change))
        elif job_change.job_id not in put_back:
            report.skipped += 1
            report.lines.append(_skipped_job(job_change))
    # An open job a step completed between the file's write and its job-files' (they were all final just
    # then) has a job-file WAITING now: it is reopened, as `retry --job` would.
    planned = {c.job_id: c for c in plan.jobs}
    for job_id in sorted(put_back - changed):
        job = tables.jobs.get(job_id) or {}
        if job.get(JobAttr.STATE) == JobState.COMPLETE.value:
            late = JobChange(job_id, JobState.COMPLETE, bool(job.get(JobAttr.REDUCER)))
            if _change_job(tables, late, s3=s3, results_bucket=results_bucket, now=now):
                report.jobs += 1
                report.lines.append(f"{_job_line(late)}: it completed while the retry ran")
                continue
        if job_id in planned:
            report.skipped += 1
            report.lines.append(_skipped_job(planned[job_id]))
    report.lines += [f"note: {n}" for n in plan.notes]
    return report


def _change_job(tables: Tables, change: JobChange, *, s3: S3Client, results_bucket: str, now: float) -> bool:
    """Reopen a COMPLETE job, or restart an OPEN one's reduction; False if its state changed meanwhile."""
    marker, s3_now = (None, None)
    if change.reducer:
        marker, s3_now = look_for_marker(s3, results_bucket, change.job_id)
    moment = reopen_moment(now, s3_now, marker)
    if change.state is JobState.COMPLETE:
        done = tables.jobs.reopen(change.job_id, moment)
    else:
        done = tables.jobs.restart_reduction(change.job_id, moment)
    if done:
        log.info("%s (an operator's retry)", _job_line(change))
    return done


def _skipped_job(change: JobChange) -> str:
    return f"job {change.job_id}: skipped: no longer {change.state.value} (changed meanwhile)"


# --- reading what to retry -----------------------------------------------------------------------------


def _related(
    tables: Tables, names: Iterable[str]
) -> dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]]:
    """Each file's job-files (`by_file` index) with their jobs' items (GetItem, once per job)."""
    jobs: dict[str, Mapping[str, Any] | None] = {}
    related: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]] = {}
    for name in names:
        rows = related.setdefault(name, [])
        for job_file in tables.job_files.of_file(name):
            job_id = str(job_file[JobFileAttr.JOB_ID])
            if job_id not in jobs:
                jobs[job_id] = tables.jobs.get(job_id)
            rows.append((job_file, jobs[job_id]))
    return related


def _finish(
    tables: Tables, plan: RetryPlan, *, s3: S3Client, results_bucket: str, dry_run: bool, now: float | None
) -> RetryReport:
    if dry_run:
        return describe(plan)
    return apply(tables, plan, s3=s3, results_bucket=results_bucket, now=now)


def retry_files(
    tables: Tables,
    names: Sequence[str],
    *,
    s3: S3Client,
    results_bucket: str,
    dry_run: bool = False,
    now: float | None = None,
) -> RetryReport:
    """`datacarousel retry FILE_NAME...`: BadInput (nothing changed) unless every file exists and is FAILED."""
    names = list(dict.fromkeys(names))
    items: dict[str, Mapping[str, Any] | None] = dict.fromkeys(names)
    items.update(tables.files.get_many(names) if names else {})
    check_failed(names, items)
    plan = plan_for_files([items[n] or {} for n in names], _related(tables, names))
    return _finish(tables, plan, s3=s3, results_bucket=results_bucket, dry_run=dry_run, now=now)


def retry_job(
    tables: Tables,
    job_id: str,
    *,
    s3: S3Client,
    results_bucket: str,
    dry_run: bool = False,
    now: float | None = None,
) -> RetryReport:
    """`datacarousel retry --job JOB_ID`: BadInput for an unknown or CANCELLED job, or nothing to retry."""
    try:
        check_job_id(job_id)
    except MalformedMessage as exc:
        raise BadInput(f"{exc} (see `datacarousel status`)") from exc
    job = tables.jobs.get(job_id)
    if job is None or JobAttr.STATE not in job:
        raise BadInput(f"no such job {job_id!r} (see `datacarousel status`)")
    job_files = list(tables.job_files.of_job(job_id))
    names = list(
        dict.fromkeys(
            str(jf[JobFileAttr.FILE_NAME])
            for jf in job_files
            if str(jf.get(JobFileAttr.STATE, "")) == JobFileState.FAILED.value
        )
    )
    files = tables.files.get_many(names) if names else {}
    failed_names = [n for n in names if _state(files.get(n)) == FileState.FAILED.value]
    plan = plan_for_job(job, job_files, files, _related(tables, failed_names))
    return _finish(tables, plan, s3=s3, results_bucket=results_bucket, dry_run=dry_run, now=now)


def retry_reason(
    tables: Tables,
    text: str,
    *,
    s3: S3Client,
    results_bucket: str,
    dry_run: bool = False,
    now: float | None = None,
) -> RetryReport:
    """`datacarousel retry --reason TEXT`: the FAILED files (state index, never a Scan) whose reason contains TEXT."""
    matched = matching_reason(tables.files.by_state(FileState.FAILED), text)
    if not matched:
        raise BadInput(f"no FAILED file's reason contains {text!r} ({FILES_HINT})")
    names = [str(item[FileAttr.FILE_NAME]) for item in matched]
    plan = plan_for_files(matched, _related(tables, names))
    return _finish(tables, plan, s3=s3, results_bucket=results_bucket, dry_run=dry_run, now=now)


def reopened_at(job: Mapping[str, Any] | None) -> float | None:
    """The job's `reopened_at` in POSIX seconds (None: never reopened)."""
    return None if job is None else to_seconds(job.get(JobAttr.REOPENED_AT))
