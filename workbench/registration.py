"""Registering a research group's own analysis with a running stack (`datacarousel definitions register`).

What a built-in analysis gets from the template, a registered one gets from here, on AWS and in
the embedded environment alike (moto's SQS and Batch there):

- its work queue and dead-letter queue, `<stack>-<name>-work` and `-work-dlq` (found by name by
  the carousel and the SDK: `datacarousel.work_queues`), encrypted, TLS only, with the same redrive
  rule as the template's;
- a Batch job definition named after it, tagged with the stack's name, carrying its description
  (`registry.DESCRIPTION_PARAMETER`), running its image with the stack's researcher job role (take
  work from the stack's work queues, read the archive, write under `results/`), the shared
  execution role, a read-only root filesystem and the stack's resources in its environment.

Registering again replaces the job definition with a new revision (queues are kept: work waiting
on them is not lost). A name of a built-in analysis is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from datacarousel import contract, registry, work_queues
from datacarousel.contract import Env
from datacarousel.definitions import JobDefinition
from datacarousel.errors import BadInput, ConfigError, TransientError
from stack_template import batch

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

DEAD_LETTER_RETENTION_S = 14 * 86_400  # as long as SQS keeps anything: time for a person to look
QUEUE_RETENTION_S = 4 * 86_400
SECRET_USERNAME_KEY = "username"
SECRET_PASSWORD_KEY = "password"
LOCAL_VALUE = "(from the embedded environment)"  # a declared variable whose value the local launcher gives


@dataclass(frozen=True)
class Registration:
    name: str
    job_definition_arn: str
    revision: int
    queue_url: str
    dead_letter_url: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stack_outputs(cfn: CloudFormationClient, stack: str) -> dict[str, str]:
    """The stack's outputs; ConfigError naming the stack if it does not exist."""
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise ConfigError(f"no stack {stack!r} here (hint: `datacarousel up`, or --stack NAME)") from exc
        raise
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs", [])}


def _tls_only_policy(queue_arn: str) -> str:
    statement = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:*",
        "Resource": queue_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def ensure_queues(sqs: SQSClient, stack: str, definition: JobDefinition) -> work_queues.WorkQueue:
    """Create the definition's queue pair if missing (idempotent); its visibility follows the description."""
    dead_name = work_queues.dead_letter_queue_name(stack, definition.name)
    encrypted: dict[QueueAttributeNameType, str] = {"SqsManagedSseEnabled": "true"}
    dead_url = sqs.create_queue(
        QueueName=dead_name, Attributes={"MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_S), **encrypted}
    )["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": contract.MAX_RECEIVE_COUNT}
    url = sqs.create_queue(QueueName=work_queues.queue_name(stack, definition.name), Attributes=encrypted)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # Set, not created with: an existing queue keeps its messages and takes the description's settings.
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "VisibilityTimeout": str(definition.visibility_timeout_s),
            "MessageRetentionPeriod": str(QUEUE_RETENTION_S),
            "RedrivePolicy": json.dumps(redrive),
            "Policy": _tls_only_policy(arn),
        },
    )
    sqs.set_queue_attributes(QueueUrl=dead_url, Attributes={"Policy": _tls_only_policy(dead_arn)})
    return work_queues.WorkQueue(definition.name, url, dead_url)


