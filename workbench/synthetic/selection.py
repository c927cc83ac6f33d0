"""Which orbits a `datacarousel generate` call means (pure logic)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from datacarousel import naming

_RANGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_MONTH_RE = re.compile(r"^(\d{4})[.-](\d{2})$")


def parse_orbit_range(text: str) -> range:
    """`85079-85085` -> range(85079, 85086) (inclusive); a single number is a range of one."""
    match = _RANGE_RE.match(text)
    if match is None:
        if text.strip().isdigit():
            first = last = int(text)
        else:
            raise ValueError(f"orbit range {text!r} is not of the form FIRST-LAST")
    else:
        first, last = int(match[1]), int(match[2])
    if first > last:
        raise ValueError(f"orbit range {text!r} is empty")
    naming.check_orbit(first)
    naming.check_orbit(last)
    return range(first, last + 1)


def select_orbits(
    orbits: Sequence[int] = (), orbit_range: str | None = None, year_month: str | None = None,
    paths: Sequence[int] = (),
) -> list[int]:  # fmt: skip
    """Union of explicit orbits, a range and a month, filtered by MISR path; sorted, unique."""
    chosen: set[int] = {naming.check_orbit(o) for o in orbits}
    if orbit_range:
        chosen.update(parse_orbit_range(orbit_range))
    if year_month:
        match = _MONTH_RE.match(year_month)
        if match is None:
            raise ValueError(f"year-month {year_month!r} is not of the form YYYY.MM")
        wanted = f"{match[1]}.{match[2]}"
        chosen.update(o for o in _orbits_near(wanted) if naming.BasicFusionName.for_orbit(o).year_month == wanted)
    if paths:
        chosen = {o for o in chosen if naming.misr_path(o) in set(paths)}
    return sorted(chosen)


def _orbits_near(year_month: str) -> range:
    """Orbits that may start in a month (a generous bracket around the linear orbit clock)."""
    year, month = (int(x) for x in year_month.split("."))
    anchor = naming.ANCHOR_START_TIMES[naming.FIRST_ORBIT]
    first_day = datetime(year, month, 1, tzinfo=UTC)
    approx = naming.FIRST_ORBIT + (first_day - anchor).total_seconds() / naming.ORBIT_PERIOD_S
    lo = max(naming.FIRST_ORBIT, int(approx) - 60)
    hi = min(naming.LAST_ORBIT, int(approx) + 32 * 15 + 60)
    return range(lo, hi + 1)
