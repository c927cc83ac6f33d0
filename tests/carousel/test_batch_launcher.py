"""`BatchLauncher` against AWS Batch's documented responses (botocore's Stubber on a real batch client).

Workers are started as array jobs. ListJobs on a job queue lists an array job once, as its parent (SUBMITTED,
or PENDING while its children run); the children are listed only by array job id. The caps the carousel
enforces count workers, so an array parent counts its children in the active statuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from carousel.launcher import BatchLauncher, LaunchRequest

QUEUE = "datacarousel-job-queue"
INDEX = "datacarousel-index-file"
ARN = "arn:aws:batch:us-east-1:123456789012:job-definition/{}:{}"
ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


@pytest.fixture()
def batch() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("batch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def summary(job_id: str, definition: str | None = INDEX, revision: int = 3, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"jobId": job_id, "jobName": job_id, **extra}
    if definition is not None:
        job["jobDefinition"] = ARN.format(definition, revision)
    return job


def expect_listings(stubber: Stubber, pages: dict[str, list[list[dict[str, Any]]]]) -> None:
    """ListJobs on the queue for each active status, in order; `pages[status]` its pages (none: one empty)."""
    for status in ACTIVE:
        status_pages = pages.get(status) or [[]]
        for number, jobs in enumerate(status_pages):
            params: dict[str, Any] = {"jobQueue": QUEUE, "jobStatus": status}
            if number:
                params["nextToken"] = f"{status}-{number}"
            response: dict[str, Any] = {"jobSummaryList": jobs}
            if number + 1 < len(status_pages):
                response["nextToken"] = f"{status}-{number + 1}"
            stubber.add_response("list_jobs", response, params)


def detail(job_id: str, status: str, definition: str = INDEX, **extra: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "jobName": job_id,
        "jobQueue": QUEUE,
        "status": status,
        "startedAt": 0,
        "jobDefinition": ARN.format(definition, 3),
        **extra,
    }


def test_launch_submits_one_job_or_an_array(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    stubber.add_response(
        "submit_job",
        {"jobName": INDEX, "jobId": "one"},
        {"jobName": INDEX, "jobQueue": QUEUE, "jobDefinition": INDEX, "parameters": {}},
    )
    stubber.add_response(
        "submit_job",
        {"jobName": "radiance", "jobId": "array"},
        {
            "jobName": "radiance",
            "jobQueue": QUEUE,
            "jobDefinition": "ComputeRadiance",
            "parameters": {"mode": "queue"},
            "arrayProperties": {"size": 4},
        },
    )
    launcher = BatchLauncher(client, QUEUE)
    assert launcher.launch(LaunchRequest(INDEX)) == ["one"]
    assert launcher.launch(LaunchRequest("ComputeRadiance", {"mode": "queue"}, array_size=4, name="radiance")) == [
        "array"
    ]


def test_an_array_job_of_four_running_children_counts_four(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    # The parent is PENDING while its children run; ListJobs gives its size, DescribeJobs its children.
    expect_listings(stubber, {"PENDING": [[summary("parent", arrayProperties={"size": 4})]]})
    stubber.add_response(
        "describe_jobs",
        {"jobs": [detail("parent", "PENDING", arrayProperties={"size": 4, "statusSummary": {"RUNNING": 4}})]},
        {"jobs": ["parent"]},
    )
    assert BatchLauncher(client, QUEUE).active(INDEX) == 4


def test_children_count_by_status_and_finished_ones_do_not(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    expect_listings(
        stubber,
        {
            "SUBMITTED": [[summary("new", arrayProperties={"size": 3, "statusSummary": {}})]],  # none spawned yet
            "PENDING": [
                [
                    summary(
                        "half",
                        arrayProperties={
                            "size": 6,
                            "statusSummary": {"SUCCEEDED": 2, "FAILED": 1, "RUNNING": 2, "RUNNABLE": 1},
                        },
                    ),
                    summary("done-soon", arrayProperties={"size": 2, "statusSummary": {"SUCCEEDED": 2}}),
                ]
            ],
            "RUNNING": [[summary("single")]],
        },
    )
    assert BatchLauncher(client, QUEUE).active(INDEX) == 3 + 3 + 0 + 1  # no DescribeJobs: ListJobs had the summaries


def test_every_page_of_every_status_is_read(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    expect_listings(
        stubber,
        {
            "RUNNABLE": [[summary("r1"), summary("r2")], [summary("r3")]],
            "RUNNING": [[summary(f"a{i}") for i in range(100)], [summary(f"b{i}") for i in range(100)], [summary("c")]],
        },
    )
    assert BatchLauncher(client, QUEUE).active(INDEX) == 3 + 201


def test_only_the_asked_job_definition_counts(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    expect_listings(
        stubber,
        {
            "RUNNING": [
                [
                    summary("mine", revision=1),
                    summary("mine-later-revision", revision=12),
                    summary("other", definition="datacarousel-record-metadata"),
                    summary("longer-name", definition=f"{INDEX}-extra"),
                    summary("shorter-name", definition="datacarousel-index"),
                    summary("no-definition", definition=None),  # older API versions: described
                    summary("no-definition-other", definition=None),
                    {"jobId": "by-name", "jobName": "by-name", "jobDefinition": f"{INDEX}:4"},
                ]
            ]
        },
    )
    stubber.add_response(
        "describe_jobs",
        {"jobs": [detail("no-definition", "RUNNING"), detail("no-definition-other", "RUNNING", "ComputeRadiance")]},
        {"jobs": ["no-definition", "no-definition-other"]},
    )
    assert BatchLauncher(client, QUEUE).active(INDEX) == 4  # mine, mine-later-revision, no-definition, by-name


def test_a_job_seen_in_two_listings_or_a_child_listed_with_its_parent_counts_once(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    parent = summary("p", arrayProperties={"size": 2, "statusSummary": {"RUNNING": 2}})
    expect_listings(
        stubber,
        {
            "RUNNABLE": [[summary("moved")]],
            "PENDING": [[parent]],
            "RUNNING": [[summary("moved"), summary("p:0", arrayProperties={"index": 0}), parent]],
        },
    )
    assert BatchLauncher(client, QUEUE).active(INDEX) == 1 + 2


def test_described_parents_go_100_at_a_time_and_vanished_ones_count_nothing(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    parents = [summary(f"p{i:03d}", arrayProperties={"size": 2}) for i in range(150)]
    expect_listings(stubber, {"PENDING": [parents[:100], parents[100:]]})
    for ids in ([f"p{i:03d}" for i in range(100)], [f"p{i:03d}" for i in range(100, 150)]):
        stubber.add_response(
            "describe_jobs",
            {
                "jobs": [
                    detail(j, "PENDING", arrayProperties={"size": 2, "statusSummary": {"RUNNING": 1, "SUCCEEDED": 1}})
                    for j in ids
                    if j != "p149"  # finished and gone between the two calls
                ]
            },
            {"jobs": ids},
        )
    assert BatchLauncher(client, QUEUE).active(INDEX) == 149


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (ARN.format(INDEX, 3), INDEX),
        (f"{INDEX}:3", INDEX),
        (INDEX, INDEX),
        ("arn:aws:batch:us-east-1:1:job-definition/ComputeRadiance:12", "ComputeRadiance"),
    ],
)
def test_definition_names(text: str, name: str) -> None:
    assert BatchLauncher.definition_name(text) == name


def test_a_job_that_ended_between_listing_and_describing_does_not_count(batch: tuple[Any, Stubber]) -> None:
    client, stubber = batch
    expect_listings(stubber, {"RUNNING": [[summary("ended", definition=None), summary("runs", definition=None)]]})
    stubber.add_response(
        "describe_jobs",
        {"jobs": [detail("ended", "SUCCEEDED"), detail("runs", "RUNNING")]},
        {"jobs": ["ended", "runs"]},
    )
    assert BatchLauncher(client, QUEUE).active(INDEX) == 1
