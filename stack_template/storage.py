"""Where the data lives: the KMS key, the S3 buckets, the SQS queues, the DynamoDB tables, the secret, the logs.

Every stateful resource says what happens to its data on stack deletion or replacement
(`RETAIN` for data that outlives the stack, `DELETE` for transient data), is private,
encrypted and reached over TLS only. The archive bucket's name is fixed before the bucket
exists (`archive_bucket_name`): the key policy and the restore-events queue policy must
name it before S3 validates the bucket's notification target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from awacs import kms as awacs_kms
from awacs import s3 as awacs_s3
from awacs import sqs as awacs_sqs
from awacs.aws import Action, Allow, ArnLike, Condition, PolicyDocument, Principal, Statement, StringEquals
from troposphere import GetAtt, Ref, Select, Split, Sub, Template
from troposphere import dynamodb as tddb
from troposphere import kms as tkms
from troposphere import logs as tlogs
from troposphere import s3 as ts3
from troposphere import secretsmanager as tsm
from troposphere import sqs as tsqs

from datacarousel import contract, registry, work_queues
from datacarousel.hsds_accounts import HsdsRole
from stack_template.common import (
    LOG_GROUP_NAME,
    RESTORE_EVENTS,
    SECRET_PASSWORD_KEY,
    SECRET_USERNAME_KEY,
    checkov_skip,
    policy_document,
    tls_only,
    under,
)
from stack_template.parameters import Parameters, hsds_user

# Stateful resources say what happens to their data on stack deletion or replacement.
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}  # data that outlives the stack
DELETE = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}  # transient data
LOG_RETENTION_DAYS = 365
QUEUE_RETENTION_S = 7 * 24 * 3600
DEAD_LETTER_RETENTION_S = 14 * 24 * 3600  # longer than the source queue: a message's age carries over


# --- encryption key ------------------------------------------------------------------------


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


def add_key(t: Template) -> tkms.Key:
    """One customer-managed key (rotated) for queues, tables, the secret and the log group."""
    key = t.add_resource(
        tkms.Key(
            "DataKey",
            **RETAIN,  # the retained tables stay encrypted with it
            Description="Data Carousel: queues, tables, the HSDS secret and the log group",
            EnableKeyRotation=True,
            KeyPolicy=_key_policy(),
        )
    )
    t.add_resource(tkms.Alias("DataKeyAlias", AliasName=Sub("alias/${AWS::StackName}-data"), TargetKeyId=Ref(key)))
    return key


def _key_policy() -> PolicyDocument:
    """The account administers the key; S3 (archive notifications) and CloudWatch Logs may use it."""
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
    return policy_document(
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
            PolicyDocument=policy_document(tls_only([arn, under(arn, "/*")], Action("s3", "*")), *extra),
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
    logs = _add_access_logs_bucket(t)
    archive = _add_archive_bucket(t, p, logs, restore_events, restore_events_policy)
    results = _add_working_bucket(
        t, logs, "ResultsBucket", log_prefix="results", rule_id="ExpireReplacedResults", noncurrent_days=30
    )
    # HSDS rewrites its metadata objects often: keep a short recovery window only.
    hsds = _add_working_bucket(
        t, logs, "HsdsBucket", log_prefix="hsds", rule_id="ExpireReplacedHsdsObjects", noncurrent_days=7
    )
    sources = [archive_bucket_arn(), GetAtt(results, "Arn"), GetAtt(hsds, "Arn")]
    _bucket_policy(
        t,
        logs,
        Statement(
            Sid="S3ServerAccessLogs",
            Effect=Allow,
            Principal=Principal("Service", ["logging.s3.amazonaws.com"]),
            Action=[awacs_s3.PutObject],
            Resource=[under(GetAtt(logs, "Arn"), "/*")],
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


def _add_access_logs_bucket(t: Template) -> ts3.Bucket:
    return t.add_resource(
        ts3.Bucket(
            "AccessLogsBucket",
            **RETAIN,
            Metadata=checkov_skip(
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


def _logging(logs: ts3.Bucket, prefix: str) -> ts3.LoggingConfiguration:
    return ts3.LoggingConfiguration(DestinationBucketName=Ref(logs), LogFilePrefix=f"{prefix}/")


def _add_archive_bucket(
    t: Template,
    p: Parameters,
    logs: ts3.Bucket,
    restore_events: tsqs.Queue,
    restore_events_policy: tsqs.QueuePolicy,
) -> ts3.Bucket:
    return t.add_resource(
        ts3.Bucket(
            "ArchiveBucket",
            **RETAIN,
            DependsOn=[restore_events_policy.title],
            BucketName=archive_bucket_name(),
            LoggingConfiguration=_logging(logs, "archive"),
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


def _add_working_bucket(
    t: Template, logs: ts3.Bucket, logical_id: str, *, log_prefix: str, rule_id: str, noncurrent_days: int
) -> ts3.Bucket:
    """A private, versioned bucket whose replaced objects expire after `noncurrent_days`."""
    return t.add_resource(
        ts3.Bucket(
            logical_id,
            **RETAIN,  # CloudFormation cannot delete a bucket that still holds objects
            LoggingConfiguration=_logging(logs, log_prefix),
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
    """A queue and its dead-letter queue, both kept when the stack is deleted or the queue replaced:
    a dead letter is the only record of a failed work item or index request, and a queue holds work
    not done yet. Their messages expire on their own (retention); the retained key still decrypts them."""
    encryption = {"KmsMasterKeyId": Ref(key), "KmsDataKeyReusePeriodSeconds": 300}
    queue_name, dlq_name = ({**_stack_named(n)} for n in names) if names else ({}, {})
    dlq = t.add_resource(
        tsqs.Queue(
            f"{name}DeadLetterQueue",
            MessageRetentionPeriod=DEAD_LETTER_RETENTION_S,
            **RETAIN,
            **encryption,
            **dlq_name,
        )
    )
    queue = t.add_resource(
        tsqs.Queue(
            f"{name}Queue",
            **queue_name,
            **RETAIN,
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
            PolicyDocument=policy_document(tls_only([GetAtt(queue, "Arn")], Action("sqs", "*")), *extra),
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


# One secret per HSDS account (`datacarousel.hsds_accounts`): a job definition gets its own account's only.
HSDS_SECRET_TITLES: Mapping[HsdsRole, str] = MappingProxyType(
    {
        HsdsRole.ADMIN: "HsdsAdminCredentials",
        HsdsRole.WRITER: "HsdsCredentials",
        HsdsRole.READER: "HsdsReaderCredentials",
    }
)
_HSDS_SECRET_USE = {
    HsdsRole.ADMIN: "the HSDS task's folder set-up only",
    HsdsRole.WRITER: "index_file, record_metadata and the carousel step",
    HsdsRole.READER: "the analyses",
}


def add_hsds_secrets(t: Template, p: Parameters, key: tkms.Key) -> dict[HsdsRole, tsm.Secret]:
    """The user and a generated password of each HSDS account; the users are named after HsdsUsername."""
    return {
        role: t.add_resource(
            tsm.Secret(
                title,
                **DELETE,
                Description=f"HSDS {role.value} user and password of the Data Carousel: {_HSDS_SECRET_USE[role]}",
                KmsKeyId=Ref(key),
                GenerateSecretString=tsm.GenerateSecretString(
                    SecretStringTemplate=Sub(f'{{"{SECRET_USERNAME_KEY}": "{hsds_user(p, role)}"}}'),
                    GenerateStringKey=SECRET_PASSWORD_KEY,
                    PasswordLength=40,
                    ExcludePunctuation=True,
                ),
            )
        )
        for role, title in HSDS_SECRET_TITLES.items()
    }


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
