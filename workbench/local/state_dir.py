"""The state directory of the embedded environment: its layout, its env file, its state and PID records.

`Paths` names every file (see `workbench/local/environment.py` for the layout); the env file holds
the variables every worker reads (`KEY=value`, shell-quoted, 0600); `state.json` the endpoints,
socket directory and stack; the PID files the process records of moto and HSDS. `locked` lets one
`up`/`down` at a time work in a state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.local import hsds_server, moto_server, process
from workbench.local.errors import LocalEnvironmentError


@dataclass(frozen=True)
class Paths:
    """Where the environment keeps its state."""

    root: Path

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def hsds_dir(self) -> Path:
        return self.root / "hsds"

    @property
    def hsds_root(self) -> Path:
        return self.hsds_dir / "root"

    @property
    def password_file(self) -> Path:
        return self.hsds_dir / "passwd"

    @property
    def override_file(self) -> Path:
        return self.hsds_dir / "override.yml"


# --- env file ------------------------------------------------------------------------


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """`KEY=value` lines, values shell-quoted (so `set -a; . env` works), created 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# Written by `datacarousel up`; removed by `datacarousel down`.\n")
        for key in sorted(env):
            out.write(f"{key}={shlex.quote(env[key])}\n")
    os.replace(tmp, path)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse an env file written by `write_env_file`."""
    env: dict[str, str] = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, raw = line.partition("=")
        if not sep or not key.isidentifier():
            raise LocalEnvironmentError(f"{path}:{number}: not a KEY=VALUE line")
        values = shlex.split(raw)
        env[key] = values[0] if values else ""
    return env


def export_lines(env: Mapping[str, str]) -> list[str]:
    return [f"export {key}={shlex.quote(env[key])}" for key in sorted(env)]


# --- state and process records --------------------------------------------------------


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """One `up`/`down` at a time per state directory (across processes)."""
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(paths.lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_state(paths: Paths) -> dict[str, Any]:
    try:
        raw = json.loads(paths.state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def read_records(paths: Paths) -> dict[str, process.ProcessRecord]:
    found = {}
    for name in (moto_server.NAME, hsds_server.NAME):
        record = process.read_record(paths.pid_file(name))
        if record is not None:
            found[name] = record
    return found


def write_state(paths: Paths, state: Mapping[str, Any]) -> None:
    tmp = paths.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, paths.state_file)
