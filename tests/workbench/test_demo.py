"""`datacarousel demo` end to end, as a user runs it (a subprocess), checked against the resources themselves.

The demo brings up its own embedded environment in a fresh state directory. Its summary's facts are
checked against what the services hold (the tables, the archive and results buckets), not against what
the program printed; and no process may be left behind, whether the run ends normally or is interrupted.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from batch_jobs.compute_radiance.result import load_npz
from datacarousel import naming, registry
from datacarousel.contract import Env, FileAttr, JobAttr, JobFileAttr, JobFileState
from workbench import demo
from workbench.local import environment
from workbench.synthetic.catalogue import archive_catalogue

DATACAROUSEL = str(Path(sys.executable).with_name("datacarousel"))
MONTH = "2015.12"
ORBITS = 3  # of paths 22, 23, 24 in December 2015: 84948 (path 23), 85050 (24), 85079 (22)
QUICKLOOK_SIZE = (1000, 500)


def _demo_argv(state: Path, out: Path, *extra: str) -> list[str]:
    return [
        DATACAROUSEL, "demo", "--month", MONTH, "--paths", "22,23,24", "--orbits", str(ORBITS), "--preset", "tiny",
        "--restore-delay", "4", "--interval", "1", "--timeout", "300", "--state-dir", str(state), "--out", str(out),
        *extra,
    ]  # fmt: skip


def _recorded_pids(state: Path) -> list[tuple[int, float]]:
    """Every (PID, start time) the state directory records: the services and each job the launcher started."""
    found: list[tuple[int, float]] = []
    for path in (state / "jobs" / "jobs").glob("*.json"):
        record = json.loads(path.read_text())
        found.append((int(record["pid"]), float(record["create_time"])))
    for path in (state / "run").glob("*.pid"):
        record = json.loads(path.read_text())
        found.append((int(record["pid"]), float(record["create_time"])))
        found.extend((int(pid), float(created)) for pid, created in record.get("children", ()))
    return found


def _alive(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        if create_time and abs(proc.create_time() - create_time) > 0.05:
            return False  # the PID was reused by someone else
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _mentions(proc: psutil.Process, state: Path) -> bool:
    try:
        return str(state) in " ".join(proc.cmdline()) or any(str(state) in v for v in proc.environ().values())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


# Children of the test process that were there before a demo test began are not the demo's:
# in the whole suite the session's own embedded environment (moto, HSDS) runs as children too.
_TEST_STARTED: list[float] = [0.0]


def _new_children() -> list[psutil.Process]:
    """Live children of this test process started since the current demo test began."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.is_running() and child.create_time() >= _TEST_STARTED[0]:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def _leftovers(state: Path, seen: list[tuple[int, float]]) -> list[str]:
    """Processes left behind: children of this test, recorded PIDs (now or `seen` while it ran) alive,
    or anything naming the state dir."""
    left = [f"child {p.pid} {p.name()}" for p in _new_children()]
    recorded = set(_recorded_pids(state)) | set(seen)
    left += [f"recorded {pid}" for pid, created in sorted(recorded) if _alive(pid, created)]
    left += [f"mentions state dir: {p.pid} {p.name()}" for p in psutil.process_iter() if _mentions(p, state)]
    return left


