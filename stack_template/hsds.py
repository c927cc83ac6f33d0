"""HSDS on ECS Fargate: one task of a service node and its data nodes, found by the workers through Cloud Map.

The workers read and write HDF5 through HSDS (HS_ENDPOINT, a private DNS name); HSDS keeps
its data in its own bucket. One task only: two independent HSDS node sets must not write
the same storage bucket. The task admits the workers' security group only.

HSDS is configured explicitly, from `HSDS_SERVER_CONFIG` (no anonymous access, no public
default ACL): the embedded environment's server (`workbench/local/hsds_server.py`) reads the
same settings. A one-shot `config` container writes them, and the password file made from the
injected secret, to a task volume the nodes read: an environment variable cannot turn an HSDS
boolean off (hsds converts the string with `bool()`), and no password is ever on a command line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from troposphere import GetAtt, Ref, Sub, Template
from troposphere import ec2 as tec2
from troposphere import ecs as tecs
from troposphere import logs as tlogs
from troposphere import secretsmanager as tsm
from troposphere import servicediscovery as tsd

from datacarousel import hsds_accounts
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.hsds_accounts import HsdsRole
from stack_template.common import HSDS_PORT, hsds_credentials
from stack_template.iam import Roles
from stack_template.parameters import Parameters, hsds_folder, hsds_user
from stack_template.storage import Buckets

HSDS_SERVICE_NAME = "hsds"  # Cloud Map service: HS_ENDPOINT is http://hsds.<namespace>:5101
HSDS_NAMESPACE = "${AWS::StackName}.internal"  # private DNS namespace (a Sub expression)
HSDS_DATA_NODE_PORT = 6101  # first data node; data nodes listen on 6101, 6102, ... inside the task

# The HSDS server settings of every HSDS this project runs (the template's task and the embedded
# server): no unauthenticated request is served (hsds's packaged default is `allow_noauth: true`),
# a new domain gets no public `default` ACL, and the service node queues bursts of requests (several
# workers linking at once) instead of answering 503 above hsds's default of 100 tasks.
HSDS_SERVER_CONFIG: Mapping[str, object] = MappingProxyType(
    {"allow_noauth": False, "default_public": False, "max_task_count": 1000}
)
# The task volume the `config` container writes and the nodes read (read-only for them).
HSDS_CONFIG_VOLUME = "hsds-config"
HSDS_CONFIG_DIR = "/hsds-config"
HSDS_OVERRIDE_FILE = f"{HSDS_CONFIG_DIR}/override.yml"
HSDS_PASSWORD_FILE = f"{HSDS_CONFIG_DIR}/passwd.txt"
HSDS_CONFIG_CONTAINER = "config"
# The `config` container's program (`python -c`): the override (JSON, which is YAML) from its
# environment, and the password file (0600) from the injected secret's variables. Nothing secret
# is in its argv; the nodes' command lines carry no credentials either.
CONFIG_WRITER = (
    "import os\n"
    "d = os.environ['HSDS_CONFIG_DIR']\n"
    "with open(os.path.join(d, 'override.yml'), 'w') as f:\n"
    "    f.write(os.environ['HSDS_CONFIG_OVERRIDE'])\n"
    "p = os.path.join(d, 'passwd.txt')\n"
    "if os.path.exists(p):\n"
    "    os.unlink(p)\n"
    "fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n"
    "with os.fdopen(fd, 'w') as f:\n"
    f"    for role in {tuple(role.name for role in HsdsRole)!r}:\n"
    "        f.write(os.environ[f'HSDS_{role}_USERNAME'] + ':' + os.environ[f'HSDS_{role}_PASSWORD'] + '\\n')\n"
)


def account_variables(role: HsdsRole) -> tuple[str, str]:
    """The `config` container's variables holding `role`'s user name and password (CONFIG_WRITER reads them)."""
    return f"HSDS_{role.name}_USERNAME", f"HSDS_{role.name}_PASSWORD"


# The task's `folders` container: once the service node is healthy, the admin makes the domains' folder
# and puts its ACLs (`python -m datacarousel.hsds_accounts`), at every start of the task (idempotent).
# It runs in index_file's image (the kernel is in every worker image) and is the admin secret's only user.
HSDS_FOLDERS_CONTAINER = "folders"


def task_override() -> dict[str, object]:
    """The override file of the task's nodes: `HSDS_SERVER_CONFIG` and where the password file is."""
    return {**HSDS_SERVER_CONFIG, "password_file": HSDS_PASSWORD_FILE}


