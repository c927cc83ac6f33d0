"""What every resource family of the template shares: names fixed across families and policy helpers.

The constants here are read by more than one family (the HSDS port by the parameters and
the HSDS task, the secret's keys by the secret, HSDS and Batch, the log group's name by the
key policy, the log group and the execution role); the helpers build the policy documents
and ARNs every family writes the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from awacs import sts
from awacs.aws import (
    Action,
    Allow,
    Bool,
    Condition,
    Deny,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import Ref, Sub

from datacarousel.contract import Env

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import EventType

POLICY_VERSION = "2012-10-17"
HSDS_PORT = 5101  # HSDS service node (contract with h5pyd clients: HS_ENDPOINT)
# S3 events the archive bucket sends to the restore-events queue: a restore finished, a restored copy expired.
RESTORE_EVENTS: tuple[EventType, ...] = ("s3:ObjectRestore:Completed", "s3:ObjectRestore:Delete")
SECRET_USERNAME_KEY = "username"
SECRET_PASSWORD_KEY = "password"
LOG_GROUP_NAME = "/datacarousel/${AWS::StackName}"


def checkov_skip(*checks: tuple[str, str]) -> dict[str, Any]:
    """Resource Metadata telling checkov which checks are skipped, each with its reason."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in checks]}}


def stack_arn(service: str, resource: str) -> Sub:
    """ARN of a resource of this stack's region and account."""
    return Sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def policy_document(*statements: Statement) -> PolicyDocument:
    return PolicyDocument(Version=POLICY_VERSION, Statement=list(statements))


def under(arn: Any, suffix: str) -> Sub:
    """`arn` followed by `suffix` (objects of a bucket, indexes of a table, ...)."""
    return Sub(f"${{Arn}}{suffix}", Arn=arn)


# Services that name the calling account (aws:SourceAccount) when they assume a role. EC2 does not
# when it assumes an instance profile's role, so a condition there would lock the instances out.
SOURCE_ACCOUNT_SERVICES = frozenset({"batch.amazonaws.com", "ecs-tasks.amazonaws.com", "events.amazonaws.com"})


def service_trust(service: str) -> PolicyDocument:
    """Trust policy for an AWS service, limited to this account where the service allows (confused deputy)."""
    guard = {}
    if service in SOURCE_ACCOUNT_SERVICES:
        guard["Condition"] = Condition(StringEquals({"aws:SourceAccount": Ref("AWS::AccountId")}))
    return policy_document(
        Statement(Effect=Allow, Principal=Principal("Service", [service]), Action=[sts.AssumeRole], **guard)
    )


def tls_only(resources: list[Any], action: Action) -> Statement:
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=[action],
        Resource=resources,
        Condition=Condition(Bool({"aws:SecureTransport": "false"})),
    )


def hsds_credentials(
    kind: Any, secret: Any, username: str = Env.HS_USERNAME, password: str = Env.HS_PASSWORD
) -> list[Any]:
    """A container's two secret variables (`kind`: Batch's or ECS's `Secret`) from one HSDS account's secret:
    the user name and the password, under the names the container reads them by."""
    return [
        kind(Name=username, ValueFrom=Sub(f"${{{secret.title}}}:{SECRET_USERNAME_KEY}::")),
        kind(Name=password, ValueFrom=Sub(f"${{{secret.title}}}:{SECRET_PASSWORD_KEY}::")),
    ]
