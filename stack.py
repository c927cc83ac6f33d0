"""The Data Carousel as one CloudFormation template (troposphere, IAM with awacs).

`python stack.py > stack.json` prints the template. An operator creates the stack
from the CloudFormation console (or `aws cloudformation deploy`) with a VPC,
subnets, a security group and the image URIs at hand; see docs/operator.md.

The template is composed of one small function per resource family; each adds
its resources to the template and returns what it created, so later families
can refer to them. Every shared name (tables, indexes, job queue, job
definitions, environment variables, outputs) comes from `datacarousel.contract`.
Logical IDs are API (stack updates, the embedded environment, the golden test):
keep them stable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from awacs import batch as awacs_batch
from awacs import dynamodb as ddb
from awacs import ecr, sts
from awacs import kms as awacs_kms
from awacs import logs as awacs_logs
from awacs import s3 as awacs_s3
from awacs import secretsmanager as awacs_sm
from awacs import sqs as awacs_sqs
from awacs.aws import (
    Action,
    Allow,
    ArnLike,
    Bool,
    Condition,
    Deny,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import (
    GetAtt,
    Output,
    Parameter,
    Ref,
    Select,
    Split,
    Sub,
    Template,
)
from troposphere import batch as tbatch
from troposphere import dynamodb as tddb
from troposphere import ec2 as tec2
from troposphere import ecs as tecs
from troposphere import events as tevents
from troposphere import iam as tiam
from troposphere import kms as tkms
from troposphere import logs as tlogs
from troposphere import s3 as ts3
from troposphere import secretsmanager as tsm
from troposphere import servicediscovery as tsd
from troposphere import sqs as tsqs

from datacarousel import contract, registry, work_queues
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.definitions import JobDefinition

POLICY_VERSION = "2012-10-17"
# Stateful resources say what happens to their data on stack deletion or replacement.
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}  # data that outlives the stack
DELETE = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}  # transient data
HSDS_PORT = 5101  # HSDS service node (contract with h5pyd clients: HS_ENDPOINT)
HSDS_SERVICE_NAME = "hsds"  # Cloud Map service: HS_ENDPOINT is http://hsds.<namespace>:5101
HSDS_NAMESPACE = "${AWS::StackName}.internal"  # private DNS namespace (a Sub expression)
HSDS_DATA_NODE_PORT = 6101  # first data node; data nodes listen on 6101, 6102, ... inside the task
LOG_RETENTION_DAYS = 365
QUEUE_RETENTION_S = 7 * 24 * 3600
DEAD_LETTER_RETENTION_S = 14 * 24 * 3600  # longer than the source queue: a message's age carries over
# S3 events the archive bucket sends to the restore-events queue: a restore finished, a restored copy expired.
RESTORE_EVENTS = ("s3:ObjectRestore:Completed", "s3:ObjectRestore:Delete")
SECRET_USERNAME_KEY = "username"
SECRET_PASSWORD_KEY = "password"
IMAGE_URI_PATTERN = (
    r"^[a-z0-9][a-z0-9.-]*(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
)


def _skip(*checks: tuple[str, str]) -> dict[str, Any]:
    """Resource Metadata telling checkov which checks are skipped, each with its reason."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in checks]}}


def _arn(service: str, resource: str) -> Sub:
    """ARN of a resource of this stack's region and account."""
    return Sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def _doc(*statements: Statement) -> PolicyDocument:
    return PolicyDocument(Version=POLICY_VERSION, Statement=list(statements))


# Services that name the calling account (aws:SourceAccount) when they assume a role. EC2 does not
# when it assumes an instance profile's role, so a condition there would lock the instances out.
SOURCE_ACCOUNT_SERVICES = frozenset({"batch.amazonaws.com", "ecs-tasks.amazonaws.com", "events.amazonaws.com"})


def _service_trust(service: str) -> PolicyDocument:
    """Trust policy for an AWS service, limited to this account where the service allows (confused deputy)."""
    guard = {}
    if service in SOURCE_ACCOUNT_SERVICES:
        guard["Condition"] = Condition(StringEquals({"aws:SourceAccount": Ref("AWS::AccountId")}))
    return _doc(Statement(Effect=Allow, Principal=Principal("Service", [service]), Action=[sts.AssumeRole], **guard))


def _tls_only(resources: list[Any], action: Action) -> Statement:
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=[action],
        Resource=resources,
        Condition=Condition(Bool({"aws:SecureTransport": "false"})),
    )


# --- parameters ------------------------------------------------------------------


@dataclass(frozen=True)
class Parameters:
    vpc: Parameter
    subnets: Parameter
    security_group: Parameter
    images: dict[str, Parameter]  # by job definition name
    hsds_image: Parameter
    hsds_username: Parameter
    window_bytes: Parameter
    window_files: Parameter
    restore_tier: Parameter
    restore_days: Parameter
    carousel_schedule: Parameter
    max_vcpus: Parameter
    archive_prefix: Parameter
    archive_transition_days: Parameter
    log_level: Parameter


def add_parameters(t: Template) -> Parameters:
    vpc = t.add_parameter(
        Parameter(
            "VpcId",
            Type="AWS::EC2::VPC::Id",
            Description="VPC holding the subnets below (DNS resolution and DNS hostnames on, for Cloud Map)",
        )
    )
    subnets = t.add_parameter(
        Parameter(
            "SubnetIds",
            Type="List<AWS::EC2::Subnet::Id>",
            Description=(
                "One or more subnets of that VPC for the Batch instances and the HSDS task; they need a route "
                "to S3, ECR, CloudWatch Logs and Secrets Manager (NAT or VPC endpoints)"
            ),
        )
    )
    security_group = t.add_parameter(
        Parameter(
            "SecurityGroupId",
            Type="AWS::EC2::SecurityGroup::Id",
            Description=(
                "Security group of the workers (Batch instances); the only group admitted to HSDS. "
                f"It must allow outbound HTTPS and TCP {HSDS_PORT} inside the VPC"
            ),
        )
    )
    images: dict[str, Parameter] = {}
    for worker in registry.worker_images():
        images[worker.job_definition] = t.add_parameter(
            Parameter(
                worker.parameter,
                Type="String",
                AllowedPattern=IMAGE_URI_PATTERN,
                ConstraintDescription="an image URI with registry and tag or digest, e.g. "
                f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{worker.image}:1.0",
                Description=f"URI of the {worker.image} image (job definition {worker.job_definition})",
            )
        )
    hsds_image = t.add_parameter(
        Parameter(
            contract.HSDS_IMAGE_PARAMETER,
            Type="String",
            AllowedPattern=IMAGE_URI_PATTERN,
            ConstraintDescription="an image URI with registry and tag or digest",
            Description="URI of the HSDS server image (provides `python -m hsds.node_runner`, hsds >= 1.0)",
        )
    )
    hsds_username = t.add_parameter(
        Parameter(
            "HsdsUsername",
            Type="String",
            Default=contract.PROJECT,
            AllowedPattern=r"^[a-z][a-z0-9_-]{0,31}$",
            ConstraintDescription="lower-case letters, digits, '_' or '-', starting with a letter",
            Description="HSDS user of the workers (its password is generated into Secrets Manager)",
        )
    )
    window_bytes = t.add_parameter(
        Parameter(
            "WindowBytes",
            Type="Number",
            Default=str(50 * 10**12),
            MinValue=1,
            Description="Carousel window: most bytes restored (staged in S3 Standard) at once",
        )
    )
    window_files = t.add_parameter(
        Parameter(
            "WindowFiles",
            Type="Number",
            Default="2000",
            MinValue=1,
            Description="Carousel window: most files restored at once",
        )
    )
    restore_tier = t.add_parameter(
        Parameter(
            "RestoreTier",
            Type="String",
            Default=contract.RestoreTier.BULK.value,
            # Expedited retrieval does not exist for S3 Glacier Deep Archive, the archive's storage class.
            AllowedValues=[contract.RestoreTier.BULK.value, contract.RestoreTier.STANDARD.value],
            Description="Restore tier: Bulk (up to 48 h, cheapest) or Standard (up to 12 h); "
            "Deep Archive has no Expedited tier",
        )
    )
    restore_days = t.add_parameter(
        Parameter(
            "RestoreDays",
            Type="Number",
            Default="7",
            MinValue=1,
            MaxValue=365,
            Description="Restore lease: days a restored copy stays readable (renewed while files are needed)",
        )
    )
    carousel_schedule = t.add_parameter(
        Parameter(
            "CarouselSchedule",
            Type="String",
            Default="rate(15 minutes)",
            AllowedPattern=r"^(rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$",
            ConstraintDescription="an EventBridge schedule expression: rate(...) or cron(...)",
            Description="How often the carousel step runs (EventBridge schedule expression)",
        )
    )
    max_vcpus = t.add_parameter(
        Parameter(
            "MaxVcpus",
            Type="Number",
            Default="256",
            MinValue=1,
            MaxValue=10000,
            Description="Most vCPUs the Batch compute environment may run at once",
        )
    )
    archive_prefix = t.add_parameter(
        Parameter(
            "ArchivePrefix",
            Type="String",
            Default="",
            AllowedPattern=r"^([A-Za-z0-9!_.*'()/-]*)$",
            Description="Key prefix of the BasicFusion files in the archive bucket (empty: the whole bucket)",
        )
    )
    archive_transition_days = t.add_parameter(
        Parameter(
            "ArchiveTransitionDays",
            Type="Number",
            Default="0",
            MinValue=0,
            Description="Days after upload before an archive object moves to S3 Glacier Deep Archive",
        )
    )
    log_level = t.add_parameter(
        Parameter(
            "LogLevel",
            Type="String",
            Default="INFO",
            AllowedValues=["DEBUG", "INFO", "WARNING", "ERROR"],
            Description="Log level of the workers",
        )
    )
    params = Parameters(
        vpc=vpc,
        subnets=subnets,
        security_group=security_group,
        images=images,
        hsds_image=hsds_image,
        hsds_username=hsds_username,
        window_bytes=window_bytes,
        window_files=window_files,
        restore_tier=restore_tier,
        restore_days=restore_days,
        carousel_schedule=carousel_schedule,
        max_vcpus=max_vcpus,
        archive_prefix=archive_prefix,
        archive_transition_days=archive_transition_days,
        log_level=log_level,
    )
    _add_console_interface(t, params)
    return params