@dataclass(frozen=True)
class Hsds:
    endpoint: Sub
    cluster: tecs.Cluster
    service: tecs.Service


def _hsds_container_environment(buckets: Buckets) -> list[tecs.Environment]:
    return [
        tecs.Environment(Name="CONFIG_OVERRIDE_PATH", Value=HSDS_OVERRIDE_FILE),
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
    secrets: Mapping[HsdsRole, tsm.Secret],
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
    task_group = _add_task_security_group(t, p)
    discovery = _add_discovery(t, p)
    endpoint = Sub(f"http://{HSDS_SERVICE_NAME}.{HSDS_NAMESPACE}:{HSDS_PORT}")
    cluster = t.add_resource(
        tecs.Cluster(
            "HsdsCluster",
            ClusterSettings=[tecs.ClusterSetting(Name="containerInsights", Value="enabled")],
        )
    )
    dn_urls = ",".join(f"http://127.0.0.1:{HSDS_DATA_NODE_PORT + i}" for i in range(data_nodes))
    common = [f"--dn_urls={dn_urls}", "--standalone"]
    task = t.add_resource(
        tecs.TaskDefinition(
            "HsdsTaskDefinition",
            Family=Sub("${AWS::StackName}-hsds"),
            RequiresCompatibilities=["FARGATE"],
            NetworkMode="awsvpc",
            Cpu=str(cpu),
            Memory=str(memory_mib),
            RuntimePlatform=tecs.RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture="X86_64"),
            ExecutionRoleArn=GetAtt(roles.hsds_execution, "Arn"),
            TaskRoleArn=GetAtt(roles.hsds_task, "Arn"),
            Volumes=[tecs.Volume(Name=HSDS_CONFIG_VOLUME)],  # task storage, gone with the task
            ContainerDefinitions=[
                _config_writer(p, secrets=secrets, log_group=log_group),
                _service_node(p, buckets, log_group=log_group, common=common, endpoint=endpoint),
                *_data_nodes(p, buckets, log_group, common, data_nodes),
                _folders(p, admin=secrets[HsdsRole.ADMIN], log_group=log_group),
            ],
        )
    )
    service = _add_service(t, p, cluster=cluster, task=task, task_group=task_group, discovery=discovery)
    return Hsds(endpoint=endpoint, cluster=cluster, service=service)


