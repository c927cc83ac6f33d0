"""The researchers' managed policy (`ResearcherPolicy`) grants exactly what the CLI calls.

The researcher commands (`env --stack`, `submit`, `status`, `files`, `fetch`, `cancel`) run against the
template's stack in moto (in-process); every AWS call they make is recorded and must be granted by the
policy on the resource it touched, and every action the policy grants must have been called.
"""

from __future__ import annotations

import collections
import json
import os
import re
from pathlib import Path
from typing import Any

import boto3
import botocore.client
import pytest
from moto import mock_aws
from typer.testing import CliRunner

import stack_template
from datacarousel import contract
from datacarousel.contract import Env
from datacarousel.naming import BasicFusionName
from workbench.cli import app

pytestmark = pytest.mark.slow  # the stack in moto, then a dozen CLI commands: about 25 s

STACK = contract.DEFAULT_STACK_NAME
REGION = "us-east-1"
# The IAM action of an API call, where the names differ.
IAM_ACTION = {"s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return dict(json.loads(stack_template.template_json()))


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    policy = template["Resources"]["ResearcherPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[str, str]]]:
    """command -> {(IAM action, resource touched)}: table[/index], bucket/key, or "-"."""
    calls: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    current = ["setup"]
    buckets: dict[str, str] = {}  # bucket name -> the template's logical id
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]  # private: not in botocore-stubs

    def record(self: Any, operation: str, params: dict[str, Any]) -> Any:
        action = f"{self.meta.service_model.service_name}:{operation}"
        action = IAM_ACTION.get(action, action)
        if "TableName" in params:
            resource = params["TableName"] + ("/index" if "IndexName" in params else "")
        elif "RequestItems" in params:
            resource = ",".join(sorted(params["RequestItems"]))
        elif "Bucket" in params:
            bucket = buckets.get(params["Bucket"], params["Bucket"])
            resource = f"{bucket}/{params.get('Key', params.get('Prefix', ''))}"
        else:
            resource = str(params.get("StackName", "-"))
        calls[current[0]].add((action, resource))
        return original(self, operation, params)

    out = tmp_path_factory.mktemp("researcher")
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name in [n for n in os.environ if n.startswith(("DC_", "AWS_"))]:
            mp.delenv(name)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv(Env.AWS_REGION, REGION)
        cfn = boto3.client("cloudformation")
        params = stack_template.local_parameters(boto3.client("ec2"))
        cfn.create_stack(
            StackName=STACK,
            TemplateBody=stack_template.template_json(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
        outputs = {
            o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
        }
        for key, env in contract.OUTPUT_TO_ENV.items():
            mp.setenv(env, outputs[key])
        mp.setenv(Env.STACK_NAME, STACK)
        buckets.update({outputs[f"{b}Name"]: b for b in ("ArchiveBucket", "ResultsBucket", "HsdsBucket")})
        s3 = boto3.client("s3")
        for orbit in (6625, 6626):
            key = f"2001/{BasicFusionName.for_orbit(orbit).file_name}"
            s3.put_object(Bucket=outputs["ArchiveBucketName"], Key=key, Body=b"x" * 100, StorageClass="DEEP_ARCHIVE")
        mp.setattr(botocore.client.BaseClient, "_make_api_call", record)
        runner = CliRunner()

        def run(name: str, *args: str, code: int = 0) -> str:
            current[0] = name
            result = runner.invoke(app, list(args))
            assert result.exit_code == code, (name, result.output, result.exception)
            current[0] = "setup"
            return str(result.output)

        run("setup", "inventory")  # the operator's part
        run("env", "env", "--stack", STACK, "--region", REGION)
        submitted = run("submit", "submit", "--owner", "alice", "--year-month", "2001.03", "--json")
        job = re.search(r'"job_id": "([^"]+)"', submitted)
        assert job, submitted
        job_id = job.group(1)
        run("submit", "submit", "--owner", "alice", "--definition", "NoSuchAnalysis", "--year-month", "2001.03", code=2)
        run("status", "status")
        run("status", "status", job_id, "--json")
        run("status", "status", "--all", "--json")
        run("files", "files", "--year-month", "2001.03")
        run("files", "files", "--path", "178")
        s3.put_object(Bucket=outputs["ResultsBucketName"], Key=f"results/{job_id}/result.json", Body=b"{}")
        run("fetch", "fetch", job_id, "--out", str(out / "a"))
        run("fetch", "fetch", "--owner", "alice", "--out", str(out / "b"))
        run("fetch", "fetch", "job-20010301T000000Z-00000000", "--out", str(out / "c"), code=2)
        run("cancel", "cancel", job_id)
    return {name: found for name, found in calls.items() if name != "setup"}


def _grants(statement: dict[str, Any], action: str, resource: str, template: dict[str, Any]) -> bool:
    """Whether `statement` allows `action` on the recorded `resource` (table[/index] or bucket/key)."""
    if action not in _as_list(statement["Action"]):
        return False
    tables = {
        r["Properties"]["TableName"]: name
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    for granted in _as_list(statement["Resource"]):
        text = json.dumps(granted)
        if granted == "*" or (granted == {"Ref": "AWS::StackId"} and resource == STACK):
            return True
        for table in resource.split(","):
            name, _, index = table.partition("/")
            if name in tables and f'["{tables[name]}", "Arn"]' in text and ('/index/*"' in text) == bool(index):
                return True
        bucket, _, key = resource.partition("/")
        if (
            bucket == "ResultsBucket"
            and f'["{bucket}", "Arn"]' in text
            and key.startswith(f"{contract.RESULTS_PREFIX}/")
        ):
            return True
    return False


def test_every_call_of_the_researcher_commands_is_granted(
    recorded: dict[str, set[tuple[str, str]]], template: dict[str, Any]
) -> None:
    statements = _statements(template)
    assert set(recorded) == {"env", "submit", "status", "files", "fetch", "cancel"}
    for command, calls in recorded.items():
        for action, resource in calls:
            assert any(_grants(s, action, resource, template) for s in statements), (command, action, resource)


def test_the_policy_grants_nothing_the_commands_do_not_call(
    recorded: dict[str, set[tuple[str, str]]], template: dict[str, Any]
) -> None:
    called = {action for calls in recorded.values() for action, _ in calls}
    granted = {a for s in _statements(template) for a in _as_list(s["Action"])}
    # SSE-KMS tables: DynamoDB calls KMS on the researcher's behalf (moto does not).
    assert granted - called == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert called <= granted
    # Never a scan, a delete, a queue, a job submission or the archive.
    assert not {a for a in granted if a.endswith(("Scan", "DeleteItem", "DeleteObject", "PutObject"))}
    assert not {a for a in granted if a.startswith(("sqs:", "iam:", "secretsmanager:"))}
    assert "batch:SubmitJob" not in granted
    assert "ArchiveBucket" not in json.dumps(_statements(template))


def test_the_policy_is_scoped_and_exported(template: dict[str, Any]) -> None:
    by_sid = {s["Sid"]: s for s in _statements(template)}
    assert by_sid["ListResults"]["Condition"] == {"StringLike": {"s3:prefix": [f"{contract.RESULTS_PREFIX}/*"]}}
    assert by_sid["FetchResults"]["Resource"][0]["Fn::Sub"][0] == f"${{Arn}}/{contract.RESULTS_PREFIX}/*"
    assert by_sid["ReadStackOutputs"]["Resource"] == [{"Ref": "AWS::StackId"}]
    via = by_sid["UseDataKey"]["Condition"]["StringEquals"]["kms:ViaService"]
    assert via == [{"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}]
    # Only actions without resource-level permissions take "*".
    assert [s["Sid"] for s in by_sid.values() if "*" in s["Resource"]] == ["FindRegisteredDefinitions"]
    assert template["Outputs"]["ResearcherPolicyArn"]["Value"] == {"Ref": "ResearcherPolicy"}
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    assert "`ResearcherPolicyArn`" in guide and "attach-user-policy" in guide