def _add_console_interface(t: Template, p: Parameters) -> None:
    """Parameter groups and labels for the CloudFormation console."""
    groups = [
        ("Network", [p.vpc, p.subnets, p.security_group]),
        ("Container images", [*p.images.values(), p.hsds_image]),
        (
            "Carousel",
            [p.window_bytes, p.window_files, p.restore_tier, p.restore_days, p.carousel_schedule, p.archive_prefix],
        ),
        ("Compute and storage", [p.max_vcpus, p.archive_transition_days, p.hsds_username, p.log_level]),
    ]
    t.set_metadata(
        {
            "AWS::CloudFormation::Interface": {
                "ParameterGroups": [
                    {"Label": {"default": label}, "Parameters": [param.title for param in members]}
                    for label, members in groups
                ]
            }
        }
    )


# --- encryption key ------------------------------------------------------------------------


LOG_GROUP_NAME = "/datacarousel/${AWS::StackName}"


def archive_bucket_name() -> Sub:
    """The archive bucket's name, fixed before the bucket exists.

    The restore-events queue policy and the key policy must name the bucket
    (aws:SourceArn) before S3 validates the bucket's notification target, so the
    name cannot come from the bucket itself: account id plus a piece of the stack
    id keeps it globally unique.
    """
    stack_uuid = Select(2, Split("/", Ref("AWS::StackId")))
    return Sub(
        f"{contract.PROJECT}-archive-${{AWS::AccountId}}-${{StackSuffix}}",
        StackSuffix=Select(4, Split("-", stack_uuid)),
    )


def archive_bucket_arn() -> Sub:
    return Sub("arn:${AWS::Partition}:s3:::${Name}", Name=archive_bucket_name())


def _under(arn: Any, suffix: str) -> Sub:
    """`arn` followed by `suffix` (objects of a bucket, indexes of a table, ...)."""
    return Sub(f"${{Arn}}{suffix}", Arn=arn)


