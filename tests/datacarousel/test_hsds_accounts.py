"""A deployment's HSDS accounts (`datacarousel.hsds_accounts`): their names, who runs as which, the folders' ACLs,
and the folder set-up the HSDS task's `folders` container runs as the admin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests_unixsocket

from datacarousel import hsds_accounts, registry
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.hsds_accounts import NONE, READ, READ_WRITE, HsdsRole
from workbench.local.state_dir import Paths

ROOT = Path(__file__).resolve().parents[2]


def test_one_writer_name_names_the_three_accounts() -> None:
    assert [hsds_accounts.username(role, "dc") for role in HsdsRole] == ["dc-admin", "dc", "dc-reader"]


def test_the_pipeline_writes_the_analyses_read_the_loader_is_nobody() -> None:
    assert hsds_accounts.role_of(JobDefinitionName.LOADER.value) is None
    for job in (JobDefinitionName.INDEX_FILE, JobDefinitionName.RECORD_METADATA, JobDefinitionName.CAROUSEL):
        assert hsds_accounts.role_of(job.value) == HsdsRole.WRITER
    for analysis in registry.builtin():
        assert hsds_accounts.role_of(analysis) == HsdsRole.READER
    assert hsds_accounts.role_of("SomeGroupsOwnAnalysis") == HsdsRole.READER  # registered later
    assert HsdsRole.ADMIN not in hsds_accounts.PIPELINE_ROLES.values()  # no job is the admin


def test_folder_acls_grant_the_writer_its_folders_the_reader_reading_and_nobody_else_anything() -> None:
    acls = hsds_accounts.folder_acls("/home/dc/basicfusion/", "dc")
    assert set(acls) == {"/home", "/home/dc", "/home/dc/basicfusion", "/home/dc/.dc-staging"}
    assert all(users["default"] == NONE for users in acls.values())
    assert acls["/home"] == acls["/home/dc"] == {"default": NONE, "dc": READ, "dc-reader": READ}
    assert acls["/home/dc/basicfusion"] == {"default": NONE, "dc": READ_WRITE, "dc-reader": READ}
    assert acls["/home/dc/.dc-staging"] == {"default": NONE, "dc": READ_WRITE}  # domains being built: the writer's
    for users in acls.values():
        assert not any(acl["readACL"] or acl["updateACL"] for acl in users.values())
        assert "dc-admin" not in users  # the admin is HSDS's ADMIN_USER: it needs no ACL


def _prepare(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datacarousel.hsds_accounts"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_folder_set_up_without_its_variables_is_one_line_exit_2() -> None:
    done = _prepare({Env.HS_ENDPOINT: "http://127.0.0.1:9", Env.HS_USERNAME: "a", Env.HS_PASSWORD: "b"})
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert Env.HSDS_FOLDER in line and hsds_accounts.WRITER_VARIABLE in line and "Traceback" not in line


@pytest.mark.integration
def test_the_folder_set_up_is_idempotent_as_the_admin_and_refused_to_anyone_else(local_env: Any) -> None:
    """What the HSDS task's `folders` container runs, against the embedded server (same settings, same
    accounts): as the admin it exits 0 and leaves the ACLs `folder_acls` names; as the writer it is refused,
    in one line, exit 2."""
    env = local_env.env
    users = dict(line.split(":", 1) for line in Paths(local_env.state_dir).password_file.read_text().splitlines())
    admin = hsds_accounts.username(HsdsRole.ADMIN, env[Env.HS_USERNAME])
    base = {
        Env.HS_ENDPOINT: env[Env.HS_ENDPOINT],
        Env.HSDS_FOLDER: env[Env.HSDS_FOLDER],
        hsds_accounts.WRITER_VARIABLE: env[Env.HS_USERNAME],
    }
    for _ in range(2):  # every start of the task runs it again
        done = _prepare({**base, Env.HS_USERNAME: admin, Env.HS_PASSWORD: users[admin]})
        assert done.returncode == 0, done.stderr
    folder = env[Env.HSDS_FOLDER].rstrip("/")
    with requests_unixsocket.Session() as session:
        rsp = session.get(f"{env[Env.HS_ENDPOINT]}/acls", params={"domain": folder}, auth=(admin, users[admin]))
        found = {acl["userName"]: {k: acl[k] for k in hsds_accounts.ACL_KEYS} for acl in rsp.json()["acls"]}
    expected = hsds_accounts.folder_acls(env[Env.HSDS_FOLDER], env[Env.HS_USERNAME])[folder]
    assert {user: found[user] for user in expected} == {user: dict(acl) for user, acl in expected.items()}
    done = _prepare({**base, Env.HS_USERNAME: env[Env.HS_USERNAME], Env.HS_PASSWORD: env[Env.HS_PASSWORD]})
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert "refused" in line and "Traceback" not in line
