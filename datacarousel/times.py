"""Times as every table, message and file name of the project writes them: ISO 8601 UTC, whole seconds, a `Z`.

One format (`ISO_SECONDS`), sortable as text: DynamoDB items (`start_time`, `updated_at`, restore
expiries), the planner's POSIX seconds converted at the edge, the spec's orbit start times.
"""

from __future__ import annotations

from datetime import UTC, datetime

ISO_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a `Z`, whole seconds: sortable as text."""
    return moment.astimezone(UTC).strftime(ISO_SECONDS)


def iso_seconds(t: float) -> str:
    """POSIX seconds -> `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, rounded down)."""
    return datetime.fromtimestamp(int(t), tz=UTC).strftime(ISO_SECONDS)


def parse_iso(text: str) -> datetime:
    """`YYYY-MM-DDTHH:MM:SSZ` -> an aware UTC datetime (ValueError if it is not that)."""
    return datetime.strptime(text, ISO_SECONDS).replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