def add_key(t: Template) -> tkms.Key:
    """One customer-managed key (rotated) for queues, tables, the secret and the log group."""
    root = Principal("AWS", [Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")])
    key_admin_and_use = [
        Action("kms", name)
        for name in (
            "Create*",
            "Describe*",
            "Enable*",
            "List*",
            "Put*",
            "Update*",
            "Revoke*",
            "Disable*",
            "Get*",
            "Delete*",
            "TagResource",
            "UntagResource",
            "ScheduleKeyDeletion",
            "CancelKeyDeletion",
            "Encrypt",
            "Decrypt",
            "ReEncrypt*",
            "GenerateDataKey*",
            "RetireGrant",
        )
    ]
    policy = _doc(
        Statement(
            Sid="AccountAdministersAndDelegatesThroughIam",
            Effect=Allow,
            Principal=root,
            Action=key_admin_and_use,
            Resource=["*"],
        ),
        Statement(
            Sid="ArchiveBucketNotifiesEncryptedQueue",
            Effect=Allow,
            Principal=Principal("Service", ["s3.amazonaws.com"]),
            Action=[awacs_kms.GenerateDataKey, awacs_kms.Decrypt],
            Resource=["*"],
            Condition=Condition(
                [
                    StringEquals({"aws:SourceAccount": Ref("AWS::AccountId")}),
                    ArnLike({"aws:SourceArn": archive_bucket_arn()}),
                ]
            ),
        ),
        Statement(
            Sid="LogsEncryptTheLogGroup",
            Effect=Allow,
            Principal=Principal("Service", [Sub("logs.${AWS::Region}.amazonaws.com")]),
            Action=[
                awacs_kms.Encrypt,
                awacs_kms.Decrypt,
                Action("kms", "ReEncrypt*"),
                Action("kms", "GenerateDataKey*"),
                awacs_kms.DescribeKey,
            ],
            Resource=["*"],
            Condition=Condition(
                ArnLike(
                    {
                        "kms:EncryptionContext:aws:logs:arn": Sub(
                            f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{LOG_GROUP_NAME}"
                        )
                    }
                )
            ),
        ),
    )
    key = t.add_resource(
        tkms.Key(
            "DataKey",
            **RETAIN,  # the retained tables stay encrypted with it
            Description="Data Carousel: queues, tables, the HSDS secret and the log group",
            EnableKeyRotation=True,
            KeyPolicy=policy,
        )
    )
    t.add_resource(tkms.Alias("DataKeyAlias", AliasName=Sub("alias/${AWS::StackName}-data"), TargetKeyId=Ref(key)))
    return key


# --- S3 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buckets:
    logs: ts3.Bucket
    archive: ts3.Bucket
    results: ts3.Bucket
    hsds: ts3.Bucket


def _private_bucket_properties() -> dict[str, Any]:
    return {
        "BucketEncryption": ts3.BucketEncryption(
            ServerSideEncryptionConfiguration=[
                ts3.ServerSideEncryptionRule(
                    ServerSideEncryptionByDefault=ts3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
                )
            ]
        ),
        "PublicAccessBlockConfiguration": ts3.PublicAccessBlockConfiguration(
            BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
        ),
        "OwnershipControls": ts3.OwnershipControls(
            Rules=[ts3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
        ),
        "VersioningConfiguration": ts3.VersioningConfiguration(Status="Enabled"),
    }


def _bucket_policy(t: Template, bucket: ts3.Bucket, *extra: Statement) -> ts3.BucketPolicy:
    arn = GetAtt(bucket, "Arn")
    return t.add_resource(
        ts3.BucketPolicy(
            f"{bucket.title}Policy",
            Bucket=Ref(bucket),
            PolicyDocument=_doc(_tls_only([arn, _under(arn, "/*")], Action("s3", "*")), *extra),
        )
    )


def _abort_uploads_rule() -> ts3.LifecycleRule:
    return ts3.LifecycleRule(
        Id="AbortIncompleteUploads",
        Status="Enabled",
        AbortIncompleteMultipartUpload=ts3.AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
    )


def add_buckets(
    t: Template, p: Parameters, restore_events: tsqs.Queue, restore_events_policy: tsqs.QueuePolicy
) -> Buckets:
    logs = t.add_resource(
        ts3.Bucket(
            "AccessLogsBucket",
            **RETAIN,
            Metadata=_skip(
                ("CKV_AWS_18", "This is the access-log bucket; logging it into itself would loop"),
            ),
            LifecycleConfiguration=ts3.LifecycleConfiguration(
                Rules=[
                    ts3.LifecycleRule(
                        Id="ExpireAccessLogs",
                        Status="Enabled",
                        ExpirationInDays=LOG_RETENTION_DAYS,
                        NoncurrentVersionExpiration=ts3.NoncurrentVersionExpiration(NoncurrentDays=30),
                    ),
                    _abort_uploads_rule(),
                ]
            ),
            **_private_bucket_properties(),
        )
    )

    def logging(prefix: str) -> ts3.LoggingConfiguration:
        return ts3.LoggingConfiguration(DestinationBucketName=Ref(logs), LogFilePrefix=f"{prefix}/")

    archive = t.add_resource(
        ts3.Bucket(
            "ArchiveBucket",
            **RETAIN,
            DependsOn=[restore_events_policy.title],
            BucketName=archive_bucket_name(),
            LoggingConfiguration=logging("archive"),
            LifecycleConfiguration=ts3.LifecycleConfiguration(
                Rules=[
                    ts3.LifecycleRule(
                        Id="ToDeepArchive",
                        Status="Enabled",
                        Transitions=[
                            ts3.LifecycleRuleTransition(
                                StorageClass="DEEP_ARCHIVE", TransitionInDays=Ref(p.archive_transition_days)
                            )
                        ],
                        NoncurrentVersionTransitions=[
                            ts3.NoncurrentVersionTransition(StorageClass="DEEP_ARCHIVE", TransitionInDays=0)
                        ],
                        # Deep Archive bills 180 days at least: keep a replaced version that long, then drop it.
                        NoncurrentVersionExpiration=ts3.NoncurrentVersionExpiration(NoncurrentDays=180),
                    ),
                    _abort_uploads_rule(),
                ]
            ),
            NotificationConfiguration=ts3.NotificationConfiguration(
                QueueConfigurations=[
                    ts3.QueueConfigurations(Event=event, Queue=GetAtt(restore_events, "Arn"))
                    for event in RESTORE_EVENTS
                ]
            ),
            **_private_bucket_properties(),
        )
    )

    def working_bucket(logical_id: str, log_prefix: str, rule_id: str, noncurrent_days: int) -> ts3.Bucket:
        """A private, versioned bucket whose replaced objects expire after `noncurrent_days`."""
        return t.add_resource(
            ts3.Bucket(
                logical_id,
                **RETAIN,  # CloudFormation cannot delete a bucket that still holds objects
                LoggingConfiguration=logging(log_prefix),
                LifecycleConfiguration=ts3.LifecycleConfiguration(
                    Rules=[
                        ts3.LifecycleRule(
                            Id=rule_id,
                            Status="Enabled",
                            NoncurrentVersionExpiration=ts3.NoncurrentVersionExpiration(NoncurrentDays=noncurrent_days),
                        ),
                        _abort_uploads_rule(),
                    ]
                ),
                **_private_bucket_properties(),
            )
        )

    results = working_bucket("ResultsBucket", "results", "ExpireReplacedResults", 30)
    # HSDS rewrites its metadata objects often: keep a short recovery window only.
    hsds = working_bucket("HsdsBucket", "hsds", "ExpireReplacedHsdsObjects", 7)
    sources = [archive_bucket_arn(), GetAtt(results, "Arn"), GetAtt(hsds, "Arn")]
    _bucket_policy(
        t,
        logs,
        Statement(
            Sid="S3ServerAccessLogs",
            Effect=Allow,
            Principal=Principal("Service", ["logging.s3.amazonaws.com"]),
            Action=[awacs_s3.PutObject],
            Resource=[_under(GetAtt(logs, "Arn"), "/*")],
            Condition=Condition(
                [
                    StringEquals({"aws:SourceAccount": Ref("AWS::AccountId")}),
                    ArnLike({"aws:SourceArn": sources}),
                ]
            ),
        ),
    )
    for bucket in (archive, results, hsds):
        _bucket_policy(t, bucket)
    return Buckets(logs=logs, archive=archive, results=results, hsds=hsds)


# --- SQS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queues:
    index: tsqs.Queue
    index_dlq: tsqs.Queue
    restore_events: tsqs.Queue
    restore_events_dlq: tsqs.Queue
    restore_events_policy: tsqs.QueuePolicy
    # Each analysis's own work queue and dead-letter queue, by job definition name (datacarousel.work_queues).
    work: dict[str, tuple[tsqs.Queue, tsqs.Queue]]

    def work_queues(self) -> dict[tsqs.Queue, tsqs.Queue]:
        """Each consumed queue and its dead-letter queue."""
        return {
            self.index: self.index_dlq,
            **dict(self.work.values()),
            self.restore_events: self.restore_events_dlq,
        }


def _stack_named(name: str) -> dict[str, Any]:
    """A QueueName under the stack's name: how the carousel and the workers find a work queue."""
    return {"QueueName": Sub(f"${{AWS::StackName}}-{name}")}


def _queue_pair(
    t: Template, name: str, key: tkms.Key, visibility_s: int, *, names: tuple[str, str] | None = None
) -> tuple[tsqs.Queue, tsqs.Queue]:
    encryption = {"KmsMasterKeyId": Ref(key), "KmsDataKeyReusePeriodSeconds": 300}
    queue_name, dlq_name = ({**_stack_named(n)} for n in names) if names else ({}, {})
    dlq = t.add_resource(
        tsqs.Queue(
            f"{name}DeadLetterQueue",
            MessageRetentionPeriod=DEAD_LETTER_RETENTION_S,
            **DELETE,
            **encryption,
            **dlq_name,
        )
    )
    queue = t.add_resource(
        tsqs.Queue(
            f"{name}Queue",
            **queue_name,
            **DELETE,
            VisibilityTimeout=visibility_s,
            MessageRetentionPeriod=QUEUE_RETENTION_S,
            RedrivePolicy=tsqs.RedrivePolicy(
                deadLetterTargetArn=GetAtt(dlq, "Arn"), maxReceiveCount=contract.MAX_RECEIVE_COUNT
            ),
            **encryption,
        )
    )
    return queue, dlq


def _queue_policy(t: Template, queue: tsqs.Queue, *extra: Statement) -> tsqs.QueuePolicy:
    return t.add_resource(
        tsqs.QueuePolicy(
            f"{queue.title}Policy",
            Queues=[Ref(queue)],
            PolicyDocument=_doc(_tls_only([GetAtt(queue, "Arn")], Action("sqs", "*")), *extra),
        )
    )


def add_queues(t: Template, key: tkms.Key) -> Queues:
    index, index_dlq = _queue_pair(t, "Index", key, visibility_s=300)
    work: dict[str, tuple[tsqs.Queue, tsqs.Queue]] = {}
    for analysis in registry.builtin().values():
        names = (work_queues.queue_suffix(analysis.name), work_queues.dead_letter_queue_suffix(analysis.name))
        work[analysis.name] = _queue_pair(
            t, f"{analysis.name}Work", key, visibility_s=analysis.visibility_timeout_s, names=names
        )
    restore, restore_dlq = _queue_pair(t, "RestoreEvents", key, visibility_s=120)
    for queue in (index, index_dlq, *(q for pair in work.values() for q in pair), restore_dlq):
        _queue_policy(t, queue)
    restore_policy = _queue_policy(
        t,
        restore,
        Statement(
            Sid="ArchiveBucketSendsRestoreEvents",
            Effect=Allow,
            Principal=Principal("Service", ["s3.amazonaws.com"]),
            Action=[awacs_sqs.SendMessage],
            Resource=[GetAtt(restore, "Arn")],
            Condition=Condition(
                [
                    StringEquals({"aws:SourceAccount": Ref("AWS::AccountId")}),
                    ArnLike({"aws:SourceArn": archive_bucket_arn()}),
                ]
            ),
        ),
    )
    return Queues(index, index_dlq, restore, restore_dlq, restore_policy, work)


# --- DynamoDB ---------------------------------------------------------------------------------


TABLE_LOGICAL_IDS = {
    contract.FILES_TABLE_NAME: "FilesTable",
    contract.JOBS_TABLE_NAME: "JobsTable",
    contract.JOB_FILES_TABLE_NAME: "JobFilesTable",
    contract.INDEX_REQUESTS_TABLE_NAME: "IndexRequestsTable",
}


def _key_schema(hash_key: contract.KeyAttribute, range_key: contract.KeyAttribute | None) -> list[tddb.KeySchema]:
    keys = [tddb.KeySchema(AttributeName=hash_key.name, KeyType="HASH")]
    if range_key is not None:
        keys.append(tddb.KeySchema(AttributeName=range_key.name, KeyType="RANGE"))
    return keys


def _time_to_live(attribute: str | None) -> dict[str, Any]:
    if attribute is None:
        return {}
    return {"TimeToLiveSpecification": tddb.TimeToLiveSpecification(AttributeName=attribute, Enabled=True)}


def add_tables(t: Template, key: tkms.Key) -> dict[str, tddb.Table]:
    """One table per `contract.TABLES` entry, with every index the contract declares."""
    tables: dict[str, tddb.Table] = {}
    for schema in contract.TABLES:
        logical_id = TABLE_LOGICAL_IDS.get(schema.table_name) or "".join(ch for ch in schema.table_name if ch.isalnum())
        indexes = [
            tddb.GlobalSecondaryIndex(
                IndexName=index.name,
                KeySchema=_key_schema(index.hash_key, index.range_key),
                # Queries return whole items: researchers' selections need every attribute.
                Projection=tddb.Projection(ProjectionType="ALL"),
            )
            for index in schema.indexes
        ]
        tables[schema.table_name] = t.add_resource(
            tddb.Table(
                logical_id,
                **RETAIN,
                TableName=schema.table_name,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    tddb.AttributeDefinition(AttributeName=name, AttributeType=kind)
                    for name, kind in sorted(schema.attribute_definitions().items())
                ],
                KeySchema=_key_schema(schema.hash_key, schema.range_key),
                # CloudFormation refuses an empty index list: a table without indexes has none.
                **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
                **_time_to_live(schema.ttl_attribute),
                PointInTimeRecoverySpecification=tddb.PointInTimeRecoverySpecification(PointInTimeRecoveryEnabled=True),
                SSESpecification=tddb.SSESpecification(SSEEnabled=True, SSEType="KMS", KMSMasterKeyId=Ref(key)),
            )
        )
    return tables


# --- secrets and logs ------------------------------------------------------------------------


def add_hsds_secret(t: Template, p: Parameters, key: tkms.Key) -> tsm.Secret:
    return t.add_resource(
        tsm.Secret(
            "HsdsCredentials",
            **DELETE,
            Description="HSDS user and password of the Data Carousel workers",
            KmsKeyId=Ref(key),
            GenerateSecretString=tsm.GenerateSecretString(
                SecretStringTemplate=Sub(f'{{"{SECRET_USERNAME_KEY}": "${{{p.hsds_username.title}}}"}}'),
                GenerateStringKey=SECRET_PASSWORD_KEY,
                PasswordLength=40,
                ExcludePunctuation=True,
            ),
        )
    )


def add_log_group(t: Template, key: tkms.Key) -> tlogs.LogGroup:
    return t.add_resource(
        tlogs.LogGroup(
            "LogGroup",
            **RETAIN,
            LogGroupName=Sub(LOG_GROUP_NAME),
            RetentionInDays=LOG_RETENTION_DAYS,
            KmsKeyId=GetAtt(key, "Arn"),
        )
    )


# --- IAM ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What the roles may touch: ARNs of this stack's resources."""

    key: Any
    archive_bucket: Any
    archive_objects: Any
    results_bucket: Any
    results_objects: Any
    hsds_bucket: Any
    hsds_objects: Any
    tables: dict[str, Any]
    queues: Queues
    secret: tsm.Secret


def _table_arns(access: Access, name: str) -> list[Any]:
    arn = access.tables[name]
    return [arn, _under(arn, "/index/*")]


_TABLE_READ = [ddb.GetItem, ddb.BatchGetItem, ddb.Query, ddb.DescribeTable]  # never Scan
_TABLE_WRITE = [ddb.PutItem, ddb.UpdateItem, ddb.ConditionCheckItem]
# Short tasks (the carousel step) receive and delete; long ones also extend a message's visibility.
_QUEUE_DRAIN = [awacs_sqs.ReceiveMessage, awacs_sqs.DeleteMessage, awacs_sqs.GetQueueAttributes]
_QUEUE_CONSUME = [*_QUEUE_DRAIN, awacs_sqs.ChangeMessageVisibility]
_QUEUE_SEND = [awacs_sqs.SendMessage, awacs_sqs.GetQueueAttributes]


def _kms_use(access: Access) -> Statement:
    return Statement(
        Sid="UseDataKey", Effect=Allow, Action=[awacs_kms.Decrypt, awacs_kms.GenerateDataKey], Resource=[access.key]
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
    return _arn("sqs", f"${{AWS::StackName}}-*{suffix}")


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
        Statement(Sid="ListArchive", Effect=Allow, Action=[awacs_s3.ListBucket], Resource=[access.archive_bucket]),
        Statement(Sid="ReadArchive", Effect=Allow, Action=[awacs_s3.GetObject], Resource=[access.archive_objects]),
        Statement(Sid="ListResults", Effect=Allow, Action=[awacs_s3.ListBucket], Resource=[access.results_bucket]),
        Statement(Sid="ReadResults", Effect=Allow, Action=[awacs_s3.GetObject], Resource=[access.results_objects]),
        Statement(
            Sid="WriteResults",
            Effect=Allow,
            Action=[awacs_s3.PutObject],
            Resource=[_under(access.results_bucket, f"/{contract.RESULTS_PREFIX}/*")],
        ),
        _kms_use(access),
    ]


def worker_policies(access: Access) -> dict[str, list[Statement]]:
    """Each worker's statements: only the actions and resources its code uses."""
    q = access.queues
    read_archive = [
        Statement(Sid="ListArchive", Effect=Allow, Action=[awacs_s3.ListBucket], Resource=[access.archive_bucket]),
        Statement(Sid="ReadArchive", Effect=Allow, Action=[awacs_s3.GetObject], Resource=[access.archive_objects]),
    ]

    def table(sid: str, name: str, *, write: bool) -> Statement:
        actions = _TABLE_READ + (_TABLE_WRITE if write else [])
        return Statement(Sid=sid, Effect=Allow, Action=actions, Resource=_table_arns(access, name))

    def batch_submit(names: Sequence[str]) -> list[Statement]:
        return [
            Statement(
                Sid="SubmitJobs",
                Effect=Allow,
                Action=[awacs_batch.SubmitJob],
                Resource=[
                    _arn("batch", f"job-queue/{contract.JOB_QUEUE_NAME}"),
                    # By name (latest revision) or by name:revision.
                    *(_arn("batch", f"job-definition/{name}{rev}") for name in names for rev in ("", ":*")),
                ],
            ),
            # Registered job definitions, unknown to the template: those tagged with this stack's name.
            Statement(
                Sid="SubmitRegisteredJobs",
                Effect=Allow,
                Action=[awacs_batch.SubmitJob],
                Resource=[_arn("batch", "job-definition/*")],
                Condition=Condition(StringEquals({f"aws:ResourceTag/{contract.STACK_TAG}": Ref("AWS::StackName")})),
            ),
            # ListJobs has no resource-level permissions in IAM: "*" is the only resource it takes.
            Statement(Sid="ListJobs", Effect=Allow, Action=[awacs_batch.ListJobs], Resource=["*"]),
        ]

    files = contract.FILES_TABLE_NAME
    return {
        JobDefinitionName.LOADER: [
            *read_archive,
            Statement(Sid="SendIndexRequests", Effect=Allow, Action=_QUEUE_SEND, Resource=[GetAtt(q.index, "Arn")]),
            # Reads BasicFusionFiles (is the file indexed?); writes only its own ledger, in batches.
            table("FilesTable", files, write=False),
            Statement(
                Sid="IndexRequestLedger",
                Effect=Allow,
                Action=[ddb.BatchGetItem, ddb.BatchWriteItem],
                Resource=[access.tables[contract.INDEX_REQUESTS_TABLE_NAME]],
            ),
            _kms_use(access),
        ],
        JobDefinitionName.INDEX_FILE: [
            *_consume(q.index, q.index_dlq, "IndexRequests"),
            *read_archive,
            table("FilesTable", files, write=True),
            _kms_use(access),
        ],
        # Reads HSDS (HTTP, no IAM), writes BasicFusionFiles.
        JobDefinitionName.RECORD_METADATA: [
            table("FilesTable", files, write=True),
            _kms_use(access),
        ],
        JobDefinitionName.CAROUSEL: [
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
            Statement(
                Sid="ListBuckets",
                Effect=Allow,
                Action=[awacs_s3.ListBucket],
                Resource=[access.archive_bucket, access.results_bucket],
            ),
            # A job with a reducer is complete once its reducer's marker exists; the carousel writes no result.
            Statement(
                Sid="ReadReducedMarkers",
                Effect=Allow,
                Action=[awacs_s3.GetObject],
                Resource=[_under(access.results_bucket, f"/{contract.RESULTS_PREFIX}/*/{contract.REDUCED_MARKER}")],
            ),
            Statement(
                Sid="RestoreArchive",
                Effect=Allow,
                Action=[awacs_s3.GetObject, awacs_s3.RestoreObject],
                Resource=[access.archive_objects],
            ),
            table("FilesTable", files, write=True),
            table("JobsTable", contract.JOBS_TABLE_NAME, write=True),
            table("JobFilesTable", contract.JOB_FILES_TABLE_NAME, write=True),
            *batch_submit(
                [
                    *(d.value for d in JobDefinitionName if d is not JobDefinitionName.CAROUSEL),
                    *registry.builtin(),
                ]
            ),
            _kms_use(access),
        ],
        **{name: analysis_policy(access, name) for name in registry.builtin()},
    }


@dataclass(frozen=True)
class Roles:
    batch_service: tiam.Role
    instance_profile: tiam.InstanceProfile
    execution: tiam.Role
    workers: dict[str, tiam.Role]  # by job definition name
    researcher: tiam.Role  # the job role of registered definitions
    hsds_task: tiam.Role
    schedule: tiam.Role


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
    policies = [tiam.Policy(PolicyName=title, PolicyDocument=_doc(*statements))] if statements else []
    return t.add_resource(
        tiam.Role(title, AssumeRolePolicyDocument=_service_trust(service), Policies=policies, **kwargs)
    )


def add_roles(t: Template, access: Access) -> Roles:
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
    log_streams = Sub(
        f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{LOG_GROUP_NAME}:log-stream:*"
    )
    execution = _role(
        t,
        "TaskExecutionRole",
        "ecs-tasks.amazonaws.com",
        [
            # GetAuthorizationToken has no resource-level permissions in IAM.
            Statement(Sid="EcrLogin", Effect=Allow, Action=[ecr.GetAuthorizationToken], Resource=["*"]),
            Statement(
                Sid="PullImages",
                Effect=Allow,
                Action=[ecr.BatchCheckLayerAvailability, ecr.GetDownloadUrlForLayer, ecr.BatchGetImage],
                Resource=[_arn("ecr", "repository/*")],
            ),
            Statement(
                Sid="WriteLogs",
                Effect=Allow,
                Action=[awacs_logs.CreateLogStream, awacs_logs.PutLogEvents],
                Resource=[log_streams],
            ),
            Statement(
                Sid="ReadHsdsCredentials",
                Effect=Allow,
                Action=[awacs_sm.GetSecretValue],
                Resource=[Ref(access.secret)],
            ),
            Statement(Sid="DecryptHsdsCredentials", Effect=Allow, Action=[awacs_kms.Decrypt], Resource=[access.key]),
        ],
    )
    workers = {
        definition: _role(t, f"{role_prefix(definition)}JobRole", "ecs-tasks.amazonaws.com", statements)
        for definition, statements in worker_policies(access).items()
    }
    researcher = _role(t, "ResearcherJobRole", "ecs-tasks.amazonaws.com", analysis_policy(access, None))
    hsds_task = _role(
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
    schedule = _role(
        t,
        "CarouselScheduleRole",
        "events.amazonaws.com",
        [
            Statement(
                Sid="SubmitCarouselStep",
                Effect=Allow,
                Action=[awacs_batch.SubmitJob],
                Resource=[
                    _arn("batch", f"job-queue/{contract.JOB_QUEUE_NAME}"),
                    _arn("batch", f"job-definition/{JobDefinitionName.CAROUSEL.value}"),
                    _arn("batch", f"job-definition/{JobDefinitionName.CAROUSEL.value}:*"),
                ],
            )
        ],
    )
    return Roles(batch_service, instance_profile, execution, workers, researcher, hsds_task, schedule)


# --- HSDS on ECS --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hsds:
    endpoint: Sub
    cluster: tecs.Cluster
    service: tecs.Service


def _hsds_container_environment(buckets: Buckets) -> list[tecs.Environment]:
    return [
        tecs.Environment(Name="BUCKET_NAME", Value=Ref(buckets.hsds)),
        tecs.Environment(Name="AWS_REGION", Value=Ref("AWS::Region")),
        tecs.Environment(Name="AWS_S3_GATEWAY", Value=Sub("https://s3.${AWS::Region}.${AWS::URLSuffix}")),
    ]


def add_hsds(
    t: Template,
    p: Parameters,
    *,
    buckets: Buckets,
    roles: Roles,
    secret: tsm.Secret,
    log_group: tlogs.LogGroup,
    data_nodes: int,
    cpu: int,
    memory_mib: int,
) -> Hsds:
    """HSDS on Fargate, found by workers through Cloud Map DNS (HS_ENDPOINT).

    One task holds the service node and `data_nodes` data nodes (HSDS "standalone"
    mode: the nodes find each other on the task's localhost, no head node). One task
    only: two independent HSDS node sets must not write the same storage bucket.
    The task's security group admits the workers' security group only, on the
    service node's port; data-node ports stay inside the task.
    Cloud Map's private DNS needs the VPC's DNS support and DNS hostnames on.
    """
    task_group = t.add_resource(
        tec2.SecurityGroup(
            "HsdsServiceSecurityGroup",
            GroupDescription="HSDS task: admits the workers security group only",
            VpcId=Ref(p.vpc),
            SecurityGroupIngress=[
                tec2.SecurityGroupRule(
                    Description="HSDS clients: the workers",
                    IpProtocol="tcp",
                    FromPort=HSDS_PORT,
                    ToPort=HSDS_PORT,
                    SourceSecurityGroupId=Ref(p.security_group),
                )
            ],
            SecurityGroupEgress=[
                tec2.SecurityGroupRule(
                    Description="HTTPS to S3, ECR, Secrets Manager and CloudWatch Logs",
                    IpProtocol="tcp",
                    FromPort=443,
                    ToPort=443,
                    CidrIp="0.0.0.0/0",
                )
            ],
        )
    )
    namespace = t.add_resource(
        tsd.PrivateDnsNamespace(
            "HsdsNamespace",
            Name=Sub(HSDS_NAMESPACE),
            Vpc=Ref(p.vpc),
            Description="Data Carousel internal names (HSDS)",
        )
    )
    discovery = t.add_resource(
        tsd.Service(
            "HsdsDiscoveryService",
            Name=HSDS_SERVICE_NAME,
            NamespaceId=Ref(namespace),
            DnsConfig=tsd.DnsConfig(RoutingPolicy="MULTIVALUE", DnsRecords=[tsd.DnsRecord(Type="A", TTL=10)]),
            # ECS reports the task's container health to Cloud Map: an unhealthy task leaves DNS.
            HealthCheckCustomConfig=tsd.HealthCheckCustomConfig(FailureThreshold=1),
        )
    )
    endpoint = Sub(f"http://{HSDS_SERVICE_NAME}.{HSDS_NAMESPACE}:{HSDS_PORT}")
    cluster = t.add_resource(
        tecs.Cluster(
            "HsdsCluster",
            ClusterSettings=[tecs.ClusterSetting(Name="containerInsights", Value="enabled")],
        )
    )
    dn_urls = ",".join(f"http://127.0.0.1:{HSDS_DATA_NODE_PORT + i}" for i in range(data_nodes))
    common = [f"--dn_urls={dn_urls}", "--standalone"]

    def logging(prefix: str) -> tecs.LogConfiguration:
        return tecs.LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(log_group),
                "awslogs-region": Ref("AWS::Region"),
                "awslogs-stream-prefix": prefix,
            },
        )

    def health() -> tecs.HealthCheck:
        return tecs.HealthCheck(
            Command=["CMD", "python", "-m", "hsds.node_state"],
            Interval=30,
            Timeout=10,
            Retries=3,
            StartPeriod=60,
        )

    service_node = tecs.ContainerDefinition(
        Name="sn",
        Image=Ref(p.hsds_image),
        Essential=True,
        ReadonlyRootFilesystem=True,
        # A shell passes the credentials from the injected secret to the node without writing them anywhere.
        Command=[
            "sh",
            "-c",
            "exec python -m hsds.node_runner --node_type=sn "
            + " ".join(common)
            + f" --sn_port={HSDS_PORT} --hsds_endpoint=$HSDS_ENDPOINT"
            + ' --hs_username="$HS_USERNAME" --hs_password="$HS_PASSWORD" --admin_user="$HS_USERNAME"',
        ],
        PortMappings=[tecs.PortMapping(ContainerPort=HSDS_PORT, Protocol="tcp")],
        Environment=[
            *_hsds_container_environment(buckets),
            tecs.Environment(Name="NODE_TYPE", Value="sn"),
            tecs.Environment(Name="HSDS_ENDPOINT", Value=endpoint),
        ],
        Secrets=[
            tecs.Secret(Name=Env.HS_USERNAME, ValueFrom=Sub(f"${{{secret.title}}}:{SECRET_USERNAME_KEY}::")),
            tecs.Secret(Name=Env.HS_PASSWORD, ValueFrom=Sub(f"${{{secret.title}}}:{SECRET_PASSWORD_KEY}::")),
        ],
        HealthCheck=health(),
        LogConfiguration=logging("hsds-sn"),
    )
    data_node_containers = [
        tecs.ContainerDefinition(
            Name=f"dn{i + 1}",
            Image=Ref(p.hsds_image),
            Essential=True,
            ReadonlyRootFilesystem=True,
            Command=["python", "-m", "hsds.node_runner", "--node_type=dn", *common, f"--node_number={i}"],
            Environment=[
                *_hsds_container_environment(buckets),
                tecs.Environment(Name="NODE_TYPE", Value="dn"),
                tecs.Environment(Name="DN_PORT", Value=str(HSDS_DATA_NODE_PORT + i)),
            ],
            HealthCheck=health(),
            LogConfiguration=logging(f"hsds-dn{i + 1}"),
        )
        for i in range(data_nodes)
    ]
    task = t.add_resource(
        tecs.TaskDefinition(
            "HsdsTaskDefinition",
            Family=Sub("${AWS::StackName}-hsds"),
            RequiresCompatibilities=["FARGATE"],
            NetworkMode="awsvpc",
            Cpu=str(cpu),
            Memory=str(memory_mib),
            RuntimePlatform=tecs.RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture="X86_64"),
            ExecutionRoleArn=GetAtt(roles.execution, "Arn"),
            TaskRoleArn=GetAtt(roles.hsds_task, "Arn"),
            ContainerDefinitions=[service_node, *data_node_containers],
        )
    )
    service = t.add_resource(
        tecs.Service(
            "HsdsService",
            Cluster=Ref(cluster),
            TaskDefinition=Ref(task),
            LaunchType="FARGATE",
            DesiredCount=1,
            # Never two HSDS tasks at once (they would share the storage bucket): stop, then start.
            DeploymentConfiguration=tecs.DeploymentConfiguration(
                MaximumPercent=100,
                MinimumHealthyPercent=0,
                DeploymentCircuitBreaker=tecs.DeploymentCircuitBreaker(Enable=True, Rollback=True),
            ),
            NetworkConfiguration=tecs.NetworkConfiguration(
                AwsvpcConfiguration=tecs.AwsvpcConfiguration(
                    Subnets=Ref(p.subnets), SecurityGroups=[Ref(task_group)], AssignPublicIp="DISABLED"
                )
            ),
            # Built from the Cloud Map service's id (its Ref) rather than GetAtt Arn: same value on AWS,
            # and moto, which does not model Cloud Map, can still create the stack.
            ServiceRegistries=[
                tecs.ServiceRegistry(
                    RegistryArn=Sub(
                        "arn:${AWS::Partition}:servicediscovery:${AWS::Region}:${AWS::AccountId}:service/"
                        f"${{{discovery.title}}}"
                    )
                )
            ],
            PropagateTags="SERVICE",
        )
    )
    return Hsds(endpoint=endpoint, cluster=cluster, service=service)


