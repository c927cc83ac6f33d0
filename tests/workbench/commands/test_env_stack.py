"""`datacarousel env --stack NAME [--region R]`: a deployed stack's variables for a researcher's shell.

Against the stack the embedded environment created in moto, it prints what the env file holds for
every variable derived from the stack (and only the expected differences); the error cases are one
line on stderr with a hint, exit 2, never a traceback (no credentials, no region, unknown stack,
access denied, expired credentials)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import stack_template
from datacarousel import contract
from datacarousel.contract import Env
from datacarousel.errors import ConfigError
from tests.workbench.commands.commands_world import cli, one_line_error
from workbench import stack_outputs

# In the env file but deliberately not printed by `env --stack`: the embedded environment's own
# settings (endpoint, dummy credentials, HSDS client settings, local launcher and its state,
# the carousel's local tuning). Researchers use their own credentials and never talk to HSDS.
LOCAL_ONLY = {
    Env.AWS_ENDPOINT_URL,
    Env.AWS_ACCESS_KEY_ID,
    Env.AWS_SECRET_ACCESS_KEY,
    Env.HS_ENDPOINT,
    Env.HS_USERNAME,
    Env.HS_PASSWORD,
    Env.HSDS_FOLDER,
    Env.LAUNCHER,
    Env.LOCAL_STATE_DIR,
    Env.PROBE_AFTER_S,
    Env.INDEX_RETRY_S,
}
# Printed by `env --stack` but not in the env file: the stack's ArchivePrefix parameter (unset = "").
STACK_ONLY = {Env.ARCHIVE_PREFIX}
REGION = "us-west-2"


def _exports(stdout: str) -> dict[str, str]:
    """The `export K=V` lines, read as a shell would."""
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        word, assignment = shlex.split(line)
        assert word == "export", line
        key, _, value = assignment.partition("=")
        values[key] = value
    return values


def _no_aws_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials or region anywhere boto3 looks: no AWS_* variable, empty config files, no IMDS."""
    import os  # noqa: PLC0415 - only to list the variables

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


# --- against the stack the embedded environment created in moto ------------------------


@pytest.fixture()
def moto_shell(local_env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A researcher's shell that reaches moto the way boto3 reaches AWS: endpoint, keys, region only."""
    _no_aws_settings(monkeypatch, tmp_path)
    for name in (Env.AWS_ENDPOINT_URL, Env.AWS_ACCESS_KEY_ID, Env.AWS_SECRET_ACCESS_KEY, Env.AWS_REGION):
        monkeypatch.setenv(name, local_env.env[name])
    return dict(local_env.env)


def test_env_stack_prints_what_the_env_file_holds_for_the_stack(moto_shell: dict[str, str]) -> None:
    stack = moto_shell[Env.STACK_NAME]
    assert stack == contract.DEFAULT_STACK_NAME
    out = cli("env", "--stack", stack)
    assert out.exit_code == 0, out.output
    # Every contract output is there: no warning; only the note that the endpoint is not AWS's.
    assert out.stderr.strip() == (
        f"note: reading the stack at AWS_ENDPOINT_URL={moto_shell[Env.AWS_ENDPOINT_URL]}; unset it to reach AWS"
    )
    printed = _exports(out.stdout)

    # Everything derived from the stack: its outputs' DC_* variables, its name, its region.
    shared = {r.env for r in contract.SHARED_RESOURCES} | {Env.STACK_NAME, Env.AWS_REGION}
    assert shared <= set(printed)
    assert {name: printed[name] for name in shared} == {name: moto_shell[name] for name in shared}
    # The expected differences, and nothing else.
    assert set(moto_shell) - set(printed) == LOCAL_ONLY
    assert set(printed) - set(moto_shell) == STACK_ONLY
    assert printed[Env.ARCHIVE_PREFIX] == ""  # the template's default ArchivePrefix, as the unset variable means
    # Never a credential.
    assert not {Env.AWS_ACCESS_KEY_ID, Env.AWS_SECRET_ACCESS_KEY, "AWS_SESSION_TOKEN", Env.HS_PASSWORD} & set(printed)
    # --region names the region it was read in.
    again = cli("env", "--stack", stack, "--region", moto_shell[Env.AWS_REGION])
    assert again.exit_code == 0 and _exports(again.stdout) == printed


def test_env_of_an_unknown_stack_in_moto_is_one_line(moto_shell: dict[str, str]) -> None:
    out = cli("env", "--stack", "no-such-stack")
    assert out.exit_code == 2, out.output
    note, line = out.stderr.strip().splitlines()  # the endpoint note, then the one error line
    assert note.startswith("note: reading the stack at AWS_ENDPOINT_URL=") and line.startswith("error: ")
    assert "Traceback" not in out.output
    assert f"no stack 'no-such-stack' in region {moto_shell[Env.AWS_REGION]}" in line
    assert "--region" in line  # the hint
    assert out.stdout == ""


# --- errors without AWS ---------------------------------------------------------------


def test_no_credentials_is_one_line_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_aws_settings(monkeypatch, tmp_path)
    out = cli("env", "--stack", "datacarousel", "--region", REGION)
    assert out.exit_code == 2, out.output
    line = one_line_error(out)
    assert "no AWS credentials found" in line and "aws configure" in line
    assert out.stdout == ""


def test_no_region_is_one_line_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_aws_settings(monkeypatch, tmp_path)
    monkeypatch.setenv(Env.AWS_ACCESS_KEY_ID, "AKIDEXAMPLE")
    monkeypatch.setenv(Env.AWS_SECRET_ACCESS_KEY, "secret")
    out = cli("env", "--stack", "datacarousel")
    assert out.exit_code == 2, out.output
    assert "no AWS region: pass --region" in one_line_error(out)


def test_an_unknown_profile_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_aws_settings(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    out = cli("env", "--stack", "datacarousel", "--region", REGION)
    assert out.exit_code == 2, out.output
    assert "nobody" in one_line_error(out) and "list-profiles" in one_line_error(out)


def test_region_without_stack_is_refused() -> None:
    out = cli("env", "--region", REGION)
    assert out.exit_code == 2, out.output
    assert "--region goes with --stack" in one_line_error(out)


@pytest.fixture()
def stubbed_cfn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stubber]:
    """The CLI's CloudFormation client answers what the test queues (botocore's Stubber): no network."""
    _no_aws_settings(monkeypatch, tmp_path)
    monkeypatch.setenv(Env.AWS_REGION, REGION)
    session = boto3.session.Session(aws_access_key_id="AKID", aws_secret_access_key="s", region_name=REGION)
    client = session.client("cloudformation")
    monkeypatch.setattr(stack_outputs.aws, "client", lambda *args, **kwargs: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "message", "expected", "exit_code"),
    [
        (
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/r is not authorized to perform: cloudformation:DescribeStacks",
            "not allowed to read stack 'datacarousel' (cloudformation:DescribeStacks): User: arn:aws:iam",
            2,
        ),
        ("ExpiredToken", "The security token included in the request is expired", "aws sso login", 2),
        ("ValidationError", "Stack with id datacarousel does not exist", "no stack 'datacarousel' in region", 2),
        ("Throttling", "Rate exceeded", "cannot read stack 'datacarousel': Throttling: Rate exceeded", 1),
    ],
)
def test_aws_refusals_are_one_line(
    stubbed_cfn: Stubber, code: str, message: str, expected: str, exit_code: int
) -> None:
    stubbed_cfn.add_client_error(
        "describe_stacks", service_error_code=code, service_message=message, http_status_code=400
    )
    out = cli("env", "--stack", "datacarousel")
    assert out.exit_code == exit_code, out.output
    assert expected in one_line_error(out)
    assert out.stdout == ""


