"""What the carousel's adapters run with: settings from the environment and the clients built once.

`Context.from_env()` is called by `__main__` / the CLI only; library functions take
a `Context` (or its parts), so nothing builds a client at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from carousel.planner import HOUR_S, PlannerConfig, Policy
from carousel.store import Tables
from datacarousel import aws
from datacarousel.config import Settings
from datacarousel.contract import (
    RestoreTier,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# Delays before the 1st, 2nd, 3rd... redrive of a dead letter of transient failures (SQS allows up to 900 s).
DEFAULT_REDRIVE_DELAYS_S = (60, 300, 900)

STEP_SETTINGS = (
    "archive_bucket",
    "results_bucket",
    "index_queue_url",
    "index_dlq_url",
    "restore_events_queue_url",
    "restore_events_dlq_url",
    "files_table",
    "jobs_table",
    "job_files_table",
)
TABLE_SETTINGS = ("files_table", "jobs_table", "job_files_table")


def planner_config(settings: Settings) -> PlannerConfig:
    """The planner's configuration from the settings."""
    days = settings.restore_days
    return PlannerConfig(
        window_bytes=settings.window_bytes,
        window_files=settings.window_files,
        policy=Policy(settings.carousel_policy),
        tier=RestoreTier(settings.restore_tier),
        lease_days=days,
        renew_margin_s=min(12 * HOUR_S, days * 86_400.0 / 2),
        index_retry_s=settings.index_retry_s,
        probe_after_s=settings.probe_after_s,
        probe_every_s=min(settings.probe_after_s, days * 86_400.0 / 2),
        keep_s=settings.keep_s,
    )


@dataclass(frozen=True)
class Context:
    """Settings, planner configuration and clients of one carousel process."""

    settings: Settings
    config: PlannerConfig
    tables: Tables
    s3: S3Client
    sqs: SQSClient
    redrive_delays_s: tuple[int, ...] = DEFAULT_REDRIVE_DELAYS_S

    @classmethod
    def from_env(cls, need: tuple[str, ...] = STEP_SETTINGS, environ: Mapping[str, str] | None = None) -> Context:
        settings = Settings.from_env(need=need, environ=environ)
        ddb = aws.client("dynamodb")
        tables = Tables.from_names(
            ddb,
            settings.require("files_table"),
            settings.require("jobs_table"),
            settings.require("job_files_table"),
        )
        return cls(
            settings=settings,
            config=planner_config(settings),
            tables=tables,
            s3=aws.client("s3"),
            sqs=aws.client("sqs"),
        )
