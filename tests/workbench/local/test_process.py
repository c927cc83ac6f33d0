"""Process records, ports and stopping by PID (real subprocesses; no services needed)."""

from __future__ import annotations

import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from workbench.local import process
from workbench.local.errors import PortInUse

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
# A parent that starts a grandchild and then waits: like the `hsds` launcher and its nodes.
PARENT = (
    sys.executable,
    "-c",
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)",
)


@pytest.fixture()
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((process.LOOPBACK, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _wait_children(record: process.ProcessRecord, count: int) -> list[tuple[int, float]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = process.live_children(record)
        if len(children) >= count:
            return children
        time.sleep(0.05)
    raise AssertionError("child process did not start")


def test_free_port_is_bindable() -> None:
    port = process.free_port()
    process.check_port_free(port)  # does not raise


def test_busy_port_is_a_clear_error(listening_port: int) -> None:
    with pytest.raises(PortInUse, match=rf"127\.0\.0\.1:{listening_port} is already in use") as info:
        process.check_port_free(listening_port, what="moto")
    assert "cannot start moto" in str(info.value)
    assert "choose another port" in str(info.value)


def test_record_json_round_trip() -> None:
    record = process.ProcessRecord("x", 12, 34.5, ("a", "b"), "/tmp/log", ((1, 2.0), (3, 4.0)))
    assert process.ProcessRecord.from_json(record.to_json()) == record


def test_read_record_ignores_missing_and_garbage(tmp_path: Path) -> None:
    assert process.read_record(tmp_path / "none.pid") is None
    (tmp_path / "bad.pid").write_text("{not json")
    assert process.read_record(tmp_path / "bad.pid") is None


def test_spawn_and_stop_by_pid(tmp_path: Path) -> None:
    record = process.spawn("sleeper", SLEEPER, env={}, cwd=tmp_path, log_file=tmp_path / "s.log")
    process.write_record(tmp_path / "s.pid", record)
    assert process.read_record(tmp_path / "s.pid") == record
    assert process.is_running(record)
    assert process.stop(record, signal.SIGTERM, timeout=5)
    assert not process.is_running(record)
    assert not psutil.pid_exists(record.pid) or psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE
    assert not process.stop(record)  # nothing left to stop


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    record = process.spawn("sleeper", SLEEPER, env={}, cwd=tmp_path, log_file=tmp_path / "s.log")
    try:
        impostor = process.ProcessRecord("old", record.pid, record.create_time - 1000.0, record.argv, record.log_file)
        assert not process.is_running(impostor)
        assert not process.stop(impostor)
        assert process.is_running(record)
    finally:
        process.stop(record)


def test_sigint_works_even_when_the_caller_ignores_it(tmp_path: Path) -> None:
    """A launcher started from a background shell ignores SIGINT; spawn resets it (HSDS stops on SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        record = process.spawn("sleeper", SLEEPER, env={}, cwd=tmp_path, log_file=tmp_path / "s.log")
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(0.3)  # let the interpreter install its handler
    psutil.Process(record.pid).send_signal(signal.SIGINT)
    deadline = time.monotonic() + 5
    while process.is_running(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    still_running = process.is_running(record)
    process.stop(record, signal.SIGKILL)
    assert not still_running


def test_stop_takes_down_orphaned_children(tmp_path: Path) -> None:
    record = process.spawn("parent", PARENT, env={}, cwd=tmp_path, log_file=tmp_path / "p.log")
    record = record.with_children(_wait_children(record, 1))
    (child_pid, _), *_ = record.children
    psutil.Process(record.pid).kill()  # the parent dies without stopping its child
    time.sleep(0.2)
    assert psutil.pid_exists(child_pid)
    assert process.stop(record)
    time.sleep(0.1)
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE


def test_all_pids_lists_parent_and_children(tmp_path: Path) -> None:
    record = process.spawn("parent", PARENT, env={}, cwd=tmp_path, log_file=tmp_path / "p.log")
    try:
        children = _wait_children(record, 1)
        assert process.all_pids(record) == sorted([record.pid, *(pid for pid, _ in children)])
    finally:
        process.stop(record)
    assert process.all_pids(record) == []
