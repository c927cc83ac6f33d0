"""index_file against the embedded environment: real HSDS, the stack's queues, bucket and table.

Failure cases: every kind of bad request reaches the dead-letter queue with its
reason while good requests around it complete; a worker killed (SIGKILL) in the
middle of a load leaves its message to be redelivered and the file is then
indexed once; a half-built domain is detected and rebuilt; HSDS unreachable
returns the message to the queue and nothing is lost.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import h5pyd
import numpy as np
import pytest

from datacarousel import aws, hsds
from datacarousel.contract import FAILURE_REASON_ATTRIBUTE, FileAttr, FileState
from datacarousel.files_table import FilesTable
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key, hsds_domain
from datacarousel.queue_worker import drain
from index_file.adapters import HsdsTarget, IndexFileHandler, read_domain_root
from workbench.synthetic.generator import generate_orbit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD, KILLED, HALF_BUILT = 62001, 62002, 62003
TRUNCATED, NOT_HDF5, BAD_NAME, ARCHIVED = 62004, 62005, 62006, 62007
ALL_ORBITS = (GOOD, KILLED, HALF_BUILT, TRUNCATED, NOT_HDF5, BAD_NAME, ARCHIVED)
PREFIX = "index-file-test/"


def _empty(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return out
        for m in got:
            out.append(m)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def _count_datasets(f: Any) -> int:
    names: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset | h5pyd.Dataset):
            names.append(name)

    f.visititems(visit)
    return len(names)


@pytest.fixture(scope="module")
def world(local_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Synthetic orbits in the stack's archive bucket, clients, and the HSDS target; cleaned up after."""
    env = local_env.env
    s3, sqs = aws.client("s3"), aws.client("sqs")
    files = FilesTable(aws.client("dynamodb"), env["DC_FILES_TABLE"])
    target = HsdsTarget(hsds.HsdsAccess.resolve(environ=env), env["DC_HSDS_FOLDER"])
    bucket = env["DC_ARCHIVE_BUCKET"]
    out = tmp_path_factory.mktemp("orbits")
    paths: dict[int, Path] = {}
    for orbit in (GOOD, KILLED, HALF_BUILT):
        paths[orbit] = generate_orbit(orbit, out, preset="tiny")
    paths[TRUNCATED] = generate_orbit(TRUNCATED, out, preset="tiny", defects=["truncated"])
    paths[NOT_HDF5] = generate_orbit(NOT_HDF5, out, preset="tiny", defects=["not_hdf5"])
    paths[BAD_NAME] = generate_orbit(BAD_NAME, out, preset="tiny", defects=["bad_name"])
    keys: dict[int, str] = {}
    for orbit, path in paths.items():
        keys[orbit] = (
            f"{PREFIX}{path.name}" if orbit == BAD_NAME else archive_key(BasicFusionName.parse(path.name), PREFIX)
        )
        s3.upload_file(str(path), bucket, keys[orbit])
    keys[ARCHIVED] = archive_key(BasicFusionName.for_orbit(ARCHIVED), PREFIX)
    s3.put_object(Bucket=bucket, Key=keys[ARCHIVED], Body=b"\x89HDF archived", StorageClass="DEEP_ARCHIVE")
    queue, dlq = env["DC_INDEX_QUEUE_URL"], env["DC_INDEX_DLQ_URL"]
    _empty(sqs, queue), _empty(sqs, dlq)
    world = {
        "s3": s3, "sqs": sqs, "files": files, "target": target, "bucket": bucket,
        "queue": queue, "dlq": dlq, "paths": paths, "keys": keys, "env": env,
    }  # fmt: skip
    yield world
    _empty(sqs, queue), _empty(sqs, dlq)
    for orbit in ALL_ORBITS:
        name = BasicFusionName.for_orbit(orbit)
        files.ddb.delete_item(TableName=files.table, Key={FileAttr.FILE_NAME: {"S": name.file_name}})
        hsds.delete_domain(hsds_domain(target.folder, name), target.access)


