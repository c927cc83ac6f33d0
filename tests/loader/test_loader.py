"""The loader against the stack's archive bucket, index queue and BasicFusionFiles (moto server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from typer.testing import CliRunner

from datacarousel import aws
from datacarousel.contract import FileAttr, FileState, IndexRequestAttr
from datacarousel.files_table import FilesTable
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key
from datacarousel.times import utcnow
from loader.__main__ import app
from loader.adapters import list_pages, list_pages_parallel, run
from loader.ledger import IndexRequestLedger
from tests.loader.throttled_writes import Withhold

pytestmark = pytest.mark.integration

# Orbits of this module only (domains and items are keyed by file name).
STANDARD = (61001, 61002)
ARCHIVED = (61003, 61004)
RESTORED = (61005,)


def _drain_all(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return bodies
        for m in got:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture()
def clients(local_env: Any) -> dict[str, Any]:
    return {
        "s3": aws.client("s3"),
        "sqs": aws.client("sqs"),
        "files": FilesTable(aws.client("dynamodb"), local_env.env["DC_FILES_TABLE"]),
        "ledger": IndexRequestLedger(aws.client("dynamodb"), local_env.env["DC_INDEX_REQUESTS_TABLE"]),
        "bucket": local_env.env["DC_ARCHIVE_BUCKET"],
        "queue": local_env.env["DC_INDEX_QUEUE_URL"],
    }


@pytest.fixture()
def archive(clients: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Objects under a fresh prefix: STANDARD, DEEP_ARCHIVE (never restored), DEEP_ARCHIVE restored, a stray key."""
    s3, bucket = clients["s3"], clients["bucket"]
    prefix = f"loader-test-{uuid.uuid4().hex[:8]}/"
    keys: dict[str, list[str]] = {"standard": [], "archived": [], "restored": []}
    for group, orbits, storage in (
        ("standard", STANDARD, "STANDARD"),
        ("archived", ARCHIVED, "DEEP_ARCHIVE"),
        ("restored", RESTORED, "DEEP_ARCHIVE"),
    ):
        for orbit in orbits:
            key = archive_key(BasicFusionName.for_orbit(orbit), prefix)
            s3.put_object(Bucket=bucket, Key=key, Body=f"orbit {orbit}".encode(), StorageClass=storage)
            keys[group].append(key)
    for key in keys["restored"]:
        s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}})
    stray = f"{prefix}P22/README.txt"
    s3.put_object(Bucket=bucket, Key=stray, Body=b"not an orbit")
    _drain_all(clients["sqs"], clients["queue"])
    yield {"prefix": prefix, "stray": stray, **keys}
    _drain_all(clients["sqs"], clients["queue"])
    for orbit in STANDARD + ARCHIVED + RESTORED:
        name = BasicFusionName.for_orbit(orbit).file_name
        for table in (clients["files"], clients["ledger"]):
            table.ddb.delete_item(TableName=table.table, Key={FileAttr.FILE_NAME: {"S": name}})


def _run(clients: dict[str, Any], prefix: str, **kwargs: Any) -> Any:
    return run(
        clients["s3"],
        clients["sqs"],
        clients["files"],
        clients["ledger"],
        bucket=clients["bucket"],
        queue_url=clients["queue"],
        prefix=prefix,
        now=utcnow(),
        **kwargs,
    )


def test_queues_exactly_the_readable_files_once(clients: dict[str, Any], archive: dict[str, Any]) -> None:
    report = _run(clients, archive["prefix"])
    readable = sorted(archive["standard"] + archive["restored"])
    assert report.listed == 6
    assert sorted(report.queued_keys) == readable
    assert dict(report.skipped) == {"archived": 2, "not-a-basicfusion-name": 1}
    requests = [IndexRequest.from_json(b) for b in _drain_all(clients["sqs"], clients["queue"])]
    assert sorted(r.key for r in requests) == readable
    heads = {k: clients["s3"].head_object(Bucket=clients["bucket"], Key=k) for k in readable}
    for r in requests:
        assert r.bucket == clients["bucket"]
        assert r.etag == heads[r.key]["ETag"].strip('"') and r.size == heads[r.key]["ContentLength"]
    # Every request sent is in the ledger, with its object version; BasicFusionFiles is left alone.
    sent = clients["ledger"].get_many(BasicFusionName.parse(k).file_name for k in readable)
    assert {item[IndexRequestAttr.KEY]: item[IndexRequestAttr.ETAG] for item in sent.values()} == {
        k: heads[k]["ETag"].strip('"') for k in readable
    }
    assert clients["files"].get_many(BasicFusionName.parse(k).file_name for k in readable) == {}

    # A second run queues nothing: every readable file is already queued.
    again = _run(clients, archive["prefix"])
    assert again.queued == 0
    assert dict(again.skipped) == {"archived": 2, "not-a-basicfusion-name": 1, "already-queued": 3}
    assert _drain_all(clients["sqs"], clients["queue"]) == []