# --- AWS Batch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """How one job definition runs: its command (`python -m <package>`) and its size."""

    definition: str  # the JobDefinitionName
    command: tuple[str, ...]
    vcpus: int
    memory_mib: int
    timeout_s: int
    parameters: tuple[tuple[str, str], ...] = ()


def analysis_spec(described: JobDefinition) -> WorkerSpec:
    """An analysis's job definition, derived from its description (`batch_jobs/<analysis>/definition.toml`)."""
    return WorkerSpec(
        described.name,
        tuple(described.batch_command()),
        described.vcpus,
        described.memory_mib,
        described.timeout_s,
        tuple(described.batch_parameters().items()),
    )


def workers() -> tuple[WorkerSpec, ...]:
    """Every job definition of the template (the analyses' read from their descriptions now)."""
    return (
        WorkerSpec(JobDefinitionName.LOADER.value, ("python", "-m", "loader"), 1, 2048, 2 * 3600),
        WorkerSpec(JobDefinitionName.INDEX_FILE.value, ("python", "-m", "index_file"), 1, 4096, 4 * 3600),
        WorkerSpec(JobDefinitionName.RECORD_METADATA.value, ("python", "-m", "record_metadata"), 1, 4096, 4 * 3600),
        WorkerSpec(JobDefinitionName.CAROUSEL.value, ("python", "-m", "carousel", "step"), 1, 2048, 3600),
        *(analysis_spec(described) for described in registry.builtin().values()),
    )


