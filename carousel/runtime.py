"""What the carousel's adapters run with: settings from the environment and the clients built once.

`Context.from_env()` is called by `__main__` / the CLI only; library functions take
a `Context` (or its parts), so nothing builds a client at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carousel.planner import HOUR_S, PlannerConfig, Policy
from carousel.store import Tables
from datacarousel import aws
from datacarousel.config import Settings
from datacarousel.contract import (
    DEFAULT_CAROUSEL_POLICY,
    DEFAULT_INDEX_RETRY_S,
    DEFAULT_KEEP_S,
    DEFAULT_MAX_INDEX_WORKERS,
    DEFAULT_MAX_JOB_WORKERS,
    DEFAULT_PROBE_AFTER_S,
    DEFAULT_RESTORE_DAYS,
    DEFAULT_WINDOW_BYTES,
    DEFAULT_WINDOW_FILES,
    Env,
    RestoreTier,
)
from datacarousel.errors import ConfigError

DEFAULT_POLICY = Policy(DEFAULT_CAROUSEL_POLICY)
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


@dataclass(frozen=True)
class Tuning:
    """Carousel knobs beyond the shared settings (all optional)."""

    # The defaults are the contract's, which the template's parameters also take (one value each).
    policy: Policy = DEFAULT_POLICY
    probe_after_s: float = float(DEFAULT_PROBE_AFTER_S)
    index_retry_s: float = float(DEFAULT_INDEX_RETRY_S)
    max_index_workers: int = DEFAULT_MAX_INDEX_WORKERS
    max_job_workers: int = DEFAULT_MAX_JOB_WORKERS
    # Keep an unneeded restored copy this long while a campaign of overlapping jobs runs (0: off).
    # Two days measured best in bench/bench_simulator.py (restore amplification 1.103 -> 1.000).
    keep_s: float = float(DEFAULT_KEEP_S)
    redrive_delays_s: tuple[int, ...] = DEFAULT_REDRIVE_DELAYS_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tuning:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        values: dict[str, Any] = {}

        def read(var: str, field: str, parse: Any) -> None:
            raw = env.get(var)
            if raw is None or raw == "":
                return
            try:
                value = parse(raw)
            except ValueError as exc:
                problems.append(f"{var}={raw!r} is malformed: {exc}")
                return
            values[field] = value

        def positive_float(text: str) -> float:
            value = float(text)
            if not value > 0:
                raise ValueError("must be > 0")
            return value

        def positive_int(text: str) -> int:
            value = int(text)
            if value < 1:
                raise ValueError("must be >= 1")
            return value

        def non_negative_float(text: str) -> float:
            value = float(text)
            if not value >= 0:
                raise ValueError("must be >= 0")
            return value

        read(Env.CAROUSEL_POLICY, "policy", Policy)
        read(Env.KEEP_S, "keep_s", non_negative_float)
        read(Env.PROBE_AFTER_S, "probe_after_s", positive_float)
        read(Env.INDEX_RETRY_S, "index_retry_s", positive_float)
        read(Env.MAX_INDEX_WORKERS, "max_index_workers", positive_int)
        read(Env.MAX_JOB_WORKERS, "max_job_workers", positive_int)
        if problems:
            raise ConfigError("configuration error: " + "; ".join(problems))
        return cls(**values)


def planner_config(settings: Settings, tuning: Tuning) -> PlannerConfig:
    days = int(settings.restore_days or DEFAULT_RESTORE_DAYS)
    return PlannerConfig(
        window_bytes=int(settings.window_bytes or DEFAULT_WINDOW_BYTES),
        window_files=int(settings.window_files or DEFAULT_WINDOW_FILES),
        policy=tuning.policy,
        tier=RestoreTier(settings.restore_tier or RestoreTier.BULK.value),
        lease_days=days,
        renew_margin_s=min(12 * HOUR_S, days * 86_400.0 / 2),
        index_retry_s=tuning.index_retry_s,
        probe_after_s=tuning.probe_after_s,
        probe_every_s=min(tuning.probe_after_s, days * 86_400.0 / 2),
        keep_s=tuning.keep_s,
    )


@dataclass(frozen=True)
class Context:
    """Settings, planner configuration and clients of one carousel process."""

    settings: Settings
    tuning: Tuning
    config: PlannerConfig
    tables: Tables
    s3: Any = None
    sqs: Any = None

    @classmethod
    def from_env(cls, need: tuple[str, ...] = STEP_SETTINGS, environ: Mapping[str, str] | None = None) -> Context:
        settings = Settings.from_env(need=need, environ=environ)
        tuning = Tuning.from_env(environ)
        ddb = aws.client("dynamodb")
        tables = Tables.from_names(
            ddb,
            settings.require("files_table"),
            settings.require("jobs_table"),
            settings.require("job_files_table"),
        )
        return cls(
            settings=settings,
            tuning=tuning,
            config=planner_config(settings, tuning),
            tables=tables,
            s3=aws.client("s3"),
            sqs=aws.client("sqs"),
        )
