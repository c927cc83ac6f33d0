"""ComputeRadiance's reducer: a completed job's monthly composites (and their quick-looks).

The carousel sends one ReduceRequest when every file of a job is DONE or FAILED; a worker of this
image takes it from the work queue like any work item (heartbeat, retries, dead-letter queue) and
composes every month that has no composite yet, oldest first. A month counts as composed when
its `.npz` exists: its quick-looks are written first and the `.npz` last, so a worker that dies half
way leaves the month to be composed again — with the same bytes, since a composite is a
deterministic function of the orbit results, which no longer change once every file is final.
The job SDK writes the reduced marker (`naming.reduced_marker_key`) last of all, listing every
composite: the carousel completes the job when it appears. The maps' titles name the definition, the
job and, when the reduction knows it, the owner.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from batch_jobs.compute_radiance import composite as comp
from batch_jobs.compute_radiance import quicklook
from batch_jobs.compute_radiance.description import DEFINITION
from batch_jobs.compute_radiance.result import load_npz, npz_bytes
from datacarousel import job, naming
from datacarousel.aws import list_keys
from datacarousel.errors import BadInput

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


def results_by_period(keys: Iterable[str], job_id: str) -> dict[str, list[str]]:
    """A job's orbit-result keys (`results/<job>/<period>/<file>.npz`) by period; composites left out."""
    prefix = f"{naming.RESULTS_PREFIX}/{job_id}/"
    by_period: dict[str, list[str]] = {}
    for key in sorted(keys):
        if not key.startswith(prefix) or not key.endswith(".npz"):
            continue
        period, _, rest = key[len(prefix) :].partition("/")
        if period == naming.COMPOSITES_DIR or not rest:
            continue
        by_period.setdefault(period, []).append(key)
    return by_period


def compose_month(
    s3: S3Client, bucket: str, job_id: str, period: str, keys: list[str], *, owner: str = ""
) -> list[str]:
    """Compose one month's orbit results; its quick-looks first, the `.npz` last. Returns the keys written."""

    def results() -> Iterable[tuple[str, Mapping[str, Any]]]:
        for key in keys:
            yield key, load_npz(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    try:
        arrays = comp.build(results(), period).to_arrays()
    except (ValueError, KeyError, OSError) as exc:
        raise BadInput(f"job {job_id}: composite {period} failed: {exc}") from exc
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dc-quicklook-") as tmp:
        context = quicklook.MapContext.of_job(DEFINITION.name, job_id, owner)
        for path in quicklook.write_quicklooks(arrays, tmp, period, context):
            suffix = Path(path).name[len(period) :]  # "_modis.png"
            png_key = naming.composite_key(job_id, period, suffix)
            s3.put_object(Bucket=bucket, Key=png_key, Body=Path(path).read_bytes(), ContentType="image/png")
            written.append(png_key)
    key = naming.composite_key(job_id, period)  # last: its existence marks the month composed
    s3.put_object(Bucket=bucket, Key=key, Body=npz_bytes(arrays), ContentType="application/octet-stream")
    written.append(key)
    log.info("job %s: composite %s of %d orbit results -> %s", job_id, period, int(np.asarray(arrays["n_orbits"])), key)
    return written


def reduce_composites(reduction: job.Reduction) -> None:
    """Compose every month of the job that has no composite yet; the SDK writes the reduced marker after."""
    s3, bucket, job_id = reduction.s3, reduction.bucket, reduction.job_id
    owner = reduction.owner
    listed = list_keys(s3, bucket, reduction.prefix)
    composites_prefix = naming.composite_key(job_id, "", "")
    existing = {k for k in listed if k.startswith(composites_prefix)}
    for key in sorted(existing):  # an earlier, interrupted run's months count as done
        reduction.record(key)
    for period, keys in sorted(results_by_period(listed, job_id).items()):
        if naming.composite_key(job_id, period) not in existing:
            for key in compose_month(s3, bucket, job_id, period, keys, owner=owner):
                reduction.record(key)
