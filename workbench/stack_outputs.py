"""A deployed stack's outputs as the variables the CLI reads (`datacarousel env --stack NAME`).

The mapping stack output -> DC_* variable is `contract.SHARED_RESOURCES`; `resource_env` applies
it, for the embedded environment's env file (`workbench/local/environment.py`) and for a
researcher pointing the CLI at a stack on AWS alike. `researcher_env` is what `env --stack` prints:

- every shared resource's DC_* variable, from the stack's outputs (buckets, queues, tables,
  the Batch job queue);
- `DC_STACK_NAME` (the registered job definitions are found by it), `DC_ARCHIVE_PREFIX` (the
  stack's `ArchivePrefix` parameter: where `upload` puts orbits and `inventory` lists them), and
  `AWS_DEFAULT_REGION` (the region the stack was read in).

Never credentials (boto3 finds the researcher's own: profile, SSO, environment), never HSDS's
variables (researchers never talk to HSDS: the workers do, with the stack's secret), never the
embedded environment's own settings (endpoint, launcher, local state, carousel tuning).
`read_stack` reads the stack with boto3 and turns every AWS failure into one `StackReadError`
line with a hint (`exit_code` 2 where the user can fix it: stack name, region, credentials,
permissions).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from datacarousel import aws, contract
from datacarousel.contract import Env
from datacarousel.errors import ConfigError

# The template's parameter holding the archive's key prefix (stack_template/parameters.py).
ARCHIVE_PREFIX_PARAMETER = "ArchivePrefix"
# What `env --stack` prints besides the shared resources' variables.
STACK_VARIABLES = (Env.STACK_NAME, Env.ARCHIVE_PREFIX, Env.AWS_REGION)
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
BAD_CREDENTIALS_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "RequestExpired", "UnrecognizedClientException"}
)
USER_ERROR = 2


def resource_env(outputs: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """DC_* variables from stack outputs, and the names of contract outputs the stack lacks."""
    env = {r.env: outputs[r.output] for r in contract.SHARED_RESOURCES if r.output in outputs}
    missing = tuple(r.output for r in contract.SHARED_RESOURCES if r.output not in outputs)
    return env, missing


@dataclass(frozen=True)
class StackEnv:
    """What `env --stack` prints, and the contract outputs the stack lacks (a warning)."""

    stack_name: str
    status: str
    env: dict[str, str]
    missing_outputs: tuple[str, ...]


class StackReadError(Exception):
    """A stack that could not be read: one line for the user, with a hint; `exit_code` for the CLI."""

    def __init__(self, message: str, exit_code: int = USER_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def researcher_env(stack: Mapping[str, Any], region: str) -> StackEnv:
    """The variables of one `describe_stacks` entry (pure): see the module's docstring."""
    outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
    parameters = {str(p["ParameterKey"]): str(p.get("ParameterValue", "")) for p in stack.get("Parameters", [])}
    dc_env, missing = resource_env(outputs)
    env = {
        Env.STACK_NAME: str(stack["StackName"]),
        Env.ARCHIVE_PREFIX: parameters.get(ARCHIVE_PREFIX_PARAMETER, ""),
        Env.AWS_REGION: region,
        **dc_env,
    }
    return StackEnv(str(stack["StackName"]), str(stack.get("StackStatus", "")), env, missing)


def read_stack(stack_name: str, region: str | None = None, session: boto3.session.Session | None = None) -> StackEnv:
    """Describe `stack_name` with the caller's credentials (`region`, else the session's) and map it;
    `StackReadError` (one line, with a hint) for whatever goes wrong."""
    try:
        session = session or boto3.session.Session(region_name=region)
        if not session.region_name:  # asked first: the client's own refusal hints at the embedded environment
            raise NoRegionError()
        cfn = aws.client("cloudformation", session=session, region_name=region)
    except BotoCoreError as exc:
        raise _explain(exc, stack_name, region) from exc
    except ConfigError as exc:  # e.g. AWS_ENDPOINT_URL names a stopped embedded environment
        hint = " (for a stack on AWS: unset AWS_ENDPOINT_URL)" if os.environ.get(Env.AWS_ENDPOINT_URL) else ""
        raise StackReadError(f"{exc}{hint}") from exc
    used_region = str(cfn.meta.region_name)
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise _explain(exc, stack_name, used_region) from exc
    if not stacks:  # CloudFormation answers ValidationError instead; an empty answer means the same
        raise StackReadError(_unknown_stack(stack_name, used_region))
    found = researcher_env(stacks[0], used_region)
    if len(found.missing_outputs) == len(contract.SHARED_RESOURCES):
        raise StackReadError(
            f"stack {stack_name!r} ({found.status}) has none of Data Carousel's outputs "
            f"(such as {contract.SHARED_RESOURCES[0].output}): is it a Data Carousel stack, and is it created?"
        )
    return found


def _unknown_stack(stack_name: str, region: str | None) -> str:
    return (
        f"no stack {stack_name!r} in region {region or '?'} for these credentials "
        "(hint: check --stack and --region; `aws cloudformation describe-stacks --region R` lists them)"
    )


def _explain(exc: Exception, stack_name: str, region: str | None) -> StackReadError:
    """One line with a hint for an AWS failure while reading the stack."""
    if isinstance(exc, NoRegionError):
        return StackReadError("no AWS region: pass --region R or set AWS_DEFAULT_REGION (or a region in your profile)")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StackReadError(
            "no AWS credentials found (hint: `aws configure`, `aws sso login --profile P` then AWS_PROFILE=P, "
            "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(exc, ProfileNotFound):
        return StackReadError(f"{exc} (hint: `aws configure list-profiles`; unset AWS_PROFILE for the default one)")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
        if code == "ValidationError" and "does not exist" in message:
            return StackReadError(_unknown_stack(stack_name, region))
        if code in ACCESS_DENIED_CODES:
            return StackReadError(
                f"not allowed to read stack {stack_name!r} (cloudformation:DescribeStacks): {message or code} "
                "(hint: ask the operator for the stack's researcher permissions, see docs/researcher-on-aws.md)"
            )
        if code in BAD_CREDENTIALS_CODES:
            return StackReadError(
                f"AWS refused the credentials ({code}): {message} (hint: refresh them, e.g. `aws sso login`)"
            )
        return StackReadError(f"cannot read stack {stack_name!r}: {code}: {message}", exit_code=1)
    if isinstance(exc, EndpointConnectionError):
        return StackReadError(f"{exc} (hint: is {region!r} a region? is the network up?)", exit_code=1)
    return StackReadError(f"cannot read stack {stack_name!r}: {exc}", exit_code=1)
