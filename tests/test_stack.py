"""The template of stack.py (`stack_template`): linted, scanned, pinned by a golden file, and its invariants.

`UPDATE_GOLDEN=1 pytest tests/test_stack.py` rewrites tests/golden/stack.json on purpose
(review the diff: logical IDs are API).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import boto3
import cfnlint.api
import pytest

import stack_template
from carousel.launcher import job_definitions
from datacarousel import contract, registry
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.hsds_accounts import role_of
from datacarousel.work_queues import WorkQueues
from stack_template.iam import EXECUTION_ROLE_TITLES
from stack_template.storage import HSDS_SECRET_TITLES

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "stack.json"


# Every job definition of the template: the pipeline's workers and each built-in analysis.
ALL_DEFINITIONS = [*(d.value for d in JobDefinitionName), *registry.builtin()]


@pytest.fixture(scope="module")
def template_text() -> str:
    return str(stack_template.template_json())


@pytest.fixture(scope="module")
def template(template_text: str) -> dict[str, Any]:
    return dict(json.loads(template_text))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def _getatt_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return None


# --- the program and the checkers ---------------------------------------------------------


def test_running_the_file_prints_the_template(template_text: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "stack.py")], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert out == template_text
    assert json.loads(out)["AWSTemplateFormatVersion"] == "2010-09-09"


def test_cfn_lint_reports_no_error_and_no_warning(template_text: str) -> None:
    matches = cfnlint.api.lint(template_text)
    serious = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id[0] in "EW"]
    assert serious == []


def test_cfn_lint_would_catch_a_broken_reference(template_text: str) -> None:
    """The lint test above is not vacuous: a dangling Ref in this template is an error."""
    broken = template_text.replace('"Ref": "IndexQueue"', '"Ref": "IndexQueueTypo"', 1)
    assert broken != template_text
    assert any(m.rule.id.startswith("E") for m in cfnlint.api.lint(broken))


def _checkov_skips(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found.append((name, skip["id"], skip.get("comment", "")))
    return found


def test_every_checkov_skip_is_explained(template: dict[str, Any]) -> None:
    skips = _checkov_skips(template)
    assert skips, "expected the documented exceptions (e.g. the access-log bucket's own logging)"
    for name, check, comment in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", check), (name, check)
        assert len(comment.split()) >= 5, f"{name}: skip of {check} needs a written reason"


@pytest.mark.slow
def test_checkov_finds_no_failed_check(template_text: str, template: dict[str, Any], tmp_path: Path) -> None:
    """scripts/checkov.sh (its own venv, created on first use) passes the template with 0 failed checks."""
    path = tmp_path / "stack.json"
    path.write_text(template_text)
    run = subprocess.run(
        [str(ROOT / "scripts" / "checkov.sh"), str(path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", run.stdout)
    assert summary, run.stdout + run.stderr
    passed, failed, skipped = (int(n) for n in summary.groups())
    assert failed == 0, run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert passed > 100  # the scan really ran over the resources
    # Every skip written in the template is used (none stale), and checkov skipped nothing else.
    assert skipped == len(_checkov_skips(template))


# --- golden template -------------------------------------------------------------------------


def test_template_matches_the_golden_file(template_text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(template_text)
    assert GOLDEN.exists(), "no golden template: run with UPDATE_GOLDEN=1 once, on purpose"
    golden = json.loads(GOLDEN.read_text())
    current = json.loads(template_text)
    # Logical IDs first: they are API (a rename replaces the resource on update).
    assert sorted(current["Resources"]) == sorted(golden["Resources"])
    assert sorted(current["Parameters"]) == sorted(golden["Parameters"])
    assert sorted(current["Outputs"]) == sorted(golden["Outputs"])
    assert current == golden, "template changed: review, then UPDATE_GOLDEN=1 to accept"


def test_template_is_deterministic() -> None:
    assert stack_template.template_json() == stack_template.template_json(stack_template.build_template())


# --- invariants: queues -------------------------------------------------------------------------


def test_every_work_queue_has_a_dead_letter_queue(template: dict[str, Any]) -> None:
    queues = _of_type(template, "AWS::SQS::Queue")
    targets = {
        _getatt_target(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    consumed = {name for name in queues if name not in targets}
    # One work queue per analysis, named under the stack so the carousel finds it (datacarousel.work_queues).
    work = {f"{name}WorkQueue" for name in registry.builtin()}
    assert consumed == {"IndexQueue", "RestoreEventsQueue", *work}
    for name in registry.builtin():
        props = queues[f"{name}WorkQueue"]["Properties"]
        assert props["QueueName"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}-work"}
        assert props["VisibilityTimeout"] == registry.get(name).visibility_timeout_s
        dead = queues[f"{name}WorkDeadLetterQueue"]["Properties"]
        assert dead["QueueName"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}-work-dlq"}
    for name in consumed:
        redrive = queues[name]["Properties"]["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == contract.MAX_RECEIVE_COUNT
        dlq = _getatt_target(redrive["deadLetterTargetArn"])
        assert dlq in queues and "RedrivePolicy" not in queues[dlq]["Properties"]
        # A dead letter outlives its source message's retention.
        assert (
            queues[dlq]["Properties"]["MessageRetentionPeriod"] > queues[name]["Properties"]["MessageRetentionPeriod"]
        )


def test_every_queue_is_encrypted_with_the_rotated_key_and_tls_only(template: dict[str, Any]) -> None:
    queues = _of_type(template, "AWS::SQS::Queue")
    key = template["Resources"]["DataKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    for name, queue in queues.items():
        assert _ref(queue["Properties"]["KmsMasterKeyId"]) == "DataKey", name
    policies = _of_type(template, "AWS::SQS::QueuePolicy")
    covered = {_ref(q) for p in policies.values() for q in p["Properties"]["Queues"]}
    assert covered == set(queues)
    for policy in policies.values():
        assert any(_denies_insecure_transport(s) for s in policy["Properties"]["PolicyDocument"]["Statement"])


def test_only_the_archive_bucket_may_send_restore_events(template: dict[str, Any]) -> None:
    policy = template["Resources"]["RestoreEventsQueuePolicy"]["Properties"]["PolicyDocument"]
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert len(allows) == 1
    (allow,) = allows
    assert allow["Principal"] == {"Service": ["s3.amazonaws.com"]}
    assert allow["Action"] == ["sqs:SendMessage"]
    condition = allow["Condition"]
    assert condition["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert condition["ArnLike"]["aws:SourceArn"] == stack_template.archive_bucket_arn().to_dict()
    # The key lets S3 (this bucket only) encrypt into the queue.
    key_policy = template["Resources"]["DataKey"]["Properties"]["KeyPolicy"]
    s3_statements = [s for s in key_policy["Statement"] if s["Principal"] == {"Service": ["s3.amazonaws.com"]}]
    assert len(s3_statements) == 1
    assert s3_statements[0]["Condition"]["ArnLike"]["aws:SourceArn"] == stack_template.archive_bucket_arn().to_dict()
    # The archive bucket names the restore events as its notifications, to that queue.
    archive = template["Resources"]["ArchiveBucket"]
    assert archive["Properties"]["BucketName"] == stack_template.archive_bucket_name().to_dict()
    notifications = archive["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert {n["Event"] for n in notifications} >= {"s3:ObjectRestore:Completed"}
    assert {_getatt_target(n["Queue"]) for n in notifications} == {"RestoreEventsQueue"}
    assert "RestoreEventsQueuePolicy" in archive["DependsOn"]


# --- invariants: buckets ---------------------------------------------------------------------------


def _denies_insecure_transport(statement: dict[str, Any]) -> bool:
    return (
        statement["Effect"] == "Deny"
        and statement.get("Principal") == "*"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    )


def test_every_bucket_is_encrypted_private_versioned_and_tls_only(template: dict[str, Any]) -> None:
    buckets = _of_type(template, "AWS::S3::Bucket")
    assert set(buckets) == {"AccessLogsBucket", "ArchiveBucket", "ResultsBucket", "HsdsBucket"}
    policies = {_ref(p["Properties"]["Bucket"]): p for p in _of_type(template, "AWS::S3::BucketPolicy").values()}
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules and all(r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules), name
        block = props["PublicAccessBlockConfiguration"]
        assert block == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}], name
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, name
        statements = policies[name]["Properties"]["PolicyDocument"]["Statement"]
        tls = [s for s in statements if _denies_insecure_transport(s)]
        assert tls, f"{name} has no TLS-only statement"
        resources = [json.dumps(r, sort_keys=True) for r in tls[0]["Resource"]]
        assert len(resources) == 2 and any("/*" in r for r in resources), name  # the bucket and its objects
        if name != "AccessLogsBucket":
            assert _ref(props["LoggingConfiguration"]["DestinationBucketName"]) == "AccessLogsBucket", name


def test_archive_bucket_moves_objects_to_deep_archive(template: dict[str, Any]) -> None:
    rules = template["Resources"]["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    transitions = [t for r in rules for t in r.get("Transitions", [])]
    assert transitions == [{"StorageClass": "DEEP_ARCHIVE", "TransitionInDays": {"Ref": "ArchiveTransitionDays"}}]
    assert template["Resources"]["ArchiveBucket"]["DeletionPolicy"] == "Retain"


# --- invariants: IAM ------------------------------------------------------------------------------------


def _policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(resource, kind, document) of every policy document in the template."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            yield name, "trust", props["AssumeRolePolicyDocument"]
            for policy in props.get("Policies", []):
                yield name, "identity", policy["PolicyDocument"]
        elif kind == "AWS::IAM::ManagedPolicy":
            yield name, "identity", props["PolicyDocument"]
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            yield name, "resource", props["PolicyDocument"]
        elif kind == "AWS::KMS::Key":
            yield name, "key", props["KeyPolicy"]


# Actions IAM gives no resource-level permission for: "*" is the only resource they take.
UNSCOPED_ACTIONS = {"ecr:GetAuthorizationToken", "batch:ListJobs", "batch:DescribeJobDefinitions"}


def test_no_statement_grants_every_action_or_every_resource(template: dict[str, Any]) -> None:
    documents = list(_policy_documents(template))
    assert len(documents) > 20
    for name, kind, document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = _as_list(statement["Action"])
            for action in actions:
                assert action != "*" and not action.endswith(":*"), f"{name}: Allow {action}"
            resources = _as_list(statement.get("Resource", []))
            if kind == "identity" and "*" in resources:
                assert set(actions) <= UNSCOPED_ACTIONS, f"{name}: {actions} on '*'"
            if kind == "key":
                # A key policy's "*" means this key; still, never every action.
                assert all(a.startswith("kms:") for a in actions), name


def test_every_role_is_trusted_by_one_service_of_this_account(template: dict[str, Any]) -> None:
    roles = _of_type(template, "AWS::IAM::Role")
    expected = {
        "BatchServiceRole": "batch.amazonaws.com",
        "BatchInstanceRole": "ec2.amazonaws.com",
        **dict.fromkeys(EXECUTION_ROLE_TITLES.values(), "ecs-tasks.amazonaws.com"),
        "HsdsExecutionRole": "ecs-tasks.amazonaws.com",
        "HsdsTaskRole": "ecs-tasks.amazonaws.com",
        "CarouselScheduleRole": "events.amazonaws.com",
        "ResearcherJobRole": "ecs-tasks.amazonaws.com",
        **{f"{stack_template.role_prefix(d)}JobRole": "ecs-tasks.amazonaws.com" for d in ALL_DEFINITIONS},
    }
    assert set(roles) == set(expected)
    for name, role in roles.items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": [expected[name]]}, name
        if expected[name] == "ec2.amazonaws.com":
            # EC2 names no source account when it assumes an instance profile's role.
            assert "Condition" not in statement
        else:
            assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, name
    # AWS managed policies only where AWS Batch requires them.
    managed = {n: r["Properties"].get("ManagedPolicyArns", []) for n, r in roles.items()}
    assert {n for n, arns in managed.items() if arns} == {"BatchServiceRole", "BatchInstanceRole"}


def _identity_actions(template: dict[str, Any], role: str) -> dict[str, list[Any]]:
    """action -> resources, for one role."""
    granted: dict[str, list[Any]] = {}
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            for action in _as_list(statement["Action"]):
                granted.setdefault(action, []).extend(_as_list(statement["Resource"]))
    return granted


def test_each_worker_gets_only_what_it_uses(template: dict[str, Any]) -> None:
    loader = _identity_actions(template, "LoaderJobRole")
    compute = _identity_actions(template, "ComputeRadianceJobRole")
    carousel = _identity_actions(template, "CarouselJobRole")
    index_file = _identity_actions(template, "IndexFileJobRole")
    # Nobody scans a table: every query has an index behind it.
    for role in (loader, compute, carousel, index_file):
        assert "dynamodb:Scan" not in role
    # Only the carousel restores archive objects and submits Batch jobs.
    assert "s3:RestoreObject" in carousel and "batch:SubmitJob" in carousel
    for role in (loader, compute, index_file):
        assert "s3:RestoreObject" not in role and "batch:SubmitJob" not in role
    # ComputeRadiance writes results (its reducer too) under results/; the carousel only reads the reducers'
    # markers and writes no object; nobody writes the archive.
    assert [json.dumps(r) for r in compute["s3:PutObject"]] == [
        json.dumps({"Fn::Sub": ["${Arn}/results/*", {"Arn": {"Fn::GetAtt": ["ResultsBucket", "Arn"]}}]})
    ]
    assert [json.dumps(r) for r in carousel["s3:GetObject"] if "ResultsBucket" in json.dumps(r)] == [
        json.dumps({"Fn::Sub": ["${Arn}/results/*/reduced.json", {"Arn": {"Fn::GetAtt": ["ResultsBucket", "Arn"]}}]})
    ]
    for role in (loader, index_file, carousel):
        assert "s3:PutObject" not in role
    # Consumers delete from exactly their own queue.
    assert [_getatt_target(r) for r in index_file["sqs:DeleteMessage"]] == ["IndexQueue"]
    assert [_getatt_target(r) for r in compute["sqs:DeleteMessage"]] == ["ComputeRadianceWorkQueue"]
    # The carousel consumes restore events and records failures from the other dead-letter queues: the
    # index queue's, and every work queue's of the stack (by name: also those of definitions registered later).
    assert sorted(str(_getatt_target(r) or json.dumps(r)) for r in carousel["sqs:DeleteMessage"]) == [
        "IndexDeadLetterQueue",
        "RestoreEventsQueue",
        json.dumps(
            {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-*-work-dlq"}
        ),
    ]
    assert [json.dumps(r) for r in carousel["sqs:SendMessage"] if "Fn::Sub" in json.dumps(r)] == [
        json.dumps({"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-*-work"})
    ]
    assert "sqs:DeleteMessage" not in loader
    # ComputeRadiance reports through its result objects only: no table access at all.
    assert not [action for action in compute if action.startswith("dynamodb:")]
    # record_metadata reads HSDS, not S3.
    assert not [a for a in _identity_actions(template, "RecordMetadataJobRole") if a.startswith("s3:")]


# --- invariants: DynamoDB ----------------------------------------------------------------------------------


def test_every_table_and_index_of_the_contract_exists_with_matching_keys(template: dict[str, Any]) -> None:
    tables = {
        t["Properties"]["TableName"]: t["Properties"] for t in _of_type(template, "AWS::DynamoDB::Table").values()
    }
    assert set(tables) == {schema.table_name for schema in contract.TABLES}
    for schema in contract.TABLES:
        props = tables[schema.table_name]
        definitions = {d["AttributeName"]: d["AttributeType"] for d in props["AttributeDefinitions"]}
        assert definitions == schema.attribute_definitions()

        def keys(schema_keys: list[dict[str, str]]) -> dict[str, str]:
            return {k["KeyType"]: k["AttributeName"] for k in schema_keys}

        assert keys(props["KeySchema"]) == {
            "HASH": schema.hash_key.name,
            **({"RANGE": schema.range_key.name} if schema.range_key else {}),
        }
        indexes = {i["IndexName"]: i for i in props.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {i.name for i in schema.indexes}
        for index in schema.indexes:
            assert keys(indexes[index.name]["KeySchema"]) == {
                "HASH": index.hash_key.name,
                **({"RANGE": index.range_key.name} if index.range_key else {}),
            }
            assert indexes[index.name]["Projection"] == {"ProjectionType": "ALL"}
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert _ref(props["SSESpecification"]["KMSMasterKeyId"]) == "DataKey"


# --- invariants: Batch -------------------------------------------------------------------------------------


def _container_env_names(job_definition: dict[str, Any]) -> tuple[list[str], list[str]]:
    container = job_definition["Properties"]["ContainerProperties"]
    return [e["Name"] for e in container["Environment"]], [s["Name"] for s in container.get("Secrets", [])]


CONTRACT_ENV_NAMES = {value for name, value in vars(Env).items() if name.isupper() and isinstance(value, str)}


def test_job_definitions_set_only_contract_variables_and_keep_credentials_secret(template: dict[str, Any]) -> None:
    definitions = _of_type(template, "AWS::Batch::JobDefinition")
    assert {d["Properties"]["JobDefinitionName"] for d in definitions.values()} == set(ALL_DEFINITIONS)
    for name, definition in definitions.items():
        environment, secrets = _container_env_names(definition)
        assert set(environment) <= CONTRACT_ENV_NAMES, (name, set(environment) - CONTRACT_ENV_NAMES)
        assert len(environment) == len(set(environment)), name
        assert {r.env for r in contract.SHARED_RESOURCES} <= set(environment), name
        for wanted in (Env.HSDS_FOLDER, Env.HS_ENDPOINT, Env.WINDOW_BYTES, Env.WINDOW_FILES, Env.RESTORE_TIER):
            assert wanted in environment, (name, wanted)
        assert Env.RESTORE_DAYS in environment, name
        # Credentials come from Secrets Manager, never in clear; the loader, which never talks to HSDS, gets none;
        # the others their own account's (tests/stack_template/test_hsds_config.py).
        job = definition["Properties"]["JobDefinitionName"]
        role = role_of(job)
        uses_hsds = job != JobDefinitionName.LOADER.value
        assert (role is not None) == uses_hsds, name
        assert sorted(secrets) == (sorted([Env.HS_USERNAME, Env.HS_PASSWORD]) if uses_hsds else []), name
        assert Env.HS_PASSWORD not in environment and Env.AWS_SECRET_ACCESS_KEY not in environment, name
        for secret in definition["Properties"]["ContainerProperties"].get("Secrets", []):
            assert role is not None and f"${{{HSDS_SECRET_TITLES[role]}}}:" in json.dumps(secret["ValueFrom"]), name


def test_job_definitions_run_the_agreed_entry_points(template: dict[str, Any]) -> None:
    by_name = {
        d["Properties"]["JobDefinitionName"]: d["Properties"]
        for d in _of_type(template, "AWS::Batch::JobDefinition").values()
    }
    commands = {name: props["ContainerProperties"]["Command"] for name, props in by_name.items()}
    # Every worker image runs its package as a module (`python -m <package>`): the entry points, word for word.
    assert commands == {
        JobDefinitionName.LOADER.value: ["python", "-m", "loader"],
        JobDefinitionName.INDEX_FILE.value: ["python", "-m", "index_file"],
        JobDefinitionName.RECORD_METADATA.value: ["python", "-m", "record_metadata"],
        JobDefinitionName.CAROUSEL.value: ["python", "-m", "carousel", "step"],
        # An analysis's command is its description's: the mode, then every parameter as an option.
        "ComputeRadiance": [
            "python",
            "-m",
            "batch_jobs.compute_radiance",
            "Ref::mode",
            "--object",
            "Ref::object",
            "--resolution",
            "Ref::resolution",
            "--vza-max",
            "Ref::vza_max",
            "--modis-category",
            "Ref::modis_category",
            "--misr-camera",
            "Ref::misr_camera",
            "--ceres-mode",
            "Ref::ceres_mode",
        ],
        # Every other analysis likewise, from its own description.
        **{name: d.batch_command() for name, d in registry.builtin().items() if name != "ComputeRadiance"},
    }
    assert by_name["ComputeRadiance"]["Parameters"] == {
        "mode": "queue",
        "object": "none",
        "resolution": "0.5",
        "vza_max": "18.0",
        "modis_category": "VIS",
        "misr_camera": "AN",
        "ceres_mode": "ct",
    }
    images = {w.job_definition: w.parameter for w in registry.worker_images()}
    for name, props in by_name.items():
        container = props["ContainerProperties"]
        assert container["Image"] == {"Ref": images[name]}, name
        assert container["LogConfiguration"]["LogDriver"] == "awslogs", name
        assert _ref(container["LogConfiguration"]["Options"]["awslogs-group"]) == "LogGroup"
        assert props["Timeout"]["AttemptDurationSeconds"] > 0
        retry = props["RetryStrategy"]
        assert retry["Attempts"] > 1
        # Infrastructure failures retry; anything else exits (the queues' redrive handles the job's own failures).
        assert retry["EvaluateOnExit"][0] == {"OnStatusReason": "Host EC2*", "Action": "RETRY"}
        assert retry["EvaluateOnExit"][-1] == {"OnReason": "*", "Action": "EXIT"}
        assert _getatt_target(container["JobRoleArn"]) == f"{stack_template.role_prefix(name)}JobRole"
        assert _getatt_target(container["ExecutionRoleArn"]) == EXECUTION_ROLE_TITLES[role_of(name)]


def test_the_local_launcher_reads_the_job_definitions(template: dict[str, Any]) -> None:
    """The embedded environment runs these job definitions itself: their shape is its interface."""
    definitions = job_definitions(template)
    assert set(definitions) == set(ALL_DEFINITIONS)
    radiance = definitions["ComputeRadiance"]
    assert radiance.resolve_command({}) == [
        "python",
        "-m",
        "batch_jobs.compute_radiance",
        "queue",
        "--object",
        "none",
        "--resolution",
        "0.5",
        "--vza-max",
        "18.0",
        "--modis-category",
        "VIS",
        "--misr-camera",
        "AN",
        "--ceres-mode",
        "ct",
    ]
    assert radiance.image_parameter == "ComputeRadianceImage"
    assert Env.HS_PASSWORD in radiance.environment


def test_job_queue_and_compute_environment(template: dict[str, Any]) -> None:
    queue = template["Resources"]["JobQueue"]["Properties"]
    assert queue["JobQueueName"] == contract.JOB_QUEUE_NAME
    compute = template["Resources"]["ComputeEnvironment"]["Properties"]
    assert _getatt_target(compute["ServiceRole"]) == "BatchServiceRole"  # moto answers HTTP 500 without it
    resources = compute["ComputeResources"]
    assert resources["MaxvCpus"] == {"Ref": "MaxVcpus"} and resources["MinvCpus"] == 0
    assert resources["Subnets"] == {"Ref": "SubnetIds"}
    assert resources["SecurityGroupIds"] == [{"Ref": "SecurityGroupId"}]
    launch = template["Resources"]["BatchLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert launch["MetadataOptions"]["HttpTokens"] == "required"


def test_the_schedule_submits_the_carousel_step(template: dict[str, Any]) -> None:
    rule = template["Resources"]["CarouselScheduleRule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "CarouselSchedule"}
    (target,) = rule["Targets"]
    assert _ref(target["Arn"]) == "JobQueue"
    assert _ref(target["BatchParameters"]["JobDefinition"]) == "CarouselJobDefinition"
    assert _getatt_target(target["RoleArn"]) == "CarouselScheduleRole"


# --- invariants: HSDS ---------------------------------------------------------------------------------------


def test_hsds_admits_only_the_workers_and_gets_credentials_from_the_secret(template: dict[str, Any]) -> None:
    groups = _of_type(template, "AWS::EC2::SecurityGroup")
    assert set(groups) == {"HsdsServiceSecurityGroup"}
    ingress = groups["HsdsServiceSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in ingress] == [
        ({"Ref": "SecurityGroupId"}, stack_template.HSDS_PORT, stack_template.HSDS_PORT)
    ]
    assert not _of_type(template, "AWS::EC2::SecurityGroupIngress")
    task = template["Resources"]["HsdsTaskDefinition"]["Properties"]
    containers = {c["Name"]: c for c in task["ContainerDefinitions"]}
    assert "sn" in containers and sum(name.startswith("dn") for name in containers) == 4
    for container in containers.values():
        # The folders container is the kernel's folder set-up, in index_file's image (it has the kernel).
        image = "IndexFileImage" if container["Name"] == "folders" else contract.HSDS_IMAGE_PARAMETER
        assert container["Image"] == {"Ref": image}
        assert container["ReadonlyRootFilesystem"] is True
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert not [name for name in env if "PASSWORD" in name.upper()]
        if container["Name"] not in ("config", "folders"):
            assert env["BUCKET_NAME"] == {"Ref": "HsdsBucket"}
    # Only the config and folders containers get secrets (injected variables: tests/stack_template/test_hsds_config.py).
    assert set(containers["config"]["Secrets"][0]) == {"Name", "ValueFrom"}
    assert "Secrets" not in containers["sn"]
    service = template["Resources"]["HsdsService"]["Properties"]
    assert service["DesiredCount"] == 1 and service["DeploymentConfiguration"]["MaximumPercent"] == 100
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    for title in HSDS_SECRET_TITLES.values():
        secret = template["Resources"][title]["Properties"]
        assert secret["GenerateSecretString"]["GenerateStringKey"] == stack_template.SECRET_PASSWORD_KEY
        assert secret["KmsKeyId"] == {"Ref": "DataKey"}


def test_data_node_urls_match_their_ports() -> None:
    template = json.loads(stack_template.template_json(stack_template.build_template(hsds_data_nodes=3)))
    containers = template["Resources"]["HsdsTaskDefinition"]["Properties"]["ContainerDefinitions"]
    data_nodes = [c for c in containers if c["Name"].startswith("dn")]
    assert len(data_nodes) == 3
    for number, node in enumerate(data_nodes):
        urls = next(a for a in node["Command"] if a.startswith("--dn_urls=")).split("=", 1)[1].split(",")
        port = {e["Name"]: e["Value"] for e in node["Environment"]}["DN_PORT"]
        assert f"--node_number={number}" in node["Command"]
        assert sorted(urls)[number].endswith(f":{port}")  # HSDS sorts the URLs, then takes its own by number
    with pytest.raises(ValueError, match="hsds_data_nodes"):
        stack_template.build_template(hsds_data_nodes=0)


# --- parameters and outputs ---------------------------------------------------------------------------------


def test_parameters_use_aws_types_and_constraints(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["VpcId"]["Type"] == "AWS::EC2::VPC::Id"
    assert params["SubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert params["SecurityGroupId"]["Type"] == "AWS::EC2::SecurityGroup::Id"
    # Deep Archive has no Expedited retrieval.
    assert params["RestoreTier"]["AllowedValues"] == ["Bulk", "Standard"]
    assert contract.RestoreTier.EXPEDITED.value not in params["RestoreTier"]["AllowedValues"]
    for name in ("WindowBytes", "WindowFiles", "RestoreDays", "MaxVcpus"):
        assert params[name]["Type"] == "Number" and params[name]["MinValue"] >= 1, name
    image_parameters = [w.parameter for w in registry.worker_images()] + [contract.HSDS_IMAGE_PARAMETER]
    pattern = re.compile(stack_template.IMAGE_URI_PATTERN)
    for name in image_parameters:
        assert params[name]["AllowedPattern"] == stack_template.IMAGE_URI_PATTERN
        assert "Default" not in params[name], name  # the operator names the image pushed
    assert pattern.match("123456789012.dkr.ecr.us-east-1.amazonaws.com/datacarousel-loader:1.0")
    assert pattern.match("localhost/datacarousel-loader:local")
    assert not pattern.match("datacarousel-loader")  # no registry, no tag
    assert not pattern.match("123456789012.dkr.ecr.us-east-1.amazonaws.com/datacarousel-loader")
    schedule = re.compile(params["CarouselSchedule"]["AllowedPattern"])
    assert schedule.match("rate(15 minutes)") and schedule.match("cron(0 * * * ? *)")
    assert not schedule.match("every 15 minutes")
    grouped = {
        name
        for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        for name in group["Parameters"]
    }
    assert grouped == set(params)


def test_outputs_name_every_shared_resource(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for shared in contract.SHARED_RESOURCES:
        assert shared.output in outputs, shared.output
    assert contract.HSDS_ENDPOINT_OUTPUT in outputs and contract.HSDS_READER_SECRET_OUTPUT in outputs
    for definition in ALL_DEFINITIONS:
        assert f"{stack_template.role_prefix(definition)}JobDefinitionArn" in outputs


def test_local_parameters_cover_every_required_parameter(template: dict[str, Any]) -> None:
    required = {name for name, p in template["Parameters"].items() if "Default" not in p}
    values = stack_template.local_parameters()
    assert required <= set(values)
    assert set(values) <= set(template["Parameters"])
    pattern = re.compile(stack_template.IMAGE_URI_PATTERN)
    for worker in registry.worker_images():
        assert pattern.match(values[worker.parameter])


# --- the stack in moto's CloudFormation -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server of this module's own on a free loopback port, stopped by PID."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert server.poll() is None, "moto_server exited"
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def moto_session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


@pytest.fixture(scope="module")
def created_stack(moto_endpoint: str, moto_session: boto3.session.Session) -> dict[str, str]:
    """Outputs of the stack created from `python stack.py` in moto's CloudFormation."""
    cfn = moto_session.client("cloudformation", endpoint_url=moto_endpoint)
    params = stack_template.local_parameters(moto_session.client("ec2", endpoint_url=moto_endpoint))
    cfn.create_stack(
        StackName=contract.DEFAULT_STACK_NAME,
        TemplateBody=stack_template.template_json(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + 120
    while True:
        description = cfn.describe_stacks(StackName=contract.DEFAULT_STACK_NAME)["Stacks"][0]
        if not description["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    failures = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in cfn.describe_stack_events(StackName=contract.DEFAULT_STACK_NAME)["StackEvents"]
        if e["ResourceStatus"].endswith("FAILED")
    ]
    assert description["StackStatus"] == "CREATE_COMPLETE", failures
    return {o["OutputKey"]: o["OutputValue"] for o in description["Outputs"]}


@pytest.mark.integration
def test_stack_reaches_create_complete_in_moto_with_usable_resources(
    created_stack: dict[str, str], moto_endpoint: str, moto_session: boto3.session.Session
) -> None:
    env = {contract.OUTPUT_TO_ENV[key]: value for key, value in created_stack.items() if key in contract.OUTPUT_TO_ENV}
    assert set(env) == {r.env for r in contract.SHARED_RESOURCES}
    assert env[Env.BATCH_JOB_QUEUE] == contract.JOB_QUEUE_NAME
    assert env[Env.FILES_TABLE] == contract.FILES_TABLE_NAME
    assert created_stack[contract.HSDS_ENDPOINT_OUTPUT] == f"http://hsds.{contract.DEFAULT_STACK_NAME}.internal:5101"

    def client(service: Literal["batch", "dynamodb", "events", "s3", "sqs"]) -> Any:
        return moto_session.client(service, endpoint_url=moto_endpoint)

    # Queues: a message goes round; the redrive policy sends it to the dead-letter queue after MAX_RECEIVE_COUNT.
    sqs = client("sqs")
    pairs = [
        (env[Env.INDEX_QUEUE_URL], env[Env.INDEX_DLQ_URL]),
        (env[Env.RESTORE_EVENTS_QUEUE_URL], env[Env.RESTORE_EVENTS_DLQ_URL]),
    ]
    finder = WorkQueues(sqs, contract.DEFAULT_STACK_NAME)
    pairs += [(finder.of(name).url, finder.of(name).dead_letter_url) for name in registry.builtin()]
    for queue_url, dlq_url in pairs:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        assert redrive["deadLetterTargetArn"] == dlq_arn
        assert int(redrive["maxReceiveCount"]) == contract.MAX_RECEIVE_COUNT
    sqs.send_message(QueueUrl=env[Env.INDEX_QUEUE_URL], MessageBody='{"probe": 1}')
    received = sqs.receive_message(QueueUrl=env[Env.INDEX_QUEUE_URL], WaitTimeSeconds=1)["Messages"]
    assert received[0]["Body"] == '{"probe": 1}'

    # Buckets: the archive bucket has the name the policies name; objects go in and out encrypted.
    s3 = client("s3")
    assert env[Env.ARCHIVE_BUCKET].startswith(f"{contract.PROJECT}-archive-")
    for bucket in (env[Env.ARCHIVE_BUCKET], env[Env.RESULTS_BUCKET], env[Env.HSDS_BUCKET]):
        s3.put_object(Bucket=bucket, Key="probe.txt", Body=b"probe")
        assert s3.get_object(Bucket=bucket, Key="probe.txt")["Body"].read() == b"probe"
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    # Tables: an item written is found again through a contract index.
    dynamodb = client("dynamodb")
    dynamodb.put_item(
        TableName=env[Env.FILES_TABLE],
        Item={
            contract.FileAttr.FILE_NAME: {"S": "probe.h5"},
            contract.FileAttr.YEAR_MONTH: {"S": "2001-03"},
            contract.FileAttr.ORBIT: {"N": "6625"},
        },
    )
    found = dynamodb.query(
        TableName=env[Env.FILES_TABLE],
        IndexName=contract.FileIndex.BY_YEAR_MONTH,
        KeyConditionExpression="#ym = :ym",
        ExpressionAttributeNames={"#ym": contract.FileAttr.YEAR_MONTH},
        ExpressionAttributeValues={":ym": {"S": "2001-03"}},
    )["Items"]
    assert [item[contract.FileAttr.FILE_NAME]["S"] for item in found] == ["probe.h5"]
    for schema in contract.TABLES:
        table = dynamodb.describe_table(TableName=schema.table_name)["Table"]
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {i.name for i in schema.indexes}

    # Batch: the job queue and every job definition, with the contract's environment resolved.
    batch = client("batch")
    queues = batch.describe_job_queues(jobQueues=[env[Env.BATCH_JOB_QUEUE]])["jobQueues"]
    assert [q["jobQueueName"] for q in queues] == [contract.JOB_QUEUE_NAME]
    definitions = batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    by_name = {d["jobDefinitionName"]: d for d in definitions}
    assert set(by_name) == set(ALL_DEFINITIONS)
    radiance_env = {e["name"]: e["value"] for e in by_name["ComputeRadiance"]["containerProperties"]["environment"]}
    for shared in contract.SHARED_RESOURCES:
        assert radiance_env[shared.env] == env[shared.env], shared.env
    assert radiance_env[Env.HSDS_FOLDER] == contract.DEFAULT_HSDS_FOLDER.format(user=contract.PROJECT)
    assert radiance_env[Env.RESTORE_TIER] == contract.RestoreTier.BULK.value

    # The schedule exists and targets the job queue.
    events = client("events")
    rules = events.list_rules()["Rules"]
    assert any(r.get("ScheduleExpression") == "rate(15 minutes)" for r in rules)


@pytest.mark.integration
def test_a_finished_restore_reaches_the_restore_events_queue(
    created_stack: dict[str, str], moto_endpoint: str, moto_session: boto3.session.Session
) -> None:
    """Archive object restored -> S3 event -> restore-events queue, with the template's event list.

    moto's CloudFormation does not apply a bucket's NotificationConfiguration, so it is applied here
    from `restore_notification_configuration`, as the embedded environment does.
    """
    s3 = moto_session.client("s3", endpoint_url=moto_endpoint)
    sqs = moto_session.client("sqs", endpoint_url=moto_endpoint)
    bucket = created_stack["ArchiveBucketName"]
    queue_url = created_stack["RestoreEventsQueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=stack_template.restore_notification_configuration(queue_arn)
    )
    key = "2001/TERRA_BF_L1B_O06625_20010301000000_F000_V001.h5"
    s3.put_object(Bucket=bucket, Key=key, Body=b"orbit", StorageClass="DEEP_ARCHIVE")
    with pytest.raises(s3.exceptions.ClientError, match="InvalidObjectState"):
        s3.get_object(Bucket=bucket, Key=key)
    s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"orbit"

    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not any(e["eventName"] == "ObjectRestore:Completed" for e in events) and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            events += json.loads(message["Body"]).get("Records", [])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    completed = [e for e in events if e["eventName"] == "ObjectRestore:Completed"]
    assert completed, events
    assert completed[0]["s3"]["bucket"]["name"] == bucket
    # S3 URL-encodes keys in event records (as AWS does): consumers must unquote_plus them.
    assert urllib.parse.unquote_plus(completed[0]["s3"]["object"]["key"]) == key


def test_operator_guide_names_every_parameter_and_output(template: dict[str, Any]) -> None:
    guide = (ROOT / "docs" / "operator.md").read_text()
    missing = [name for name in [*template["Parameters"], *template["Outputs"]] if f"`{name}`" not in guide]
    assert missing == [], f"docs/operator.md does not name: {missing}"
    for worker in registry.worker_images():
        assert f"`{worker.image}`" in guide and f"`{worker.parameter}`" in guide
    assert "aws cloudformation deploy" in guide


def test_registered_analyses_get_the_researcher_role_and_only_tagged_ones_are_submitted(
    template: dict[str, Any],
) -> None:
    """A definition registered after the stack was created (no template change) runs with ResearcherJobRole:
    the stack's work queues by name, the archive read-only, results/ for writing; nothing else."""
    researcher = _identity_actions(template, "ResearcherJobRole")
    work = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-*-work"
    assert researcher["sqs:ReceiveMessage"] == [{"Fn::Sub": work}]
    assert researcher["sqs:SendMessage"] == [{"Fn::Sub": work + "-dlq"}]
    assert [json.dumps(r) for r in researcher["s3:PutObject"]] == [
        json.dumps({"Fn::Sub": ["${Arn}/results/*", {"Arn": {"Fn::GetAtt": ["ResultsBucket", "Arn"]}}]})
    ]
    assert not [a for a in researcher if a.startswith(("dynamodb:", "batch:", "iam:", "secretsmanager:"))]
    assert "s3:RestoreObject" not in researcher and "s3:DeleteObject" not in researcher
    # The carousel submits registered job definitions only if they carry the stack's tag.
    carousel_policy = template["Resources"]["CarouselJobRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    (tagged,) = [s for s in carousel_policy["Statement"] if s["Sid"] == "SubmitRegisteredJobs"]
    assert tagged["Condition"] == {"StringEquals": {f"aws:ResourceTag/{contract.STACK_TAG}": {"Ref": "AWS::StackName"}}}
    outputs = template["Outputs"]
    assert contract.RESEARCHER_ROLE_OUTPUT in outputs and contract.ANALYSIS_EXECUTION_ROLE_OUTPUT in outputs