@dataclass(frozen=True)
class Batch:
    compute_environment: tbatch.ComputeEnvironment
    job_queue: tbatch.JobQueue
    job_definitions: dict[str, tbatch.JobDefinition]  # by JobDefinitionName


def job_environment(p: Parameters, resources: dict[str, Any], hsds_endpoint: Any) -> list[tuple[str, Any]]:
    """(name, value) of every variable a job definition sets; `resources` maps env name -> value."""
    missing = {r.env for r in contract.SHARED_RESOURCES} - set(resources)
    if missing:
        raise ValueError(f"no template value for {sorted(missing)}")
    return [
        *((r.env, resources[r.env]) for r in contract.SHARED_RESOURCES),
        (Env.STACK_NAME, Ref("AWS::StackName")),
        (Env.AWS_REGION, Ref("AWS::Region")),
        (Env.ARCHIVE_PREFIX, Ref(p.archive_prefix)),
        (Env.HSDS_FOLDER, Sub(contract.DEFAULT_HSDS_FOLDER.format(user=f"${{{p.hsds_username.title}}}"))),
        (Env.HS_ENDPOINT, hsds_endpoint),
        (Env.WINDOW_BYTES, Ref(p.window_bytes)),
        (Env.WINDOW_FILES, Ref(p.window_files)),
        (Env.RESTORE_TIER, Ref(p.restore_tier)),
        (Env.RESTORE_DAYS, Ref(p.restore_days)),
        (Env.LOG_LEVEL, Ref(p.log_level)),
    ]


