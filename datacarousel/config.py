"""Configuration, read once from the environment.

Each worker asks for the settings it needs; every missing or malformed
variable is reported in one `ConfigError` that names all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import unquote

from datacarousel.contract import (
    CAROUSEL_POLICIES,
    DEFAULT_CAROUSEL_POLICY,
    DEFAULT_INDEX_RETRY_S,
    DEFAULT_KEEP_S,
    DEFAULT_MAX_INDEX_WORKERS,
    DEFAULT_MAX_JOB_WORKERS,
    DEFAULT_PROBE_AFTER_S,
    DEFAULT_RESTORE_DAYS,
    DEFAULT_STACK_NAME,
    DEFAULT_WINDOW_BYTES,
    DEFAULT_WINDOW_FILES,
    Env,
    RestoreTier,
)
from datacarousel.errors import UP_HINT, ConfigError, EnvironmentDown


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:  # (also refuses NaN)
        raise ValueError("must be > 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be >= 0")
    return value


def _policy(text: str) -> str:
    if text not in CAROUSEL_POLICIES:
        raise ValueError(f"must be one of {', '.join(CAROUSEL_POLICIES)}")
    return text


def _folder(text: str) -> str:
    if not (text.startswith("/") and text.endswith("/")):
        raise ValueError("must start and end with '/'")
    return text


def _tier(text: str) -> str:
    return RestoreTier(text).value


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://", "http+unix://")):
        raise ValueError("must be an http(s) URL")
    return text


@dataclass(frozen=True)
class _Spec:
    env: str
    parse: Callable[[str], Any]


# Field name -> where it comes from. The defaults are `Settings`' own (None: no safe default).
_SPECS: dict[str, _Spec] = {
    "stack_name": _Spec(Env.STACK_NAME, str),
    "archive_bucket": _Spec(Env.ARCHIVE_BUCKET, str),
    "archive_prefix": _Spec(Env.ARCHIVE_PREFIX, str),
    "results_bucket": _Spec(Env.RESULTS_BUCKET, str),
    "hsds_bucket": _Spec(Env.HSDS_BUCKET, str),
    "index_queue_url": _Spec(Env.INDEX_QUEUE_URL, _url),
    "index_dlq_url": _Spec(Env.INDEX_DLQ_URL, _url),
    "restore_events_queue_url": _Spec(Env.RESTORE_EVENTS_QUEUE_URL, _url),
    "restore_events_dlq_url": _Spec(Env.RESTORE_EVENTS_DLQ_URL, _url),
    "files_table": _Spec(Env.FILES_TABLE, str),
    "jobs_table": _Spec(Env.JOBS_TABLE, str),
    "job_files_table": _Spec(Env.JOB_FILES_TABLE, str),
    "index_requests_table": _Spec(Env.INDEX_REQUESTS_TABLE, str),
    "batch_job_queue": _Spec(Env.BATCH_JOB_QUEUE, str),
    "hsds_folder": _Spec(Env.HSDS_FOLDER, _folder),
    "hs_endpoint": _Spec(Env.HS_ENDPOINT, _url),
    "hs_username": _Spec(Env.HS_USERNAME, str),
    "hs_password": _Spec(Env.HS_PASSWORD, str),
    "window_bytes": _Spec(Env.WINDOW_BYTES, _positive_int),
    "window_files": _Spec(Env.WINDOW_FILES, _positive_int),
    "restore_tier": _Spec(Env.RESTORE_TIER, _tier),
    "restore_days": _Spec(Env.RESTORE_DAYS, _positive_int),
    "log_level": _Spec(Env.LOG_LEVEL, str.upper),
    # The carousel step's (the template passes them to its job definition only; defaults as the template's).
    "carousel_policy": _Spec(Env.CAROUSEL_POLICY, _policy),
    "keep_s": _Spec(Env.KEEP_S, _non_negative_float),
    "probe_after_s": _Spec(Env.PROBE_AFTER_S, _positive_float),
    "index_retry_s": _Spec(Env.INDEX_RETRY_S, _positive_float),
    "max_index_workers": _Spec(Env.MAX_INDEX_WORKERS, _positive_int),
    "max_job_workers": _Spec(Env.MAX_JOB_WORKERS, _positive_int),
}


@dataclass(frozen=True)
class Settings:
    """Every setting a part of the project may need, with its default where one is safe (`from_env` gives
    it when the variable is unset); the others stay None unless requested."""

    stack_name: str = DEFAULT_STACK_NAME
    archive_bucket: str | None = None
    archive_prefix: str = ""
    results_bucket: str | None = None
    hsds_bucket: str | None = None
    index_queue_url: str | None = None
    index_dlq_url: str | None = None
    restore_events_queue_url: str | None = None
    restore_events_dlq_url: str | None = None
    files_table: str | None = None
    jobs_table: str | None = None
    job_files_table: str | None = None
    index_requests_table: str | None = None
    batch_job_queue: str | None = None
    hsds_folder: str | None = None
    hs_endpoint: str | None = None
    hs_username: str | None = None
    hs_password: str | None = None
    window_bytes: int = DEFAULT_WINDOW_BYTES
    window_files: int = DEFAULT_WINDOW_FILES
    restore_tier: str = RestoreTier.BULK.value
    restore_days: int = DEFAULT_RESTORE_DAYS
    log_level: str = "INFO"
    carousel_policy: str = DEFAULT_CAROUSEL_POLICY
    keep_s: float = float(DEFAULT_KEEP_S)
    probe_after_s: float = float(DEFAULT_PROBE_AFTER_S)
    index_retry_s: float = float(DEFAULT_INDEX_RETRY_S)
    max_index_workers: int = DEFAULT_MAX_INDEX_WORKERS
    max_job_workers: int = DEFAULT_MAX_JOB_WORKERS

    @classmethod
    def from_env(cls, need: Iterable[str], environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings named in `need` (field names) from the environment.

        Settings with a safe default are read whenever present, needed or not.
        """
        env = os.environ if environ is None else environ
        wanted = set(need)
        unknown = wanted - set(_SPECS)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, spec in _SPECS.items():
            raw = env.get(spec.env)
            has_default = _DEFAULTS[name] is not None
            if raw is None or raw == "":
                if not has_default and name in wanted:
                    problems.append(f"{spec.env} is not set")
                continue
            if name not in wanted and not has_default:
                continue
            try:
                values[name] = spec.parse(raw)
            except ValueError as exc:
                problems.append(f"{spec.env}={raw!r} is malformed: {exc}")
        if problems:
            raise ConfigError("configuration error: " + "; ".join(problems))
        return cls(**values)

    def require(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"{_SPECS[name].env} is not set")
        return value


def check_hsds_socket(endpoint: str) -> None:
    """`EnvironmentDown` at once when `HS_ENDPOINT` is a Unix socket (`http+unix://<path, %-quoted>`, the embedded
    environment's HSDS) that is not there: HSDS is down or the variables are stale. Any other endpoint: a no-op."""
    if not endpoint.startswith("http+unix://"):
        return
    path = unquote(endpoint.removeprefix("http+unix://").split("/", 1)[0])
    if not os.path.exists(path):
        raise EnvironmentDown(f"no HSDS socket at HS_ENDPOINT={endpoint}: {UP_HINT}")


def setting_env_names() -> dict[str, str]:
    """Field name -> environment variable, for documentation and tests."""
    return {name: spec.env for name, spec in _SPECS.items()}


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
assert set(setting_env_names()) == set(_DEFAULTS)
