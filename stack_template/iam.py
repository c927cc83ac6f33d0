"""Who may do what: the roles of Batch, the workers, the researchers, HSDS and the schedule, and their policies.

Each worker's job role holds only the actions and resources its code uses (`worker_policies`);
an analysis takes its own work queue, reads the archive and writes results
(`analysis_policy`); every role is trusted by one AWS service of this account. The data key
is used only through the services holding data under it (`kms:ViaService`), the archive only
under `ArchivePrefix`, images come only from the stack's ECR repositories. Researchers' own
identities get the managed policy `ResearcherPolicy` (`researcher_cli_policy`: the CLI's calls).
The roles name the resources through `Access`, the ARNs `build_template` collects from the
storage family.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from awacs import batch as awacs_batch
from awacs import cloudformation as awacs_cfn
from awacs import dynamodb as ddb
from awacs import ecr
from awacs import kms as awacs_kms
from awacs import logs as awacs_logs
from awacs import s3 as awacs_s3
from awacs import secretsmanager as awacs_sm
from awacs import sqs as awacs_sqs
from awacs.aws import Allow, Condition, Statement, StringEquals, StringLike
from troposphere import GetAtt, Ref, Sub, Template
from troposphere import iam as tiam
from troposphere import secretsmanager as tsm
from troposphere import sqs as tsqs

from datacarousel import contract, registry, work_queues
from datacarousel.contract import JobDefinitionName
from datacarousel.hsds_accounts import HsdsRole
from stack_template.common import LOG_GROUP_NAME, policy_document, service_trust, stack_arn, under
from stack_template.storage import Queues


@dataclass(frozen=True)
class Access:
    """What the roles may touch: ARNs of this stack's resources."""

    key: Any
    archive_bucket: Any
    archive_objects: Any  # the archive's objects under ArchivePrefix
    archive_listing: Any  # the Condition of a ListBucket on the archive (the prefix, when there is one)
    results_bucket: Any
    results_objects: Any
    hsds_bucket: Any
    hsds_objects: Any
    tables: dict[str, Any]
    queues: Queues
    secrets: Mapping[HsdsRole, tsm.Secret]  # one per HSDS account
    image_repositories: Any  # ARN pattern of the stack's ECR repositories


def _table_arns(access: Access, name: str) -> list[Any]:
    arn = access.tables[name]
    return [arn, under(arn, "/index/*")]


_TABLE_READ = [ddb.GetItem, ddb.BatchGetItem, ddb.Query, ddb.DescribeTable]  # never Scan
_TABLE_WRITE = [ddb.PutItem, ddb.UpdateItem, ddb.ConditionCheckItem]
# Short tasks (the carousel step) receive and delete; long ones also extend a message's visibility.
_QUEUE_DRAIN = [awacs_sqs.ReceiveMessage, awacs_sqs.DeleteMessage, awacs_sqs.GetQueueAttributes]
_QUEUE_CONSUME = [*_QUEUE_DRAIN, awacs_sqs.ChangeMessageVisibility]
_QUEUE_SEND = [awacs_sqs.SendMessage, awacs_sqs.GetQueueAttributes]


# The services that use the data key on a role's behalf (kms:ViaService): the encrypted queues (SQS),
# tables (DynamoDB) and the HSDS secret (Secrets Manager). The buckets use S3-managed keys.
SQS, DYNAMODB, SECRETS_MANAGER = "sqs", "dynamodb", "secretsmanager"


def via_services(*services: str) -> Condition:
    """The key is used only through these AWS services of the stack's region (never called directly)."""
    return Condition(
        StringEquals({"kms:ViaService": [Sub(f"{service}.${{AWS::Region}}.amazonaws.com") for service in services]})
    )


def _kms_use(access: Access, *services: str) -> Statement:
    return Statement(
        Sid="UseDataKey",
        Effect=Allow,
        Action=[awacs_kms.Decrypt, awacs_kms.GenerateDataKey],
        Resource=[access.key],
        Condition=via_services(*services),
    )


def _consume(
    queue: tsqs.Queue | Sub, dlq: tsqs.Queue | Sub, sid: str, *, heartbeat: bool = True, by_name: bool = False
) -> list[Statement]:
    """Receive from `queue`, dead-letter to `dlq` (queues, or ARN patterns); `by_name`: the worker finds
    both with GetQueueUrl."""
    lookup = [awacs_sqs.GetQueueUrl] if by_name else []
    actions = [*(_QUEUE_CONSUME if heartbeat else _QUEUE_DRAIN), *lookup]
    queue_arn, dlq_arn = (GetAtt(q, "Arn") if isinstance(q, tsqs.Queue) else q for q in (queue, dlq))
    return [
        Statement(Sid=f"Consume{sid}", Effect=Allow, Action=actions, Resource=[queue_arn]),
        Statement(Sid=f"DeadLetter{sid}", Effect=Allow, Action=[*_QUEUE_SEND, *lookup], Resource=[dlq_arn]),
    ]