def add_batch(
    t: Template,
    p: Parameters,
    *,
    roles: Roles,
    secret: tsm.Secret,
    log_group: tlogs.LogGroup,
    environment: list[tuple[str, Any]],
) -> Batch:
    launch_template = t.add_resource(
        tec2.LaunchTemplate(
            "BatchLaunchTemplate",
            LaunchTemplateData=tec2.LaunchTemplateData(
                # IMDSv2 only, one hop: containers cannot borrow the instance's credentials.
                MetadataOptions=tec2.MetadataOptions(
                    HttpTokens="required", HttpPutResponseHopLimit=1, HttpEndpoint="enabled"
                ),
                BlockDeviceMappings=[
                    tec2.LaunchTemplateBlockDeviceMapping(
                        DeviceName="/dev/xvda",
                        Ebs=tec2.EBSBlockDevice(VolumeSize=200, VolumeType="gp3", Encrypted=True),
                    )
                ],
            ),
        )
    )
    compute = t.add_resource(
        tbatch.ComputeEnvironment(
            "ComputeEnvironment",
            Type="MANAGED",
            State="ENABLED",
            ServiceRole=GetAtt(roles.batch_service, "Arn"),
            ComputeResources=tbatch.ComputeResources(
                Type="EC2",
                AllocationStrategy="BEST_FIT_PROGRESSIVE",
                MinvCpus=0,
                MaxvCpus=Ref(p.max_vcpus),
                InstanceTypes=["optimal"],
                InstanceRole=GetAtt(roles.instance_profile, "Arn"),
                Subnets=Ref(p.subnets),
                SecurityGroupIds=[Ref(p.security_group)],
                LaunchTemplate=tbatch.LaunchTemplateSpecification(
                    LaunchTemplateId=Ref(launch_template),
                    Version=GetAtt(launch_template, "LatestVersionNumber"),
                ),
                Ec2Configuration=[tbatch.Ec2ConfigurationObject(ImageType="ECS_AL2023")],
            ),
        )
    )
    queue = t.add_resource(
        tbatch.JobQueue(
            "JobQueue",
            JobQueueName=contract.JOB_QUEUE_NAME,
            Priority=1,
            State="ENABLED",
            ComputeEnvironmentOrder=[tbatch.ComputeEnvironmentOrder(Order=1, ComputeEnvironment=Ref(compute))],
        )
    )
    env = [tbatch.Environment(Name=name, Value=value) for name, value in environment]
    secrets = [
        tbatch.Secret(Name=Env.HS_USERNAME, ValueFrom=Sub(f"${{{secret.title}}}:{SECRET_USERNAME_KEY}::")),
        tbatch.Secret(Name=Env.HS_PASSWORD, ValueFrom=Sub(f"${{{secret.title}}}:{SECRET_PASSWORD_KEY}::")),
    ]
    images = {w.job_definition: w.parameter for w in registry.worker_images()}
    definitions: dict[str, tbatch.JobDefinition] = {}
    for spec in workers():
        definitions[spec.definition] = t.add_resource(
            tbatch.JobDefinition(
                f"{role_prefix(spec.definition)}JobDefinition",
                JobDefinitionName=spec.definition,
                Type="container",
                PlatformCapabilities=["EC2"],
                PropagateTags=True,
                **({"Parameters": dict(spec.parameters)} if spec.parameters else {}),
                Timeout=tbatch.Timeout(AttemptDurationSeconds=spec.timeout_s),
                RetryStrategy=tbatch.RetryStrategy(
                    Attempts=3,
                    EvaluateOnExit=[
                        # Infrastructure failures (instance reclaimed or lost) are retried; the job's own
                        # failures are not: the queues' redrive and dead-letter queues handle those.
                        tbatch.EvaluateOnExit(OnStatusReason="Host EC2*", Action="RETRY"),
                        tbatch.EvaluateOnExit(OnReason="*", Action="EXIT"),
                    ],
                ),
                ContainerProperties=tbatch.ContainerProperties(
                    Image=Ref(p.images[spec.definition]),
                    Command=list(spec.command),
                    JobRoleArn=GetAtt(roles.workers[spec.definition], "Arn"),
                    ExecutionRoleArn=GetAtt(roles.execution, "Arn"),
                    ResourceRequirements=[
                        tbatch.ResourceRequirement(Type="VCPU", Value=str(spec.vcpus)),
                        tbatch.ResourceRequirement(Type="MEMORY", Value=str(spec.memory_mib)),
                    ],
                    Privileged=False,
                    Environment=env,
                    Secrets=secrets,
                    LogConfiguration=tbatch.LogConfiguration(
                        LogDriver="awslogs",
                        Options={
                            "awslogs-group": Ref(log_group),
                            "awslogs-region": Ref("AWS::Region"),
                            "awslogs-stream-prefix": spec.definition,
                        },
                    ),
                ),
            )
        )
        assert images[spec.definition] == p.images[spec.definition].title
    return Batch(compute_environment=compute, job_queue=queue, job_definitions=definitions)


