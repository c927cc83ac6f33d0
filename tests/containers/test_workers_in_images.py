"""Each worker image runs its job definition's command against the embedded environment.

One synthetic orbit (tiny preset, STANDARD storage class so it is readable) goes to the stack's
archive bucket under a prefix of its own; then, each in its own image and with the environment
the job definitions give (the env file of the embedded environment):

    loader           python -m loader --prefix P          queues the file's index request
    index_file       python -m index_file                 indexes it into HSDS (hsload --link)
    record_metadata  python -m record_metadata            writes its BasicFusionFiles item
    ComputeRadiance  python -m batch_jobs.compute_radiance run --domain D --out s3://...
    carousel step    python -m carousel step --no-launch  one pass of the carousel

To add a case: run the image's command with `_run_worker(...)` inside `pipeline` (or a test of its
own that takes `pipeline`) and assert on what the command changed in S3, SQS, DynamoDB or HSDS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datacarousel import aws, hsds
from datacarousel.contract import FileAttr, FileState
from datacarousel.files_table import FilesTable
from datacarousel.naming import BasicFusionName, archive_key, hsds_domain
from workbench import images
from workbench.local.environment import LocalEnvironment
from workbench.synthetic.generator import generate_orbit

pytestmark = [pytest.mark.containers, pytest.mark.integration, pytest.mark.slow]

ORBIT = 64117
PREFIX = "container-test/"
# By the module each image runs (two analyses share the package batch_jobs).
WORKERS = {spec.command[2]: spec for spec in images.WORKER_IMAGES}


def _run_worker(
    image_ref: Callable[[images.ImageSpec], str],
    engine: images.Engine,
    env: dict[str, str],
    module: str,
    *args: str,
) -> dict[str, Any]:
    """Run a worker's command in its image; return its JSON report (the last JSON document on stdout)."""
    spec = WORKERS[module]
    command = [*spec.command[:3], *args] if args else list(spec.command)
    result = images.run_in_image(image_ref(spec), command, env, engine=engine, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    start = result.stdout.find("{")
    assert start >= 0, f"no JSON report from {' '.join(command)}: {result.stdout!r}"
    report = json.loads(result.stdout[start:])
    assert isinstance(report, dict)
    return report


@pytest.fixture(scope="module")
def pipeline(
    local_env: LocalEnvironment,
    image_ref: Callable[[images.ImageSpec], str],
    container_engine: images.Engine,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    env = dict(local_env.env)
    name = BasicFusionName.for_orbit(ORBIT)
    path: Path = generate_orbit(ORBIT, tmp_path_factory.mktemp("orbit"), preset="tiny", seed=ORBIT)
    key = archive_key(BasicFusionName.parse(path.name), PREFIX)
    s3 = aws.client("s3")
    s3.upload_file(str(path), env["DC_ARCHIVE_BUCKET"], key, ExtraArgs={"StorageClass": "STANDARD"})
    domain = hsds_domain(env["DC_HSDS_FOLDER"], name)
    files = FilesTable(aws.client("dynamodb"), env["DC_FILES_TABLE"])
    hs = hsds.HsdsAccess.resolve(environ=env)
    state: dict[str, Any] = {"env": env, "key": key, "domain": domain, "name": name, "files": files, "hs": hs}

    def run(module: str, *args: str) -> dict[str, Any]:
        return _run_worker(image_ref, container_engine, env, module, *args)

    state["loader"] = run("loader", "--prefix", PREFIX)
    state["index_file"] = run("index_file", "--max-messages", "10", "--wait-seconds", "2")
    state["record_metadata"] = run("record_metadata")
    state["run"] = run
    yield state
    files.ddb.delete_item(TableName=files.table, Key={FileAttr.FILE_NAME: {"S": name.file_name}})
    hsds.delete_domain(domain, hs)
    s3.delete_object(Bucket=env["DC_ARCHIVE_BUCKET"], Key=key)


def test_loader_image_queues_the_readable_file(pipeline: dict[str, Any]) -> None:
    report = pipeline["loader"]
    assert report["queued_keys"] == [pipeline["key"]]
    assert report["send_failed"] == 0


def test_index_file_image_indexes_it_into_hsds(pipeline: dict[str, Any]) -> None:
    report = pipeline["index_file"]
    assert report["processed"] >= 1 and report["dead_lettered"] == 0
    assert hsds.domain_exists(pipeline["domain"], pipeline["hs"])


def test_record_metadata_image_writes_its_item(pipeline: dict[str, Any]) -> None:
    item = pipeline["files"].get_many([pipeline["name"].file_name])[pipeline["name"].file_name]
    assert item[FileAttr.STATE] == FileState.INDEXED.value
    assert item[FileAttr.DOMAIN] == pipeline["domain"]
    assert item[FileAttr.ORBIT] == ORBIT


def test_compute_radiance_image_grids_the_orbit_through_hsds(pipeline: dict[str, Any]) -> None:
    bucket = pipeline["env"]["DC_RESULTS_BUCKET"]
    summary = pipeline["run"](
        "batch_jobs.compute_radiance", "run", "--domain", pipeline["domain"], "--out", f"s3://{bucket}/container-test/"
    )
    assert summary["result"].startswith(f"s3://{bucket}/container-test/")
    key = summary["result"].removeprefix(f"s3://{bucket}/")
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body[:2] == b"PK"  # a .npz (zip) result
    aws.client("s3").delete_object(Bucket=bucket, Key=key)


def test_region_extract_image_extracts_the_orbit_through_hsds(pipeline: dict[str, Any]) -> None:
    bucket = pipeline["env"]["DC_RESULTS_BUCKET"]
    summary = pipeline["run"](
        "batch_jobs.region_extract", "run", "--domain", pipeline["domain"], "--out", f"s3://{bucket}/container-test/"
    )
    key = summary["result"].removeprefix(f"s3://{bucket}/")
    assert key.startswith("container-test/") and key.endswith(".nc")
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body[:8] == b"\x89HDF\r\n\x1a\n"  # NetCDF-4 (HDF5)
    aws.client("s3").delete_object(Bucket=bucket, Key=key)


def test_carousel_image_runs_one_step(pipeline: dict[str, Any]) -> None:
    """One step against the stack's tables and queues; with --no-launch it starts no worker."""
    report = pipeline["run"]("carousel", "step", "--no-launch")
    assert report["launched"] == {}
    assert report["restore_failures"] == 0 and report["events_malformed"] == 0
    assert report["seconds"] > 0
