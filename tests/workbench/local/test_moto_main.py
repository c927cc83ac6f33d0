"""moto's server as the environment runs it (workbench.local.moto_main): each patched answer is moto's own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from subprocess import PIPE
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from datacarousel import aws

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

OBJECT_BYTES = 3 * 1024 * 1024 + 17


@pytest.fixture()
def object_bytes(local_env: Any) -> Any:
    """(s3, bucket, key, bytes) of a fresh object in the archive bucket (seeded random bytes)."""
    s3 = aws.client("s3")
    bucket = local_env.env["DC_ARCHIVE_BUCKET"]
    key = f"moto-range/{uuid.uuid4().hex}.bin"
    data = np.random.default_rng(7).integers(0, 256, OBJECT_BYTES, dtype=np.uint8).tobytes()
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    yield s3, bucket, key, data
    s3.delete_object(Bucket=bucket, Key=key)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", slice(0, 1)),
        ("bytes=1000-1999999", slice(1000, 2000000)),
        ("bytes=3145000-", slice(3145000, None)),
        ("bytes=-10", slice(OBJECT_BYTES - 10, None)),
        ("bytes=5-99999999", slice(5, None)),  # past the end: up to the end, as S3
    ],
)
def test_ranged_get_returns_exactly_the_range(object_bytes: Any, header: str, expected: slice) -> None:
    s3, bucket, key, data = object_bytes
    got = s3.get_object(Bucket=bucket, Key=key, Range=header)
    body = got["Body"].read()
    assert body == data[expected]
    assert got["ContentLength"] == len(body)
    start = expected.start
    assert got["ContentRange"] == f"bytes {start}-{start + len(body) - 1}/{OBJECT_BYTES}"


def test_whole_and_unsatisfiable_gets_are_moto_s(object_bytes: Any) -> None:
    s3, bucket, key, data = object_bytes
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-1,5-6")["Body"].read() == data  # as moto: whole
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={OBJECT_BYTES}-")
    assert err.value.response["Error"]["Code"] == "InvalidRange"


def test_ranged_get_of_an_archived_object_is_refused(local_env: Any) -> None:
    s3 = aws.client("s3")
    bucket = local_env.env["DC_ARCHIVE_BUCKET"]
    key = f"moto-range/{uuid.uuid4().hex}.bin"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 100, StorageClass="DEEP_ARCHIVE")
    try:
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-9")
        assert err.value.response["Error"]["Code"] == "InvalidObjectState"
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def test_ranged_get_reads_only_its_range() -> None:
    """In a process of its own (the patches are global): a ranged GET never reads the whole object."""
    script = textwrap.dedent(
        """
        import json, os
        os.environ.pop("AWS_ENDPOINT_URL", None)
        os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-west-2")
        from workbench.local import moto_main
        moto_main.apply()
        from moto import mock_aws
        from moto.s3 import models
        whole_reads = []
        patched = models.FakeKey.value
        def counting(self):
            value = patched.fget(self)
            if not isinstance(value, moto_main.RangeView):
                whole_reads.append(len(value))
            return value
        models.FakeKey.value = property(counting, patched.fset)
        with mock_aws():
            import boto3
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket="range-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
            s3.put_object(Bucket="range-bucket", Key="k", Body=bytes(range(256)) * 4096)
            before = len(whole_reads)
            ranged = s3.get_object(Bucket="range-bucket", Key="k", Range="bytes=256-511")["Body"].read()
            after_ranged = len(whole_reads)
            whole = s3.get_object(Bucket="range-bucket", Key="k")["Body"].read()
            print(json.dumps({"ranged_ok": ranged == bytes(range(256)), "ranged_whole_reads": after_ranged - before,
                              "whole_ok": len(whole) == 256 * 4096, "whole_reads": len(whole_reads) - after_ranged}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"ranged_ok": True, "ranged_whole_reads": 0, "whole_ok": True, "whole_reads": 1}


def test_fifo_sends_keep_moto_s_deduplication_and_checks(local_env: Any) -> None:
    sqs = aws.client("sqs")
    name = f"moto-main-{uuid.uuid4().hex[:8]}"
    dedup = sqs.create_queue(
        QueueName=f"{name}-cbd.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    plain = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    try:
        for _ in range(3):
            sqs.send_message(QueueUrl=dedup, MessageBody="same body", MessageGroupId="g")
        sqs.send_message(QueueUrl=dedup, MessageBody="other body", MessageGroupId="g")
        counts = sqs.get_queue_attributes(QueueUrl=dedup, AttributeNames=["ApproximateNumberOfMessages"])
        assert counts["Attributes"]["ApproximateNumberOfMessages"] == "2"  # content-based deduplication
        with pytest.raises(ClientError) as err:  # no dedup id and no content-based deduplication
            sqs.send_message(QueueUrl=plain, MessageBody="x", MessageGroupId="g")
        assert "MessageDeduplicationId" in str(err.value)
    finally:
        sqs.delete_queue(QueueUrl=dedup)
        sqs.delete_queue(QueueUrl=plain)


def test_queue_counts_stay_exact_after_batched_sends(local_env: Any) -> None:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=f"moto-main-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        for batch in range(5):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": f"{batch}-{i}"} for i in range(10)
            ]
            assert len(sqs.send_message_batch(QueueUrl=url, Entries=entries)["Successful"]) == 10
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == str(50 - len(got))
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == str(len(got))
    finally:
        sqs.delete_queue(QueueUrl=url)