# --- the carousel schedule ------------------------------------------------------------------------


def add_schedule(t: Template, p: Parameters, batch: Batch, roles: Roles) -> tevents.Rule:
    """EventBridge runs the carousel step on a schedule; each step drains the restore-events queue."""
    return t.add_resource(
        tevents.Rule(
            "CarouselScheduleRule",
            Description="Runs the Data Carousel step (restores, releases, leases)",
            ScheduleExpression=Ref(p.carousel_schedule),
            State="ENABLED",
            Targets=[
                tevents.Target(
                    Id="carousel-step",
                    Arn=Ref(batch.job_queue),
                    RoleArn=GetAtt(roles.schedule, "Arn"),
                    BatchParameters=tevents.BatchParameters(
                        JobDefinition=Ref(batch.job_definitions[JobDefinitionName.CAROUSEL.value]),
                        JobName=JobDefinitionName.CAROUSEL.value,
                    ),
                    RetryPolicy=tevents.RetryPolicy(MaximumRetryAttempts=3, MaximumEventAgeInSeconds=900),
                )
            ],
        )
    )


# --- outputs ------------------------------------------------------------------------------------


def add_outputs(
    t: Template,
    resources: dict[str, Any],
    *,
    batch: Batch,
    roles: Roles,
    hsds: Hsds,
    secret: tsm.Secret,
    log_group: tlogs.LogGroup,
) -> None:
    for shared in contract.SHARED_RESOURCES:
        t.add_output(Output(shared.output, Description=shared.description, Value=resources[shared.env]))
    for definition, job_definition in batch.job_definitions.items():
        t.add_output(
            Output(
                f"{job_definition.title}Arn",
                Description=f"Batch job definition {definition}",
                Value=Ref(job_definition),
            )
        )
    t.add_output(
        Output(contract.HSDS_ENDPOINT_OUTPUT, Description="HS_ENDPOINT of the HSDS service", Value=hsds.endpoint)
    )
    t.add_output(
        Output(
            contract.HSDS_SECRET_OUTPUT,
            Description="Secrets Manager secret holding the HSDS username and password",
            Value=Ref(secret),
        )
    )
    t.add_output(Output("LogGroupName", Description="CloudWatch Logs group of every job", Value=Ref(log_group)))
    # What `datacarousel definitions register` gives a researcher's job definition.
    t.add_output(
        Output(
            contract.RESEARCHER_ROLE_OUTPUT,
            Description="Job role of registered job definitions",
            Value=GetAtt(roles.researcher, "Arn"),
        )
    )
    t.add_output(
        Output(
            contract.EXECUTION_ROLE_OUTPUT,
            Description="Execution role of every job (image pull, logs, HSDS secret)",
            Value=GetAtt(roles.execution, "Arn"),
        )
    )
    t.add_output(Output("HsdsClusterName", Description="ECS cluster running HSDS", Value=Ref(hsds.cluster)))
    t.add_output(Output("HsdsServiceArn", Description="ECS service running HSDS", Value=Ref(hsds.service)))


