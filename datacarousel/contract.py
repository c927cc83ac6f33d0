"""Every name that the template, the workers and the tests share.

The CloudFormation template (`stack.py`) creates resources under these names and
exports them as stack outputs; the job definitions pass them to the workers as
environment variables; the embedded environment writes the same variables
from the stack's outputs. Nothing else in the project spells these strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PROJECT = "datacarousel"
DEFAULT_STACK_NAME = "datacarousel"
# The carousel's window and lease when nothing says otherwise: the code's defaults and the
# template's parameter defaults alike (sizes: docs/carousel.md).
DEFAULT_WINDOW_BYTES = 50 * 10**12
DEFAULT_WINDOW_FILES = 2000
DEFAULT_RESTORE_DAYS = 7

# --- Batch -----------------------------------------------------------------
JOB_QUEUE_NAME = "datacarousel-job-queue"


class JobDefinitionName(str, enum.Enum):
    """The pipeline's own Batch job definitions; the value is the JobDefinitionName in the template.

    Researchers' analyses are job definitions too, each named by its description (datacarousel.definitions).
    """

    LOADER = "datacarousel-loader"
    INDEX_FILE = "datacarousel-index-file"
    RECORD_METADATA = "datacarousel-record-metadata"
    CAROUSEL = "datacarousel-carousel-step"


# --- DynamoDB ----------------------------------------------------------------
FILES_TABLE_NAME = "BasicFusionFiles"
JOBS_TABLE_NAME = "DataCarouselJobs"
JOB_FILES_TABLE_NAME = "DataCarouselJobFiles"
INDEX_REQUESTS_TABLE_NAME = "DataCarouselIndexRequests"


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str  # DynamoDB scalar type: "S" or "N"


@dataclass(frozen=True)
class Index:
    """A global secondary index: every researcher query has one behind it."""

    name: str
    hash_key: KeyAttribute
    range_key: KeyAttribute | None = None


@dataclass(frozen=True)
class TableSchema:
    table_name: str
    hash_key: KeyAttribute
    range_key: KeyAttribute | None = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None  # DynamoDB deletes an item some time after this POSIX second

    def attribute_definitions(self) -> dict[str, str]:
        """Every key attribute of the table and its indexes, name -> type."""
        keys = [self.hash_key, self.range_key]
        for index in self.indexes:
            keys += [index.hash_key, index.range_key]
        return {k.name: k.type for k in keys if k is not None}

    def index(self, name: str) -> Index:
        for candidate in self.indexes:
            if candidate.name == name:
                return candidate
        raise KeyError(f"table {self.table_name} has no index {name!r}")


# Attribute names of BasicFusionFiles items.
class FileAttr:
    FILE_NAME = "file_name"
    ORBIT = "orbit"
    START_TIME = "start_time"
    END_TIME = "end_time"
    YEAR = "year"
    MONTH = "month"
    DAY = "day"
    YEAR_MONTH = "year_month"
    MISR_PATH = "misr_path"
    SIZE = "size_bytes"
    BUCKET = "bucket"
    KEY = "key"
    STATE = "state"
    STATE_VERSION = "state_version"
    RESTORE_EXPIRY = "restore_expiry"
    RESTORE_REQUESTED_AT = "restore_requested_at"
    RESTORE_COUNT = "restore_count"
    DOMAIN = "domain"
    INDEXED_AT = "indexed_at"
    INDEX_REQUESTED_AT = "index_requested_at"  # carousel: last QueueIndex for this restore
    RESTORE_CHECKED_AT = "restore_checked_at"  # carousel: last HeadObject of a restore in progress
    INSTRUMENTS = "instruments"
    MODIS_DAY_GRANULES = "modis_day_granules"
    MODIS_NIGHT_GRANULES = "modis_night_granules"
    CERES_GRANULES = "ceres_granules"
    MISR_FIRST_BLOCK = "misr_first_daylit_block"
    MISR_LAST_BLOCK = "misr_last_daylit_block"
    METADATA_AT = "metadata_recorded_at"
    UPDATED_AT = "updated_at"
    ERROR = "error"
    INDEX_REDRIVES = "index_redrives"
    ETAG = "etag"  # ETag of the archive object the HSDS domain was built from


class FileIndex:
    BY_YEAR_MONTH = "by_year_month"
    BY_MISR_PATH = "by_misr_path"
    BY_STATE = "by_state"


FILES_TABLE = TableSchema(
    table_name=FILES_TABLE_NAME,
    hash_key=KeyAttribute(FileAttr.FILE_NAME, "S"),
    indexes=(
        Index(FileIndex.BY_YEAR_MONTH, KeyAttribute(FileAttr.YEAR_MONTH, "S"), KeyAttribute(FileAttr.ORBIT, "N")),
        Index(FileIndex.BY_MISR_PATH, KeyAttribute(FileAttr.MISR_PATH, "N"), KeyAttribute(FileAttr.ORBIT, "N")),
        Index(FileIndex.BY_STATE, KeyAttribute(FileAttr.STATE, "S"), KeyAttribute(FileAttr.ORBIT, "N")),
    ),
)


class JobAttr:
    JOB_ID = "job_id"
    OWNER = "owner"
    DEFINITION = "job_definition"
    QUERY = "query"
    PARAMETERS = "parameters"
    STATE = "state"
    SUBMITTED_AT = "submitted_at"
    COMPLETED_AT = "completed_at"
    FILE_COUNT = "file_count"
    TOTAL_BYTES = "total_bytes"
    COMPOSITE_KEY = "composite_key"  # the keys the job's reducer wrote (its reduced marker lists them)
    ERROR = "error"
    # From the definition at submission: whether a reduce step follows the job's last file.
    REDUCER = "reducer"
    RESULT_PREFIX = "result_prefix"  # an orbit's result: results/<job>/<YYYY.MM>/<prefix>_O..._V001<suffix>
    RESULT_SUFFIX = "result_suffix"
    REDUCE_REQUESTED_AT = "reduce_requested_at"  # carousel: the ReduceRequest was sent (ISO 8601 UTC)
    REDUCE_REDRIVES = "reduce_redrives"  # carousel: times a transiently failed ReduceRequest was sent again
    # Set when the job ends: how many of its files gave a result and how many failed (their reasons
    # are on the job-files); a job with failed files is COMPLETE with FAILED_FILES > 0.
    DONE_FILES = "done_files"
    FAILED_FILES = "failed_files"
    REOPENED_AT = "reopened_at"  # `datacarousel retry` put a COMPLETE job's failed files back (ISO 8601 UTC)
    # The launch lease's own item (job_id LAUNCH_LEASE_ID, no state: in no index) holds only these.
    LEASE_HOLDER = "lease_holder"
    LEASE_UNTIL_MS = "lease_until_ms"  # POSIX milliseconds
    # The researcher's slack: the latest acceptable completion (ISO 8601 UTC, or POSIX seconds); absent =
    # prompt. The carousel may hold the job's restores back within it to share them with later jobs.
    DEADLINE = "deadline"


# Key of the jobs-table item through which one carousel step at a time starts workers.
LAUNCH_LEASE_ID = "~launch-lease"


class JobIndex:
    BY_STATE = "by_state"


JOBS_TABLE = TableSchema(
    table_name=JOBS_TABLE_NAME,
    hash_key=KeyAttribute(JobAttr.JOB_ID, "S"),
    indexes=(Index(JobIndex.BY_STATE, KeyAttribute(JobAttr.STATE, "S"), KeyAttribute(JobAttr.SUBMITTED_AT, "S")),),
)


class JobFileAttr:
    JOB_ID = "job_id"
    FILE_NAME = "file_name"
    STATE = "state"
    ORBIT = "orbit"
    SIZE = "size_bytes"
    RESULT_KEY = "result_key"
    ATTEMPTS = "attempts"
    ERROR = "error"
    UPDATED_AT = "updated_at"
    # carousel: set with WAITING -> QUEUED, removed once the WorkItem is on the work queue
    RELEASE_PENDING_AT = "release_pending_at"
    # carousel: how often a work item that failed only transiently was sent again (bounded)
    REDRIVES = "redrives"


class JobFileIndex:
    BY_FILE = "by_file"


JOB_FILES_TABLE = TableSchema(
    table_name=JOB_FILES_TABLE_NAME,
    hash_key=KeyAttribute(JobFileAttr.JOB_ID, "S"),
    range_key=KeyAttribute(JobFileAttr.FILE_NAME, "S"),
    indexes=(
        Index(JobFileIndex.BY_FILE, KeyAttribute(JobFileAttr.FILE_NAME, "S"), KeyAttribute(JobFileAttr.JOB_ID, "S")),
    ),
)


class IndexRequestAttr:
    """The loader's ledger of index requests it sent: one item per file, the last request.

    A table of its own, written with BatchWriteItem (25 items a call) rather than a conditional
    UpdateItem per file on BasicFusionFiles: the ledger's items are the loader's alone, so a put
    can never overwrite another writer's state, and queuing the archive costs one write call per
    25 files instead of one per file.
    """

    FILE_NAME = "file_name"
    KEY = "key"  # the archive object's key (bucket and size are in the request itself)
    ETAG = "etag"  # ETag of the object version queued
    QUEUED_AT = "queued_at"  # ISO 8601 UTC
    EXPIRES_AT = "expires_at"  # POSIX seconds: past it the request may be queued again (and DynamoDB's TTL drops it)


INDEX_REQUESTS_TABLE = TableSchema(
    table_name=INDEX_REQUESTS_TABLE_NAME,
    hash_key=KeyAttribute(IndexRequestAttr.FILE_NAME, "S"),
    ttl_attribute=IndexRequestAttr.EXPIRES_AT,
)

TABLES = (FILES_TABLE, JOBS_TABLE, JOB_FILES_TABLE, INDEX_REQUESTS_TABLE)


class FileState(str, enum.Enum):
    """Where one archive file is in the carousel."""

    ARCHIVED = "ARCHIVED"  # in Deep Archive, not readable
    RESTORING = "RESTORING"  # restore requested, not finished
    RESTORED = "RESTORED"  # readable copy in S3, not yet in HSDS
    INDEXED = "INDEXED"  # readable and linked into HSDS
    FAILED = "FAILED"  # cannot be indexed (bad file); reason in `error`


class JobState(str, enum.Enum):
    OPEN = "OPEN"
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"


class JobFileState(str, enum.Enum):
    WAITING = "WAITING"  # the file is not readable yet
    QUEUED = "QUEUED"  # released: a work item is on the job work queue
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


class RestoreTier(str, enum.Enum):
    BULK = "Bulk"
    STANDARD = "Standard"
    EXPEDITED = "Expedited"  # not allowed for DEEP_ARCHIVE


# --- Stack outputs and worker environment ------------------------------------------


@dataclass(frozen=True)
class SharedResource:
    """One resource a worker needs: its stack output name and its environment variable."""

    output: str
    env: str
    description: str


class Env:
    """Environment variables the workers read (besides the standard AWS_* ones)."""

    STACK_NAME = "DC_STACK_NAME"
    ARCHIVE_BUCKET = "DC_ARCHIVE_BUCKET"
    RESULTS_BUCKET = "DC_RESULTS_BUCKET"
    HSDS_BUCKET = "DC_HSDS_BUCKET"
    INDEX_QUEUE_URL = "DC_INDEX_QUEUE_URL"
    INDEX_DLQ_URL = "DC_INDEX_DLQ_URL"
    RESTORE_EVENTS_QUEUE_URL = "DC_RESTORE_EVENTS_QUEUE_URL"
    RESTORE_EVENTS_DLQ_URL = "DC_RESTORE_EVENTS_DLQ_URL"
    FILES_TABLE = "DC_FILES_TABLE"
    JOBS_TABLE = "DC_JOBS_TABLE"
    JOB_FILES_TABLE = "DC_JOB_FILES_TABLE"
    INDEX_REQUESTS_TABLE = "DC_INDEX_REQUESTS_TABLE"
    BATCH_JOB_QUEUE = "DC_BATCH_JOB_QUEUE"
    HSDS_FOLDER = "DC_HSDS_FOLDER"
    ARCHIVE_PREFIX = "DC_ARCHIVE_PREFIX"
    WINDOW_BYTES = "DC_WINDOW_BYTES"
    WINDOW_FILES = "DC_WINDOW_FILES"
    RESTORE_TIER = "DC_RESTORE_TIER"
    RESTORE_DAYS = "DC_RESTORE_DAYS"
    LOG_LEVEL = "DC_LOG_LEVEL"
    # Carousel step tuning (optional; defaults in carousel.runtime.Tuning).
    KEEP_S = "DC_KEEP_S"
    CAROUSEL_POLICY = "DC_CAROUSEL_POLICY"  # demand | rotation
    PROBE_AFTER_S = "DC_PROBE_AFTER_S"  # HeadObject a restore this old (its completion event may be lost)
    INDEX_RETRY_S = "DC_INDEX_RETRY_S"  # queue an index request again after this long
    MAX_INDEX_WORKERS = "DC_MAX_INDEX_WORKERS"  # index_file drainers running at once
    MAX_JOB_WORKERS = "DC_MAX_JOB_WORKERS"  # job-definition queue drainers running at once
    # How job definitions are run: "batch" (AWS Batch) or "local" (the embedded environment).
    LAUNCHER = "DC_LAUNCHER"
    # Embedded environment only: where local jobs keep PID and log files, and how they run.
    LOCAL_STATE_DIR = "DC_LOCAL_STATE_DIR"
    LOCAL_RUN_MODE = "DC_LOCAL_RUN_MODE"  # "process" or "container"
    # HSDS client settings, named as h5pyd reads them.
    HS_ENDPOINT = "HS_ENDPOINT"
    HS_USERNAME = "HS_USERNAME"
    HS_PASSWORD = "HS_PASSWORD"
    # Standard AWS settings, named as boto3 reads them.
    AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
    AWS_REGION = "AWS_DEFAULT_REGION"
    AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
    AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"


SHARED_RESOURCES: tuple[SharedResource, ...] = (
    SharedResource("ArchiveBucketName", Env.ARCHIVE_BUCKET, "S3 bucket holding the BasicFusion archive"),
    SharedResource("ResultsBucketName", Env.RESULTS_BUCKET, "S3 bucket receiving job results"),
    SharedResource("HsdsBucketName", Env.HSDS_BUCKET, "S3 bucket holding HSDS storage"),
    SharedResource("IndexQueueUrl", Env.INDEX_QUEUE_URL, "SQS queue of index requests"),
    SharedResource("IndexDeadLetterQueueUrl", Env.INDEX_DLQ_URL, "dead-letter queue of the index queue"),
    SharedResource("RestoreEventsQueueUrl", Env.RESTORE_EVENTS_QUEUE_URL, "SQS queue of S3 restore events"),
    SharedResource(
        "RestoreEventsDeadLetterQueueUrl", Env.RESTORE_EVENTS_DLQ_URL, "dead-letter queue of the restore-events queue"
    ),
    SharedResource("FilesTableName", Env.FILES_TABLE, "DynamoDB table BasicFusionFiles"),
    SharedResource("JobsTableName", Env.JOBS_TABLE, "DynamoDB table of researcher jobs"),
    SharedResource("JobFilesTableName", Env.JOB_FILES_TABLE, "DynamoDB table of per-job file states"),
    SharedResource("IndexRequestsTableName", Env.INDEX_REQUESTS_TABLE, "DynamoDB table of the loader's index requests"),
    SharedResource("BatchJobQueueName", Env.BATCH_JOB_QUEUE, "AWS Batch job queue"),
)

OUTPUT_TO_ENV = {r.output: r.env for r in SHARED_RESOURCES}

# --- HSDS domains and result keys ----------------------------------------------------
DEFAULT_HSDS_FOLDER = "/home/{user}/basicfusion/"
# Root attribute index_file writes LAST on a domain (JSON: source, etag, size, datasets, indexed_at).
# A domain without it, or with another ETag, is incomplete or stale and gets rebuilt.
HSDS_INDEXED_MARKER = "datacarousel_indexed"
# Root attribute naming the (unlinked) dataset of a domain that holds its file's restart points
# (`datacarousel.chunkread.restart.dumps_file` bytes, uint8): written by index_file before the marker.
HSDS_RESTART_POINTS = "datacarousel_restart_points"
RESULTS_PREFIX = "results"
COMPOSITES_DIR = "composites"
REDUCED_MARKER = "reduced.json"  # under a job's results: written last by its reducer

# --- SQS ------------------------------------------------------------------------
MAX_RECEIVE_COUNT = 5  # receives before a message moves to its dead-letter queue
SQS_BATCH_SIZE = 10
# Message attribute carrying the reason when a worker sends a message to a DLQ itself.
FAILURE_REASON_ATTRIBUTE = "FailureReason"

# --- Container images and the template parameters that take their URIs -----------------


@dataclass(frozen=True)
class WorkerImage:
    """One worker image (docker/<image>.Dockerfile) and the template parameter taking its URI."""

    job_definition: str  # its JobDefinitionName
    image: str
    parameter: str


# The pipeline's own workers. Each analysis's image is named in its description (datacarousel.definitions).
WORKER_IMAGES: tuple[WorkerImage, ...] = (
    WorkerImage(JobDefinitionName.LOADER.value, "datacarousel-loader", "LoaderImage"),
    WorkerImage(JobDefinitionName.INDEX_FILE.value, "datacarousel-index-file", "IndexFileImage"),
    WorkerImage(JobDefinitionName.RECORD_METADATA.value, "datacarousel-record-metadata", "RecordMetadataImage"),
    WorkerImage(JobDefinitionName.CAROUSEL.value, "datacarousel-carousel", "CarouselImage"),
)
HSDS_IMAGE_PARAMETER = "HsdsImage"
# Stack outputs besides SHARED_RESOURCES.
HSDS_ENDPOINT_OUTPUT = "HsdsEndpoint"  # HS_ENDPOINT of the HSDS service on ECS
# The analyses' HSDS account (datacarousel.hsds_accounts: the reader), a Secrets Manager secret
# {"username", "password"}: what a registered analysis's job definition gets.
HSDS_READER_SECRET_OUTPUT = "HsdsReaderSecretArn"
# A job definition registered after the stack was created carries this tag, valued the stack's name.
STACK_TAG = "datacarousel:stack"
RESEARCHER_ROLE_OUTPUT = "ResearcherJobRoleArn"  # job role of registered job definitions
ANALYSIS_EXECUTION_ROLE_OUTPUT = "AnalysisExecutionRoleArn"  # execution role of the analyses (the reader's secret)

# --- defaults the template's parameters share with the code (issue 19) ------------------------------
# ECR repositories of the stack's images start with this (`datacarousel images push --create-repositories`
# creates `datacarousel-<image>`); the execution role pulls from these repositories only.
DEFAULT_IMAGE_REPOSITORY_PREFIX = f"{PROJECT}-"
# The carousel step's settings (`datacarousel.config.Settings`, DC_* variables of `Env`): the code's defaults and
# the template's parameter defaults alike.
CAROUSEL_POLICIES = ("demand", "rotation")  # what an operator may choose (DC_CAROUSEL_POLICY)
DEFAULT_CAROUSEL_POLICY = "demand"
DEFAULT_MAX_INDEX_WORKERS = 4
DEFAULT_MAX_JOB_WORKERS = 8
DEFAULT_KEEP_S = 2 * 86_400  # two days measured best in bench/bench_simulator.py
DEFAULT_PROBE_AFTER_S = 6 * 3600
DEFAULT_INDEX_RETRY_S = 3600
