"""HSDS on ECS Fargate: one task of a service node and its data nodes, found by the workers through Cloud Map.

The workers read and write HDF5 through HSDS (HS_ENDPOINT, a private DNS name); HSDS keeps
its data in its own bucket. One task only: two independent HSDS node sets must not write
the same storage bucket. The task admits the workers' security group only.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Sub, Template
from troposphere import ec2 as tec2
from troposphere import ecs as tecs
from troposphere import logs as tlogs
from troposphere import secretsmanager as tsm
from troposphere import servicediscovery as tsd

from datacarousel.contract import Env
from stack_template.common import HSDS_PORT, SECRET_PASSWORD_KEY, SECRET_USERNAME_KEY
from stack_template.iam import Roles
from stack_template.parameters import Parameters
from stack_template.storage import Buckets

HSDS_SERVICE_NAME = "hsds"  # Cloud Map service: HS_ENDPOINT is http://hsds.<namespace>:5101
HSDS_NAMESPACE = "${AWS::StackName}.internal"  # private DNS namespace (a Sub expression)
HSDS_DATA_NODE_PORT = 6101  # first data node; data nodes listen on 6101, 6102, ... inside the task


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
            ExecutionRoleArn=GetAtt(roles.execution, "Arn"),
            TaskRoleArn=GetAtt(roles.hsds_task, "Arn"),
            ContainerDefinitions=[
                _service_node(p, buckets, secret=secret, log_group=log_group, common=common, endpoint=endpoint),
                *_data_nodes(p, buckets, log_group, common, data_nodes),
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


def _service_node(
    p: Parameters,
    buckets: Buckets,
    *,
    secret: tsm.Secret,
    log_group: tlogs.LogGroup,
    common: list[str],
    endpoint: Sub,
) -> tecs.ContainerDefinition:
    return tecs.ContainerDefinition(
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
        HealthCheck=_health(),
        LogConfiguration=_logging(log_group, "hsds-sn"),
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
