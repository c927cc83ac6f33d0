"""ComputeRadiance against the embedded environment: moto's server (S3, SQS) and a real HSDS server.

- the three readers (local file, s3:// object through s3fs, linked HSDS domain) give identical results;
- queue mode: a good work item ends as a result object in the results bucket and its message is deleted;
  a truncated file, a missing HSDS domain and a non-BasicFusion name go to the dead-letter queue with the reason;
- a rerun of the same item keeps the result (idempotent);
- array mode runs the manifest item picked by AWS_BATCH_JOB_ARRAY_INDEX.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from batch_jobs.compute_radiance.__main__ import app
from batch_jobs.compute_radiance.job import compute_orbit
from batch_jobs.compute_radiance.result import Parameters, load_npz
from batch_jobs.compute_radiance.worker import WorkItemHandler
from datacarousel import hsds
from datacarousel import orbit as readers
from datacarousel.aws import client
from datacarousel.contract import FAILURE_REASON_ATTRIBUTE, Env
from datacarousel.errors import NotReadable
from datacarousel.messages import WorkItem
from datacarousel.naming import BasicFusionName, composite_key, hsds_domain, result_key
from datacarousel.work_queues import WorkQueues
from workbench.synthetic.generator import generate_orbit

pytestmark = pytest.mark.integration

GRIDS = ("modis_rad_sum", "modis_sol_sum", "modis_count", "misr_rad_sum", "misr_count", "ceres_sw_sum",
         "ceres_lw_sum", "ceres_count")  # fmt: skip


def _upload(path: Path, prefix: str) -> tuple[str, str]:
    bucket = os.environ[Env.ARCHIVE_BUCKET]
    key = f"{prefix}/{path.name}"
    client("s3").upload_file(str(path), bucket, key)
    return bucket, key


def _domain(name: str, tag: str) -> str:
    folder = os.environ.get(Env.HSDS_FOLDER) or f"/home/{os.environ[Env.HS_USERNAME]}/basicfusion/"
    return hsds_domain(f"{folder}cr-{tag}/", BasicFusionName.parse(name))


@pytest.fixture(scope="module")
def staged_orbit(local_env: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    path = generate_orbit(85079, tmp_path_factory.mktemp("cr-int"), preset="tiny", seed=11)
    bucket, key = _upload(path, f"cr-test-{tag}/P22")
    domain = _domain(path.name, tag)
    hsds.link_file(f"s3://{bucket}/{key}", domain)
    return {"path": path, "bucket": bucket, "key": key, "domain": domain, "tag": tag}


def test_three_readers_give_identical_results(staged_orbit: dict[str, Any]) -> None:
    results = {}
    openers = {
        "local": lambda: readers.open_local(staged_orbit["path"]),
        "s3": lambda: readers.open_s3(f"s3://{staged_orbit['bucket']}/{staged_orbit['key']}"),
        "hsds": lambda: readers.open_hsds(staged_orbit["domain"]),
    }
    for label, opener in openers.items():
        with opener() as src:
            results[label] = compute_orbit(src, Parameters()).arrays()
    local = results["local"]
    assert local["modis_count"].sum() > 0 and local["misr_count"].sum() > 0 and local["ceres_count"].sum() > 0
    for label in ("s3", "hsds"):
        for name in GRIDS:
            assert np.array_equal(results[label][name], local[name]), (label, name)
        assert results[label]["skipped"] == local["skipped"]
        assert float(results[label]["t0"]) == float(local["t0"])


def _send(sqs: Any, queue_url: str, item: WorkItem) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody=item.to_json())


def _dead_letters(sqs: Any, dlq_url: str, job_id: str) -> dict[str, str]:
    """file_name -> failure reason of this job's messages on the DLQ (received and deleted)."""
    found: dict[str, str] = {}
    for _ in range(10):
        rsp = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        messages = rsp.get("Messages", [])
        if not messages:
            break
        for m in messages:
            body = json.loads(m["Body"])
            if body.get("job_id") == job_id:
                found[body["file_name"]] = m["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
    return found


def test_queue_mode_results_and_dead_letters(staged_orbit: dict[str, Any], tmp_path: Path) -> None:
    sqs, s3 = client("sqs"), client("s3")
    radiance = WorkQueues(sqs, os.environ[Env.STACK_NAME]).of("ComputeRadiance")
    queue_url, dlq_url = radiance.url, radiance.dead_letter_url
    results_bucket = os.environ[Env.RESULTS_BUCKET]
    job_id = f"cr-{staged_orbit['tag']}-queue"
    good = WorkItem(job_id, "ComputeRadiance", staged_orbit["path"].name, staged_orbit["bucket"], staged_orbit["key"],
                    domain=staged_orbit["domain"])  # fmt: skip
    truncated_path = generate_orbit(40110, tmp_path, preset="tiny", defects=["truncated"])
    tb, tk = _upload(truncated_path, f"cr-test-{staged_orbit['tag']}/trunc")
    truncated = WorkItem(job_id, "ComputeRadiance", truncated_path.name, tb, tk)
    absent = BasicFusionName.for_orbit(66274).file_name
    missing_domain = WorkItem(
        job_id, "ComputeRadiance", absent, tb, "cr-test/none.h5", domain=_domain(absent, "missing")
    )
    bad_name = WorkItem(job_id, "ComputeRadiance", "not_a_basicfusion_file.h5", tb, tk)
    for item in (good, truncated, missing_domain, bad_name):
        _send(sqs, queue_url, item)

    runner = CliRunner()
    out = runner.invoke(app, ["queue", "--reader", "auto", "--visibility-timeout", "60"])
    assert out.exit_code == 0, out.output

    key = result_key(job_id, BasicFusionName.parse(good.file_name))
    arrays = load_npz(s3.get_object(Bucket=results_bucket, Key=key)["Body"].read())
    assert arrays["modis_count"].sum() > 0 and str(arrays["source"]) == good.file_name
    dead = _dead_letters(sqs, dlq_url, job_id)
    assert set(dead) == {truncated.file_name, missing_domain.file_name, bad_name.file_name}
    assert "HDF5" in dead[truncated.file_name] or "truncated" in dead[truncated.file_name]
    assert "not found" in dead[missing_domain.file_name]
    assert "not a BasicFusion file name" in dead[bad_name.file_name]
    # nothing of this job is left on the work queue
    rsp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert not [m for m in rsp.get("Messages", []) if job_id in m["Body"]]

    # idempotent: handling the same item again keeps the stored result
    handler = WorkItemHandler(s3, results_bucket, Parameters(), reader="s3")
    before = s3.head_object(Bucket=results_bucket, Key=key)
    outcome = handler.handle_item(good)
    assert outcome.computed is False and outcome.key == key
    assert s3.head_object(Bucket=results_bucket, Key=key)["ETag"] == before["ETag"]
    # other parameters -> computed again
    other = WorkItemHandler(s3, results_bucket, Parameters(vza_max=30.0), reader="s3").handle_item(good)
    assert other.computed is True

    # the job's monthly composite, from the results bucket to its composite key
    out = runner.invoke(app, ["composite", "--job-id", job_id, "--period", "2015.12"])
    assert out.exit_code == 0, out.output
    composite = load_npz(s3.get_object(Bucket=results_bucket, Key=composite_key(job_id, "2015.12"))["Body"].read())
    assert int(composite["n_orbits"]) == 1
    assert np.array_equal(composite["modis_count"], load_npz(
        s3.get_object(Bucket=results_bucket, Key=key)["Body"].read())["modis_count"])  # fmt: skip


def test_array_mode_picks_the_indexed_item(staged_orbit: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = client("s3")
    results_bucket = os.environ[Env.RESULTS_BUCKET]
    job_id = f"cr-{staged_orbit['tag']}-array"
    items = [
        json.loads(
            WorkItem(
                job_id,
                "ComputeRadiance",
                "TERRA_BF_L1B_O1000_20000225002507_F000_V001.h5",
                staged_orbit["bucket"],
                "cr-test/absent.h5",
            ).to_json()
        ),
        json.loads(
            WorkItem(
                job_id, "ComputeRadiance", staged_orbit["path"].name, staged_orbit["bucket"], staged_orbit["key"]
            ).to_json()
        ),
    ]
    manifest_key = f"cr-test-{staged_orbit['tag']}/manifest.json"
    s3.put_object(Bucket=results_bucket, Key=manifest_key, Body=json.dumps(items).encode())
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "1")
    runner = CliRunner()
    out = runner.invoke(app, ["array", "--manifest", f"s3://{results_bucket}/{manifest_key}"])
    assert out.exit_code == 0, out.output
    key = result_key(job_id, BasicFusionName.parse(staged_orbit["path"].name))
    assert s3.head_object(Bucket=results_bucket, Key=key)["ContentLength"] > 0
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "0")  # the object does not exist: bad input, exit 2
    assert runner.invoke(app, ["array", "--manifest", f"s3://{results_bucket}/{manifest_key}"]).exit_code == 2


def test_archived_object_is_not_readable_yet(staged_orbit: dict[str, Any]) -> None:
    s3 = client("s3")
    bucket = staged_orbit["bucket"]
    key = f"cr-test-{staged_orbit['tag']}/archived/{staged_orbit['path'].name}"
    s3.put_object(Bucket=bucket, Key=key, Body=staged_orbit["path"].read_bytes(), StorageClass="DEEP_ARCHIVE")
    item = WorkItem(f"cr-{staged_orbit['tag']}-archived", "ComputeRadiance", staged_orbit["path"].name, bucket, key)
    handler = WorkItemHandler(s3, os.environ[Env.RESULTS_BUCKET], Parameters(), reader="s3")
    with pytest.raises(NotReadable):  # left on the queue (not dead-lettered at once): retried after its restore
        handler.handle_item(item)