def _request(world: dict[str, Any], orbit: int, **changes: Any) -> str:
    key = world["keys"][orbit]
    head = world["s3"].head_object(Bucket=world["bucket"], Key=key)
    fields: dict[str, Any] = {"bucket": world["bucket"], "key": key, "size": head["ContentLength"]}
    fields["etag"] = head["ETag"].strip('"')
    fields.update(changes)
    return IndexRequest(**fields).to_json()


def _send(world: dict[str, Any], body: str) -> None:
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=body)


def _domain(world: dict[str, Any], orbit: int) -> str:
    return hsds_domain(world["target"].folder, BasicFusionName.for_orbit(orbit))


def _assert_indexed_once(world: dict[str, Any], orbit: int) -> None:
    """Complete domain (marker names the object), identical data, one INDEXED item written once."""
    target, domain = world["target"], _domain(world, orbit)
    marker = read_domain_root(target, domain).marker
    etag = world["s3"].head_object(Bucket=world["bucket"], Key=world["keys"][orbit])["ETag"].strip('"')
    assert marker is not None and marker.etag == etag
    with (
        h5pyd.File(domain, "r", **target.access.h5pyd_kwargs()) as linked,
        h5py.File(world["paths"][orbit], "r") as source,
    ):
        assert _count_datasets(linked) == _count_datasets(source) == marker.datasets
        for path in ("MISR/AN/Data_Fields/Red_Radiance", "MISR/AN/BlockCenterTime", "CERES"):
            if isinstance(source[path], h5py.Dataset):
                assert np.array_equal(linked[path][()], source[path][()])
    item = world["files"].get(BasicFusionName.for_orbit(orbit).file_name)
    assert item is not None
    assert item[FileAttr.STATE] == FileState.INDEXED.value and item[FileAttr.DOMAIN] == domain
    assert item[FileAttr.ETAG] == etag and item[FileAttr.STATE_VERSION] == 1, "indexed exactly once"


