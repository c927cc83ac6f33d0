"""Only for the embedded environment (moto's CloudFormation on loopback), never part of the template.

`local_parameters` gives moto's CloudFormation parameter values (its default network, local
image tags); `restore_notification_configuration` is the archive bucket's restore-event
notification in S3 API form, which the embedded environment applies itself because moto's
CloudFormation creates buckets without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datacarousel import contract, registry
from stack_template.common import RESTORE_EVENTS

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_s3.type_defs import NotificationConfigurationTypeDef

LOCAL_IMAGE_TAG = "local"


def local_parameters(ec2: EC2Client | None = None) -> dict[str, str]:
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


def restore_notification_configuration(queue_arn: str) -> NotificationConfigurationTypeDef:
    """The archive bucket's restore-event notification, in S3 API form (PutBucketNotificationConfiguration).

    moto's CloudFormation creates buckets without their NotificationConfiguration, so the
    embedded environment applies this to the archive bucket after creating the stack.
    """
    return {"QueueConfigurations": [{"QueueArn": queue_arn, "Events": list(RESTORE_EVENTS)}]}
