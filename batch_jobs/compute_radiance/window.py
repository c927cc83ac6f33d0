"""Spec §2 (docs/compute-radiance.md): the time window of an orbit — MODIS granule names and times, the
descending test, the window and the MISR blocks inside it. Pure functions; `science` re-exports them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from batch_jobs.compute_radiance.gridding import FloatArray, IntArray

DESCENDING_MAX_FAILING_ROWS = 1000
GRANULE_MINUTES = 5


_GRANULE_RE = re.compile(r"^granule_(?P<year>[0-9]{4})(?P<doy>[0-9]{3})_(?P<hh>[0-9]{2})(?P<mm>[0-9]{2})$")
_BCT_RE = re.compile(
    r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<f>[0-9]{1,6}))?Z$"
)


def parse_granule_time(name: str) -> datetime:
    """Start time of a MODIS granule group `granule_YYYYDDD_hhmm` (spec §2.1). Raises ValueError."""
    match = _GRANULE_RE.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a MODIS granule name (granule_YYYYDDD_hhmm)")
    doy = int(match["doy"])
    if not 1 <= doy <= 366:
        raise ValueError(f"{name!r}: day of year {doy} out of range")
    return datetime(int(match["year"]), 1, 1, int(match["hh"]), int(match["mm"])) + timedelta(days=doy - 1)


def julian_date(t: datetime) -> float:
    """Julian Date of a naive (UTC) datetime, with the arithmetic of the `julian` package the original used."""
    a = (14 - t.month) // 12
    y = t.year + 4800 - a
    m = t.month + 12 * a - 3
    jdn = t.day + (153 * m + 2) // 5 + 365 * y + y // 4 - y // 100 + y // 400 - 32045
    return jdn + (t.hour - 12) / 24 + t.minute / 1440 + t.second / 86400 + t.microsecond / 86400000000


def granule_jd(name: str, offset_minutes: int = 0) -> float:
    return julian_date(parse_granule_time(name) + timedelta(minutes=offset_minutes))


def descending_threshold(rows: int) -> int:
    """Failing rows allowed: 1000 (the spec) for every granule taller than 1000 rows (all real ones: 1950-2100).

    A shorter granule (a shrunken synthetic file) could never fail the spec's test, so it
    allows half its rows instead, the proportion the synthetic generator keeps.
    """
    return DESCENDING_MAX_FAILING_ROWS if rows > DESCENDING_MAX_FAILING_ROWS else rows // 2


def is_descending(lat: npt.ArrayLike) -> bool:
    """Spec §2.2: fewer than 1000 rows i >= 1 fail `all(lat[i] < lat[i-1])` (see `descending_threshold`)."""
    lat_a = np.asarray(lat)
    if lat_a.ndim != 2 or lat_a.shape[0] < 1:
        return False
    failing = np.count_nonzero(~np.all(lat_a[1:] < lat_a[:-1], axis=1))
    return bool(failing < descending_threshold(lat_a.shape[0]))


def time_window(descending: Sequence[str]) -> tuple[float, float] | None:
    """Spec §2.3: (t0, t1) in JD from the descending granule names, or None if there are none."""
    if not descending:
        return None
    ordered = sorted(descending, key=parse_granule_time)
    return granule_jd(ordered[0]), granule_jd(ordered[-1], offset_minutes=GRANULE_MINUTES)


def parse_block_center_times(values: Sequence[bytes | str] | npt.NDArray[np.bytes_]) -> FloatArray:
    """MISR BlockCenterTime strings to JD (spec §4.1); year 0000 or an unparsable entry gives 0."""
    out = np.zeros(len(values), dtype=np.float64)
    for i, raw in enumerate(values):  # 180 strings per orbit: not a per-pixel loop
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes | np.bytes_) else str(raw)
        match = _BCT_RE.match(text.strip().rstrip("\x00"))
        if match is None or int(match["y"]) == 0:
            continue
        frac = (match["f"] or "0").ljust(6, "0")
        try:
            t = datetime(
                int(match["y"]), int(match["mo"]), int(match["d"]), int(match["h"]), int(match["mi"]),
                int(match["s"]), int(frac),
            )  # fmt: skip
        except ValueError:
            continue
        out[i] = julian_date(t)
    return out


def blocks_in_window(block_jd: FloatArray, t0: float, t1: float) -> IntArray:
    """Indices (0-based) of the MISR blocks with t0 <= time <= t1."""
    return np.flatnonzero((block_jd >= t0) & (block_jd <= t1))