def test_indexed_files_are_skipped_and_changed_objects_requeued(
    clients: dict[str, Any], archive: dict[str, Any]
) -> None:
    s3, bucket, files = clients["s3"], clients["bucket"], clients["files"]
    first, second = archive["standard"]
    for key in (first, second):
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        assert files.mark_indexed(
            BasicFusionName.parse(key),
            bucket=bucket,
            key=key,
            etag=etag,
            size=1,
            domain="/d",
            now=utcnow(),
            expected_version=None,
        )
    s3.put_object(Bucket=bucket, Key=second, Body=b"a new version of the orbit")
    report = _run(clients, archive["prefix"])
    assert sorted(report.queued_keys) == sorted([second, *archive["restored"]])
    assert report.skipped["already-indexed"] == 1
    item = files.get(BasicFusionName.parse(second).file_name)
    assert item is not None and item[FileAttr.STATE] == FileState.INDEXED.value, "the loader never changes the state"


def test_dry_run_sends_and_writes_nothing(clients: dict[str, Any], archive: dict[str, Any]) -> None:
    report = _run(clients, archive["prefix"], dry_run=True)
    assert report.queued == 3 and report.dry_run
    assert _drain_all(clients["sqs"], clients["queue"]) == []
    assert clients["files"].get_many(BasicFusionName.for_orbit(o).file_name for o in STANDARD + RESTORED) == {}
    assert clients["ledger"].get_many(BasicFusionName.for_orbit(o).file_name for o in STANDARD + RESTORED) == {}


def test_parallel_listing_sees_every_key_once_in_order(clients: dict[str, Any]) -> None:
    """Keys in many folders, in a nested folder and directly under the prefix: the folder-parallel
    listing gives each exactly once, folder by folder in key order, like a plain listing."""
    s3, bucket = clients["s3"], clients["bucket"]
    prefix = f"loader-folders-{uuid.uuid4().hex[:8]}/"
    keys = [archive_key(BasicFusionName.for_orbit(o), prefix) for o in range(30000, 30060)]  # ~60 folders
    keys += [f"{prefix}loose-{i}.h5" for i in range(3)] + [f"{prefix}deep/er/x{i}.h5" for i in range(3)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    try:
        plain = [o.key for page in list_pages(s3, bucket, prefix) for o in page]
        parallel = [o.key for page in list_pages_parallel(s3, bucket, prefix, workers=3) for o in page]
        assert sorted(plain) == sorted(keys)
        assert sorted(parallel) == sorted(keys) and len(parallel) == len(set(parallel))
        loose = [k for k in parallel if k.count("/") == 1]
        in_folders = parallel[len(loose) :]
        assert loose == sorted(k for k in keys if k.count("/") == 1)  # the loose keys come first
        assert in_folders == sorted(in_folders)  # then folder by folder, in key order
    finally:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})


def test_lists_every_page(clients: dict[str, Any]) -> None:
    """More than one page of 1,000 keys in one folder: every key is seen (dry run: nothing to clean up)."""
    s3, bucket = clients["s3"], clients["bucket"]
    prefix = f"loader-pages-{uuid.uuid4().hex[:8]}/"
    orbits = range(20000, 21005)
    keys = [f"{prefix}P022/{BasicFusionName.for_orbit(o).file_name}" for o in orbits]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    pages: list[int] = []

    def count_page(parsed: dict[str, Any], **kwargs: Any) -> None:
        pages.append(len(parsed.get("Contents", [])))

    s3.meta.events.register("after-call.s3.ListObjectsV2", count_page)
    try:
        report = _run(clients, prefix, dry_run=True)
        assert pages == [0, 1000, 5]  # the delimited listing finds one folder, then its two pages
        assert report.listed == 1005 and report.queued == 1005
        assert len(report.queued_keys) == 1000 and set(report.queued_keys) <= set(keys)
        assert report.as_dict()["queued_keys_truncated"] is True
    finally:
        s3.meta.events.unregister("after-call.s3.ListObjectsV2", count_page)
        with ThreadPoolExecutor(8) as pool:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                pool.submit(s3.delete_objects, Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def test_entry_point_dry_run(clients: dict[str, Any], archive: dict[str, Any]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "loader", "--prefix", archive["prefix"], "--dry-run"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["listed"] == 6 and report["queued"] == 3 and report["dry_run"] is True
    assert report["skipped"] == {"archived": 2, "not-a-basicfusion-name": 1}


def test_entry_point_ends_in_one_line_when_the_ledger_refuses_writes(
    clients: dict[str, Any], archive: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = aws.client
    ledger_table = clients["ledger"].table

    def throttled(service: aws.Service, *args: Any, **kwargs: Any) -> Any:
        client = made(service, *args, **kwargs)
        if service == "dynamodb":
            Withhold(client, ledger_table, times=10**6, keep=lambda n: 1, refuse_all=True).__enter__()
        return client

    monkeypatch.setattr(aws, "client", throttled)
    result = CliRunner().invoke(app, ["--prefix", archive["prefix"]])
    assert result.exit_code == 1
    assert "ledger writes unprocessed after 8 tries" in result.stderr and "Traceback" not in result.stderr
    readable = set(archive["standard"] + archive["restored"])
    sent = {IndexRequest.from_json(body).key for body in _drain_all(clients["sqs"], clients["queue"])}
    assert sent and sent <= readable  # it stopped at the first batch it could not record
    # Nothing lost: a request is recorded after it is sent, so the next run sends every readable file
    # whose request was not recorded.
    monkeypatch.setattr(aws, "client", made)
    again = CliRunner().invoke(app, ["--prefix", archive["prefix"]])
    assert again.exit_code == 0, again.stderr
    sent_again = {IndexRequest.from_json(body).key for body in _drain_all(clients["sqs"], clients["queue"])}
    assert sent | sent_again == readable and sent_again
