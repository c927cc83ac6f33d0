"""The shared edge of every command and worker, unit by unit: a dead loopback endpoint is refused at once,
only what a retry can fix says `retry later`, and a queue drain stops on what no receive can fix."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from datacarousel import aws
from datacarousel.config import check_hsds_socket
from datacarousel.errors import BadInput, ConfigError, EnvironmentDown, TransientError, outcome
from datacarousel.queue_worker import drain


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_loopback_endpoint_is_refused_at_once_and_a_live_one_or_aws_is_not() -> None:

    began = time.monotonic()
    with pytest.raises(EnvironmentDown, match="datacarousel up"):
        aws.check_local_endpoint(f"http://127.0.0.1:{_closed_port()}")
    assert time.monotonic() - began < 2
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        aws.check_local_endpoint(f"http://127.0.0.1:{live.getsockname()[1]}")
    aws.check_local_endpoint("https://s3.us-west-2.amazonaws.com")  # AWS: never probed
    aws.check_local_endpoint("")


def _client_error(code: str) -> Exception:

    return ClientError({"Error": {"Code": code, "Message": code}}, "Op")


def test_only_what_a_retry_can_fix_says_retry_later() -> None:

    wrapped = TransientError("registering X: Unable to locate credentials")
    wrapped.__cause__ = NoCredentialsError()
    permanent = [
        NoCredentialsError(),
        NoRegionError(),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:5/"),
        _client_error("AccessDenied"),
        _client_error("ResourceNotFoundException"),
        BadInput("bad"),
        ConfigError("DC_FILES_TABLE is not set"),
        wrapped,
        PermissionError(errno.EACCES, "Permission denied", "/x"),
        NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"),
    ]
    for exc in permanent:
        ended = outcome(exc)
        assert ended.code == 2 and "retry" not in ended.line and "\n" not in ended.line, (exc, ended)
    transient = [
        TransientError("HSDS answered 503"),
        _client_error("ThrottlingException"),
        EndpointConnectionError(endpoint_url="https://dynamodb.us-west-2.amazonaws.com/"),
    ]
    for exc in transient:
        ended = outcome(exc)
        assert ended.code == 1 and "retry later" in ended.line, (exc, ended)
    full = outcome(OSError(errno.ENOSPC, "No space left on device", "/x"))
    assert full.code == 1 and "retry" not in full.line  # neither bad input nor a passing failure
    bug = outcome(KeyError("k"))
    assert bug.code == 1 and "DC_LOG_LEVEL=DEBUG" in bug.line and "retry" not in bug.line


class _Sqs:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def receive_message(self, **_: Any) -> dict[str, Any]:
        raise self.error


def _broken_sqs(error: Exception) -> Any:
    """A fake where an SQSClient is expected: every receive raises `error`."""
    return _Sqs(error)


def test_a_drain_stops_with_the_error_no_receive_can_fix_and_waits_out_the_others() -> None:

    with pytest.raises(NoCredentialsError):
        drain(_broken_sqs(NoCredentialsError()), "q", "dlq", lambda body: None)
    with pytest.raises(ClientError):
        drain(_broken_sqs(_client_error("AWS.SimpleQueueService.NonExistentQueue")), "q", "dlq", lambda body: None)
    unreachable = EndpointConnectionError(endpoint_url="https://sqs.us-west-2.amazonaws.com/")
    assert drain(_broken_sqs(unreachable), "q", "dlq", lambda body: None).received == 0  # for now: the next run retries


def test_a_missing_hsds_socket_is_refused_at_once_and_a_present_one_or_a_url_is_not(tmp_path: Path) -> None:
    gone = tmp_path / "sn_1.sock"
    endpoint = f"http+unix://{str(gone).replace('/', '%2F')}"
    with pytest.raises(EnvironmentDown, match="datacarousel up"):
        check_hsds_socket(endpoint)
    gone.touch()
    check_hsds_socket(endpoint)
    check_hsds_socket("http://hsds.datacarousel.local:5101")  # AWS (Cloud Map): never checked here


def test_stack_py_without_the_projects_dependencies_is_one_line_exit_2(tmp_path: Path) -> None:
    """`python stack.py` with a Python lacking troposphere/awacs (-S: no site-packages) says so, no traceback."""
    stack_py = Path(__file__).resolve().parents[3] / "stack.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-S", str(stack_py)], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "No module named 'troposphere'" in done.stderr and "make stack" in done.stderr