_LISTING_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    patched = sys.argv[1] == "patched"
    if patched:
        from workbench.local import moto_main
        moto_main.apply()
    from moto import mock_aws
    from moto.s3 import utils
    visits = [0]
    getitem = utils._VersionedKeyStore.__getitem__
    def counting(self, key):
        visits[0] += 1
        return getitem(self, key)
    utils._VersionedKeyStore.__getitem__ = counting
    import boto3

    def listing(s3, bucket, **kw):
        pages = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
            pages.append([[o["Key"] for o in page.get("Contents", [])],
                          [p["Prefix"] for p in page.get("CommonPrefixes", [])], page.get("KeyCount")])
        return pages

    out = {}
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="list-bucket")
        keys = [f"P{p:03d}/f{i:03d}.h5" for p in range(8) for i in range(40)]
        keys += ["P001/sub/x.h5", "P001x", "P0011/y.h5", "root.txt", "a%20b/c d.h5"]
        for k in keys:
            s3.put_object(Bucket="list-bucket", Key=k, Body=b"")
        cases = [dict(Prefix=p) for p in ("P001", "P001/", "P001/sub", "P00", "zz", "a%20b/")]
        cases += [dict(Prefix="P001/", Delimiter="/"), dict(Prefix="P0", Delimiter="/"), dict(Delimiter="/")]
        cases += [dict(Prefix="P002/", PaginationConfig={"PageSize": 7}),
                  dict(Prefix="P003/", StartAfter="P003/f020.h5"), dict()]
        before = visits[0]
        out["first"] = [listing(s3, "list-bucket", **c) for c in cases]
        visits_one = visits[0]
        listing(s3, "list-bucket", Prefix="P007/")
        out["visits_one_folder"] = visits[0] - visits_one
        s3.put_object(Bucket="list-bucket", Key="P001/new.h5", Body=b"")
        s3.delete_object(Bucket="list-bucket", Key="P001/f000.h5")
        s3.delete_objects(Bucket="list-bucket", Delete={"Objects": [{"Key": "P001/f001.h5"}]})
        source = {"Bucket": "list-bucket", "Key": "root.txt"}
        s3.copy_object(Bucket="list-bucket", Key="P001/copy.h5", CopySource=source)
        out["after_changes"] = [listing(s3, "list-bucket", Prefix="P001/")]
        s3.put_bucket_versioning(Bucket="list-bucket", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="list-bucket", Key="P001/f002.h5", Body=b"v2")
        s3.delete_object(Bucket="list-bucket", Key="P001/f003.h5")  # a delete marker
        out["versioned"] = [listing(s3, "list-bucket", Prefix="P001/")]
        out["v1"] = s3.list_objects(Bucket="list-bucket", Prefix="P004/", MaxKeys=5, Marker="P004/f010.h5")["Contents"]
        out["v1"] = [o["Key"] for o in out["v1"]]
    print(json.dumps(out))
    """
)


def _both(script: str, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """`script`'s last line of JSON for moto as it is and for moto patched, the two Pythons side by side."""
    runs = [
        subprocess.Popen([sys.executable, "-c", script, mode], stdout=PIPE, stderr=PIPE, text=True)
        for mode in ("moto", "patched")
    ]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=timeout)
        assert run.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results[0], results[1]


def test_prefixed_listings_are_moto_s_own_and_visit_only_their_prefix() -> None:
    """Every listing (prefixes, delimiters, pages, start-after, v1 markers, after puts, deletes,
    copies and in a versioned bucket) answers as unpatched moto; listing one folder of a bucket of 325 keys
    visits that folder's 40 keys, where moto visits them all."""
    own, patched = _both(_LISTING_SCRIPT, timeout=300)
    visits_own, visits_patched = own.pop("visits_one_folder"), patched.pop("visits_one_folder")
    assert patched == own
    assert own["first"][0][0][0][:2] == ["P001/f000.h5", "P001/f001.h5"]  # (the listings are not empty)
    assert visits_own >= 325
    assert visits_patched == 40


_RACE = """
import json, os, sys, threading, time
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-west-2")
from workbench.local import moto_main
if sys.argv[1] == "patched":
    moto_main.apply()
from moto import mock_aws
from moto.dynamodb.models import table as tables
from botocore.exceptions import ClientError

# Widen the gap between a write's condition check and its write, as a busy server does by chance.
read_item = tables.Table.get_item
def slow_read(self, *args, **kwargs):
    item = read_item(self, *args, **kwargs)
    time.sleep(0.3)
    return item
tables.Table.get_item = slow_read

with mock_aws():
    import boto3
    ddb = boto3.client("dynamodb")
    ddb.create_table(TableName="lease", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    winners = []
    def claim(holder):
        try:
            ddb.update_item(TableName="lease", Key={"id": {"S": "launch"}}, UpdateExpression="SET holder = :h",
                            ConditionExpression="attribute_not_exists(holder)",
                            ExpressionAttributeValues={":h": {"S": holder}})
            winners.append(holder)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException", exc
    threads = [threading.Thread(target=claim, args=(f"step-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    holder = ddb.get_item(TableName="lease", Key={"id": {"S": "launch"}})["Item"]["holder"]["S"]
    print(json.dumps({"winners": len(winners), "holder_is_a_winner": holder in winners}))
"""


def test_racing_conditional_updates_have_exactly_one_winner() -> None:
    """Four racing claims of one DynamoDB item (condition: not yet claimed), as four carousel steps take
    the launch lease: moto's own server lets several win; patched, exactly one does, and holds it."""
    own, patched = _both(_RACE, timeout=120)
    assert own["winners"] > 1  # the race is real (so the next line tests the patch)
    assert patched == {"winners": 1, "holder_is_a_winner": True}
