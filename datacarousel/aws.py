"""AWS client construction, in one place.

boto3 finds a non-AWS endpoint (moto on loopback) through the standard
`AWS_ENDPOINT_URL` variable by itself. The one thing known here about a loopback endpoint: when nothing
answers there (the embedded environment is down), a client is refused at once with the hint to start it.
Clients are built by `__main__` modules and passed in; none is made at import.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

from datacarousel.errors import CREDENTIALS_HINT, REGION_HINT, UP_HINT, ConfigError, EnvironmentDown, is_loopback_url

if TYPE_CHECKING:  # the published stubs (boto3-stubs, mypy-boto3-*): a development dependency, not the images'
    from boto3.resources.base import ServiceResource
    from botocore.client import BaseClient
    from botocore.config import _RetryDict
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

# The services the project builds clients for: each has an overload of `client` below, typed by its stubs.
Service = Literal["batch", "cloudformation", "dynamodb", "dynamodbstreams", "ec2", "ecr", "s3", "sqs", "sts"]
# The services boto3 has resources for (boto3/data).
ResourceService = Literal["cloudformation", "cloudwatch", "dynamodb", "ec2", "glacier", "iam", "s3", "sns", "sqs"]

# Standard retry mode: exponential backoff with jitter on throttling and 5xx.
_RETRIES: _RetryDict = {"mode": "standard", "max_attempts": 8}
# Workers call AWS from thread pools (the loader lists folders and sends batches in parallel):
# botocore's default of 10 pooled connections would make extra threads reconnect on every call.
MAX_POOL_CONNECTIONS = 32


def _config() -> Config:
    return Config(
        retries=_RETRIES,
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )


LOOPBACK_PROBE_S = 1.0
_answering: set[tuple[str, int]] = set()  # loopback endpoints seen answering in this process


def check_local_endpoint(url: str | None = None) -> None:
    """`EnvironmentDown` at once when the endpoint (default `AWS_ENDPOINT_URL`) is a loopback address where nothing
    listens: the embedded environment is down or its variables are stale, and no retry would change that (the
    client's retries would spend a minute on it). A no-op for any other endpoint, and on AWS (no endpoint set)."""
    url = url if url is not None else os.environ.get("AWS_ENDPOINT_URL", "")
    if not is_loopback_url(url):
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # a malformed port: botocore says what is wrong with it
    if (host, port) in _answering:
        return
    try:
        with socket.create_connection((host, port), timeout=LOOPBACK_PROBE_S):
            _answering.add((host, port))
    except OSError as exc:
        raise EnvironmentDown(f"nothing answers at AWS_ENDPOINT_URL={url} ({exc.strerror or exc}): {UP_HINT}") from None


@functools.cache
def _service_models(data_path: str | None) -> botocore.loaders.Loader:
    """One loader of AWS's service descriptions per search path, for the whole process: its cache is what botocore
    keeps per session, so each new session would parse the same JSON again (about 30 ms a client). Sharing it is the
    workaround botocore's maintainers give (boto/botocore#3078); the descriptions are only read."""
    return botocore.loaders.create_loader(data_path)


def new_session() -> boto3.session.Session:
    """A new boto3 session (a session is not thread-safe, so each client built here gets its own) that reads
    AWS's service descriptions from the process's one loader."""
    core = botocore.session.get_session()
    loader = _service_models(core.get_config_variable("data_path"))
    core.register_component("data_loader", loader)
    session = boto3.session.Session(botocore_session=core)
    loader.search_paths[:] = dict.fromkeys(loader.search_paths)  # boto3 adds its folder at every session: once
    return session


def _require_region(session: boto3.session.Session, kwargs: dict[str, Any]) -> None:
    """Every part works in the stack's one region: without one, S3 would guess us-east-1 (and the others refuse)."""
    if not (kwargs.get("region_name") or session.region_name):
        raise ConfigError(f"no AWS region: {REGION_HINT}")


def check_credentials(session: boto3.session.Session | None = None) -> None:
    """`ConfigError` now when the credential chain finds nothing (rather than at the first call, deep in a run)."""
    if (session or new_session()).get_credentials() is None:
        raise ConfigError(f"no AWS credentials: {CREDENTIALS_HINT}")


@overload
def client(service: Literal["batch"], session: boto3.session.Session | None = None, **kwargs: Any) -> BatchClient: ...


@overload
def client(
    service: Literal["cloudformation"], session: boto3.session.Session | None = None, **kwargs: Any
) -> CloudFormationClient: ...


@overload
def client(
    service: Literal["dynamodb"], session: boto3.session.Session | None = None, **kwargs: Any
) -> DynamoDBClient: ...


@overload
def client(
    service: Literal["dynamodbstreams"], session: boto3.session.Session | None = None, **kwargs: Any
) -> DynamoDBStreamsClient: ...


@overload
def client(service: Literal["ec2"], session: boto3.session.Session | None = None, **kwargs: Any) -> EC2Client: ...


@overload
def client(service: Literal["ecr"], session: boto3.session.Session | None = None, **kwargs: Any) -> ECRClient: ...


@overload
def client(service: Literal["s3"], session: boto3.session.Session | None = None, **kwargs: Any) -> S3Client: ...


@overload
def client(service: Literal["sqs"], session: boto3.session.Session | None = None, **kwargs: Any) -> SQSClient: ...


@overload
def client(service: Literal["sts"], session: boto3.session.Session | None = None, **kwargs: Any) -> STSClient: ...


def client(service: Service, session: boto3.session.Session | None = None, **kwargs: Any) -> BaseClient:
    """A boto3 client with the project's retry policy; `ConfigError` without a region, `EnvironmentDown` when
    `AWS_ENDPOINT_URL` is a loopback address where nothing answers (`check_local_endpoint`)."""
    check_local_endpoint(kwargs.get("endpoint_url"))
    session = session or new_session()
    _require_region(session, kwargs)
    config = _config()
    return session.client(service, config=config, **kwargs)


def resource(service: ResourceService, session: boto3.session.Session | None = None, **kwargs: Any) -> ServiceResource:
    check_local_endpoint(kwargs.get("endpoint_url"))
    session = session or new_session()
    _require_region(session, kwargs)
    config = _config()
    return session.resource(service, config=config, **kwargs)


def list_keys(s3: S3Client, bucket: str, prefix: str) -> set[str]:
    """Every key under `prefix` (all pages)."""
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(str(obj["Key"]) for obj in page.get("Contents", []))
    return keys
