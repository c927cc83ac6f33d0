"""HSDS server settings: generated credentials, a clean server environment, socket URLs (no server needed)."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hsds.hsds_app import HsdsApp

from workbench.local import hsds_server, moto_server, process
from workbench.local.errors import MissingDependency, StartupFailed


def test_generated_credentials_are_random_and_not_admin() -> None:
    first = hsds_server.Credentials.generate("datacarousel")
    second = hsds_server.Credentials.generate("datacarousel")
    assert first.password != second.password
    assert first.admin_password != second.admin_password
    assert first.password != first.admin_password
    for password in (first.password, first.admin_password):
        assert len(password) >= 24
        assert password not in ("admin", "datacarousel", "password")
    # The three accounts' names, as on AWS (datacarousel.hsds_accounts): never the same user twice.
    assert (first.admin_user, first.username, first.reader_username) == (
        "datacarousel-admin",
        "datacarousel",
        "datacarousel-reader",
    )


def test_password_file_is_private(tmp_path: Path) -> None:
    credentials = hsds_server.Credentials.generate("worker")
    path = tmp_path / "hsds" / "passwd"
    credentials.write_password_file(path)
    credentials.write_password_file(path)  # rewriting keeps it private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines() == [
        f"worker-admin:{credentials.admin_password}",
        f"worker:{credentials.password}",
        f"worker-reader:{credentials.reader_password}",
    ]
    assert len({credentials.password, credentials.admin_password, credentials.reader_password}) == 3
    assert credentials.reader_password not in repr(credentials) and credentials.password not in repr(credentials)


def test_server_env_drops_stray_hsds_settings(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "LOG_LEVEL": "DEBUG",
        "ALLOW_NOAUTH": "1",
        "PASSWORD_FILE": "/elsewhere",
        "ROOT_DIR": "/elsewhere",
        "HS_PASSWORD": "leak",
        "CONFIG_DIR": "/elsewhere",
    }
    s3 = hsds_server.S3Access("http://127.0.0.1:5000", "key", "secret", "us-west-2")
    env = hsds_server.server_env(base, bucket="b", root_dir=tmp_path, override_file=tmp_path / "override.yml", s3=s3)
    for name in ("LOG_LEVEL", "ALLOW_NOAUTH", "PASSWORD_FILE", "HS_PASSWORD", "CONFIG_DIR"):
        assert name not in env
    assert env["PATH"] == "/usr/bin"
    assert env["BUCKET_NAME"] == "b"
    assert env["ROOT_DIR"] == str(tmp_path)
    assert env["AWS_S3_GATEWAY"] == "http://127.0.0.1:5000"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"]) == ("key", "secret", "us-west-2")


def test_override_turns_unauthenticated_access_off(tmp_path: Path) -> None:
    """HSDS itself (its config loader, in a fresh interpreter) reads allow_noauth as False, and the
    task limit above which its service node answers 503 as 1000 (not 100)."""
    override = tmp_path / "override.yml"
    hsds_server.write_override(override, log_level="ERROR", admin_user="worker-admin")
    env = {**os.environ, "CONFIG_OVERRIDE_PATH": str(override)}
    env.pop("ALLOW_NOAUTH", None)
    code = (
        "import hsds.config as c; "
        "print(c.get('allow_noauth'), c.get('log_level'), c.get('s3_age_time'), c.get('max_task_count'), "
        "c.get('admin_user'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "ERROR", "0", "1000", "worker-admin"]


def test_socket_url_matches_hsds(tmp_path: Path) -> None:
    socket_dir = tmp_path / "s"
    app = HsdsApp(socket_dir=str(socket_dir), dn_count=1)
    assert hsds_server.socket_url(socket_dir, "sn_1.sock") == app.endpoint


def test_socket_dir_is_short_and_private() -> None:
    path = hsds_server.make_socket_dir()
    try:
        assert len(str(path)) < hsds_server.MAX_SOCKET_DIR_LEN
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    finally:
        path.rmdir()


def test_missing_hsds_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hsds" else real(name, *a))
    with pytest.raises(MissingDependency, match=r"pip install hsds==1\.0\.2"):
        hsds_server.check_installed()


def test_missing_moto_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("moto") else real(name, *a)
    )
    with pytest.raises(MissingDependency, match=r"pip install 'moto\[server\]==5\.2\.5'"):
        moto_server.check_installed()


def test_installed_dependencies_pass() -> None:
    hsds_server.check_installed()
    moto_server.check_installed()


def test_a_failed_start_names_the_log_line_that_explains_it(tmp_path: Path) -> None:
    out, node_log = tmp_path / "hsds.out", tmp_path / "hsds.log"
    node_log.write_text("INFO starting\nERROR failed to initialize after 10.0 seconds\nINFO stopping\n")
    out.write_text("set logging to:: WARNING\ngot exception: failed to initialize after 10.0 seconds\nbye\n")
    line = hsds_server.telling_log_line(node_log, out)
    assert line == "hsds.out: got exception: failed to initialize after 10.0 seconds"
    record = process.ProcessRecord(name="hsds", pid=2**22 + 1, create_time=0.0, argv=(), log_file=str(out))
    with pytest.raises(StartupFailed, match=r"exited during start-up; hsds.out: got exception: failed to init"):
        hsds_server.wait_ready("http+unix://%2Fnowhere%2Fsn_1.sock", [], record, timeout=5.0)
    assert hsds_server.telling_log_line(tmp_path / "missing.log") == ""
