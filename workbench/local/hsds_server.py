"""A real HSDS server (pip package `hsds`) with POSIX storage, on Unix sockets, as a managed subprocess.

- Storage: `<root>/<bucket>/` under the state directory (created before start:
  a missing bucket directory makes a data node spin and flood its log).
- Endpoint: Unix sockets in a private (0700) short directory under the system temp
  directory (socket paths must stay under ~100 bytes), so nothing listens on TCP.
- Users: random passwords for the admin, the writer (the pipeline) and the reader (the
  analyses), in a 0600 password file; unauthenticated requests are refused and new domains get no public ACL: the
  template's `HSDS_SERVER_CONFIG`, the stack's HSDS task's settings too.
- Linked data in S3 (moto): the server reads `s3://` chunk references through
  AWS_S3_GATEWAY / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION.
- Stop: SIGINT to the `hsds` parent, which stops its nodes (SIGTERM would orphan them).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests_unixsocket

from datacarousel import hsds_accounts
from datacarousel.hsds_accounts import HsdsRole
from stack_template.hsds import HSDS_SERVER_CONFIG
from workbench.local import process
from workbench.local.errors import MissingDependency, StartupFailed

log = logging.getLogger(__name__)

NAME = "hsds"
SOCKET_DIR_PREFIX = "dc-hsds-"
# hsds refuses socket directories longer than this (AF_UNIX path limit, see hsds.app).
MAX_SOCKET_DIR_LEN = 63


@dataclass(frozen=True)
class Credentials:
    """HSDS accounts: an admin (creates the folders and sets their ACLs, at `up` only), the writer the
    pipeline runs as (`username`: index_file, record_metadata, the carousel) and the reader the
    analyses run as (`reader_username`: read access to the domains' folder only), named as on AWS
    (`datacarousel.hsds_accounts`)."""

    username: str
    password: str = field(repr=False)
    admin_password: str = field(repr=False)
    reader_password: str = field(repr=False, default="")

    @property
    def admin_user(self) -> str:
        return hsds_accounts.username(HsdsRole.ADMIN, self.username)

    @property
    def reader_username(self) -> str:
        return hsds_accounts.username(HsdsRole.READER, self.username)

    @classmethod
    def generate(cls, username: str) -> Credentials:
        return cls(
            username=username,
            password=secrets.token_urlsafe(24),
            admin_password=secrets.token_urlsafe(24),
            reader_password=secrets.token_urlsafe(24),
        )

    def write_password_file(self, path: Path) -> None:
        """`user:password` lines, created 0600 (never world- or group-readable, even briefly)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"{self.admin_user}:{self.admin_password}\n{self.username}:{self.password}\n")
            if self.reader_password:
                out.write(f"{self.reader_username}:{self.reader_password}\n")


READER_FILE = "hsds-reader"  # in the local launcher's state directory: the reader's `user:password`


def write_reader_file(launcher_state: Path, credentials: Credentials) -> None:
    """The reader's `user:password` (0600) where the local launcher finds it (`reader_of`)."""
    launcher_state.mkdir(parents=True, exist_ok=True)
    path = launcher_state / READER_FILE
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{credentials.reader_username}:{credentials.reader_password}\n")


def reader_of(password_file: Path, writer: str) -> tuple[str, str] | None:
    """(user, password) of the reader account of `writer` in a `user:password` file, else None.

    The local launcher gives them to the analyses as HS_USERNAME / HS_PASSWORD (the env file holds
    the writer's; on AWS each job definition gets its own identity's secret under those names).
    """
    reader = hsds_accounts.username(HsdsRole.READER, writer)
    try:
        lines = password_file.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        user, _, password = line.partition(":")
        if user == reader and password:
            return user, password
    return None


@dataclass(frozen=True)
class S3Access:
    """Where the HSDS server reads linked `s3://` objects (moto locally)."""

    gateway: str
    access_key_id: str
    secret_access_key: str
    region: str