def _work_queues_of_stack(suffix: str) -> Sub:
    """Every work queue (or its dead-letter queue) of this stack, built in or registered later, by name."""
    return stack_arn("sqs", f"${{AWS::StackName}}-*{suffix}")


def analysis_policy(access: Access, analysis: str | None) -> list[Statement]:
    """What an analysis's job role may do: take its own work, read the archive, write results.

    `analysis` None: the researchers' role, shared by the definitions registered after the stack was
    created (`datacarousel definitions register`), whose queues the template cannot name: the
    stack's work queues by name.
    """
    queues = (
        access.queues.work[analysis]
        if analysis is not None
        else (_work_queues_of_stack(work_queues.WORK_SUFFIX), _work_queues_of_stack(work_queues.DEAD_LETTER_SUFFIX))
    )
    work = _consume(*queues, "WorkItems", by_name=True)
    return [
        *work,
        *_read_archive(access),
        Statement(Sid="ListResults", Effect=Allow, Action=[awacs_s3.ListBucket], Resource=[access.results_bucket]),
        Statement(Sid="ReadResults", Effect=Allow, Action=[awacs_s3.GetObject], Resource=[access.results_objects]),
        Statement(
            Sid="WriteResults",
            Effect=Allow,
            Action=[awacs_s3.PutObject],
            Resource=[under(access.results_bucket, f"/{contract.RESULTS_PREFIX}/*")],
        ),
        _kms_use(access, SQS),
    ]


def worker_policies(access: Access) -> dict[str, list[Statement]]:
    """Each worker's statements: only the actions and resources its code uses."""
    q = access.queues
    files = contract.FILES_TABLE_NAME
    return {
        JobDefinitionName.LOADER: [
            *_read_archive(access),
            Statement(Sid="SendIndexRequests", Effect=Allow, Action=_QUEUE_SEND, Resource=[GetAtt(q.index, "Arn")]),
            # Reads BasicFusionFiles (is the file indexed?); writes only its own ledger, in batches.
            _table(access, "FilesTable", files, write=False),
            Statement(
                Sid="IndexRequestLedger",
                Effect=Allow,
                Action=[ddb.BatchGetItem, ddb.BatchWriteItem],
                Resource=[access.tables[contract.INDEX_REQUESTS_TABLE_NAME]],
            ),
            _kms_use(access, SQS, DYNAMODB),
        ],
        JobDefinitionName.INDEX_FILE: [
            *_consume(q.index, q.index_dlq, "IndexRequests"),
            *_read_archive(access),
            _table(access, "FilesTable", files, write=True),
            _kms_use(access, SQS, DYNAMODB),
        ],
        # Reads HSDS (HTTP, no IAM), writes BasicFusionFiles.
        JobDefinitionName.RECORD_METADATA: [
            _table(access, "FilesTable", files, write=True),
            _kms_use(access, DYNAMODB),
        ],
        JobDefinitionName.CAROUSEL: _carousel_policy(access),
        **{name: analysis_policy(access, name) for name in registry.builtin()},
    }


def _list_archive(access: Access) -> Statement:
    """List the archive under its prefix only (the whole bucket when ArchivePrefix is empty)."""
    return Statement(
        Sid="ListArchive",
        Effect=Allow,
        Action=[awacs_s3.ListBucket],
        Resource=[access.archive_bucket],
        Condition=access.archive_listing,
    )


def _read_archive(access: Access) -> list[Statement]:
    return [
        _list_archive(access),
        Statement(Sid="ReadArchive", Effect=Allow, Action=[awacs_s3.GetObject], Resource=[access.archive_objects]),
    ]


def _table(access: Access, sid: str, name: str, *, write: bool) -> Statement:
    actions = _TABLE_READ + (_TABLE_WRITE if write else [])
    return Statement(Sid=sid, Effect=Allow, Action=actions, Resource=_table_arns(access, name))


