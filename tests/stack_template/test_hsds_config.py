"""HSDS on AWS runs with the settings the code names once (`HSDS_SERVER_CONFIG`), and no password on a command line.

The template's `config` container writes the override file and the password file; the nodes read
them. These tests run that container's own program here and let hsds's config loader read what it
wrote, so a setting hsds would not honour (e.g. a boolean in an environment variable) fails them.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import stack_template
from datacarousel import hsds_accounts
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.hsds_accounts import HsdsRole, role_of
from stack_template.hsds import (
    HSDS_CONFIG_CONTAINER,
    HSDS_CONFIG_DIR,
    HSDS_FOLDERS_CONTAINER,
    HSDS_OVERRIDE_FILE,
    HSDS_PASSWORD_FILE,
    HSDS_SERVER_CONFIG,
    account_variables,
)
from stack_template.iam import EXECUTION_ROLE_TITLES
from stack_template.storage import HSDS_SECRET_TITLES
from workbench.local import hsds_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(stack_template.template_json())
    return loaded


@pytest.fixture(scope="module")
def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    task = template["Resources"]["HsdsTaskDefinition"]["Properties"]
    assert task["Volumes"] == [{"Name": "hsds-config"}]  # task storage, not a host path
    return {c["Name"]: c for c in task["ContainerDefinitions"]}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def _nodes(containers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for name, c in containers.items() if name not in (HSDS_CONFIG_CONTAINER, HSDS_FOLDERS_CONTAINER)]


def test_the_settings_refuse_anonymous_access() -> None:
    assert HSDS_SERVER_CONFIG["allow_noauth"] is False
    assert HSDS_SERVER_CONFIG["default_public"] is False


def test_every_node_reads_the_override_the_config_container_wrote(containers: dict[str, dict[str, Any]]) -> None:
    nodes = _nodes(containers)
    assert {c["Name"] for c in nodes} == {"sn", "dn1", "dn2", "dn3", "dn4"}
    for node in nodes:
        assert _env(node)["CONFIG_OVERRIDE_PATH"] == HSDS_OVERRIDE_FILE, node["Name"]
        assert node["MountPoints"] == [
            {"ContainerPath": HSDS_CONFIG_DIR, "ReadOnly": True, "SourceVolume": "hsds-config"}
        ]
        assert node["DependsOn"] == [{"Condition": "SUCCESS", "ContainerName": HSDS_CONFIG_CONTAINER}]
    writer = containers[HSDS_CONFIG_CONTAINER]
    assert writer["Essential"] is False and writer["ReadonlyRootFilesystem"] is True
    assert writer["MountPoints"][0]["ReadOnly"] is False
    written = json.loads(_env(writer)["HSDS_CONFIG_OVERRIDE"])
    assert {k: written[k] for k in HSDS_SERVER_CONFIG} == dict(HSDS_SERVER_CONFIG)
    assert written["password_file"] == HSDS_PASSWORD_FILE


def test_hsds_reads_the_written_config_as_the_code_says(containers: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Run the config container's program, then hsds's own config loader in a fresh interpreter."""
    writer = containers[HSDS_CONFIG_CONTAINER]
    env = {k: v for k, v in os.environ.items() if k.upper() not in {"ALLOW_NOAUTH", "DEFAULT_PUBLIC", "PASSWORD_FILE"}}
    env.update(_env(writer))
    env["HSDS_CONFIG_DIR"] = str(tmp_path)
    for role in HsdsRole:
        user, password = account_variables(role)
        env.update({user: hsds_accounts.username(role, "worker"), password: f"pw-of-{role.value}"})
    assert writer["Command"][:2] == ["python", "-c"]
    subprocess.run([sys.executable, *writer["Command"][1:]], env=env, check=True)
    passwd = tmp_path / "passwd.txt"
    assert passwd.read_text() == "worker-admin:pw-of-admin\nworker:pw-of-writer\nworker-reader:pw-of-reader\n"
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    env["CONFIG_OVERRIDE_PATH"] = str(tmp_path / "override.yml")
    code = "import hsds.config as c; print(c.get('allow_noauth'), c.get('default_public'), c.get('max_task_count'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    expected = [str(HSDS_SERVER_CONFIG[k]) for k in ("allow_noauth", "default_public", "max_task_count")]
    assert out.stdout.split() == expected == ["False", "False", "1000"]