def job_definition_request(
    definition: JobDefinition,
    outputs: Mapping[str, str],
    *,
    stack: str,
    region: str,
    image: str,
    local_code: Path | None = None,
) -> dict[str, Any]:
    """RegisterJobDefinition's arguments (pure): the template's shape for an analysis, from the stack's outputs.

    `local_code`: the embedded environment runs the job as a local process; its code is found there.
    """
    # The embedded environment (`local_code`) has no Secrets Manager secret: its launcher gives every job
    # the HSDS credentials of its own env file, for the names a job definition declares.
    needed = [contract.RESEARCHER_ROLE_OUTPUT, contract.ANALYSIS_EXECUTION_ROLE_OUTPUT]
    needed += [] if local_code is not None else [contract.HSDS_READER_SECRET_OUTPUT]
    missing = [name for name in needed if name not in outputs]
    if missing:
        raise ConfigError(f"stack {stack!r} lacks the outputs {', '.join(missing)} (created by an older stack.py?)")
    environment = {r.env: outputs[r.output] for r in contract.SHARED_RESOURCES if r.output in outputs}
    environment[Env.STACK_NAME] = stack
    environment[Env.AWS_REGION] = region
    if contract.HSDS_ENDPOINT_OUTPUT in outputs:
        environment[Env.HS_ENDPOINT] = outputs[contract.HSDS_ENDPOINT_OUTPUT]
    if local_code is not None:
        environment["PYTHONPATH"] = str(local_code.resolve())
    secret = outputs.get(contract.HSDS_READER_SECRET_OUTPUT)
    secrets = [
        {"name": Env.HS_USERNAME, "valueFrom": f"{secret}:{SECRET_USERNAME_KEY}::"},
        {"name": Env.HS_PASSWORD, "valueFrom": f"{secret}:{SECRET_PASSWORD_KEY}::"},
    ]
    if secret is None:  # the embedded environment: its launcher puts its env file's values in their place
        environment.update(dict.fromkeys((Env.HS_USERNAME, Env.HS_PASSWORD), LOCAL_VALUE))
        secrets = []
    description = json.dumps(definition.to_dict(), separators=(",", ":"))  # parameter order kept
    return {
        "jobDefinitionName": definition.name,
        "type": "container",
        "platformCapabilities": ["EC2"],
        "propagateTags": True,
        "tags": {contract.STACK_TAG: stack},
        "parameters": {**definition.batch_parameters(), registry.DESCRIPTION_PARAMETER: description},
        "timeout": {"attemptDurationSeconds": definition.timeout_s},
        "retryStrategy": {
            "attempts": 3,
            "evaluateOnExit": [
                {"onStatusReason": "Host EC2*", "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"},
            ],
        },
        "containerProperties": {
            "image": image,
            "command": definition.batch_command(),
            "jobRoleArn": outputs[contract.RESEARCHER_ROLE_OUTPUT],
            "executionRoleArn": outputs[contract.ANALYSIS_EXECUTION_ROLE_OUTPUT],
            "resourceRequirements": [
                {"type": "VCPU", "value": str(definition.vcpus)},
                {"type": "MEMORY", "value": str(definition.memory_mib)},
            ],
            "readonlyRootFilesystem": True,
            # The same private /tmp as the template's job definitions (matplotlib's cache, tempfile).
            "linuxParameters": {
                "tmpfs": [
                    {
                        "containerPath": batch.SCRATCH_PATH,
                        "size": batch.SCRATCH_MIB,
                        "mountOptions": list(batch.SCRATCH_MOUNT_OPTIONS),
                    }
                ]
            },
            "privileged": False,
            "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "secrets": secrets,
        },
    }


def register(
    definition: JobDefinition,
    *,
    cfn: CloudFormationClient,
    sqs: SQSClient,
    batch: BatchClient,
    stack: str,
    region: str,
    image: str,
    local_code: Path | None = None,
) -> Registration:
    """Queues first, then the job definition: once it is visible, its work has somewhere to go."""
    if definition.name in registry.builtin():
        raise BadInput(f"{definition.name!r} is a built-in analysis: choose another name for yours")
    try:
        outputs = stack_outputs(cfn, stack)
        queues = ensure_queues(sqs, stack, definition)
        request = job_definition_request(
            definition, outputs, stack=stack, region=region, image=image, local_code=local_code
        )
        answer = batch.register_job_definition(**request)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            raise ConfigError(f"not allowed to register {definition.name}: {exc}") from exc
        if code in ("ClientException", "ValidationError", "InvalidParameterValue"):
            raise BadInput(f"AWS refused {definition.name}'s registration: {exc}") from exc
        raise TransientError(f"registering {definition.name}: {exc}") from exc
    except BotoCoreError as exc:
        raise TransientError(f"registering {definition.name}: {exc}") from exc
    return Registration(
        definition.name,
        str(answer["jobDefinitionArn"]),
        int(answer.get("revision", 0)),
        queues.url,
        queues.dead_letter_url,
    )
