"""The local launcher runs a template's job definitions as Batch would: Ref:: parameters, declared environment."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from carousel.launcher import BatchLauncher, LaunchRequest, batch_launcher_from_env, job_definitions
from datacarousel.errors import ConfigError
from workbench.local.launcher import LocalLauncher, launcher_from_env, local_launcher_from_env

WRITE_ENV = (
    "import json, os, sys; "
    "open(sys.argv[1] + os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX', ''), 'w').write(json.dumps(dict(os.environ)))"
)


def _template(command: list[str], parameters: dict[str, str], environment: list[str]) -> dict[str, Any]:
    return {
        "Resources": {
            "ProbeJobDefinition": {
                "Type": "AWS::Batch::JobDefinition",
                "Properties": {
                    "JobDefinitionName": "probe",
                    "Type": "container",
                    "Parameters": parameters,
                    "ContainerProperties": {
                        "Image": {"Ref": "ProbeImageUri"},
                        "Command": command,
                        "Environment": [{"Name": n, "Value": "x"} for n in environment],
                        "Secrets": [{"Name": "HS_PASSWORD", "ValueFrom": "arn"}],
                    },
                },
            }
        }
    }


@pytest.fixture
def probe_template(tmp_path: Path) -> dict[str, Any]:
    return _template(["python", "-c", WRITE_ENV, "Ref::out"], {"out": str(tmp_path / "default")}, ["DC_FILES_TABLE"])


def test_job_definitions_are_read_from_the_template(probe_template: dict[str, Any]) -> None:
    definition = job_definitions(probe_template)["probe"]
    assert definition.command[-1] == "Ref::out"
    assert set(definition.environment) == {"DC_FILES_TABLE", "HS_PASSWORD"}
    assert definition.image_parameter == "ProbeImageUri"


def test_command_placeholders_take_defaults_then_overrides(probe_template: dict[str, Any]) -> None:
    definition = job_definitions(probe_template)["probe"]
    assert (
        definition.resolve_command({})[-1]
        == probe_template["Resources"]["ProbeJobDefinition"]["Properties"]["Parameters"]["out"]
    )
    assert definition.resolve_command({"out": "/elsewhere"})[-1] == "/elsewhere"
    with pytest.raises(ValueError, match="unknown parameter"):
        definition.resolve_command({"nope": "1"})


def _wait_for(path: Path, timeout: float = 20.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return dict(json.loads(path.read_text()))
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_local_process_sees_only_declared_and_platform_variables(
    probe_template: dict[str, Any], tmp_path: Path
) -> None:
    env = {"PATH": "/usr/bin:/bin", "DC_FILES_TABLE": "Files", "HS_PASSWORD": "s3cret", "DC_JOBS_TABLE": "Jobs"}
    launcher = LocalLauncher(job_definitions(probe_template), env, tmp_path / "state")
    out = tmp_path / "seen"
    [job_id] = launcher.launch(LaunchRequest("probe", {"out": str(out)}))
    seen = _wait_for(out)
    assert seen["DC_FILES_TABLE"] == "Files"
    assert seen["HS_PASSWORD"] == "s3cret"
    assert "DC_JOBS_TABLE" not in seen  # not declared by the job definition
    launcher.wait(timeout=20)
    assert launcher.active("probe") == 0
    record = json.loads((tmp_path / "state" / "jobs" / f"{job_id}.json").read_text())
    assert Path(record["log"]).exists()


def test_array_jobs_get_their_index(probe_template: dict[str, Any], tmp_path: Path) -> None:
    launcher = LocalLauncher(job_definitions(probe_template), {"PATH": "/usr/bin:/bin"}, tmp_path / "state")
    out = tmp_path / "part"
    assert len(launcher.launch(LaunchRequest("probe", {"out": str(out)}, array_size=3))) == 3
    indexes = {_wait_for(Path(f"{out}{i}"))["AWS_BATCH_JOB_ARRAY_INDEX"] for i in range(3)}
    assert indexes == {"0", "1", "2"}
    launcher.wait(timeout=20)


def test_active_counts_running_copies_and_stop_all_ends_them(tmp_path: Path) -> None:
    template = _template(["python", "-c", "import time; time.sleep(60)"], {}, [])
    launcher = LocalLauncher(job_definitions(template), {"PATH": "/usr/bin:/bin"}, tmp_path / "state")
    launcher.launch(LaunchRequest("probe", array_size=2))
    assert launcher.active("probe") == 2
    assert launcher.stop_all() == 2
    assert launcher.active("probe") == 0


def test_unknown_job_definition_is_refused(probe_template: dict[str, Any], tmp_path: Path) -> None:
    launcher = LocalLauncher(job_definitions(probe_template), {}, tmp_path / "state")
    with pytest.raises(ValueError, match="no job definition"):
        launcher.launch(LaunchRequest("missing"))


def test_run_mode_must_be_process_or_container(probe_template: dict[str, Any], tmp_path: Path) -> None:
    env = {"DC_LOCAL_STATE_DIR": str(tmp_path), "DC_LOCAL_RUN_MODE": "vm"}
    with pytest.raises(ConfigError, match="DC_LOCAL_RUN_MODE"):
        local_launcher_from_env(probe_template, env)
    env["DC_LOCAL_RUN_MODE"] = "process"
    assert local_launcher_from_env(probe_template, env).active("probe") == 0


def test_launcher_kind_comes_from_the_environment(probe_template: dict[str, Any], tmp_path: Path) -> None:
    no_batch: Any = None  # the launcher is only chosen here: no Batch call is made
    assert isinstance(launcher_from_env(no_batch, lambda: probe_template, {"DC_BATCH_JOB_QUEUE": "q"}), BatchLauncher)
    local = {"DC_LAUNCHER": "local", "DC_LOCAL_STATE_DIR": str(tmp_path)}
    assert isinstance(launcher_from_env(no_batch, lambda: probe_template, local), LocalLauncher)
    with pytest.raises(ConfigError, match="DC_LAUNCHER"):
        launcher_from_env(no_batch, lambda: probe_template, {"DC_LAUNCHER": "k8s"})


def test_the_production_entry_point_knows_only_batch(tmp_path: Path) -> None:
    """`python -m carousel step` never runs local processes: the embedded environment's step is `datacarousel step`."""
    no_client: Any = None  # never called: only the environment is read
    assert isinstance(batch_launcher_from_env(no_client, {"DC_BATCH_JOB_QUEUE": "q"}), BatchLauncher)
    with pytest.raises(ConfigError, match="datacarousel step"):
        batch_launcher_from_env(no_client, {"DC_LAUNCHER": "local", "DC_LOCAL_STATE_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="DC_BATCH_JOB_QUEUE"):
        batch_launcher_from_env(no_client, {})
