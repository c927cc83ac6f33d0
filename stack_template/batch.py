"""AWS Batch: the compute environment, the job queue, one job definition per worker, and the carousel schedule.

Every job definition runs `python -m <package>` in its worker's image with the same
environment (`job_environment`: the shared resources of `datacarousel.contract` and the
tunables); the HSDS credentials come from the secret of the job's own HSDS account
(`datacarousel.hsds_accounts.role_of`: the pipeline's writer, the analyses' reader; the loader gets none),
read by an execution role that reads that secret only. The pipeline workers' sizes are fixed
here; an analysis's come from its description (`batch_jobs/<analysis>/definition.toml`).
EventBridge submits the carousel step on the operator's schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from troposphere import GetAtt, Ref, Template
from troposphere import batch as tbatch
from troposphere import ec2 as tec2
from troposphere import events as tevents
from troposphere import logs as tlogs
from troposphere import secretsmanager as tsm

from datacarousel import contract, registry
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.definitions import JobDefinition
from datacarousel.hsds_accounts import HsdsRole, role_of
from stack_template.common import hsds_credentials
from stack_template.iam import Roles, role_prefix
from stack_template.parameters import Parameters, hsds_folder

# The root filesystem of every job is read-only; /tmp is the one writable place, a private tmpfs
# (EC2 platform: Batch supports Tmpfs there, not on Fargate), as in the embedded environment's
# container run mode (`--read-only --tmpfs /tmp`). Its pages count against the job's memory.
SCRATCH_PATH = "/tmp"  # a private tmpfs per job, not the host's /tmp
SCRATCH_MIB = 512  # matplotlib's cache (MPLCONFIGDIR=/tmp/matplotlib), quick-look images, tempfile
SCRATCH_MOUNT_OPTIONS = ("rw", "nosuid", "nodev")


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
        (Env.HSDS_FOLDER, hsds_folder(p)),
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
    secrets: Mapping[HsdsRole, tsm.Secret],
    log_group: tlogs.LogGroup,
    environment: list[tuple[str, Any]],
) -> Batch:
    compute = _add_compute_environment(t, p, roles)
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
    images = {w.job_definition: w.parameter for w in registry.worker_images()}
    # The carousel step alone reads these settings (datacarousel.config.Settings: carousel_policy, keep_s, ...).
    tuning = [tbatch.Environment(Name=name, Value=Ref(parameter)) for name, parameter in p.tuning.items()]
    definitions: dict[str, tbatch.JobDefinition] = {}
    for spec in workers():
        own = env + tuning if spec.definition == JobDefinitionName.CAROUSEL.value else env
        role = role_of(spec.definition)
        own_secrets = [] if role is None else hsds_credentials(tbatch.Secret, secrets[role])
        definitions[spec.definition] = t.add_resource(
            _job_definition(spec, p, roles=roles, env=own, secrets=own_secrets, log_group=log_group)
        )
        assert images[spec.definition] == p.images[spec.definition].title
    return Batch(compute_environment=compute, job_queue=queue, job_definitions=definitions)


def _add_compute_environment(t: Template, p: Parameters, roles: Roles) -> tbatch.ComputeEnvironment:
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
    return t.add_resource(
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


def _job_definition(
    spec: WorkerSpec,
    p: Parameters,
    *,
    roles: Roles,
    env: list[tbatch.Environment],
    secrets: list[tbatch.Secret],
    log_group: tlogs.LogGroup,
) -> tbatch.JobDefinition:
    return tbatch.JobDefinition(
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
            ExecutionRoleArn=GetAtt(roles.execution[role_of(spec.definition)], "Arn"),
            ResourceRequirements=[
                tbatch.ResourceRequirement(Type="VCPU", Value=str(spec.vcpus)),
                tbatch.ResourceRequirement(Type="MEMORY", Value=str(spec.memory_mib)),
            ],
            Privileged=False,
            ReadonlyRootFilesystem=True,
            LinuxParameters=tbatch.LinuxParameters(
                Tmpfs=[
                    tbatch.Tmpfs(ContainerPath=SCRATCH_PATH, Size=SCRATCH_MIB, MountOptions=list(SCRATCH_MOUNT_OPTIONS))
                ]
            ),
            Environment=env,
            **({"Secrets": secrets} if secrets else {}),
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
