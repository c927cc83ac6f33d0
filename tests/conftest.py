"""Shared pytest fixtures.

`local_env` (session scope) brings the embedded environment up once for every
integration test that asks for it: moto's server, a real HSDS server and the
project's stack created in moto. It sets `os.environ` from the environment's
env file for the rest of the session (so `datacarousel.aws.client("s3")` and
h5pyd reach the local services through the standard variables) and always
tears everything down at the end, whether tests passed, failed or were
interrupted. Unit tests do not use it and start nothing.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.client
import pytest

from datacarousel import aws
from datacarousel.chunkread import read as chunkread_read
from datacarousel.contract import TableSchema
from tests.aws_tables import create_table
from workbench.local import environment
from workbench.local.environment import LocalEnvironment

# Fixtures that start servers (readme_session_dir: the README's session brings its own environment up): a
# test asking for one (directly or through another fixture) is an integration test, marked so here, so
# `-m "not integration"` (make test-unit) never starts a server.
SERVER_FIXTURES = frozenset({"local_env", "readme_session_dir"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    """The running embedded environment (`LocalEnvironment`: `.env`, `.state_dir`, `.pids()`)."""
    state_dir: Path = tmp_path_factory.mktemp("local-env")
    # Safety net for abrupt exits (the finalizer below is the normal path; down() is idempotent).
    atexit.register(environment.down, state_dir)
    # DC_STACK_FILE: another template module than ./stack.py (as `datacarousel up --stack-file`).
    stack_file = os.environ.get("DC_STACK_FILE")
    with environment.running(state_dir, stack_file=Path(stack_file) if stack_file else None) as env:
        yield env
    atexit.unregister(environment.down)


@pytest.fixture()
def no_scan(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every boto3 client in this process refuses DynamoDB Scan (and records the attempt): the
    researcher queries and the carousel must query indexes."""
    attempts: list[str] = []
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]  # private: not in botocore-stubs

    def guarded(self: Any, operation_name: str, api_params: Any) -> Any:
        if operation_name == "Scan":
            attempts.append(operation_name)
            raise AssertionError("DynamoDB Scan attempted: queries must use an index")
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", guarded)
    return attempts


@dataclass
class FakeAws:
    """moto's in-process fakes (`mock_aws`) for one test: clients of us-east-1, and tables made from the contract."""

    s3: Any
    sqs: Any
    ddb: Any

    def table(self, schema: TableSchema) -> str:
        """Create `schema`'s table (its indexes projecting everything); returns its name."""
        return create_table(self.ddb, schema)


@pytest.fixture()
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    """In-process AWS fakes (moto's `mock_aws`), whatever `local_env` put in the environment before:
    no endpoint override, dummy credentials, us-east-1."""
    from moto import mock_aws  # noqa: PLC0415 - heavy: only the tests that ask for the fakes pay for it

    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        session = aws.new_session()  # (reads the service descriptions parsed once for the whole run)
        yield FakeAws(
            s3=session.client("s3", region_name="us-east-1"),
            sqs=session.client("sqs", region_name="us-east-1"),
            ddb=session.client("dynamodb", region_name="us-east-1"),
        )


@pytest.fixture()
def segmented_inflations(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The restart indexes of the chunks the direct reader inflates in segments while the test runs."""
    used: list[Any] = []
    segmented = chunkread_read.inflate_segments

    def counted(index: Any, *args: Any, **kwargs: Any) -> Any:
        used.append(index)
        return segmented(index, *args, **kwargs)

    monkeypatch.setattr(chunkread_read, "inflate_segments", counted)
    return used