def test_an_environment_variable_would_not_turn_anonymous_access_off(tmp_path: Path) -> None:
    """Why the template writes a file: hsds turns ALLOW_NOAUTH=false into True (`bool("false")`)."""
    env = {**os.environ, "ALLOW_NOAUTH": "false"}
    env.pop("CONFIG_OVERRIDE_PATH", None)
    out = subprocess.run(
        [sys.executable, "-c", "import hsds.config as c; print(c.get('allow_noauth'))"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "True"


def test_no_container_has_a_credential_on_its_command_line(containers: dict[str, dict[str, Any]]) -> None:
    for container in containers.values():
        command = " ".join(container["Command"])
        assert "$" not in command, container["Name"]  # no shell expansion of an injected variable
        assert container["Command"][0] not in ("sh", "bash", "/bin/sh"), container["Name"]
        assert not [a for a in container["Command"] if a.startswith(("--hs_", "--password", "--admin"))]
    # Every account's secret reaches the config container (the password file), the admin's the folders
    # container too; the nodes read the file the config container wrote.
    config = containers[HSDS_CONFIG_CONTAINER]
    assert {s["Name"] for s in config["Secrets"]} == {name for role in HsdsRole for name in account_variables(role)}
    assert _secret_titles(config) == set(HSDS_SECRET_TITLES.values())
    folders = containers[HSDS_FOLDERS_CONTAINER]
    assert {s["Name"] for s in folders["Secrets"]} == {Env.HS_USERNAME, Env.HS_PASSWORD}
    assert _secret_titles(folders) == {HSDS_SECRET_TITLES[HsdsRole.ADMIN]}
    assert all("Secrets" not in node for node in _nodes(containers))


def _secret_titles(container: dict[str, Any]) -> set[str]:
    """The template resources (secrets) a container's or job's secret variables are read from."""
    titles = set()
    for secret in container.get("Secrets", []):
        found = re.fullmatch(r"\$\{(\w+)\}:(username|password)::", secret["ValueFrom"]["Fn::Sub"])
        assert found, secret
        titles.add(found.group(1))
    return titles


def test_the_admin_is_the_folders_container_s_and_hsds_s_alone(containers: dict[str, dict[str, Any]]) -> None:
    """The service node's ADMIN_USER is the admin secret's user; the folders container runs the kernel's
    folder set-up as that user once the service node is healthy, over the task's localhost."""
    admin_name = hsds_accounts.username(HsdsRole.ADMIN, "${HsdsUsername}")
    assert _env(containers["sn"])["ADMIN_USER"] == {"Fn::Sub": admin_name}
    folders = containers[HSDS_FOLDERS_CONTAINER]
    assert folders["Command"] == ["python", "-m", "datacarousel.hsds_accounts"]
    assert folders["DependsOn"] == [{"Condition": "HEALTHY", "ContainerName": "sn"}]
    assert folders["Essential"] is False and folders["ReadonlyRootFilesystem"] is True
    env = _env(folders)
    assert env[Env.HS_ENDPOINT].startswith("http://127.0.0.1:")
    assert env[hsds_accounts.WRITER_VARIABLE] == {"Fn::Sub": "${HsdsUsername}"}


def test_the_embedded_server_runs_with_the_same_settings(tmp_path: Path) -> None:
    override = tmp_path / "override.yml"
    hsds_server.write_override(override, log_level="ERROR", admin_user="w-admin")
    keys = sorted(HSDS_SERVER_CONFIG)
    code = f"import hsds.config as c, json; print(json.dumps({{k: c.get(k) for k in {keys!r}}}))"
    env = {k: v for k, v in os.environ.items() if k.upper() not in {k.upper() for k in HSDS_SERVER_CONFIG}}
    env["CONFIG_OVERRIDE_PATH"] = str(override)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == dict(HSDS_SERVER_CONFIG)


def test_each_job_receives_its_own_hsds_account_s_secret_and_its_execution_role_reads_only_that() -> None:
    """The loader never talks to HSDS (its code names neither HSDS nor its variables): no secret. The
    pipeline's jobs get the writer's (the carousel deletes the domains of expired copies), every analysis
    the reader's; no job gets the admin's. Each job's execution role may read its own secret and no other."""
    template = json.loads(stack_template.template_json())
    resources = template["Resources"]
    definitions = {
        d["Properties"]["JobDefinitionName"]: d["Properties"]["ContainerProperties"]
        for d in resources.values()
        if d["Type"] == "AWS::Batch::JobDefinition"
    }
    assert role_of(JobDefinitionName.LOADER.value) is None
    assert role_of(JobDefinitionName.CAROUSEL.value) == HsdsRole.WRITER
    assert {role_of(name) for name in definitions} == {None, HsdsRole.WRITER, HsdsRole.READER}
    for name, container in definitions.items():
        role = role_of(name)
        own = set() if role is None else {HSDS_SECRET_TITLES[role]}
        assert _secret_titles(container) == own, name
        if role is not None:
            assert {s["Name"] for s in container["Secrets"]} == {Env.HS_USERNAME, Env.HS_PASSWORD}, name
        execution = container["ExecutionRoleArn"]["Fn::GetAtt"][0]
        assert execution == EXECUTION_ROLE_TITLES[role], name
        assert _readable_secrets(resources[execution]) == own, name
    assert "Secrets" not in definitions[JobDefinitionName.LOADER.value]
    loader_code = " ".join(path.read_text() for path in (ROOT / "loader").rglob("*.py"))
    assert not re.search(r"hsds|HS_USERNAME|HS_PASSWORD|h5pyd", loader_code, re.IGNORECASE)
    carousel_code = (ROOT / "carousel" / "step_part.py").read_text()
    assert "hsds.delete_domain" in carousel_code  # why the carousel is a writer
    # The HSDS task's execution role reads every account's secret (its password file), and only it does.
    task = resources["HsdsTaskDefinition"]["Properties"]
    assert _readable_secrets(resources[task["ExecutionRoleArn"]["Fn::GetAtt"][0]]) == set(HSDS_SECRET_TITLES.values())
    readers_of_admin = [t for t, r in resources.items() if HSDS_SECRET_TITLES[HsdsRole.ADMIN] in _readable_secrets(r)]
    assert readers_of_admin == [task["ExecutionRoleArn"]["Fn::GetAtt"][0]]


def _readable_secrets(resource: dict[str, Any]) -> set[str]:
    """The secrets (template resources) an IAM role may read with GetSecretValue."""
    if resource["Type"] != "AWS::IAM::Role":
        return set()
    readable = set()
    for policy in resource["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "secretsmanager:GetSecretValue" in actions or "secretsmanager:*" in actions:
                assert statement["Effect"] == "Allow"
                readable |= {r["Ref"] for r in statement["Resource"]}
    return readable