def _batch_submit(names: Sequence[str]) -> list[Statement]:
    return [
        Statement(
            Sid="SubmitJobs",
            Effect=Allow,
            Action=[awacs_batch.SubmitJob],
            Resource=[
                stack_arn("batch", f"job-queue/{contract.JOB_QUEUE_NAME}"),
                # By name (latest revision) or by name:revision.
                *(stack_arn("batch", f"job-definition/{name}{rev}") for name in names for rev in ("", ":*")),
            ],
        ),
        # Registered job definitions, unknown to the template: those tagged with this stack's name.
        Statement(
            Sid="SubmitRegisteredJobs",
            Effect=Allow,
            Action=[awacs_batch.SubmitJob],
            Resource=[stack_arn("batch", "job-definition/*")],
            Condition=Condition(StringEquals({f"aws:ResourceTag/{contract.STACK_TAG}": Ref("AWS::StackName")})),
        ),
        # ListJobs has no resource-level permissions in IAM: "*" is the only resource it takes.
        Statement(Sid="ListJobs", Effect=Allow, Action=[awacs_batch.ListJobs], Resource=["*"]),
    ]


def _carousel_policy(access: Access) -> list[Statement]:
    """The carousel step's statements: restores, releases work, drains dead letters, submits jobs."""
    q = access.queues
    return [
        *_consume(q.restore_events, q.restore_events_dlq, "RestoreEvents", heartbeat=False),
        Statement(Sid="QueueIndexRequests", Effect=Allow, Action=_QUEUE_SEND, Resource=[GetAtt(q.index, "Arn")]),
        # Work goes to each job definition's own queue, found by name (datacarousel.work_queues).
        Statement(
            Sid="ReleaseWork",
            Effect=Allow,
            Action=[*_QUEUE_SEND, awacs_sqs.GetQueueUrl],
            Resource=[_work_queues_of_stack(work_queues.WORK_SUFFIX)],
        ),
        # The step records failed work items and index requests from the dead-letter queues.
        Statement(Sid="DrainDeadLetters", Effect=Allow, Action=_QUEUE_DRAIN, Resource=[GetAtt(q.index_dlq, "Arn")]),
        Statement(
            Sid="DrainWorkDeadLetters",
            Effect=Allow,
            Action=[*_QUEUE_DRAIN, awacs_sqs.GetQueueUrl],
            Resource=[_work_queues_of_stack(work_queues.DEAD_LETTER_SUFFIX)],
        ),
        _list_archive(access),
        Statement(Sid="ListResults", Effect=Allow, Action=[awacs_s3.ListBucket], Resource=[access.results_bucket]),
        # A job with a reducer is complete once its reducer's marker exists; the carousel writes no result.
        Statement(
            Sid="ReadReducedMarkers",
            Effect=Allow,
            Action=[awacs_s3.GetObject],
            Resource=[under(access.results_bucket, f"/{contract.RESULTS_PREFIX}/*/{contract.REDUCED_MARKER}")],
        ),
        Statement(
            Sid="RestoreArchive",
            Effect=Allow,
            Action=[awacs_s3.GetObject, awacs_s3.RestoreObject],
            Resource=[access.archive_objects],
        ),
        _table(access, "FilesTable", contract.FILES_TABLE_NAME, write=True),
        _table(access, "JobsTable", contract.JOBS_TABLE_NAME, write=True),
        _table(access, "JobFilesTable", contract.JOB_FILES_TABLE_NAME, write=True),
        *_batch_submit(
            [
                *(d.value for d in JobDefinitionName if d is not JobDefinitionName.CAROUSEL),
                *registry.builtin(),
            ]
        ),
        _kms_use(access, SQS, DYNAMODB),
    ]


@dataclass(frozen=True)
class Roles:
    batch_service: tiam.Role
    instance_profile: tiam.InstanceProfile
    # The execution role of a job (image pull, logs, its HSDS account's secret) by its HSDS account
    # (`datacarousel.hsds_accounts.role_of`; None: the loader, no secret).
    execution: dict[HsdsRole | None, tiam.Role]
    hsds_execution: tiam.Role  # the HSDS task's: every account's secret (its password file)
    workers: dict[str, tiam.Role]  # by job definition name
    researcher: tiam.Role  # the job role of registered definitions
    hsds_task: tiam.Role
    schedule: tiam.Role
    researcher_policy: tiam.ManagedPolicy  # what a researcher's own identity needs for the CLI


PIPELINE_ROLE_PREFIX = {
    JobDefinitionName.LOADER.value: "Loader",
    JobDefinitionName.INDEX_FILE.value: "IndexFile",
    JobDefinitionName.RECORD_METADATA.value: "RecordMetadata",
    JobDefinitionName.CAROUSEL.value: "Carousel",
}


