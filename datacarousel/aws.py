"""AWS client construction, in one place.

boto3 finds a non-AWS endpoint (moto on loopback) through the standard
`AWS_ENDPOINT_URL` variable by itself, so nothing here knows about local mode.
Clients are built by `__main__` modules and passed in; none is made at import.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode: exponential backoff with jitter on throttling and 5xx.
_RETRIES = {"mode": "standard", "max_attempts": 8}
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


def client(service: str, session: boto3.session.Session | None = None, **kwargs: Any) -> Any:
    """A boto3 client with the project's retry policy."""
    session = session or boto3.session.Session()
    config = _config()
    return session.client(service, config=config, **kwargs)


def resource(service: str, session: boto3.session.Session | None = None, **kwargs: Any) -> Any:
    session = session or boto3.session.Session()
    config = _config()
    return session.resource(service, config=config, **kwargs)


def list_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    """Every key under `prefix` (all pages)."""
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(str(obj["Key"]) for obj in page.get("Contents", []))
    return keys
