"""index_file trusts no request field: in-process fakes of S3, SQS and DynamoDB (moto's `mock_aws`).

A request must name the file's archive object (the archive bucket, a plain key under the archive
prefix, the key its item records) under a name consistent with its orbit; anything else is poison
and reaches the dead-letter queue with its reason before index_file touches HSDS or the table. An
object that is not restored is a state, not a bad request: the message returns to the queue.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from carousel import inventory
from datacarousel.contract import FAILURE_REASON_ATTRIBUTE, FILES_TABLE, FileAttr
from datacarousel.errors import BadFileName, BadInput, NotReadable
from datacarousel.files_table import FilesTable
from datacarousel.hsds import HsdsAccess
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key
from datacarousel.queue_worker import drain
from index_file import adapters
from index_file.adapters import HsdsTarget, IndexFileHandler

ARCHIVE, RESULTS, PREFIX = "dc-archive", "dc-results", "bf/"
NAME = BasicFusionName.for_orbit(85079)
KEY = archive_key(NAME, PREFIX)  # bf/P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5
BODY = b"\x89HDF\r\n\x1a\n" + bytes(4096)


class ReachedHsds(Exception):
    """The request got past every check (what a good request does)."""


@pytest.fixture()
def world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    s3 = fake_aws.s3
    for bucket in (ARCHIVE, RESULTS):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=ARCHIVE, Key=KEY, Body=BODY)
    files = FilesTable(fake_aws.ddb, fake_aws.table(FILES_TABLE))
    assert inventory.run(s3, files, bucket=ARCHIVE, prefix=PREFIX, now=time.time()).created == 1

    def no_hsds(*args: Any, **kwargs: Any) -> None:
        raise ReachedHsds(args)

    monkeypatch.setattr(adapters, "read_domain_root", no_hsds)
    monkeypatch.setattr(adapters, "link", no_hsds)
    queue = fake_aws.sqs.create_queue(QueueName="index")["QueueUrl"]
    dlq = fake_aws.sqs.create_queue(QueueName="index-dlq")["QueueUrl"]
    target = HsdsTarget(HsdsAccess("http+unix://%2Ftmp%2Fno-hsds.sock", "u", "p"), "/home/u/bf/")
    handler = IndexFileHandler(s3, files, target, archive_bucket=ARCHIVE, archive_prefix=PREFIX)
    return {"s3": s3, "sqs": fake_aws.sqs, "files": files, "handler": handler, "queue": queue, "dlq": dlq}


def _put(world: dict[str, Any], key: str, bucket: str = ARCHIVE, storage_class: str = "STANDARD") -> str:
    world["s3"].put_object(Bucket=bucket, Key=key, Body=BODY, StorageClass=storage_class)
    return IndexRequest(bucket=bucket, key=key, size=len(BODY)).to_json()


def _renamed(seconds: int) -> str:
    return BasicFusionName(orbit=NAME.orbit, start=NAME.start + timedelta(seconds=seconds)).file_name


def _item(world: dict[str, Any]) -> dict[str, Any]:
    item = world["files"].get(NAME.file_name)
    assert item is not None
    return item


def test_a_request_for_the_files_own_object_passes_every_check(world: dict[str, Any]) -> None:
    with pytest.raises(ReachedHsds):
        world["handler"].handle(IndexRequest(bucket=ARCHIVE, key=KEY, size=len(BODY)).to_json())


# (how the request is made, the error, words of its reason)
UNTRUSTED = {
    "results bucket": (lambda w: _put(w, KEY, bucket=RESULTS), BadInput, "not in the archive bucket"),
    "outside the prefix": (lambda w: _put(w, f"other/P22/{NAME.file_name}"), BadInput, "not under the archive prefix"),
    "dot-dot key": (lambda w: _put(w, f"{PREFIX}../{PREFIX}P22/{NAME.file_name}"), BadInput, "'..' segment"),
    "dot key": (lambda w: _put(w, f"{PREFIX}./P22/{NAME.file_name}"), BadInput, "'..' segment"),
    "double slash": (lambda w: _put(w, f"{PREFIX}P22//{NAME.file_name}"), BadInput, "empty"),
    "control character": (lambda w: _put(w, f"{PREFIX}P\x0722/{NAME.file_name}"), BadInput, "control character"),
    "another key than the item's": (lambda w: _put(w, f"{PREFIX}P23/{NAME.file_name}"), BadInput, "is recorded at"),
    "trailing newline": (lambda w: _put(w, KEY + "\n"), BadFileName, "is not a BasicFusion file name"),
    "a day off its orbit": (lambda w: _put(w, f"{PREFIX}P22/{_renamed(86_400)}"), BadFileName, "is not orbit 85079's"),
    "a second name for the orbit": (
        lambda w: _put(w, f"{PREFIX}P22/{_renamed(60)}"),
        BadInput,
        f"holds orbit 85079 as {NAME.file_name}",
    ),
}


@pytest.mark.parametrize("case", sorted(UNTRUSTED))
def test_a_request_naming_anything_but_the_files_archive_object_is_poison(world: dict[str, Any], case: str) -> None:
    make, error, words = UNTRUSTED[case]
    before = _item(world)
    with pytest.raises(error, match=words):
        world["handler"].handle(make(world))  # before HSDS (ReachedHsds) and before any write
    assert _item(world) == before, "the file's item changed"


def test_untrusted_requests_are_dead_lettered_with_their_reason_and_good_work_goes_on(world: dict[str, Any]) -> None:
    bodies = {case: make(world) for case, (make, _, _) in UNTRUSTED.items()}
    for body in bodies.values():
        world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=body)
    report = drain(world["sqs"], world["queue"], world["dlq"], world["handler"], wait_seconds=0)
    assert (report.processed, report.dead_lettered, report.left) == (0, len(UNTRUSTED), 0)
    dead: dict[str, str] = {}
    while (
        got := world["sqs"]
        .receive_message(QueueUrl=world["dlq"], MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        .get("Messages")
    ):
        for m in got:
            dead[m["Body"]] = m["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]
            world["sqs"].delete_message(QueueUrl=world["dlq"], ReceiptHandle=m["ReceiptHandle"])
    for case, body in bodies.items():
        assert UNTRUSTED[case][2] in dead[body], (case, dead.get(body))
        assert dead[body].isprintable(), f"{case}: SQS refuses control characters in an attribute"
    item = _item(world)
    assert (item[FileAttr.BUCKET], item[FileAttr.KEY], item[FileAttr.STATE_VERSION]) == (ARCHIVE, KEY, 0)
    assert world["files"].get(_renamed(60)) is None, "a phantom item for the orbit"


def test_an_object_not_restored_returns_to_the_queue_it_is_no_poison(world: dict[str, Any]) -> None:
    body = _put(world, KEY, storage_class="DEEP_ARCHIVE")  # the same object, archived again
    with pytest.raises(NotReadable, match="still archived"):
        world["handler"].handle(body)
    world["sqs"].send_message(QueueUrl=world["queue"], MessageBody=body)
    report = drain(world["sqs"], world["queue"], world["dlq"], world["handler"], wait_seconds=0, visibility_timeout=1)
    assert (report.processed, report.dead_lettered, report.left) == (0, 0, 1)
    assert report.failures[0].error_type == "NotReadable"
    assert world["sqs"].receive_message(QueueUrl=world["dlq"]).get("Messages") is None
    time.sleep(1.2)
    assert [m["Body"] for m in world["sqs"].receive_message(QueueUrl=world["queue"])["Messages"]] == [body]


def test_the_handler_needs_the_archive_bucket(world: dict[str, Any]) -> None:
    handler: IndexFileHandler = world["handler"]
    with pytest.raises(ValueError, match="archive_bucket"):
        IndexFileHandler(handler.s3, handler.files, handler.target, archive_bucket="")