# --- the whole template ----------------------------------------------------------------------------


def build_template(*, hsds_data_nodes: int = 4, hsds_cpu: int = 4096, hsds_memory_mib: int = 16384) -> Template:
    """The whole Data Carousel. HSDS sizing is fixed at generation (Fargate CPU/memory pairs)."""
    if not 1 <= hsds_data_nodes <= 9:
        raise ValueError("hsds_data_nodes must be between 1 and 9")
    t = Template(Description="Data Carousel: batch analyses over the Terra BasicFusion archive in Glacier Deep Archive")
    t.set_version("2010-09-09")
    p = add_parameters(t)
    key = add_key(t)
    queues = add_queues(t, key)
    buckets = add_buckets(t, p, queues.restore_events, queues.restore_events_policy)
    tables = add_tables(t, key)
    secret = add_hsds_secret(t, p, key)
    log_group = add_log_group(t, key)

    def objects(bucket: Any) -> Sub:
        return _under(bucket, "/*")

    archive_arn = archive_bucket_arn()
    access = Access(
        key=GetAtt(key, "Arn"),
        archive_bucket=archive_arn,
        archive_objects=objects(archive_arn),
        results_bucket=GetAtt(buckets.results, "Arn"),
        results_objects=objects(GetAtt(buckets.results, "Arn")),
        hsds_bucket=GetAtt(buckets.hsds, "Arn"),
        hsds_objects=objects(GetAtt(buckets.hsds, "Arn")),
        tables={name: GetAtt(table, "Arn") for name, table in tables.items()},
        queues=queues,
        secret=secret,
    )
    roles = add_roles(t, access)
    hsds = add_hsds(
        t,
        p,
        buckets=buckets,
        roles=roles,
        secret=secret,
        log_group=log_group,
        data_nodes=hsds_data_nodes,
        cpu=hsds_cpu,
        memory_mib=hsds_memory_mib,
    )
    resources: dict[str, Any] = {
        Env.ARCHIVE_BUCKET: Ref(buckets.archive),
        Env.RESULTS_BUCKET: Ref(buckets.results),
        Env.HSDS_BUCKET: Ref(buckets.hsds),
        Env.INDEX_QUEUE_URL: Ref(queues.index),
        Env.INDEX_DLQ_URL: Ref(queues.index_dlq),
        Env.RESTORE_EVENTS_QUEUE_URL: Ref(queues.restore_events),
        Env.RESTORE_EVENTS_DLQ_URL: Ref(queues.restore_events_dlq),
        Env.FILES_TABLE: Ref(tables[contract.FILES_TABLE_NAME]),
        Env.JOBS_TABLE: Ref(tables[contract.JOBS_TABLE_NAME]),
        Env.JOB_FILES_TABLE: Ref(tables[contract.JOB_FILES_TABLE_NAME]),
        Env.INDEX_REQUESTS_TABLE: Ref(tables[contract.INDEX_REQUESTS_TABLE_NAME]),
        Env.BATCH_JOB_QUEUE: contract.JOB_QUEUE_NAME,
    }
    environment = job_environment(p, resources, hsds.endpoint)
    batch = add_batch(t, p, roles=roles, secret=secret, log_group=log_group, environment=environment)
    # The queue's name, read back from the queue itself so the output follows the resource.
    resources[Env.BATCH_JOB_QUEUE] = Select(1, Split("/", Ref(batch.job_queue)))
    add_schedule(t, p, batch, roles)
    add_outputs(t, resources, batch=batch, roles=roles, hsds=hsds, secret=secret, log_group=log_group)
    return t


# --- the embedded environment ------------------------------------------------------------------------


LOCAL_IMAGE_TAG = "local"


def local_parameters(ec2: Any | None = None) -> dict[str, str]:
    """Parameter values the embedded environment passes to moto's CloudFormation.

    moto checks that the Batch compute environment's subnets and security group
    exist, so given an EC2 client (of moto) this names the region's default VPC,
    its default subnets and default security group. Without a client it returns
    placeholder network ids (good for linting, not for moto's Batch).
    """
    values = {
        "VpcId": "vpc-00000000000000000",
        "SubnetIds": "subnet-00000000000000000",
        "SecurityGroupId": "sg-00000000000000000",
    }
    if ec2 is not None:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise LookupError("the region has no default VPC")
        vpc_id = vpcs[0]["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
        groups = ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": ["default"]}]
        )["SecurityGroups"]
        if not subnets or not groups:
            raise LookupError(f"default VPC {vpc_id} has no subnet or no default security group")
        values = {
            "VpcId": vpc_id,
            "SubnetIds": ",".join(sorted(s["SubnetId"] for s in subnets)),
            "SecurityGroupId": groups[0]["GroupId"],
        }
    for worker in registry.worker_images():
        values[worker.parameter] = f"localhost/{worker.image}:{LOCAL_IMAGE_TAG}"
    values[contract.HSDS_IMAGE_PARAMETER] = f"localhost/hsds:{LOCAL_IMAGE_TAG}"
    return values


def restore_notification_configuration(queue_arn: str) -> dict[str, Any]:
    """The archive bucket's restore-event notification, in S3 API form (PutBucketNotificationConfiguration).

    moto's CloudFormation creates buckets without their NotificationConfiguration, so the
    embedded environment applies this to the archive bucket after creating the stack.
    """
    return {"QueueConfigurations": [{"QueueArn": queue_arn, "Events": list(RESTORE_EVENTS)}]}


def template_json(template: Template | None = None) -> str:
    """The template as the JSON `python stack.py` prints (stable key order)."""
    return json.dumps((template or build_template()).to_dict(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(template_json(), end="")  # noqa: T201 - the template is this program's output
