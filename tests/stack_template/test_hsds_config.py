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
from datacarousel.contract import Env, JobDefinitionName
from stack_template.batch import HSDS_WRITER, hsds_identity
from stack_template.hsds import (
    HSDS_CONFIG_CONTAINER,
    HSDS_CONFIG_DIR,
    HSDS_OVERRIDE_FILE,
    HSDS_PASSWORD_FILE,
    HSDS_SERVER_CONFIG,
)
from workbench.local import hsds_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def containers() -> dict[str, dict[str, Any]]:
    template = json.loads(stack_template.template_json())
    task = template["Resources"]["HsdsTaskDefinition"]["Properties"]
    assert task["Volumes"] == [{"Name": "hsds-config"}]  # task storage, not a host path
    return {c["Name"]: c for c in task["ContainerDefinitions"]}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in container.get("Environment", [])}


def _nodes(containers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for name, c in containers.items() if name != HSDS_CONFIG_CONTAINER]


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
    env.update({"HSDS_CONFIG_DIR": str(tmp_path), Env.HS_USERNAME: "worker", Env.HS_PASSWORD: "s3cret-pw"})
    assert writer["Command"][:2] == ["python", "-c"]
    subprocess.run([sys.executable, *writer["Command"][1:]], env=env, check=True)
    passwd = tmp_path / "passwd.txt"
    assert passwd.read_text() == "worker:s3cret-pw\n"
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
    # The secret reaches the config container only; the nodes read the file it wrote.
    assert {s["Name"] for s in containers[HSDS_CONFIG_CONTAINER]["Secrets"]} == {Env.HS_USERNAME, Env.HS_PASSWORD}
    assert all("Secrets" not in node for node in _nodes(containers))


def test_the_embedded_server_runs_with_the_same_settings(tmp_path: Path) -> None:
    override = tmp_path / "override.yml"
    hsds_server.write_override(override, log_level="ERROR")
    keys = sorted(HSDS_SERVER_CONFIG)
    code = f"import hsds.config as c, json; print(json.dumps({{k: c.get(k) for k in {keys!r}}}))"
    env = {k: v for k, v in os.environ.items() if k.upper() not in {k.upper() for k in HSDS_SERVER_CONFIG}}
    env["CONFIG_OVERRIDE_PATH"] = str(override)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == dict(HSDS_SERVER_CONFIG)


def test_only_the_jobs_that_use_hsds_receive_its_secret() -> None:
    """The loader never talks to HSDS (its code names neither HSDS nor its variables) and gets no secret;
    the carousel deletes the domains of expired copies, so it keeps the writer's."""
    template = json.loads(stack_template.template_json())
    definitions = {
        d["Properties"]["JobDefinitionName"]: d["Properties"]["ContainerProperties"]
        for d in template["Resources"].values()
        if d["Type"] == "AWS::Batch::JobDefinition"
    }
    assert hsds_identity(JobDefinitionName.LOADER.value) is None
    assert hsds_identity(JobDefinitionName.CAROUSEL.value) == HSDS_WRITER
    for name, container in definitions.items():
        secrets = {s["Name"] for s in container.get("Secrets", [])}
        assert secrets == (set() if hsds_identity(name) is None else {Env.HS_USERNAME, Env.HS_PASSWORD}), name
    assert "Secrets" not in definitions[JobDefinitionName.LOADER.value]
    loader_code = " ".join(path.read_text() for path in (ROOT / "loader").rglob("*.py"))
    assert not re.search(r"hsds|HS_USERNAME|HS_PASSWORD|h5pyd", loader_code, re.IGNORECASE)
    carousel_code = (ROOT / "carousel" / "step_part.py").read_text()
    assert "hsds.delete_domain" in carousel_code  # why the carousel is a writer
