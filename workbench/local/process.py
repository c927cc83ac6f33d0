"""Start, identify and stop the environment's server processes by PID.

A process is identified by its PID *and* its start time (psutil's
`create_time`), so a recycled PID is never mistaken for one of ours. Records
are kept as small JSON PID files in the state directory; `stop` removes them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from workbench.local.errors import PortInUse

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# psutil rounds create_time to clock ticks; allow a little slack when comparing.
_CREATE_TIME_SLACK = 0.05

# Popen objects of processes started by this Python process, so they can be reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRecord:
    """One started server: enough to find it again and to stop it safely from another process."""

    name: str
    pid: int
    create_time: float
    argv: tuple[str, ...]
    log_file: str
    # Processes the server started itself (e.g. HSDS service and data nodes): (pid, create_time).
    children: tuple[tuple[int, float], ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ProcessRecord:
        raw = json.loads(text)
        return cls(
            name=str(raw["name"]),
            pid=int(raw["pid"]),
            create_time=float(raw["create_time"]),
            argv=tuple(raw["argv"]),
            log_file=str(raw["log_file"]),
            children=tuple((int(p), float(t)) for p, t in raw.get("children", ())),
        )

    def with_children(self, children: Sequence[tuple[int, float]]) -> ProcessRecord:
        return ProcessRecord(self.name, self.pid, self.create_time, self.argv, self.log_file, tuple(children))


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, host: str = LOOPBACK, *, what: str = "service") -> None:
    """Raise `PortInUse` (naming the holder when visible) if `host:port` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUse(
                f"cannot start {what}: {host}:{port} is already in use{_port_holder(port)} ({exc.strerror}); "
                "stop whatever holds it or choose another port (leave the port unset to get a free one)"
            ) from exc


def _port_holder(port: int) -> str:
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                with contextlib.suppress(psutil.Error):
                    return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                return f" by pid {conn.pid}"
    return ""


def _reset_sigint() -> None:  # pragma: no cover - runs in the child between fork and exec
    # A parent started in the background from a non-interactive shell ignores SIGINT,
    # and the child would inherit that; HSDS stops cleanly only on SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_file: Path) -> ProcessRecord:
    """Start `argv` in its own session, output appended to `log_file`, SIGINT at its default."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the terminal of `datacarousel up`; never gets its Ctrl-C
            preexec_fn=_reset_sigint,  # noqa: PLW1509 - only resets one signal disposition
        )
    _CHILDREN[proc.pid] = proc
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    record = ProcessRecord(name, proc.pid, create_time, tuple(argv), str(log_file))
    log.info("started %s pid=%d log=%s", name, proc.pid, log_file)
    return record


def _process(pid: int, create_time: float) -> psutil.Process | None:
    """The live process with this identity, or None (gone, zombie, or PID reused)."""
    _reap(pid)
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > _CREATE_TIME_SLACK:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def is_running(record: ProcessRecord) -> bool:
    return _process(record.pid, record.create_time) is not None


def live_children(record: ProcessRecord) -> list[tuple[int, float]]:
    """(pid, create_time) of every live descendant of a running record."""
    proc = _process(record.pid, record.create_time)
    if proc is None:
        return []
    found = []
    with contextlib.suppress(psutil.Error):
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                found.append((child.pid, child.create_time()))
    return found


def all_pids(record: ProcessRecord) -> list[int]:
    """The PIDs of the record and of its recorded and current children that are still alive."""
    identities = {(record.pid, record.create_time), *record.children, *live_children(record)}
    return sorted(pid for pid, t in identities if _process(pid, t) is not None)


def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        for p in alive:
            _reap(p.pid)
        alive = [p for p in alive if _process(p.pid, p.create_time()) is not None]
        if alive:
            time.sleep(0.05)
    return alive


def stop(record: ProcessRecord, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 15.0) -> bool:
    """Stop a recorded process and its children: `sig` first, SIGKILL for what is left after `timeout`.

    Returns True when something was running. Only processes whose PID *and* start time match
    the record (or its recorded/current children) are signalled.
    """
    main = _process(record.pid, record.create_time)
    identities = {*record.children, *live_children(record)}
    children = [p for p in (_process(pid, t) for pid, t in identities) if p is not None]
    if main is None and not children:
        return False
    if main is not None:
        log.info("stopping %s pid=%d with %s", record.name, record.pid, sig.name)
        with contextlib.suppress(psutil.Error):
            main.send_signal(sig)
        alive = _wait_gone([main], timeout)
        if alive:
            log.warning("%s pid=%d ignored %s for %.0f s: killing it", record.name, record.pid, sig.name, timeout)
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            _wait_gone(alive, 5.0)
    # Whatever the parent did not take down with it (e.g. it was killed) gets SIGTERM, then SIGKILL.
    leftover = [p for p in children if _process(p.pid, p.create_time()) is not None]
    if leftover:
        log.info("stopping %d leftover child process(es) of %s", len(leftover), record.name)
        for p in leftover:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        for p in _wait_gone(leftover, 5.0):
            with contextlib.suppress(psutil.Error):
                p.kill()
    _reap(record.pid)
    child = _CHILDREN.pop(record.pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
    return True


def write_record(path: Path, record: ProcessRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.to_json())
    os.replace(tmp, path)


def read_record(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable PID file %s: %s", path, exc)
        return None


BUSY_LOOP = "while True:\n    pass\n"


@contextmanager
def busy_loops(count: int) -> Iterator[list[int]]:
    """`count` busy-loop processes (a core each) for the length of the block, stopped by PID afterwards whatever
    happens: the artificial load under which `up` must still come up (its test and bench/bench_up_under_load.py)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL))
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
