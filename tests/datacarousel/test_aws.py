"""`datacarousel.aws`: every new session reads AWS's service descriptions from the process's one loader."""

from __future__ import annotations

import pytest

from datacarousel import aws


def test_sessions_are_new_but_share_one_loader_whose_search_path_does_not_grow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # (no endpoint is contacted: clients are only built)
    first, second = aws.new_session(), aws.new_session()
    assert first is not second and first._session is not second._session  # a session is not thread-safe
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    paths = list(loader.search_paths)
    assert len(paths) == len(set(paths))  # boto3 appends its folder at every session: kept once
    for _ in range(5):
        aws.new_session()
    assert loader.search_paths == paths
    # The descriptions are parsed once: a second client of a service reads the loader's cache.
    first.client("sqs", region_name="us-east-1")
    cached = len(loader._cache)
    second.client("sqs", region_name="us-east-1")
    assert len(loader._cache) == cached
    assert aws.client("sqs", region_name="us-east-1").meta.service_model.service_name == "sqs"
