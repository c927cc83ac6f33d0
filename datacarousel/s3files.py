"""S3 objects as files (s3fs), the one way the project makes them: standard AWS settings and timeouts.

`AWS_ENDPOINT_URL` points it at a non-AWS endpoint (moto locally) and the region comes from the
standard variables, as for boto3 (`datacarousel.aws`). A stalled connection fails after the timeouts
below (the worker's message goes back to its queue) instead of hanging a worker for hours. A fresh
instance per call: s3fs caches instances, which does not survive fork.
"""

from __future__ import annotations

import os
from typing import Any

import s3fs

from datacarousel.contract import Env

S3_CONNECT_TIMEOUT_S = 10
S3_READ_TIMEOUT_S = 60


def s3_filesystem(**options: Any) -> Any:
    """An `s3fs.S3FileSystem` (`options`: s3fs's own, e.g. `default_block_size`)."""
    client_kwargs: dict[str, Any] = {}
    endpoint = os.environ.get(Env.AWS_ENDPOINT_URL)
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    region = os.environ.get(Env.AWS_REGION) or os.environ.get("AWS_REGION")
    if region:
        client_kwargs["region_name"] = region
    return s3fs.S3FileSystem(
        client_kwargs=client_kwargs,
        config_kwargs={"connect_timeout": S3_CONNECT_TIMEOUT_S, "read_timeout": S3_READ_TIMEOUT_S},
        skip_instance_cache=True,
        **options,
    )