def _stack(outputs: dict[str, str], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "StackName": "datacarousel",
        "StackStatus": "UPDATE_COMPLETE",
        "CreationTime": "2024-01-01T00:00:00Z",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
    }


def test_a_stack_missing_some_outputs_warns_and_prints_the_rest(stubbed_cfn: Stubber) -> None:
    first, *rest = contract.SHARED_RESOURCES
    stack = _stack({r.output: f"v-{r.output}" for r in rest}, {stack_outputs.ARCHIVE_PREFIX_PARAMETER: "bf/"})
    stubbed_cfn.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "datacarousel"})
    out = cli("env", "--stack", "datacarousel")
    assert out.exit_code == 0, out.output
    printed = _exports(out.stdout)
    assert first.env not in printed and printed[rest[0].env] == f"v-{rest[0].output}"
    assert printed[Env.ARCHIVE_PREFIX] == "bf/" and printed[Env.AWS_REGION] == REGION
    assert f"lacks the outputs {first.output}" in out.stderr


def test_a_stack_without_any_contract_output_is_refused(stubbed_cfn: Stubber) -> None:
    stubbed_cfn.add_response("describe_stacks", {"Stacks": [_stack({"SomethingElse": "x"})]})
    out = cli("env", "--stack", "datacarousel")
    assert out.exit_code == 2, out.output
    assert "none of Data Carousel's outputs" in one_line_error(out)


# --- the mapping (pure) ---------------------------------------------------------------


def test_researcher_env_is_the_shared_resources_and_the_stack_variables_only() -> None:
    outputs = {r.output: f"v-{r.output}" for r in contract.SHARED_RESOURCES}
    outputs |= {contract.HSDS_ENDPOINT_OUTPUT: "http://hsds", contract.HSDS_READER_SECRET_OUTPUT: "arn:secret"}
    found = stack_outputs.researcher_env(_stack(outputs, {"ArchivePrefix": "p/", "HsdsUsername": "u"}), "eu-west-1")
    assert set(found.env) == {r.env for r in contract.SHARED_RESOURCES} | set(stack_outputs.STACK_VARIABLES)
    assert found.env[Env.STACK_NAME] == "datacarousel" and found.env[Env.AWS_REGION] == "eu-west-1"
    assert found.env[Env.ARCHIVE_PREFIX] == "p/" and found.missing_outputs == ()
    assert all(found.env[r.env] == f"v-{r.output}" for r in contract.SHARED_RESOURCES)


def test_the_archive_prefix_parameter_is_the_templates() -> None:
    assert stack_outputs.ARCHIVE_PREFIX_PARAMETER in stack_template.build_template().parameters


def test_a_stale_endpoint_is_one_line_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_aws_settings(monkeypatch, tmp_path)
    monkeypatch.setenv(Env.AWS_ENDPOINT_URL, "http://127.0.0.1:9")

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("nothing answers at AWS_ENDPOINT_URL=http://127.0.0.1:9")

    monkeypatch.setattr(stack_outputs.aws, "client", down)
    out = cli("env", "--stack", "datacarousel", "--region", REGION)
    assert out.exit_code == 2, out.output
    note, line = out.stderr.strip().splitlines()
    assert note.startswith("note: reading the stack at AWS_ENDPOINT_URL=http://127.0.0.1:9")
    assert line.startswith("error: nothing answers at AWS_ENDPOINT_URL") and "unset AWS_ENDPOINT_URL" in line
    assert "Traceback" not in out.output and out.stdout == ""