def _add_task_security_group(t: Template, p: Parameters) -> tec2.SecurityGroup:
    return t.add_resource(
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


def _add_discovery(t: Template, p: Parameters) -> tsd.Service:
    """The Cloud Map namespace and service that give the task its DNS name."""
    namespace = t.add_resource(
        tsd.PrivateDnsNamespace(
            "HsdsNamespace",
            Name=Sub(HSDS_NAMESPACE),
            Vpc=Ref(p.vpc),
            Description="Data Carousel internal names (HSDS)",
        )
    )
    return t.add_resource(
        tsd.Service(
            "HsdsDiscoveryService",
            Name=HSDS_SERVICE_NAME,
            NamespaceId=Ref(namespace),
            DnsConfig=tsd.DnsConfig(RoutingPolicy="MULTIVALUE", DnsRecords=[tsd.DnsRecord(Type="A", TTL=10)]),
            # ECS reports the task's container health to Cloud Map: an unhealthy task leaves DNS.
            HealthCheckCustomConfig=tsd.HealthCheckCustomConfig(FailureThreshold=1),
        )
    )


def _logging(log_group: tlogs.LogGroup, prefix: str) -> tecs.LogConfiguration:
    return tecs.LogConfiguration(
        LogDriver="awslogs",
        Options={
            "awslogs-group": Ref(log_group),
            "awslogs-region": Ref("AWS::Region"),
            "awslogs-stream-prefix": prefix,
        },
    )


def _health() -> tecs.HealthCheck:
    return tecs.HealthCheck(
        Command=["CMD", "python", "-m", "hsds.node_state"],
        Interval=30,
        Timeout=10,
        Retries=3,
        StartPeriod=60,
    )


def _config_writer(
    p: Parameters, *, secrets: Mapping[HsdsRole, tsm.Secret], log_group: tlogs.LogGroup
) -> tecs.ContainerDefinition:
    """Writes the nodes' override file and password file (every account) to the config volume, then exits."""
    return tecs.ContainerDefinition(
        Name=HSDS_CONFIG_CONTAINER,
        Image=Ref(p.hsds_image),
        Essential=False,
        ReadonlyRootFilesystem=True,
        Command=["python", "-c", CONFIG_WRITER],
        Environment=[
            tecs.Environment(Name="HSDS_CONFIG_DIR", Value=HSDS_CONFIG_DIR),
            tecs.Environment(Name="HSDS_CONFIG_OVERRIDE", Value=json.dumps(task_override(), sort_keys=True)),
        ],
        Secrets=[
            variable
            for role in HsdsRole
            for variable in hsds_credentials(tecs.Secret, secrets[role], *account_variables(role))
        ],
        MountPoints=[tecs.MountPoint(SourceVolume=HSDS_CONFIG_VOLUME, ContainerPath=HSDS_CONFIG_DIR, ReadOnly=False)],
        LogConfiguration=_logging(log_group, "hsds-config"),
    )


def _folders(p: Parameters, *, admin: tsm.Secret, log_group: tlogs.LogGroup) -> tecs.ContainerDefinition:
    """Makes the domains' folder and puts its ACLs as the admin, over the task's localhost, then exits."""
    return tecs.ContainerDefinition(
        Name=HSDS_FOLDERS_CONTAINER,
        Image=Ref(p.images[JobDefinitionName.INDEX_FILE.value]),
        Essential=False,
        ReadonlyRootFilesystem=True,
        Command=["python", "-m", hsds_accounts.__name__],
        Environment=[
            tecs.Environment(Name=Env.HS_ENDPOINT, Value=f"http://127.0.0.1:{HSDS_PORT}"),
            tecs.Environment(Name=Env.HSDS_FOLDER, Value=hsds_folder(p)),
            tecs.Environment(Name=hsds_accounts.WRITER_VARIABLE, Value=Sub(hsds_user(p, HsdsRole.WRITER))),
            tecs.Environment(Name=Env.LOG_LEVEL, Value=Ref(p.log_level)),
        ],
        Secrets=hsds_credentials(tecs.Secret, admin),
        DependsOn=[tecs.ContainerDependency(ContainerName="sn", Condition="HEALTHY")],
        LogConfiguration=_logging(log_group, "hsds-folders"),
    )


def _node_config() -> dict[str, object]:
    """What every node gets to read the config the `config` container wrote (and waits for it)."""
    return {
        "MountPoints": [tecs.MountPoint(SourceVolume=HSDS_CONFIG_VOLUME, ContainerPath=HSDS_CONFIG_DIR, ReadOnly=True)],
        "DependsOn": [tecs.ContainerDependency(ContainerName=HSDS_CONFIG_CONTAINER, Condition="SUCCESS")],
    }


def _service_node(
    p: Parameters,
    buckets: Buckets,
    *,
    log_group: tlogs.LogGroup,
    common: list[str],
    endpoint: Sub,
) -> tecs.ContainerDefinition:
    return tecs.ContainerDefinition(
        Name="sn",
        Image=Ref(p.hsds_image),
        Essential=True,
        ReadonlyRootFilesystem=True,
        # No shell, no credential: the users are in the password file the override names.
        Command=[
            "python",
            "-m",
            "hsds.node_runner",
            "--node_type=sn",
            *common,
            f"--sn_port={HSDS_PORT}",
        ],
        PortMappings=[tecs.PortMapping(ContainerPort=HSDS_PORT, Protocol="tcp")],
        Environment=[
            *_hsds_container_environment(buckets),
            tecs.Environment(Name="NODE_TYPE", Value="sn"),
            tecs.Environment(Name="HSDS_ENDPOINT", Value=endpoint),
            # The admin's name (a string setting may come from the environment): only it reads or puts ACLs.
            tecs.Environment(Name="ADMIN_USER", Value=Sub(hsds_user(p, HsdsRole.ADMIN))),
        ],
        HealthCheck=_health(),
        LogConfiguration=_logging(log_group, "hsds-sn"),
        **_node_config(),
    )


def _data_nodes(
    p: Parameters, buckets: Buckets, log_group: tlogs.LogGroup, common: list[str], data_nodes: int
) -> list[tecs.ContainerDefinition]:
    return [
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
            HealthCheck=_health(),
            LogConfiguration=_logging(log_group, f"hsds-dn{i + 1}"),
            **_node_config(),
        )
        for i in range(data_nodes)
    ]


def _add_service(
    t: Template,
    p: Parameters,
    *,
    cluster: tecs.Cluster,
    task: tecs.TaskDefinition,
    task_group: tec2.SecurityGroup,
    discovery: tsd.Service,
) -> tecs.Service:
    return t.add_resource(
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