def _wait_until_gone(state: Path, seen: list[tuple[int, float]], timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _leftovers(state, seen)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture()
def demo_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    state, out = tmp_path / "state", tmp_path / "out"
    _TEST_STARTED[0] = time.time()
    yield state, out
    # Whatever happened (a failed test may have killed the demo), nothing stays up.
    for pid, created in _recorded_pids(state):
        if _alive(pid, created):
            psutil.Process(pid).kill()
    environment.down(state)


def _clients(env: dict[str, str]) -> tuple[Any, Any]:
    import boto3  # noqa: PLC0415

    kwargs: dict[str, Any] = {
        "endpoint_url": env[Env.AWS_ENDPOINT_URL],
        "region_name": env[Env.AWS_REGION],
        "aws_access_key_id": env[Env.AWS_ACCESS_KEY_ID],
        "aws_secret_access_key": env[Env.AWS_SECRET_ACCESS_KEY],
    }
    return boto3.client("s3", **kwargs), boto3.client("dynamodb", **kwargs)


def _item(ddb: Any, table: str, key: dict[str, str]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415

    raw = ddb.get_item(TableName=table, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True)["Item"]
    return {k: TypeDeserializer().deserialize(v) for k, v in raw.items()}


def _job_files(ddb: Any, table: str, job_id: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415

    pages = ddb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="#j = :j",
        ExpressionAttributeNames={"#j": JobFileAttr.JOB_ID},
        ExpressionAttributeValues={":j": {"S": job_id}},
        ConsistentRead=True,
    )
    return [{k: TypeDeserializer().deserialize(v) for k, v in it.items()} for page in pages for it in page["Items"]]


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_runs_a_month_and_its_summary_is_what_the_resources_hold(demo_dirs: tuple[Path, Path]) -> None:
    state, out = demo_dirs
    # --keep: the services stay up so that the test can look at them; the workers must be gone anyway.
    done = subprocess.run(_demo_argv(state, out, "--keep"), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f'eval "$(datacarousel env --state-dir {state.resolve()})"' in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    env = environment.require_env(state)
    s3, ddb = _clients(env)
    jobs_left = [
        (pid, created)
        for path in (state / "jobs" / "jobs").glob("*.json")
        for pid, created in [(json.loads(path.read_text())["pid"], json.loads(path.read_text())["create_time"])]
    ]
    assert jobs_left, "the carousel step launched no worker"
    assert not [pid for pid, created in jobs_left if _alive(pid, created)], "a worker outlived the demo"
    assert not _new_children()

    # The files: the month's orbits on those paths, in the archive as DEEP_ARCHIVE, each restored exactly once.
    expected = [naming.BasicFusionName.for_orbit(o) for o in demo.choose_orbits(MONTH, (22, 23, 24), ORBITS)]
    names = [n.file_name for n in expected]
    assert sorted(summary["files"]["names"]) == sorted(names)
    restore_counts = {}
    for name in expected:
        head = s3.head_object(Bucket=env[Env.ARCHIVE_BUCKET], Key=naming.archive_key(name))
        assert head["StorageClass"] == "DEEP_ARCHIVE" and 'ongoing-request="false"' in head["Restore"]
        item = _item(ddb, env[Env.FILES_TABLE], {FileAttr.FILE_NAME: name.file_name})
        assert item[FileAttr.STATE] == "INDEXED"
        restore_counts[name.file_name] = int(item[FileAttr.RESTORE_COUNT])
    assert restore_counts == dict.fromkeys(names, 1)
    assert summary["files"]["restore_counts"] == restore_counts
    assert summary["files"]["restore_calls"] == len(names)

    # The jobs: both complete, every file done, one result object per file in the results bucket.
    demands: Counter[str] = Counter()
    assert [j["owner"] for j in summary["jobs"]] == ["alice", "bob"]
    for job in summary["jobs"]:
        item = _item(ddb, env[Env.JOBS_TABLE], {"job_id": job["job_id"]})
        assert item["state"] == "COMPLETE" == job["state"]
        rows = _job_files(ddb, env[Env.JOB_FILES_TABLE], job["job_id"])
        wanted = {n.file_name for n in expected if n.misr_path in job["query"]["misr_paths"]}
        assert {r[JobFileAttr.FILE_NAME] for r in rows} == wanted
        assert all(r[JobFileAttr.STATE] == JobFileState.DONE.value for r in rows)
        demands.update(wanted)
        results = _keys(s3, env[Env.RESULTS_BUCKET], f"results/{job['job_id']}/{MONTH}/")
        assert results == sorted(naming.result_key(job["job_id"], naming.BasicFusionName.parse(n)) for n in wanted)
        assert (job["files"], job["done"], job["failed"], job["result_objects"]) == (
            len(wanted), len(wanted), 0, len(wanted)
        )  # fmt: skip
        assert job["results"] == f"s3://{env[Env.RESULTS_BUCKET]}/results/{job['job_id']}/"
        for instrument in demo.INSTRUMENTS:
            key = naming.composite_key(job["job_id"], MONTH, f"_{instrument}.png")
            local = Path(next(p for p in job["local_copies"] if p.endswith(f"_{instrument}.png")))
            assert local.read_bytes() == s3.get_object(Bucket=env[Env.RESULTS_BUCKET], Key=key)["Body"].read()
    shared = sorted(n for n, c in demands.items() if c > 1)
    assert shared and summary["files"]["shared_files"] == shared  # the overlap, restored once nonetheless
    assert summary["files"]["job_file_demands"] == sum(demands.values()) > len(names)

    # The month's composite over both jobs (a shared orbit counted once) and its quick-looks.
    composite = load_npz(Path(summary["month_composite"]["npz"]).read_bytes())
    assert int(composite["n_orbits"]) == len(names)
    for counts in ("modis_count", "misr_count", "ceres_count"):
        assert int(np.asarray(composite[counts]).sum()) > 0, counts
    assert sorted(Path(p).name for p in summary["quicklooks"]) == [f"{MONTH}_{i}.png" for i in sorted(demo.INSTRUMENTS)]
    for path in summary["quicklooks"]:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == QUICKLOOK_SIZE
            assert len(set(np.asarray(image.convert("L")).ravel().tolist())) > 10  # a map, not a blank canvas
            # what a talk needs to say: whose jobs, how many orbits, and that the orbits are synthetic
            title = str(image.info["Title"])
            assert all(f"{job['job_id']} by {job['owner']}" in title for job in summary["jobs"]), title
            assert f"{MONTH}, {len(names)} orbits" in title and "synthetic data" in title, title

    # The cost at real sizes uses the archive catalogue's sizes of those very orbits and Bulk list prices.
    sizes = {e.file_name: e.size_bytes for e in archive_catalogue(seed=0) if e.file_name in set(names)}
    cost = summary["aws_cost_at_real_sizes"]
    assert cost["real_bytes"] == sum(sizes.values())
    assert cost["carousel"]["retrieval"] == pytest.approx(sum(sizes.values()) / 2**30 * 0.0025)
    assert cost["one_restore_per_job"]["restored_bytes"] == sum(sizes[n] * c for n, c in demands.items())
    assert cost["saved"] > 0

    assert set(summary["stages_s"]) >= {"environment up", "generate orbits", "inventory", "results and quick-looks"}
    assert summary["carousel_milestones_s"]["every result"] >= summary["carousel_milestones_s"]["first file readable"]

    # Kept running for exploring; `down` then leaves nothing.
    seen = _recorded_pids(state)
    assert len(seen) > len(jobs_left)  # the services' PIDs too
    environment.down(state)
    assert not _wait_until_gone(state, seen)


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_runs_another_definition_and_summarises_what_its_jobs_produced(
    demo_dirs: tuple[Path, Path],
) -> None:
    state, out = demo_dirs
    argv = _demo_argv(state, out, "--keep", "--definition", "RegionExtract")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    env = environment.require_env(state)
    s3, ddb = _clients(env)
    region = registry.get("RegionExtract")
    assert summary["definition"] == "RegionExtract" and summary["parameters"] == region.defaults()
    expected = [naming.BasicFusionName.for_orbit(o) for o in demo.choose_orbits(MONTH, (22, 23, 24), ORBITS)]
    for job in summary["jobs"]:
        item = _item(ddb, env[Env.JOBS_TABLE], {"job_id": job["job_id"]})
        assert item["state"] == "COMPLETE" == job["state"] and item[JobAttr.DEFINITION] == "RegionExtract"
        rows = _job_files(ddb, env[Env.JOB_FILES_TABLE], job["job_id"])
        assert rows and all(r[JobFileAttr.STATE] == JobFileState.DONE.value for r in rows)
        wanted = [n for n in expected if n.misr_path in job["query"]["misr_paths"]]
        # One CF NetCDF per orbit, then the reducer's time series per instrument: what composite_key lists.
        results = _keys(s3, env[Env.RESULTS_BUCKET], f"results/{job['job_id']}/{MONTH}/")
        assert results == sorted(region.result_key(job["job_id"], n) for n in wanted)
        assert job["result_objects"] == len(wanted) and job["result_bytes"] > 0
        series = [f"results/{job['job_id']}/timeseries/{i}.nc" for i in ("CERES", "MISR", "MODIS")]
        assert sorted(item[JobAttr.COMPOSITE_KEY]) == series
        assert set(series) <= set(_keys(s3, env[Env.RESULTS_BUCKET], f"results/{job['job_id']}/timeseries/"))
        assert job["reduced"] == [f"s3://{env[Env.RESULTS_BUCKET]}/{k}" for k in series]
        # The default box lies on the orbits' daylit track: every instrument has samples, as the file says.
        for instrument, found in job["timeseries"].items():
            data = s3.get_object(
                Bucket=env[Env.RESULTS_BUCKET], Key=f"results/{job['job_id']}/timeseries/{instrument}.nc"
            )
            with xr.open_dataset(io.BytesIO(data["Body"].read()), engine="h5netcdf") as ds:
                assert found["samples"] == ds.sizes["obs"] > 0 and found["orbits"] == len(wanted)
        assert sorted(job["timeseries"]) == ["CERES", "MISR", "MODIS"]
    for name in ("timeseries/CERES.nc", "timeseries/MISR.nc", "timeseries/MODIS.nc", "RegionExtract time series"):
        assert name in done.stdout
    # Nothing of ComputeRadiance's: no month composite, no quick-look.
    assert "month_composite" not in summary and not list(out.rglob("*.png")) and not list(out.rglob("*.npz"))
    seen = _recorded_pids(state)
    environment.down(state)
    assert not _wait_until_gone(state, seen)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_demo_leaves_nothing_behind(demo_dirs: tuple[Path, Path], signum: signal.Signals) -> None:
    state, out = demo_dirs
    proc = subprocess.Popen(
        _demo_argv(state, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )
    try:
        # Interrupt once the carousel has started workers: services, steps and local jobs are all running.
        deadline = time.monotonic() + 240
        while not list((state / "jobs" / "jobs").glob("*.json")):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the demo started no worker in time"
            time.sleep(0.2)
        seen = _recorded_pids(state)
        assert [pid for pid, created in seen if _alive(pid, created)]
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signum, output[-3000:]
    assert "interrupted" in output
    seen += _recorded_pids(state)  # jobs launched between the look and the signal
    assert not _wait_until_gone(state, seen)
    assert not (state / "env").exists()  # the environment is down, not merely idle


# --- the pure parts ---------------------------------------------------------------------------------


@given(st.lists(st.integers(1, 233), min_size=1, max_size=12))
def test_two_researchers_cover_the_paths_and_overlap(paths: list[int]) -> None:
    alice, bob = demo.researchers(paths)
    assert set(alice.misr_paths) | set(bob.misr_paths) == set(paths)
    assert set(alice.misr_paths) & set(bob.misr_paths)  # at least one shared path
    assert (alice.owner, bob.owner) == ("alice", "bob")


def test_a_month_of_three_paths_is_the_orbits_starting_that_month_on_those_paths() -> None:
    orbits = demo.choose_orbits("2015.12", (22, 23, 24), None)
    assert orbits == [84948, 85050, 85079, 85181, 85283]
    for orbit in orbits:
        name = naming.BasicFusionName.for_orbit(orbit)
        assert name.year_month == "2015.12" and name.misr_path in (22, 23, 24)
    # a path comes back every 233 orbits: the neighbours outside the list are in other months
    assert naming.BasicFusionName.for_orbit(84948 - 233).year_month == "2015.11"
    assert demo.choose_orbits("2015.12", (22, 23, 24), 2) == [84948, 85050]


def test_real_cost_charges_each_restore_once_and_compares_with_one_restore_per_job() -> None:
    gib = 2**30
    files = [{"file_name": "a", "restore_count": 1}, {"file_name": "b", "restore_count": 1}]
    sizes = {"a": 20 * gib, "b": 40 * gib}
    cost = demo.real_cost(files, {"j1": ["a", "b"], "j2": ["b"]}, sizes, tier="Bulk", lease_days=1)
    assert cost["real_bytes"] == 60 * gib and cost["restore_requests"] == 2
    assert cost["carousel"]["retrieval"] == pytest.approx(60 * 0.0025)
    assert cost["carousel"]["requests"] == pytest.approx(2 / 1000 * 0.025)
    assert cost["carousel"]["staging"] == pytest.approx(60 * 0.023 * 24 / 730)  # one day of S3 Standard
    assert cost["one_restore_per_job"]["retrieval"] == pytest.approx(100 * 0.0025)
    assert cost["saved"] == pytest.approx(cost["one_restore_per_job"]["total"] - cost["carousel"]["total"])
    assert cost["saved"] > 0
    twice = demo.real_cost(
        [{"file_name": "a", "restore_count": 2}], {"j1": ["a"]}, sizes, tier="Standard", lease_days=1
    )
    assert twice["carousel"]["retrieval"] == pytest.approx(40 * 0.02)  # a second restore is paid again


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"month": "2016.01"}, "--month"),
        ({"month": "december"}, "--month"),
        ({"paths": (0,)}, "--paths"),
        ({"tier": "Expedited"}, "--tier"),
        ({"window_files": 0}, "--window-files"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(demo.DemoError, match=message):
        demo.DemoOptions(**changes).validate()
