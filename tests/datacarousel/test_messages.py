"""Queue messages: strict JSON round trips; every malformed body is refused with a clear, complete reason."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacarousel.errors import MalformedMessage
from datacarousel.messages import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    IndexRequest,
    ReduceRequest,
    WorkItem,
    parse_job_message,
)

REQUEST = IndexRequest(bucket="archive", key="P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5", size=10, etag="e1")
ITEM = WorkItem(
    job_id="job-1",
    job_definition="ComputeRadiance",
    file_name="TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5",
    bucket="archive",
    key="P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5",
    domain="/home/u/bf/2015.12/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5",
    parameters={"resolution": "0.5"},
)


def test_round_trips() -> None:
    assert IndexRequest.from_json(REQUEST.to_json()) == REQUEST
    assert WorkItem.from_json(ITEM.to_json()) == ITEM
    assert WorkItem.from_json(ITEM.to_json().encode()) == ITEM
    assert json.loads(REQUEST.to_json())["kind"] == "index-request"
    assert {"index-request": IndexRequest, "work-item": WorkItem, "reduce-request": ReduceRequest} == MESSAGE_TYPES


def test_a_work_queue_message_is_told_apart_by_its_kind() -> None:
    reduce = ReduceRequest(job_id="job-1", job_definition="ComputeRadiance", parameters={"resolution": "0.5"})
    assert parse_job_message(reduce.to_json()) == reduce
    assert parse_job_message(ITEM.to_json()) == ITEM
    # Anything else is refused as a WorkItem would refuse it, every problem named.
    for body in ("[]", "not json", '{"kind": "reduce-request"}', REQUEST.to_json()):
        with pytest.raises(MalformedMessage):
            parse_job_message(body)
    with pytest.raises(MalformedMessage, match="job_id"):
        parse_job_message('{"kind": "reduce-request", "job_definition": "X", "job_id": ""}')


def test_defaults_apply_to_optional_fields() -> None:
    parsed = IndexRequest.from_json('{"bucket": "b", "key": "k"}')
    assert (parsed.size, parsed.etag) == (0, "")


@pytest.mark.parametrize("body", ["", "{", "not json", '{"bucket": "b",}'])
def test_invalid_json(body: str) -> None:
    with pytest.raises(MalformedMessage, match="IndexRequest: not valid JSON"):
        IndexRequest.from_json(body)


@pytest.mark.parametrize(("body", "kind"), [("[]", "list"), ('"text"', "str"), ("3", "int"), ("null", "NoneType")])
def test_not_an_object(body: str, kind: str) -> None:
    with pytest.raises(MalformedMessage, match=f"expected a JSON object, got {kind}"):
        IndexRequest.from_json(body)


def test_every_problem_is_named_at_once() -> None:
    body = json.dumps({"kind": "work-item", "bucket": 3, "size": "10", "colour": "red", "extra": 1})
    with pytest.raises(MalformedMessage) as info:
        IndexRequest.from_json(body)
    text = str(info.value)
    assert "kind is 'work-item', expected 'index-request'" in text
    assert "missing field 'key'" in text
    assert "field 'bucket' must be str, got int" in text
    assert "field 'size' must be int, got str" in text
    assert "unknown field(s) 'colour', 'extra'" in text


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("size", True, "field 'size' must be int, got bool"),
        ("size", 1.5, "field 'size' must be int, got float"),
        ("size", None, "field 'size' must be int, got NoneType"),
        ("etag", 5, "field 'etag' must be str, got int"),
        ("key", ["a"], "field 'key' must be str, got list"),
    ],
)
def test_wrong_types(field: str, value: object, expected: str) -> None:
    raw = {"bucket": "b", "key": "k", field: value}
    with pytest.raises(MalformedMessage, match=expected):
        IndexRequest.from_dict(raw)


def test_nested_types_are_checked() -> None:
    raw = json.loads(ITEM.to_json())
    raw["parameters"] = {"resolution": 0.5}
    with pytest.raises(MalformedMessage, match="field 'parameters' must be dict"):
        WorkItem.from_dict(raw)


def test_values_are_validated() -> None:
    with pytest.raises(MalformedMessage, match="field 'bucket' must not be empty"):
        IndexRequest.from_json('{"bucket": "", "key": "k"}')
    with pytest.raises(MalformedMessage, match="'size' must be >= 0"):
        IndexRequest.from_json('{"bucket": "b", "key": "k", "size": -1}')
    raw = json.loads(ITEM.to_json())
    raw["job_id"] = ""
    with pytest.raises(MalformedMessage, match="field 'job_id' must not be empty"):
        WorkItem.from_dict(raw)


def test_bad_encoding_and_oversized_bodies() -> None:
    with pytest.raises(MalformedMessage, match="not UTF-8"):
        IndexRequest.from_json(b"\xff\xfe{}")
    big = json.dumps({"bucket": "b", "key": "k" * MAX_MESSAGE_BYTES})
    with pytest.raises(MalformedMessage, match="exceeds"):
        IndexRequest.from_json(big)


def test_deduplication_id_follows_the_object_version() -> None:
    same = IndexRequest(bucket=REQUEST.bucket, key=REQUEST.key, etag=REQUEST.etag, size=99)
    other = IndexRequest(bucket=REQUEST.bucket, key=REQUEST.key, etag="e2")
    assert REQUEST.deduplication_id() == same.deduplication_id()
    assert REQUEST.deduplication_id() != other.deduplication_id()
    assert len(REQUEST.deduplication_id()) <= 128


def test_work_items_hash_by_identity() -> None:
    assert hash(ITEM) == hash(WorkItem.from_json(ITEM.to_json()))
    assert len({ITEM, WorkItem.from_json(ITEM.to_json())}) == 1


text = st.text(min_size=1, max_size=200)


@given(bucket=text, key=text, size=st.integers(min_value=0, max_value=2**53), etag=st.text(max_size=64))
def test_index_request_round_trip(bucket: str, key: str, size: int, etag: str) -> None:
    message = IndexRequest(bucket=bucket, key=key, size=size, etag=etag)
    assert IndexRequest.from_json(message.to_json()) == message


job_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", fullmatch=True).filter(lambda j: ".." not in j)


@given(parameters=st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=5), job=job_ids)
def test_work_item_round_trip(parameters: dict[str, str], job: str) -> None:
    message = WorkItem(job_id=job, job_definition="d", file_name="f", bucket="b", key="k", parameters=parameters)
    assert WorkItem.from_json(message.to_json()) == message


# As the carousel makes them (carousel.jobs.new_job_id), and as tests and the job SDK pass them.
GOOD_JOB_IDS = ["job-20151216T160910Z-0123abcd", "job-1", "cr-0123abcd-queue", "rel-bad-0123abcd", "local", "A.b_c-9"]
BAD_JOB_IDS = [
    "../../escape/x",  # wrote outside results/<job>/
    "..",
    "a..b",
    "a/b",
    "/abs",
    "a b",
    "job-1\n",
    "job\t1",
    "job\x00",
    ".hidden",
    "-dash",
    "_under",
    "x" * 129,
    "jöb",
]


@pytest.mark.parametrize("job_id", GOOD_JOB_IDS)
def test_job_ids_the_carousel_makes_are_accepted(job_id: str) -> None:
    item = dataclasses.replace(ITEM, job_id=job_id)
    assert WorkItem.from_json(item.to_json()) == item
    reduce = ReduceRequest(job_id=job_id, job_definition="ComputeRadiance")
    assert parse_job_message(reduce.to_json()) == reduce


@pytest.mark.parametrize("job_id", BAD_JOB_IDS)
def test_a_job_id_that_could_leave_its_results_folder_is_refused(job_id: str) -> None:
    for raw in (
        {**json.loads(ITEM.to_json()), "job_id": job_id},
        {"kind": "reduce-request", "job_id": job_id, "job_definition": "ComputeRadiance"},
    ):
        with pytest.raises(MalformedMessage, match="field 'job_id'"):
            parse_job_message(json.dumps(raw))
    with pytest.raises(MalformedMessage, match="is not a job id"):
        WorkItem(job_id, "ComputeRadiance", ITEM.file_name, ITEM.bucket, ITEM.key)
    with pytest.raises(ValueError, match="is not a job id"):  # a ValueError too, as __post_init__ raises
        ReduceRequest(job_id, "ComputeRadiance")


@pytest.mark.parametrize("definition", ["../x", "Compute Radiance", "9lives", "a/b", "x" * 41, "Compute\n", ""])
def test_a_job_definition_that_is_no_definition_name_is_refused(definition: str) -> None:
    for raw in (
        {**json.loads(ITEM.to_json()), "job_definition": definition},
        {"kind": "reduce-request", "job_id": "job-1", "job_definition": definition},
    ):
        with pytest.raises(MalformedMessage, match="job_definition"):
            parse_job_message(json.dumps(raw))


def test_a_reduce_request_carries_its_jobs_owner_and_an_old_one_without_it_still_parses() -> None:
    reduce = ReduceRequest(job_id="job-1", job_definition="ComputeRadiance", owner="alice")
    assert parse_job_message(reduce.to_json()) == reduce and json.loads(reduce.to_json())["owner"] == "alice"
    old = parse_job_message(json.dumps({"kind": "reduce-request", "job_id": "job-1", "job_definition": "X"}))
    assert isinstance(old, ReduceRequest) and old.owner == ""


@pytest.mark.parametrize("owner", ["Alice", "$\\frac{a}{b}$", "a b", "a\nb", "x" * 64])
def test_an_owner_that_submit_would_refuse_is_refused_in_a_reduce_request(owner: str) -> None:
    raw = {"kind": "reduce-request", "job_id": "job-1", "job_definition": "ComputeRadiance", "owner": owner}
    with pytest.raises(MalformedMessage, match="field 'owner'"):
        parse_job_message(json.dumps(raw))