def role_prefix(definition: str) -> str:
    """Logical-id prefix of a job definition's role and job definition (an analysis: its name, alphanumeric)."""
    return PIPELINE_ROLE_PREFIX.get(definition) or re.sub(r"[^A-Za-z0-9]", "", definition)


def _role(t: Template, title: str, service: str, statements: list[Statement], **kwargs: Any) -> tiam.Role:
    policies = [tiam.Policy(PolicyName=title, PolicyDocument=policy_document(*statements))] if statements else []
    return t.add_resource(
        tiam.Role(title, AssumeRolePolicyDocument=service_trust(service), Policies=policies, **kwargs)
    )


def add_roles(t: Template, access: Access) -> Roles:
    batch_service, instance_profile = _add_batch_roles(t)
    execution, hsds_execution = _add_execution_roles(t, access)
    workers = {
        definition: _role(t, f"{role_prefix(definition)}JobRole", "ecs-tasks.amazonaws.com", statements)
        for definition, statements in worker_policies(access).items()
    }
    researcher = _role(t, "ResearcherJobRole", "ecs-tasks.amazonaws.com", analysis_policy(access, None))
    hsds_task = _add_hsds_task_role(t, access)
    schedule = _add_schedule_role(t)
    researcher_policy = t.add_resource(
        tiam.ManagedPolicy(
            "ResearcherPolicy",
            Description="Data Carousel CLI: submit, status, cancel, files, fetch (attach to researchers)",
            PolicyDocument=policy_document(*researcher_cli_policy(access)),
        )
    )
    return Roles(
        batch_service,
        instance_profile,
        execution,
        hsds_execution,
        workers,
        researcher,
        hsds_task,
        schedule,
        researcher_policy,
    )


def researcher_cli_policy(access: Access) -> list[Statement]:
    """What a researcher's own identity needs for `datacarousel env --stack`, `submit`, `status`, `cancel`,
    `files` and `fetch`: exactly the calls those commands make, on this stack's resources.

    The tables: the files by their indexes (selections) and by name (a job's files); the jobs by state and
    by id, created by submit and cancelled by cancel; a job's job-files written once by submit and read
    back by status. The results bucket: read and listed under `results/` only.
    """
    files, jobs, job_files = (
        access.tables[name]
        for name in (contract.FILES_TABLE_NAME, contract.JOBS_TABLE_NAME, contract.JOB_FILES_TABLE_NAME)
    )
    results = f"{contract.RESULTS_PREFIX}/"
    return [
        # `datacarousel env --stack`: the stack's outputs become the DC_* variables.
        Statement(
            Sid="ReadStackOutputs",
            Effect=Allow,
            Action=[awacs_cfn.DescribeStacks],
            Resource=[Ref("AWS::StackId")],
        ),
        Statement(Sid="SelectFiles", Effect=Allow, Action=[ddb.Query], Resource=[under(files, "/index/*")]),
        Statement(Sid="ReadFiles", Effect=Allow, Action=[ddb.BatchGetItem], Resource=[files]),
        Statement(Sid="FindJobs", Effect=Allow, Action=[ddb.Query], Resource=[under(jobs, "/index/*")]),
        Statement(
            Sid="SubmitAndCancelJobs",
            Effect=Allow,
            Action=[ddb.GetItem, ddb.PutItem, ddb.UpdateItem],
            Resource=[jobs],
        ),
        Statement(Sid="JobFiles", Effect=Allow, Action=[ddb.Query, ddb.BatchWriteItem], Resource=[job_files]),
        Statement(
            Sid="ListResults",
            Effect=Allow,
            Action=[awacs_s3.ListBucket],
            Resource=[access.results_bucket],
            Condition=Condition(StringLike({"s3:prefix": [f"{results}*"]})),
        ),
        Statement(
            Sid="FetchResults",
            Effect=Allow,
            Action=[awacs_s3.GetObject],
            Resource=[under(access.results_bucket, f"/{results}*")],
        ),
        # Submitting to a registered analysis reads its definition; IAM has no resource-level
        # permission for DescribeJobDefinitions: "*" is the only resource it takes.
        Statement(
            Sid="FindRegisteredDefinitions",
            Effect=Allow,
            Action=[awacs_batch.DescribeJobDefinitions],
            Resource=["*"],
        ),
        _kms_use(access, DYNAMODB),
    ]


