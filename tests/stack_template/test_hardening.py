"""The stack on AWS as locked down and as tunable as the embedded environment (issue 19).

Read-only job containers with a private /tmp, image pulls from the stack's repositories only,
the data key used only through the services that need it, the archive reached only under its
prefix, queues kept when the stack goes, the carousel's settings as template parameters. Each
test reads the generated template (`stack_template`); the researchers' managed policy is checked
against the CLI's recorded calls in test_researcher_policy.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import stack_template
from carousel import runtime
from carousel.planner import Policy
from datacarousel import contract, registry
from datacarousel.config import Settings
from datacarousel.contract import Env
from datacarousel.errors import ConfigError
from stack_template.batch import SCRATCH_MIB, SCRATCH_PATH
from workbench.images import specs
from workbench.images.engine import Engine
from workbench.images.running import ImageRunner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return dict(json.loads(stack_template.template_json()))


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- 1. read-only job containers -----------------------------------------------------------------------


def test_every_job_definition_has_a_read_only_root_and_a_private_tmp(template: dict[str, Any]) -> None:
    definitions = _of_type(template, "AWS::Batch::JobDefinition")
    assert len(definitions) >= 5
    for name, definition in definitions.items():
        props = definition["Properties"]
        # Tmpfs is an EC2-platform feature of Batch (Fargate has none): the definitions must stay on EC2.
        assert props["PlatformCapabilities"] == ["EC2"], name
        container = props["ContainerProperties"]
        assert container["ReadonlyRootFilesystem"] is True, name
        assert container["Privileged"] is False, name
        (scratch,) = container["LinuxParameters"]["Tmpfs"]
        assert scratch["ContainerPath"] == SCRATCH_PATH == "/tmp", name
        assert scratch["Size"] == SCRATCH_MIB, name
        assert {"rw", "nosuid", "nodev"} <= set(scratch["MountOptions"]), name
        # The scratch space is memory: it must leave most of the job's memory to the job.
        memory = next(int(r["Value"]) for r in container["ResourceRequirements"] if r["Type"] == "MEMORY")
        assert scratch["Size"] <= memory // 2, name


def test_the_local_container_run_mode_runs_the_same_way() -> None:
    """The embedded environment's container mode (DC_LOCAL_RUN_MODE=container) is as strict as Batch."""
    argv = ImageRunner(engine=Engine("docker", "docker")).command("img:local", ["python", "-m", "loader"], {})
    assert "--read-only" in argv
    tmpfs = argv[argv.index("--tmpfs") + 1]
    assert tmpfs.split(":", 1)[0] == SCRATCH_PATH
    assert {"rw", "nosuid", "nodev"} <= set(tmpfs.split(":", 1)[1].split(","))


# --- 2. image pulls from the stack's repositories only ----------------------------------------------


