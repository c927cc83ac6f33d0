"""Two research groups, two analyses, one carousel: each job definition's work through its own queue.

A ComputeRadiance job and a RegionExtract job over overlapping orbits, submitted as researchers
submit them (the definition's description checks the parameters); the step restores each file
once for both, releases each job's work to its own definition's queue, starts that definition's
workers (local processes from the template's job definitions), and completes each job once its
reducer has run as work of its own definition: composites for one, time series for the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
import xarray as xr

from batch_jobs.compute_radiance.result import load_npz
from carousel import jobs
from carousel.query import JobQuery
from carousel.step import Step
from datacarousel import naming, registry
from datacarousel.contract import JobFileAttr, JobFileState, JobState
from datacarousel.messages import ReduceRequest, WorkItem, parse_job_message
from datacarousel.work_queues import WorkQueues
from tests.carousel.integration.carousel_world import JUNE_2014, Calls, World, job_state, restore_counts, steps_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORBITS = (JUNE_2014 + 60, JUNE_2014 + 61, JUNE_2014 + 62)
PREFIX = "carousel-it/analyses/"


def read_netcdf(data: bytes, group: str | None = None) -> xr.Dataset:
    import io  # noqa: PLC0415 - only this helper reads bytes as a file

    return xr.open_dataset(io.BytesIO(data), engine="h5netcdf", group=group).load()


def test_two_definitions_share_each_restore_and_each_reduces_its_own_job(
    world: World, launcher: Any, no_scan: list[str]
) -> None:
    names = world.stage(ORBITS, PREFIX)
    keys = [naming.archive_key(naming.BasicFusionName.parse(n), PREFIX) for n in names]
    ctx = world.context(probe_after_s=2.0)
    assert world.inventory(ctx, PREFIX).created == 3

    radiance = jobs.submit(
        ctx.tables,
        ctx.config,
        owner="alice",
        definition=registry.get("ComputeRadiance"),
        query=JobQuery(orbit_min=ORBITS[0], orbit_max=ORBITS[1]),
        parameters={"resolution": 5},
    )
    # The whole world: every sample of the (small, synthetic) swath, so each orbit file has some.
    region = jobs.submit(
        ctx.tables,
        ctx.config,
        owner="bob",
        definition=registry.get("RegionExtract"),
        query=JobQuery(orbit_min=ORBITS[1], orbit_max=ORBITS[2]),
        parameters={"lat_min": -90, "lat_max": 90, "lon_min": -180, "lon_max": 180, "instruments": "MISR,CERES"},
    )
    assert region.estimate.shared_files == 1  # the middle orbit

    calls = Calls()
    step_ctx = world.context(probe_after_s=2.0)
    calls.watch(step_ctx.s3, "RestoreObject")
    calls.watch(step_ctx.sqs, "SendMessage")
    steps_until(
        [Step(step_ctx, launcher=launcher)],
        lambda: all(job_state(ctx, j.job_id) is JobState.COMPLETE for j in (radiance, region)),
        timeout=420,
        pause=1.0,
    )

    # Each file restored once, though both jobs wanted the middle one.
    assert calls.restores() == Counter(dict.fromkeys(keys, 1))
    assert restore_counts(ctx, names) == dict.fromkeys(names, 1)
    # Each definition's work went to its own queue: one WorkItem per (job, file), one ReduceRequest per job.
    found = WorkQueues(world.sqs, world.env["DC_STACK_NAME"])
    for submitted, mine in ((radiance, names[:2]), (region, names[1:])):
        definition = registry.get(submitted.definition)
        sent = [parse_job_message(b) for b in calls.sent(found.of(definition.name).url)]
        items = [m for m in sent if isinstance(m, WorkItem) and m.job_id == submitted.job_id]
        assert sorted(i.file_name for i in items) == sorted(mine)
        assert all(i.job_definition == definition.name for i in items)
        assert [m.job_id for m in sent if isinstance(m, ReduceRequest)].count(submitted.job_id) == 1
        for name in mine:
            key = definition.result_key(submitted.job_id, naming.BasicFusionName.parse(name))
            row = next(r for r in ctx.tables.job_files.of_job(submitted.job_id) if r[JobFileAttr.FILE_NAME] == name)
            assert row[JobFileAttr.STATE] == JobFileState.DONE.value and row[JobFileAttr.RESULT_KEY] == key

    # ComputeRadiance reduced to its monthly composite.
    composite = load_npz(
        world.s3.get_object(Bucket=world.results, Key=naming.composite_key(radiance.job_id, "2014.06"))["Body"].read()
    )
    assert int(composite["n_orbits"]) == 2
    # RegionExtract: a CF NetCDF file per orbit, then one time series per instrument of both orbits.
    item = ctx.tables.jobs.get(region.job_id)
    assert item is not None
    series = sorted(item["composite_key"])
    assert series == [f"results/{region.job_id}/timeseries/{i}.nc" for i in ("CERES", "MISR")]
    for key in series:
        data = world.s3.get_object(Bucket=world.results, Key=key)["Body"].read()
        ds = read_netcdf(data)
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert set(int(o) for o in ds["orbit"].values) == set(ORBITS[1:])
        assert (ds["time"].values[1:] >= ds["time"].values[:-1]).all()  # one time series
    one = definitions_result(world, region.job_id, names[1])
    assert read_netcdf(one).attrs["Conventions"] == "CF-1.8"
    time.sleep(0)  # (the launcher fixture waits for the drainers to exit)


def definitions_result(world: World, job_id: str, name: str) -> bytes:
    key = registry.get("RegionExtract").result_key(job_id, naming.BasicFusionName.parse(name))
    return bytes(world.s3.get_object(Bucket=world.results, Key=key)["Body"].read())


def console_run(*args: str) -> subprocess.CompletedProcess[str]:
    """What the Batch console runs with the job definition's defaults but `object` (environment: the stack's)."""
    return subprocess.run(
        [sys.executable, "-m", "batch_jobs.region_extract", "queue", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_consoles_single_orbit_run_writes_that_orbits_result(world: World) -> None:
    (name,) = world.stage([JUNE_2014 + 63], PREFIX + "console/", storage_class="STANDARD")
    key = naming.archive_key(naming.BasicFusionName.parse(name), PREFIX + "console/")
    url = f"s3://{world.archive}/{key}"
    first = console_run("--object", url)
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout.strip().splitlines()[-1])
    expected = registry.get("RegionExtract").result_key("console", naming.BasicFusionName.parse(name))
    assert answer == {"result": f"s3://{world.results}/{expected}", "outcome": "computed"}
    assert read_netcdf(definitions_result(world, "console", name)).attrs["Conventions"] == "CF-1.8"
    again = json.loads(console_run("--object", url).stdout.strip().splitlines()[-1])
    assert again["outcome"] == "already there"
    # An object still in Deep Archive: retry later (exit 1), in one line.
    (archived,) = world.stage([JUNE_2014 + 64], PREFIX + "console-archived/")
    archived_key = naming.archive_key(naming.BasicFusionName.parse(archived), PREFIX + "console-archived/")
    refused = console_run("--object", f"s3://{world.archive}/{archived_key}")
    assert refused.returncode == 1 and "not restored" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
