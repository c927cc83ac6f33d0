"""ComputeRadiance on the job SDK (`datacarousel.job`): one orbit's grids, and the job's reducer.

The SDK finds or writes each result once (`results/<job>/<YYYY.MM>/CLIMARBLE_..._V001.npz`, skipped
when one computed with the same parameters from the same source ETag is there), dead-letters poison
with its reason and writes the reduced marker after the monthly composites. The other adapters
here serve the command line's single-orbit and manifest modes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_jobs.compute_radiance.description import DEFINITION
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.reduce import reduce_composites
from batch_jobs.compute_radiance.result import OrbitResult, Parameters, npz_bytes
from datacarousel import aws, job
from datacarousel import orbit as readers
from datacarousel.errors import BadInput, TransientError
from datacarousel.naming import BasicFusionName

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


def open_source(
    *, file: str | None = None, s3_url: str | None = None, domain: str | None = None
) -> readers.OrbitReader:
    given = [x for x in (file, s3_url, domain) if x]
    if len(given) != 1:
        raise BadInput("give exactly one of --file, --s3, --domain")
    if file:
        return readers.open_local(file)
    if s3_url:
        return readers.open_s3(s3_url)
    assert domain is not None
    return readers.open_hsds(domain)


def run_source(source: readers.OrbitReader, parameters: Parameters) -> OrbitResult:
    """One orbit's result. Damaged bytes are found by checking them (the readers verify every chunk they
    inflate and raise `CorruptData`, a BadInput naming the chunk); any other read error is not evidence
    that the file is bad, so it is transient: retried, and surfaced as such if it never clears."""
    with source:
        try:
            return compute_orbit(source, parameters)
        except OSError as exc:  # HDF5/HSDS opened the file but a read failed without a damaged chunk
            raise TransientError(f"{source.name}: read failed: {exc}") from exc


def check_output(out: str) -> None:
    """`BadInput` now when a local `out` cannot be written (before minutes of gridding, not after)."""
    if out.startswith("s3://"):
        return
    path = Path(out)
    folder = path if path.is_dir() or out.endswith("/") else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK):
        raise BadInput(f"cannot write {out}: {folder} is not writable")


def write_output(data: bytes, out: str, name: BasicFusionName, s3: S3Client | None = None) -> str:
    """Write a result to a local path / directory or to `s3://bucket/key` (a key ending in '/' is a prefix)."""
    if out.startswith("s3://"):
        bucket, key = readers.split_s3_url(out if not out.endswith("/") else out + name.result_name)
        if s3 is None:
            s3 = aws.client("s3")
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"
    path = Path(out)
    if path.is_dir() or out.endswith("/"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / name.result_name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return str(path)


def process(work: job.Work) -> job.Result:
    """One orbit's grids (the job SDK opens the orbit, finds or writes the result, reports failures)."""
    try:
        params = Parameters(**dict(work.parameters))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"bad parameters: {exc}") from exc
    result = run_source(work.open_orbit(), params)
    return job.Result(npz_bytes(result.arrays()), skipped=tuple(sorted(result.reasons())))


def WorkItemHandler(  # noqa: N802 - stands where the handler class stood
    s3: S3Client, results_bucket: str, defaults: Parameters, reader: str = "s3", s3_fs: Any | None = None
) -> job.Handler:
    """`handler(body)` for the work queue: WorkItems and the job's ReduceRequest (its monthly composites)."""
    described = {p.name: getattr(defaults, p.name) for p in DEFINITION.parameters}
    return job.Handler(
        DEFINITION,
        process,
        reduce_composites,
        s3=s3,
        results_bucket=results_bucket,
        reader=reader,
        defaults=described,
        s3_fs=s3_fs,
    )


def load_manifest(location: str, s3: S3Client | None = None) -> list[Any]:
    """A manifest: a JSON list of work items, from `s3://bucket/key` or a local path."""
    if location.startswith("s3://"):
        bucket, key = readers.split_s3_url(location)
        if s3 is None:
            s3 = aws.client("s3")
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    else:
        text = Path(location).read_text(encoding="utf-8")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"manifest {location}: not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise BadInput(f"manifest {location}: expected a JSON list of work items")
    return items
