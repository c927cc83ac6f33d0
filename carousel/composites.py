"""The monthly composites of a completed ComputeRadiance job, a few months per carousel step.

A month of the real archive is ~435 orbit results; composing one takes minutes. Building every
month of a year-long job inside one step would outlast the step's Batch timeout and hold up every
other job's restores and releases meanwhile, so a step composes months only until its deadline
(at least one month, so every step makes progress) and the job stays OPEN until all are written.

A month counts as composed when its `.npz` exists: its quick-looks are written first and the
`.npz` last, so a step that dies half way leaves the month to be composed again — with the same
bytes, since a composite is a deterministic function of the orbit results, which no longer change
once every job-file is DONE or FAILED.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datacarousel import naming
from datacarousel.aws import list_keys
from datacarousel.errors import BadInput

log = logging.getLogger(__name__)

# Seconds of composing per carousel step, shared by all the jobs completing in it. Measured: a month
# of 72 small orbit results takes ~80 s here, so a step takes at most about this plus one month.
COMPOSE_BUDGET_S = 60.0


@dataclass(frozen=True)
class Composed:
    """Where a job's composites stand after one call."""

    written: list[str]  # keys written by this call
    keys: list[str]  # every composite key of the job so far (`.npz` and quick-looks), sorted
    remaining: list[str]  # periods still to compose, oldest first

    @property
    def complete(self) -> bool:
        return not self.remaining


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


def compose_radiance(
    s3: Any,
    bucket: str,
    job_id: str,
    deadline: float,
    *,
    at_least: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> Composed:
    """Compose the job's months that have no composite yet, oldest first, while `clock() < deadline`
    (but at least `at_least` of them, deadline or not).

    Uses the ComputeRadiance reducer (`batch_jobs.compute_radiance.composite`).
    """
    # The reducer (numpy, matplotlib) is loaded only when a job completes.
    from batch_jobs.compute_radiance import composite as comp  # noqa: PLC0415
    from batch_jobs.compute_radiance import quicklook  # noqa: PLC0415
    from batch_jobs.compute_radiance.result import load_npz, npz_bytes  # noqa: PLC0415

    listed = list_keys(s3, bucket, f"{naming.RESULTS_PREFIX}/{job_id}/")
    composites_prefix = naming.composite_key(job_id, "", "")
    existing = {k for k in listed if k.startswith(composites_prefix)}
    pending = [
        (period, keys)
        for period, keys in sorted(results_by_period(listed, job_id).items())
        if naming.composite_key(job_id, period) not in existing
    ]
    written: list[str] = []
    remaining = [period for period, _ in pending]
    for done, (period, keys) in enumerate(pending):
        if done >= at_least and clock() >= deadline:
            break

        def results(keys: list[str] = keys) -> Iterable[tuple[str, Mapping[str, Any]]]:
            for key in keys:
                yield key, load_npz(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

        try:
            arrays = comp.build(results(), period).to_arrays()
        except (ValueError, KeyError, OSError) as exc:
            raise BadInput(f"job {job_id}: composite {period} failed: {exc}") from exc
        with tempfile.TemporaryDirectory(prefix="dc-quicklook-") as tmp:
            for path in quicklook.write_quicklooks(arrays, tmp, period):
                suffix = Path(path).name[len(period) :]  # "_modis.png"
                png_key = naming.composite_key(job_id, period, suffix)
                s3.put_object(Bucket=bucket, Key=png_key, Body=Path(path).read_bytes(), ContentType="image/png")
                written.append(png_key)
        key = naming.composite_key(job_id, period)  # last: its existence marks the month composed
        s3.put_object(Bucket=bucket, Key=key, Body=npz_bytes(arrays), ContentType="application/octet-stream")
        written.append(key)
        remaining.remove(period)
        log.info(
            "job %s: composite %s of %d orbit results -> %s (%d months still to compose)",
            job_id,
            period,
            int(np.asarray(arrays["n_orbits"])),
            key,
            len(remaining),
        )
    return Composed(written=written, keys=sorted(existing | set(written)), remaining=remaining)