def test_bad_requests_are_dead_lettered_with_their_reason(world: dict[str, Any]) -> None:
    bad = {
        "{not json": "not valid JSON",
        '{"kind": "index-request", "bucket": "b"}': "missing field 'key'",
        _request(world, GOOD, bucket="no-such-bucket-dc"): "not in the archive bucket",
        _request(world, GOOD, bucket=world["env"]["DC_RESULTS_BUCKET"]): "not in the archive bucket",
        _request(world, GOOD, key=archive_key(BasicFusionName.for_orbit(62999), PREFIX)): "no such bucket or key",
        _request(world, GOOD, key=world["keys"][GOOD] + "\n"): "is not a BasicFusion file name",
        _request(world, GOOD, key=f"{PREFIX}../{world['keys'][GOOD]}"): "'..' segment",
        _request(world, NOT_HDF5): "not an HDF5 file",
        _request(world, TRUNCATED): "truncated HDF5 file",
        _request(world, BAD_NAME): "is not a BasicFusion file name",
    }
    good = _request(world, GOOD)
    bodies = [good, *bad, good]  # good work on both sides of the poison
    for body in bodies:
        _send(world, body)
    handler = IndexFileHandler(world["s3"], world["files"], world["target"], archive_bucket=world["bucket"])
    report = drain(world["sqs"], world["queue"], world["dlq"], handler, wait_seconds=0, visibility_timeout=60)
    assert (report.processed, report.dead_lettered, report.left) == (2, len(bad), 0)
    dead = {
        m["Body"]: m["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]
        for m in _empty(world["sqs"], world["dlq"])
    }
    assert set(dead) == set(bad)
    for body, expected in bad.items():
        assert expected in dead[body], (body, dead[body])
    assert [o.linked for o in handler.outcomes] == [True, False], "the repeated request re-used the complete domain"
    _assert_indexed_once(world, GOOD)


def test_an_archived_object_is_left_on_the_queue_not_dead_lettered(world: dict[str, Any]) -> None:
    """Not restored (yet, or any more) is the object's state, not a bad request: retried after the timeout."""
    body = _request(world, ARCHIVED)
    _send(world, body)
    handler = IndexFileHandler(world["s3"], world["files"], world["target"], archive_bucket=world["bucket"])
    report = drain(world["sqs"], world["queue"], world["dlq"], handler, wait_seconds=0, visibility_timeout=1)
    assert (report.processed, report.dead_lettered, report.left) == (0, 0, 1)
    assert report.failures[0].error_type == "NotReadable" and "still archived" in report.failures[0].reason
    time.sleep(1.5)
    assert [m["Body"] for m in _empty(world["sqs"], world["queue"])] == [body], "the request came back"
    assert _empty(world["sqs"], world["dlq"]) == []
    assert world["files"].get(BasicFusionName.for_orbit(ARCHIVED).file_name) is None


def test_a_killed_worker_leaves_the_message_and_the_file_is_indexed_once(world: dict[str, Any]) -> None:
    _send(world, _request(world, KILLED))
    worker = subprocess.Popen(
        [sys.executable, "-m", "index_file", "--visibility-timeout", "3", "--wait-seconds", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "DC_LOG_LEVEL": "INFO"},
    )
    try:
        assert worker.stderr is not None
        deadline = time.monotonic() + 60
        for line in worker.stderr:
            if "linking s3://" in line:
                break
            assert time.monotonic() < deadline, "the worker never started linking"
        time.sleep(1.0)  # in the middle of the load
        assert worker.poll() is None, "the load finished before it could be interrupted"
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait(30)
    assert read_domain_root(world["target"], _domain(world, KILLED)).marker is None, "no complete domain after the kill"
    assert world["files"].get(BasicFusionName.for_orbit(KILLED).file_name) is None
    # The message comes back after its visibility timeout; a new worker indexes the file.
    handler = IndexFileHandler(world["s3"], world["files"], world["target"], archive_bucket=world["bucket"])
    processed = 0
    deadline = time.monotonic() + 30
    while processed == 0 and time.monotonic() < deadline:
        processed += drain(
            world["sqs"], world["queue"], world["dlq"], handler, wait_seconds=2, visibility_timeout=60
        ).processed
    assert processed == 1
    _assert_indexed_once(world, KILLED)
    assert _empty(world["sqs"], world["dlq"]) == []


def test_hsds_unreachable_then_back_and_a_half_built_domain_rebuilt(world: dict[str, Any]) -> None:
    """A crash left a half-built domain; then HSDS is unreachable for a while: the message returns
    to the queue (nothing lost, nothing dead-lettered); once HSDS answers, the domain is rebuilt."""
    target, domain = world["target"], _domain(world, HALF_BUILT)
    hsds.ensure_folder(domain.rsplit("/", 1)[0] + "/", target.access)
    with h5pyd.File(domain, "w", **target.access.h5pyd_kwargs()) as f:  # what a crash mid-load could leave
        f.create_group("MODIS")
        f["MODIS"].create_dataset("partial", data=np.arange(10))
    assert read_domain_root(target, domain).marker is None
    _send(world, _request(world, HALF_BUILT))
    unreachable = "http+unix://%2Ftmp%2Fdc-no-such-hsds%2Fsn_1.sock"
    down = HsdsTarget(dataclasses.replace(target.access, endpoint=unreachable), target.folder)
    handler = IndexFileHandler(world["s3"], world["files"], down, archive_bucket=world["bucket"])
    report = drain(world["sqs"], world["queue"], world["dlq"], handler, wait_seconds=0, visibility_timeout=2)
    assert report.processed == 0 and report.dead_lettered == 0 and report.left >= 1
    assert {f.error_type for f in report.failures} == {"TransientError"}
    time.sleep(2.5)
    handler = IndexFileHandler(world["s3"], world["files"], target, archive_bucket=world["bucket"])
    report = drain(world["sqs"], world["queue"], world["dlq"], handler, wait_seconds=1, visibility_timeout=60)
    assert report.processed == 1 and handler.outcomes[0].linked
    _assert_indexed_once(world, HALF_BUILT)
    with h5pyd.File(domain, "r", **target.access.h5pyd_kwargs()) as f:
        assert "partial" not in f["MODIS"]
    assert _empty(world["sqs"], world["dlq"]) == []
