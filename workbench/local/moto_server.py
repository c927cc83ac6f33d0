"""moto's server (the AWS APIs on loopback) as a managed subprocess."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from workbench.local import process
from workbench.local.errors import MissingDependency, StartupFailed

log = logging.getLogger(__name__)

NAME = "moto"


def check_installed() -> None:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("moto.server") is None:
        raise MissingDependency(
            "moto's server is not installed in this Python environment: pip install 'moto[server]==5.2.5' "
            "(or run scripts/bootstrap.sh)"
        )
    if importlib.util.find_spec("flask") is None:
        raise MissingDependency("moto's server needs Flask: pip install 'moto[server]==5.2.5'")


def start(*, port: int | None, env: Mapping[str, str], cwd: Path, log_file: Path) -> tuple[process.ProcessRecord, str]:
    """Start moto's server on 127.0.0.1:<port> (a free port when `port` is None); returns (record, endpoint)."""
    check_installed()
    if port is None:
        port = process.free_port()
    else:
        process.check_port_free(port, what="moto")
    # moto.server, with its per-byte and per-message costs patched out (see moto_main).
    argv = (sys.executable, "-m", "workbench.local.moto_main", "-H", process.LOOPBACK, "-p", str(port))
    record = process.spawn(NAME, argv, env=env, cwd=cwd, log_file=log_file)
    return record, f"http://{process.LOOPBACK}:{port}"


def wait_ready(endpoint: str, record: process.ProcessRecord, *, timeout: float = 30.0) -> None:
    """Poll moto's own API until it answers; fail at once (with the log tail) if the process exits."""
    deadline = time.monotonic() + timeout
    url = f"{endpoint}/moto-api/"
    last_error = ""
    while time.monotonic() < deadline:
        if not process.is_running(record):
            raise StartupFailed(f"moto exited during start-up; see {record.log_file}:\n{tail(record.log_file)}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as rsp:
                if rsp.status == 200:
                    log.info("moto ready at %s", endpoint)
                    return
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise StartupFailed(f"moto did not answer at {url} within {timeout:.0f} s ({last_error}); see {record.log_file}")


def answers(endpoint: str) -> bool:
    """Whether moto answers at `endpoint` right now."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2.0) as rsp:
            return bool(rsp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def tail(path: str, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
