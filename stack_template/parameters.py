"""The template's parameters: what an operator gives at stack creation, grouped for the console.

Network ids and image URIs exist only in the operator's account; the carousel's window,
restore tier and schedule, the compute ceiling and the log level are tunables with
defaults. `add_parameters` adds them all and returns them as one `Parameters`, which the
other families refer to (`Ref(p.vpc)`, `Ref(p.images[name])`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import Equals, Not, Parameter, Ref, Sub, Template

from datacarousel import contract, hsds_accounts, registry
from datacarousel.hsds_accounts import HsdsRole
from stack_template.common import HSDS_PORT

HAS_ARCHIVE_PREFIX = "HasArchivePrefix"  # template condition: ArchivePrefix is not empty
IMAGE_URI_PATTERN = (
    r"^[a-z0-9][a-z0-9.-]*(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
)


@dataclass(frozen=True)
class Parameters:
    vpc: Parameter
    subnets: Parameter
    security_group: Parameter
    images: dict[str, Parameter]  # by job definition name
    hsds_image: Parameter
    image_repository_prefix: Parameter
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
    tuning: dict[str, Parameter]  # the carousel step's settings, by the DC_* variable it sets


# The carousel step's settings (`datacarousel.config.Settings`): parameter, variable, default, constraints, meaning.
# The defaults are the code's (`datacarousel.contract`), never repeated here.
CAROUSEL_TUNING: tuple[tuple[str, str, Any, dict[str, Any], str], ...] = (
    (
        "CarouselPolicy",
        contract.Env.CAROUSEL_POLICY,
        contract.DEFAULT_CAROUSEL_POLICY,
        {"Type": "String", "AllowedValues": list(contract.CAROUSEL_POLICIES)},
        "Admission policy: demand (most-wanted files first, fair between owners) or rotation (time order)",
    ),
    (
        "MaxIndexWorkers",
        contract.Env.MAX_INDEX_WORKERS,
        contract.DEFAULT_MAX_INDEX_WORKERS,
        {"Type": "Number", "MinValue": 1, "MaxValue": 1000},
        "Most index_file workers the carousel step keeps running",
    ),
    (
        "MaxJobWorkers",
        contract.Env.MAX_JOB_WORKERS,
        contract.DEFAULT_MAX_JOB_WORKERS,
        {"Type": "Number", "MinValue": 1, "MaxValue": 1000},
        "Most workers of each analysis the carousel step keeps running",
    ),
    (
        "KeepSeconds",
        contract.Env.KEEP_S,
        contract.DEFAULT_KEEP_S,
        {"Type": "Number", "MinValue": 0},
        "Seconds an unneeded restored copy is kept while overlapping jobs arrive (0: off)",
    ),
    (
        "ProbeAfterSeconds",
        contract.Env.PROBE_AFTER_S,
        contract.DEFAULT_PROBE_AFTER_S,
        {"Type": "Number", "MinValue": 1},
        "Seconds after which a restore with no completion event is checked (HeadObject)",
    ),
    (
        "IndexRetrySeconds",
        contract.Env.INDEX_RETRY_S,
        contract.DEFAULT_INDEX_RETRY_S,
        {"Type": "Number", "MinValue": 1},
        "Seconds before a file queued for indexing but not indexed is queued again",
    ),
)


def add_parameters(t: Template) -> Parameters:
    params = Parameters(
        **_network_parameters(t),
        **_image_parameters(t),
        **_carousel_parameters(t),
        **_compute_and_storage_parameters(t),
        tuning=_tuning_parameters(t),
    )
    _add_console_interface(t, params)
    return params


def _network_parameters(t: Template) -> dict[str, Any]:
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
    return {"vpc": vpc, "subnets": subnets, "security_group": security_group}


def _image_parameters(t: Template) -> dict[str, Any]:
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
    repository_prefix = t.add_parameter(
        Parameter(
            "ImageRepositoryPrefix",
            Type="String",
            Default=contract.DEFAULT_IMAGE_REPOSITORY_PREFIX,
            # Never empty: the execution role must not pull from every repository of the account.
            AllowedPattern=r"^[a-z0-9][a-z0-9._/-]{0,200}$",
            ConstraintDescription="the start of an ECR repository name (lower case), not empty",
            Description="The execution role pulls only from this account's ECR repositories whose name starts "
            "with this (the images above, and registered analyses' images)",
        )
    )
    return {"images": images, "hsds_image": hsds_image, "image_repository_prefix": repository_prefix}


def _carousel_parameters(t: Template) -> dict[str, Any]:
    window_bytes = t.add_parameter(
        Parameter(
            "WindowBytes",
            Type="Number",
            Default=str(contract.DEFAULT_WINDOW_BYTES),
            MinValue=1,
            Description="Carousel window: most bytes restored (staged in S3 Standard) at once",
        )
    )
    window_files = t.add_parameter(
        Parameter(
            "WindowFiles",
            Type="Number",
            Default=str(contract.DEFAULT_WINDOW_FILES),
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
            Default=str(contract.DEFAULT_RESTORE_DAYS),
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
    archive_prefix = t.add_parameter(
        Parameter(
            "ArchivePrefix",
            Type="String",
            Default="",
            AllowedPattern=r"^([A-Za-z0-9!_.*'()/-]*)$",
            Description="Key prefix of the BasicFusion files in the archive bucket (empty: the whole bucket)",
        )
    )
    # No prefix: the whole bucket is the archive (policies then need no s3:prefix condition).
    t.add_condition(HAS_ARCHIVE_PREFIX, Not(Equals(Ref(archive_prefix), "")))
    return {
        "window_bytes": window_bytes,
        "window_files": window_files,
        "restore_tier": restore_tier,
        "restore_days": restore_days,
        "carousel_schedule": carousel_schedule,
        "archive_prefix": archive_prefix,
    }


def _tuning_parameters(t: Template) -> dict[str, Parameter]:
    return {
        env: t.add_parameter(Parameter(title, Default=str(default), Description=description, **constraints))
        for title, env, default, constraints, description in CAROUSEL_TUNING
    }


def _compute_and_storage_parameters(t: Template) -> dict[str, Any]:
    hsds_username = t.add_parameter(
        Parameter(
            "HsdsUsername",
            Type="String",
            Default=contract.PROJECT,
            AllowedPattern=r"^[a-z][a-z0-9_-]{0,31}$",
            ConstraintDescription="lower-case letters, digits, '_' or '-', starting with a letter",
            Description=(
                "HSDS user of the pipeline's workers; the analyses' is <user>-reader, the folders' admin <user>-admin"
                " (their passwords are generated into Secrets Manager)"
            ),
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
    return {
        "hsds_username": hsds_username,
        "max_vcpus": max_vcpus,
        "archive_transition_days": archive_transition_days,
        "log_level": log_level,
    }


def hsds_user(p: Parameters, role: HsdsRole) -> str:
    """The user name of an HSDS account, as a `Sub` expression over HsdsUsername (`hsds_accounts.username`)."""
    return hsds_accounts.username(role, f"${{{p.hsds_username.title}}}")


def hsds_folder(p: Parameters) -> Sub:
    """DC_HSDS_FOLDER of the stack: the domains' folder, in the writer's home."""
    return Sub(contract.DEFAULT_HSDS_FOLDER.format(user=hsds_user(p, HsdsRole.WRITER)))


def _add_console_interface(t: Template, p: Parameters) -> None:
    """Parameter groups and labels for the CloudFormation console."""
    groups = [
        ("Network", [p.vpc, p.subnets, p.security_group]),
        ("Container images", [*p.images.values(), p.hsds_image, p.image_repository_prefix]),
        (
            "Carousel",
            [p.window_bytes, p.window_files, p.restore_tier, p.restore_days, p.carousel_schedule, p.archive_prefix],
        ),
        ("Carousel tuning", list(p.tuning.values())),
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