def _role_statements(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    """Sid -> statement, of a role's inline policies."""
    return {
        s["Sid"]: s
        for policy in template["Resources"][role]["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    }


def test_the_execution_role_pulls_only_from_the_stack_repositories(template: dict[str, Any]) -> None:
    statements = _role_statements(template, "TaskExecutionRole")
    repository = "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${ImageRepositoryPrefix}*"
    assert statements["PullImages"]["Resource"] == [{"Fn::Sub": repository}]
    # GetAuthorizationToken has no resource-level permission: the only ECR action on "*".
    assert statements["EcrLogin"] == {
        "Sid": "EcrLogin",
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": ["*"],
    }
    text = json.dumps(template)
    assert "repository/*" not in text
    prefix = template["Parameters"]["ImageRepositoryPrefix"]
    assert prefix["Default"] == contract.DEFAULT_IMAGE_REPOSITORY_PREFIX
    pattern = re.compile(prefix["AllowedPattern"])
    assert not pattern.match(""), "an empty prefix would open every repository of the account"
    assert not pattern.match("*") and pattern.match("team/datacarousel-")


def test_every_image_the_workbench_pushes_is_under_the_default_prefix() -> None:
    """`datacarousel images push --create-repositories` names its repositories after the images."""
    names = [spec.name for spec in specs.IMAGES.values()] + [w.image for w in registry.worker_images()]
    assert names
    for name in names:
        assert name.startswith(contract.DEFAULT_IMAGE_REPOSITORY_PREFIX), name


# --- 3. the data key, only through the services that need it ---------------------------------------------

# Services whose resources the data key encrypts: the queues, the tables, the HSDS secret (the buckets use
# S3-managed keys, the log group is encrypted by CloudWatch Logs under the key policy).
KEY_SERVICES = {"sqs", "dynamodb", "secretsmanager"}


def _identity_statements(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """role or managed policy -> its Allow statements."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            documents = [props["PolicyDocument"]]
        statements = [s for d in documents for s in d["Statement"] if s["Effect"] == "Allow"]
        if statements:
            found[name] = statements
    return found


def test_the_data_key_is_used_only_through_the_services_each_role_calls(template: dict[str, Any]) -> None:
    users = 0
    for name, statements in _identity_statements(template).items():
        kms = [s for s in statements if any(a.startswith("kms:") for a in _as_list(s["Action"]))]
        if not kms:
            continue
        users += 1
        called = {a.split(":", 1)[0] for s in statements for a in _as_list(s["Action"])} & KEY_SERVICES
        assert called, f"{name} holds the data key but calls no service that uses it"
        for statement in kms:
            assert [r.get("Fn::GetAtt") for r in statement["Resource"]] == [["DataKey", "Arn"]], name
            via = statement["Condition"]["StringEquals"]["kms:ViaService"]
            assert set(statement["Condition"]) == {"StringEquals"}, name
            services = {v["Fn::Sub"].removesuffix(".${AWS::Region}.amazonaws.com") for v in via}
            assert services == called, (name, services, called)
    # The five pipeline and analysis roles, the researchers' role and the execution role at least.
    assert users >= 7


def test_each_role_reaches_the_key_through_the_expected_services(template: dict[str, Any]) -> None:
    def services(role: str, sid: str) -> set[str]:
        via = _role_statements(template, role)[sid]["Condition"]["StringEquals"]["kms:ViaService"]
        return {v["Fn::Sub"].split(".", 1)[0] for v in via}

    for role in ("WriterExecutionRole", "ReaderExecutionRole", "HsdsExecutionRole"):
        assert services(role, "DecryptHsdsCredentials") == {"secretsmanager"}, role
    assert "DecryptHsdsCredentials" not in _role_statements(template, "TaskExecutionRole")  # the loader's: no secret
    assert services("RecordMetadataJobRole", "UseDataKey") == {"dynamodb"}
    assert services("ComputeRadianceJobRole", "UseDataKey") == {"sqs"}
    assert services("ResearcherJobRole", "UseDataKey") == {"sqs"}
    for role in ("LoaderJobRole", "IndexFileJobRole", "CarouselJobRole"):
        assert services(role, "UseDataKey") == {"sqs", "dynamodb"}, role


# --- 4. the archive, under its prefix only ------------------------------------------------------------

ARCHIVE_NAME = f"{contract.PROJECT}-archive-${{AWS::AccountId}}"


def _is_archive(resource: Any) -> bool:
    return ARCHIVE_NAME in json.dumps(resource)


def test_archive_statements_reach_only_objects_under_the_archive_prefix(template: dict[str, Any]) -> None:
    prefixed = {"Fn::If": ["HasArchivePrefix", {"StringLike": {"s3:prefix": [{"Fn::Sub": "${ArchivePrefix}*"}]}}]}
    assert template["Conditions"]["HasArchivePrefix"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ArchivePrefix"}, ""]}]}
    listings = objects = 0
    for name, statements in _identity_statements(template).items():
        for statement in statements:
            archive = [r for r in _as_list(statement["Resource"]) if _is_archive(r)]
            if not archive:
                continue
            actions = set(_as_list(statement["Action"]))
            assert len(archive) == len(_as_list(statement["Resource"])), f"{name}: archive mixed with others"
            if actions == {"s3:ListBucket"}:
                listings += 1
                # Listing is the bucket, but only under the prefix (whole bucket when the prefix is empty).
                condition = statement["Condition"]["Fn::If"]
                assert condition[:2] == prefixed["Fn::If"] and condition[2] == {"Ref": "AWS::NoValue"}, name
            else:
                objects += 1
                assert actions <= {"s3:GetObject", "s3:RestoreObject"}, (name, actions)
                for resource in archive:
                    assert resource["Fn::Sub"][0] == "${Arn}/${ArchivePrefix}*", name
    # Loader, index_file, each analysis, the researchers, the carousel list; they and HSDS read or restore.
    assert listings >= 6 and objects >= 7


def test_the_carousel_restores_only_under_the_prefix(template: dict[str, Any]) -> None:
    restore = _role_statements(template, "CarouselJobRole")["RestoreArchive"]
    assert restore["Action"] == ["s3:GetObject", "s3:RestoreObject"]
    (resource,) = restore["Resource"]
    assert resource["Fn::Sub"][0] == "${Arn}/${ArchivePrefix}*"
    linked = _role_statements(template, "HsdsTaskRole")["ReadLinkedFiles"]
    assert linked["Resource"] == [resource]


# --- 5. queues outlive the stack ---------------------------------------------------------------------


def test_every_queue_and_dead_letter_queue_is_kept_at_deletion_with_its_key(template: dict[str, Any]) -> None:
    queues = _of_type(template, "AWS::SQS::Queue")
    dead_letter = {n for n in queues if n.endswith("DeadLetterQueue")}
    assert dead_letter and len(queues) == 2 * len(dead_letter)
    for name, queue in queues.items():
        assert queue["DeletionPolicy"] == "Retain", name
        assert queue["UpdateReplacePolicy"] == "Retain", name
        # A kept queue stays readable: the key that encrypts it is kept too.
        assert queue["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}, name
    key = template["Resources"]["DataKey"]
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"


def test_the_operator_guide_says_why_queues_are_kept_and_how_to_clean_up() -> None:
    guide = (ROOT / "docs" / "operator.md").read_text()
    section = guide.split("## What the stack creates", 1)[1].split("\n## ", 1)[0]
    assert "dead-letter" in section and "Retain" in section
    assert "aws sqs delete-queue" in section


# --- 6. the carousel's settings as template parameters ----------------------------------------------------

TUNING_PARAMETERS = {
    "CarouselPolicy": Env.CAROUSEL_POLICY,
    "MaxIndexWorkers": Env.MAX_INDEX_WORKERS,
    "MaxJobWorkers": Env.MAX_JOB_WORKERS,
    "KeepSeconds": Env.KEEP_S,
    "ProbeAfterSeconds": Env.PROBE_AFTER_S,
    "IndexRetrySeconds": Env.INDEX_RETRY_S,
}


def _environment(template: dict[str, Any], definition: str) -> dict[str, Any]:
    container = template["Resources"][definition]["Properties"]["ContainerProperties"]
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_the_carousel_step_gets_every_setting_from_its_parameter(template: dict[str, Any]) -> None:
    carousel = _environment(template, "CarouselJobDefinition")
    for parameter, variable in {
        **TUNING_PARAMETERS,
        "WindowBytes": Env.WINDOW_BYTES,
        "WindowFiles": Env.WINDOW_FILES,
    }.items():
        assert carousel[variable] == {"Ref": parameter}, variable
    # The other workers do not read the carousel's tuning.
    for name in _of_type(template, "AWS::Batch::JobDefinition"):
        if name != "CarouselJobDefinition":
            assert not set(TUNING_PARAMETERS.values()) & set(_environment(template, name)), name
    groups = {
        g["Label"]["default"]: g["Parameters"]
        for g in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    }
    assert set(groups["Carousel tuning"]) == set(TUNING_PARAMETERS)


def test_parameter_defaults_are_the_code_defaults(template: dict[str, Any]) -> None:
    """What the carousel step runs with when the operator changes nothing is what it runs with unset."""
    params = template["Parameters"]
    from_defaults = Settings.from_env(need=[], environ={v: params[p]["Default"] for p, v in TUNING_PARAMETERS.items()})
    assert from_defaults == Settings.from_env(need=[], environ={})
    assert params["WindowBytes"]["Default"] == str(contract.DEFAULT_WINDOW_BYTES)
    assert params["WindowFiles"]["Default"] == str(contract.DEFAULT_WINDOW_FILES)
    # Unset, the settings are the contract's defaults (which the parameters' defaults are, above).
    unset = Settings.from_env(need=[], environ={})
    assert (unset.max_index_workers, unset.max_job_workers) == (
        contract.DEFAULT_MAX_INDEX_WORKERS,
        contract.DEFAULT_MAX_JOB_WORKERS,
    )
    assert (unset.keep_s, unset.probe_after_s, unset.index_retry_s) == (
        contract.DEFAULT_KEEP_S,
        contract.DEFAULT_PROBE_AFTER_S,
        contract.DEFAULT_INDEX_RETRY_S,
    )
    assert runtime.planner_config(Settings()).policy.value == contract.DEFAULT_CAROUSEL_POLICY


def test_tuning_parameters_admit_only_what_the_carousel_accepts(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    policies = params["CarouselPolicy"]["AllowedValues"]
    assert policies == list(contract.CAROUSEL_POLICIES) == ["demand", "rotation"]
    for policy in policies:
        settings = Settings.from_env(need=[], environ={Env.CAROUSEL_POLICY: policy})
        assert runtime.planner_config(settings).policy == Policy(policy)
    # Each bound is one the carousel accepts, and one below it the carousel refuses.
    for parameter, variable in TUNING_PARAMETERS.items():
        if parameter == "CarouselPolicy":
            continue
        low = params[parameter]["MinValue"]
        assert params[parameter]["Type"] == "Number"
        Settings.from_env(need=[], environ={variable: str(low)})
        with pytest.raises(ConfigError):
            Settings.from_env(need=[], environ={variable: str(low - 1)})


def test_the_operator_guide_documents_every_setting() -> None:
    guide = (ROOT / "docs" / "operator.md").read_text()
    table = guide.split("## Parameters", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| `")}
    for parameter, variable in TUNING_PARAMETERS.items():
        assert f"`{parameter}`" in rows, parameter
        assert f"`{variable}`" in rows[f"`{parameter}`"], parameter