def _add_batch_roles(t: Template) -> tuple[tiam.Role, tiam.InstanceProfile]:
    """AWS Batch's service role and its instances' profile (AWS-managed policies)."""
    aws_managed = "arn:${AWS::Partition}:iam::aws:policy/service-role/"
    batch_service = _role(
        t,
        "BatchServiceRole",
        "batch.amazonaws.com",
        [],
        ManagedPolicyArns=[Sub(aws_managed + "AWSBatchServiceRole")],
    )
    instance_role = _role(
        t,
        "BatchInstanceRole",
        "ec2.amazonaws.com",
        [],
        ManagedPolicyArns=[Sub(aws_managed + "AmazonEC2ContainerServiceforEC2Role")],
    )
    instance_profile = t.add_resource(tiam.InstanceProfile("BatchInstanceProfile", Roles=[Ref(instance_role)]))
    return batch_service, instance_profile


# The execution roles: one per HSDS account a job runs as, so that a job's role reads its own secret only.
EXECUTION_ROLE_TITLES: Mapping[HsdsRole | None, str] = MappingProxyType(
    {None: "TaskExecutionRole", HsdsRole.WRITER: "WriterExecutionRole", HsdsRole.READER: "ReaderExecutionRole"}
)


def _add_execution_roles(t: Template, access: Access) -> tuple[dict[HsdsRole | None, tiam.Role], tiam.Role]:
    """Each job's execution role (by the HSDS account it runs as), and the HSDS task's (every secret)."""
    jobs = {
        role: _execution_role(t, title, access, [] if role is None else [access.secrets[role]])
        for role, title in EXECUTION_ROLE_TITLES.items()
    }
    hsds = _execution_role(t, "HsdsExecutionRole", access, [access.secrets[role] for role in HsdsRole])
    return jobs, hsds


def _execution_role(t: Template, title: str, access: Access, secrets: list[tsm.Secret]) -> tiam.Role:
    log_streams = Sub(
        f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{LOG_GROUP_NAME}:log-stream:*"
    )
    read_secrets = [
        Statement(
            Sid="ReadHsdsCredentials",
            Effect=Allow,
            Action=[awacs_sm.GetSecretValue],
            Resource=[Ref(secret) for secret in secrets],
        ),
        Statement(
            Sid="DecryptHsdsCredentials",
            Effect=Allow,
            Action=[awacs_kms.Decrypt],
            Resource=[access.key],
            Condition=via_services(SECRETS_MANAGER),
        ),
    ]
    return _role(
        t,
        title,
        "ecs-tasks.amazonaws.com",
        [
            # GetAuthorizationToken has no resource-level permissions in IAM.
            Statement(Sid="EcrLogin", Effect=Allow, Action=[ecr.GetAuthorizationToken], Resource=["*"]),
            Statement(
                Sid="PullImages",
                Effect=Allow,
                Action=[ecr.BatchCheckLayerAvailability, ecr.GetDownloadUrlForLayer, ecr.BatchGetImage],
                Resource=[access.image_repositories],
            ),
            Statement(
                Sid="WriteLogs",
                Effect=Allow,
                Action=[awacs_logs.CreateLogStream, awacs_logs.PutLogEvents],
                Resource=[log_streams],
            ),
            *(read_secrets if secrets else []),
        ],
    )


def _add_hsds_task_role(t: Template, access: Access) -> tiam.Role:
    return _role(
        t,
        "HsdsTaskRole",
        "ecs-tasks.amazonaws.com",
        [
            Statement(Sid="ListHsdsBucket", Effect=Allow, Action=[awacs_s3.ListBucket], Resource=[access.hsds_bucket]),
            Statement(
                Sid="HsdsStorage",
                Effect=Allow,
                Action=[awacs_s3.GetObject, awacs_s3.PutObject, awacs_s3.DeleteObject],
                Resource=[access.hsds_objects],
            ),
            # Linked domains (hsload --link) read their chunks straight from the restored archive objects.
            Statement(
                Sid="ReadLinkedFiles", Effect=Allow, Action=[awacs_s3.GetObject], Resource=[access.archive_objects]
            ),
        ],
    )


def _add_schedule_role(t: Template) -> tiam.Role:
    return _role(
        t,
        "CarouselScheduleRole",
        "events.amazonaws.com",
        [
            Statement(
                Sid="SubmitCarouselStep",
                Effect=Allow,
                Action=[awacs_batch.SubmitJob],
                Resource=[
                    stack_arn("batch", f"job-queue/{contract.JOB_QUEUE_NAME}"),
                    stack_arn("batch", f"job-definition/{JobDefinitionName.CAROUSEL.value}"),
                    stack_arn("batch", f"job-definition/{JobDefinitionName.CAROUSEL.value}:*"),
                ],
            )
        ],
    )
