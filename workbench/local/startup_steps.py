"""Starting the embedded environment's servers step by step, and stopping them again.

`Startup` remembers what a start has started so far (process records, the socket directory), so
that a failed step stops it all; the steps start moto and HSDS, wait for HSDS, create the HSDS
folder of the domains. `stop_record` stops one server by its record (`down` uses it too).
`workbench/local/environment.py` runs the steps in order (`up`).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from datacarousel import contract, hsds, hsds_accounts
from workbench.local import hsds_server, moto_server, process
from workbench.local.state_dir import Paths, write_state

log = logging.getLogger(__name__)


@dataclass
class Startup:
    """What a start has started so far (process records, the socket directory): stopped if a later step fails."""

    paths: Paths
    records: dict[str, process.ProcessRecord] = field(default_factory=dict)
    socket_dir: Path | None = None

    def record(self, name: str, record: process.ProcessRecord) -> None:
        """Remember a started server, here and in its PID file (`down` stops it by that)."""
        self.records[name] = record
        process.write_record(self.paths.pid_file(name), record)

    def stop_all(self) -> None:
        log.error("start-up failed: stopping what was started")
        for name in (hsds_server.NAME, moto_server.NAME):
            if name in self.records:
                stop_record(name, self.records[name])
            self.paths.pid_file(name).unlink(missing_ok=True)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        self.paths.state_file.unlink(missing_ok=True)


def start_moto(startup: Startup, port: int | None, env: Mapping[str, str]) -> str:
    """moto's server on loopback; returns its endpoint (it may not answer yet)."""
    paths = startup.paths
    record, moto_endpoint = moto_server.start(
        port=port, env=dict(env), cwd=paths.root, log_file=paths.logs / "moto.log"
    )
    startup.record(moto_server.NAME, record)
    write_state(paths, {"endpoints": {moto_server.NAME: moto_endpoint}})
    return moto_endpoint


def start_hsds(
    startup: Startup,
    aws_env: Mapping[str, str],
    hsds_user: str,
    *,
    bucket: str,
    dn_count: int,
    base_env: Mapping[str, str],
    log_level: str,
) -> tuple[hsds_server.Credentials, str, list[str]]:
    """The HSDS server on Unix sockets, storing in `<state>/hsds/root/<bucket>`; returns its generated
    credentials, its endpoint and its data nodes' addresses (it may not be ready yet)."""
    paths = startup.paths
    moto_endpoint = aws_env[contract.Env.AWS_ENDPOINT_URL]
    # HSDS: fresh storage at every `up` (moto's objects, which linked domains point at, are new too).
    shutil.rmtree(paths.hsds_root, ignore_errors=True)
    (paths.hsds_root / bucket).mkdir(parents=True)
    credentials = hsds_server.Credentials.generate(hsds_user)
    credentials.write_password_file(paths.password_file)
    socket_dir = startup.socket_dir = hsds_server.make_socket_dir()
    s3 = hsds_server.S3Access(
        gateway=moto_endpoint,
        access_key_id=aws_env[contract.Env.AWS_ACCESS_KEY_ID],
        secret_access_key=aws_env[contract.Env.AWS_SECRET_ACCESS_KEY],
        region=aws_env[contract.Env.AWS_REGION],
    )
    record, hs_endpoint, dn_urls = hsds_server.start(
        root_dir=paths.hsds_root,
        bucket=bucket,
        password_file=paths.password_file,
        socket_dir=socket_dir,
        override_file=paths.override_file,
        log_file=paths.logs / "hsds.log",
        dn_count=dn_count,
        base_env=dict(base_env),
        s3=s3,
        admin_user=credentials.admin_user,
        log_level=log_level,
    )
    startup.record(hsds_server.NAME, record)
    write_state(
        paths,
        {
            "endpoints": {moto_server.NAME: moto_endpoint, hsds_server.NAME: hs_endpoint},
            "socket_dir": str(socket_dir),
        },
    )
    return credentials, hs_endpoint, dn_urls


def wait_hsds_ready(startup: Startup, hs_endpoint: str, dn_urls: list[str], *, timeout: float) -> None:
    record = startup.records[hsds_server.NAME]
    hsds_server.wait_ready(hs_endpoint, dn_urls, record, timeout=timeout)
    # Remember the nodes, so `down` can stop them even if the parent has died meanwhile.
    startup.record(hsds_server.NAME, record.with_children(process.live_children(record)))


def ensure_hsds_folder(folder: str, hs_endpoint: str, credentials: hsds_server.Credentials, *, timeout: float) -> None:
    """The HSDS folder of the domains and the writer's staging folder, made by the admin with one ACL per
    account (`datacarousel.hsds_accounts.prepare_folders`, what the stack's HSDS task runs at its start)."""
    admin = hsds.HsdsAccess(hs_endpoint, credentials.admin_user, credentials.admin_password)
    hsds_accounts.prepare_folders(folder, admin, credentials.username, timeout=timeout)


def moto_credentials(region: str) -> dict[str, str]:
    """Fresh credentials for this moto (it accepts any key): no real account's key is ever used."""
    return {
        contract.Env.AWS_ACCESS_KEY_ID: "dclocal" + secrets.token_hex(4),  # moto accepts any key
        contract.Env.AWS_SECRET_ACCESS_KEY: secrets.token_urlsafe(24),
        contract.Env.AWS_REGION: region,
    }


def stop_record(name: str, record: process.ProcessRecord) -> bool:
    if name == hsds_server.NAME:
        # SIGINT lets the launcher stop its nodes; SIGTERM would orphan them.
        return process.stop(record, signal.SIGINT, timeout=20.0)
    return process.stop(record, signal.SIGTERM, timeout=10.0)