def check_installed() -> None:
    if importlib.util.find_spec("hsds") is None:
        raise MissingDependency(
            "the HSDS server is not installed: pip install hsds==1.0.2 (or run scripts/bootstrap.sh)"
        )
    if importlib.util.find_spec("requests_unixsocket") is None:
        raise MissingDependency("requests-unixsocket is not installed: pip install requests-unixsocket==0.4.1")
    node = Path(sys.executable).parent / "hsds-node"
    if not node.exists() and shutil.which("hsds-node") is None:
        raise MissingDependency(f"hsds-node is not next to {sys.executable} nor on PATH: reinstall hsds==1.0.2")


def _config_keys() -> set[str]:
    """Every HSDS configuration key: HSDS reads an environment variable of the same name (upper case)."""
    spec = importlib.util.find_spec("admin.config")
    keys: set[str] = set()
    if spec is not None and spec.submodule_search_locations:
        config = Path(next(iter(spec.submodule_search_locations))) / "config.yml"
        for line in config.read_text().splitlines():
            if line and not line[0].isspace() and not line.startswith("#") and ":" in line:
                keys.add(line.split(":", 1)[0].strip().upper())
    return keys


def server_env(
    base: Mapping[str, str], *, bucket: str, root_dir: Path, override_file: Path, s3: S3Access | None
) -> dict[str, str]:
    """The server's environment: the caller's, without any stray HSDS setting, plus ours."""
    drop = _config_keys() | {"CONFIG_DIR", "CONFIG_OVERRIDE_PATH", "HS_USERNAME", "HS_PASSWORD", "HS_ENDPOINT"}
    env = {k: v for k, v in base.items() if k.upper() not in drop}
    env.update(
        {
            "BUCKET_NAME": bucket,  # `--bucket_name` alone does not reach the nodes
            "ROOT_DIR": str(root_dir),
            "CONFIG_OVERRIDE_PATH": str(override_file),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if s3 is not None:
        env.update(
            {
                "AWS_S3_GATEWAY": s3.gateway,
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
                "AWS_REGION": s3.region,
            }
        )
    return env


def override_settings(*, log_level: str, admin_user: str) -> dict[str, object]:
    """The embedded server's settings: the template's HSDS settings (`HSDS_SERVER_CONFIG`, the same
    no-anonymous-access config the stack's HSDS task runs with) and its admin, plus what suits a local server."""
    return {
        **HSDS_SERVER_CONFIG,
        "admin_user": admin_user,
        "log_level": log_level,
        "server_name": "Data Carousel local HSDS",
        # Write changed objects at the next sync tick (default: wait 1 s more): flushes return sooner.
        "s3_age_time": 0,
    }


def write_override(path: Path, *, log_level: str, admin_user: str) -> None:
    """The override file (JSON, which is YAML): settings that must be typed values (an environment
    variable cannot turn an HSDS boolean off: hsds converts its string with `bool()`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = override_settings(log_level=log_level, admin_user=admin_user)
    path.write_text("# Written by datacarousel up.\n" + json.dumps(settings, indent=1) + "\n")


def make_socket_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX))  # 0700
    if len(str(path)) + 1 > MAX_SOCKET_DIR_LEN:
        shutil.rmtree(path, ignore_errors=True)
        path = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX, dir="/tmp"))
    return path


def socket_url(socket_dir: Path, name: str) -> str:
    """`http+unix://` URL of a socket, exactly as `hsds` builds it (every '/' encoded)."""
    return "http+unix://" + quote(f"{socket_dir}/{name}", safe="")


def start(
    *,
    root_dir: Path,
    bucket: str,
    password_file: Path,
    socket_dir: Path,
    override_file: Path,
    log_file: Path,
    dn_count: int,
    base_env: Mapping[str, str],
    s3: S3Access | None,
    admin_user: str,
    log_level: str = "WARNING",
) -> tuple[process.ProcessRecord, str, list[str]]:
    """Start `hsds` (service node + `dn_count` data nodes); returns (record, endpoint, data node URLs)."""
    check_installed()
    (root_dir / bucket).mkdir(parents=True, exist_ok=True)
    write_override(override_file, log_level=log_level, admin_user=admin_user)
    argv = (
        sys.executable,
        "-m",
        "workbench.local.hsds_launch",  # `hsds` with a start-up allowance for a busy machine
        "--root_dir",
        str(root_dir),
        "--bucket_name",
        bucket,
        "--password_file",
        str(password_file),
        "--socket_dir",
        str(socket_dir),
        "--count",
        str(dn_count),
        "--logfile",
        str(log_file),
        "--loglevel",
        log_level,
    )
    env = server_env(base_env, bucket=bucket, root_dir=root_dir, override_file=override_file, s3=s3)
    # The launcher's own stdout (a few lines) goes next to the node log.
    record = process.spawn(NAME, argv, env=env, cwd=override_file.parent, log_file=log_file.with_suffix(".out"))
    endpoint = socket_url(socket_dir, "sn_1.sock")
    dn_urls = [socket_url(socket_dir, f"dn_{i + 1}.sock") for i in range(dn_count)]
    return record, endpoint, dn_urls


def _get_json(session: Any, url: str) -> dict[str, Any] | None:
    try:
        rsp = session.get(url, timeout=2.0)
    except Exception:
        return None
    if rsp.status_code != 200:
        return None
    try:
        body = rsp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def wait_ready(endpoint: str, dn_urls: list[str], record: process.ProcessRecord, *, timeout: float = 60.0) -> None:
    """Poll the service node's /about and each data node's /info until all say READY."""
    deadline = time.monotonic() + timeout
    session = requests_unixsocket.Session()
    states: dict[str, str] = {}
    try:
        while time.monotonic() < deadline:
            if not process.is_running(record):
                raise StartupFailed(f"hsds exited during start-up{_explained(record)}")
            about = _get_json(session, f"{endpoint}/about")
            states["sn"] = str(about.get("state")) if about else "no answer"
            for i, url in enumerate(dn_urls):
                info = _get_json(session, f"{url}/info")
                node = info.get("node", {}) if info else {}
                states[f"dn{i + 1}"] = str(node.get("state")) if node else "no answer"
            if all(state == "READY" for state in states.values()):
                log.info("hsds ready at %s (%d data nodes)", endpoint, len(dn_urls))
                return
            time.sleep(0.1)
    finally:
        session.close()
    raise StartupFailed(
        f"hsds did not become READY within {timeout:.0f} s (node states: {states}; a busy machine may "
        f"need a longer `up --timeout`){_explained(record)}"
    )


# A log line that says why a start-up failed (hsds's own messages, e.g. "failed to initialize after
# 10.0 seconds", a traceback's last line, a missing file).
_TELLING = ("error", "exception", "traceback", "failed", "not found", "refused", "denied", "killed")


def telling_log_line(*paths: Path, max_lines: int = 400) -> str:
    """The last line of the logs' tails (in the order given) that explains a failure, else ""."""
    found = ""
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()[-max_lines:]
        except OSError:
            continue
        for line in lines:
            if any(word in line.lower() for word in _TELLING):
                found = f"{path.name}: {line.strip()}"
    return found


def _explained(record: process.ProcessRecord) -> str:
    """'; <log line that explains it>; see <logs>' for a failure message."""
    out = Path(record.log_file)  # the launcher's output; the nodes' log is `.log` next to it
    line = telling_log_line(out.with_suffix(".log"), out)
    return (f"; {line}" if line else "") + f"; see {out} and {out.with_suffix('.log')}"


def about(endpoint: str) -> dict[str, Any] | None:
    """The service node's /about document, or None when it does not answer."""
    with requests_unixsocket.Session() as session:
        return _get_json(session, f"{endpoint}/about")
