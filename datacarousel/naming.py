"""BasicFusion naming rules, orbit timing and the keys derived from them.

Facts from docs/basicfusion-layout.md (sections 1 and 7):
file names `TERRA_BF_L1B_O{orbit}_{YYYYMMDDhhmmss}_F000_V001.h5` (orbit not
zero-padded), orbits 1000..85302, MISR path `(16*orbit + 176) mod 233 + 1`,
orbit start times exact at the listed anchors and interpolated between them.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from datacarousel.contract import COMPOSITES_DIR, REDUCED_MARKER, RESULTS_PREFIX
from datacarousel.errors import BadFileName
from datacarousel.times import parse_iso

FIRST_ORBIT = 1000
LAST_ORBIT = 85302
ORBIT_COUNT = LAST_ORBIT - FIRST_ORBIT + 1  # 84,303
ORBIT_PERIOD_S = 5933.04

FILE_PREFIX = "TERRA_BF_L1B"
RESULT_PREFIX = "CLIMARBLE"
# Matched with `fullmatch`: `$` alone would also accept a name followed by a newline.
_FILE_RE = re.compile(r"TERRA_BF_L1B_O(?P<orbit>[0-9]+)_(?P<time>[0-9]{14})_F(?P<f>[0-9]+)_V(?P<v>[0-9]+)\.h5")
# How far a name's start time may be from `orbit_start(orbit)`. The time in a real name is OPT's; ours
# is interpolated between anchors, which errs by at most 682 s (spec section 7). Far below half an orbit
# (2,966 s): a name's time points at its own orbit only, never at a neighbour's.
ORBIT_START_TOLERANCE_S = 1200


_utc = parse_iso


# Exact orbit start times stated in the spec (OPT table rows and real file names).
ANCHOR_START_TIMES: dict[int, datetime] = {
    1000: _utc("2000-02-25T00:25:07Z"),
    9039: _utc("2001-08-30T01:07:29Z"),
    40110: _utc("2007-07-03T16:09:15Z"),
    66274: _utc("2012-06-03T08:13:15Z"),
    85079: _utc("2015-12-16T16:09:10Z"),
    85302: _utc("2015-12-31T23:40:20Z"),
}
ANCHOR_END_TIMES: dict[int, datetime] = {85079: _utc("2015-12-16T17:48:03Z")}

# First orbit of each year (OPT): keeps interpolated times on the right side of New Year.
FIRST_ORBIT_OF_YEAR: dict[int, int] = {
    2001: 5529, 2002: 10845, 2003: 16160, 2004: 21475, 2005: 26805, 2006: 32120, 2007: 37436,
    2008: 42751, 2009: 48081, 2010: 53396, 2011: 58712, 2012: 64027, 2013: 69357, 2014: 74672,
    2015: 79987,
}  # fmt: skip


def _build_knots() -> tuple[list[int], list[float]]:
    exact = {o: t.timestamp() for o, t in ANCHOR_START_TIMES.items()}
    orbits = sorted(exact)

    def linear(o: int) -> float:
        i = max(1, min(bisect.bisect_left(orbits, o), len(orbits) - 1))
        o0, o1 = orbits[i - 1], orbits[i]
        return exact[o0] + (exact[o1] - exact[o0]) * (o - o0) / (o1 - o0)

    knots = dict(exact)
    for year, orbit in FIRST_ORBIT_OF_YEAR.items():
        new_year = datetime(year, 1, 1, tzinfo=UTC).timestamp()
        # The first orbit of a year starts in [New Year, New Year + one period).
        knots[orbit] = min(max(linear(orbit), new_year + 1.0), new_year + ORBIT_PERIOD_S - 60.0)
    ordered = sorted(knots)
    return ordered, [knots[o] for o in ordered]


_KNOT_ORBITS, _KNOT_TIMES = _build_knots()


def check_orbit(orbit: int) -> int:
    if not FIRST_ORBIT <= orbit <= LAST_ORBIT:
        raise BadFileName(f"orbit {orbit} is outside the archive ({FIRST_ORBIT}..{LAST_ORBIT})")
    return orbit


def orbit_start(orbit: int) -> datetime:
    """Start time (UTC, whole seconds) of an orbit: exact at anchors, interpolated between."""
    check_orbit(orbit)
    i = max(1, min(bisect.bisect_left(_KNOT_ORBITS, orbit), len(_KNOT_ORBITS) - 1))
    o0, o1 = _KNOT_ORBITS[i - 1], _KNOT_ORBITS[i]
    t0, t1 = _KNOT_TIMES[i - 1], _KNOT_TIMES[i]
    seconds = t0 + (t1 - t0) * (orbit - o0) / (o1 - o0)
    return datetime.fromtimestamp(round(seconds), tz=UTC)


def orbit_end(orbit: int) -> datetime:
    """End of an orbit: the next orbit's start less one second (exact where the spec says)."""
    if orbit in ANCHOR_END_TIMES:
        return ANCHOR_END_TIMES[orbit]
    if orbit == LAST_ORBIT:
        return orbit_start(orbit) + timedelta(seconds=round(ORBIT_PERIOD_S) - 1)
    return orbit_start(orbit + 1) - timedelta(seconds=1)


def misr_path(orbit: int) -> int:
    """MISR / WRS-2 path of an orbit (reproduces every row of the OPT table)."""
    return (16 * orbit + 176) % 233 + 1


@dataclass(frozen=True, order=True)
class BasicFusionName:
    """A parsed BasicFusion file name."""

    orbit: int
    start: datetime
    software: str = "F000"
    collection: str = "V001"

    @property
    def file_name(self) -> str:
        stamp = self.start.strftime("%Y%m%d%H%M%S")
        return f"{FILE_PREFIX}_O{self.orbit}_{stamp}_{self.software}_{self.collection}.h5"

    @property
    def year_month(self) -> str:
        """`YYYY.MM`, the archive's directory convention."""
        return self.start.strftime("%Y.%m")

    @property
    def misr_path(self) -> int:
        return misr_path(self.orbit)

    @property
    def result_name(self) -> str:
        """Result file: `TERRA_BF_L1B` -> `CLIMARBLE`, `.h5` -> `.npz`."""
        return self.result_file(RESULT_PREFIX, ".npz")

    def result_file(self, prefix: str, suffix: str) -> str:
        """An analysis's result file: `TERRA_BF_L1B` -> `prefix`, `.h5` -> `suffix`."""
        return self.file_name.replace(FILE_PREFIX, prefix, 1)[: -len(".h5")] + suffix

    @classmethod
    def for_orbit(cls, orbit: int) -> BasicFusionName:
        return cls(orbit=check_orbit(orbit), start=orbit_start(orbit))

    @classmethod
    def parse(cls, name: str) -> BasicFusionName:
        """Parse a file name or an S3 key / path ending in one."""
        base = name.rsplit("/", 1)[-1]
        match = _FILE_RE.fullmatch(base)
        if match is None:
            raise BadFileName(
                f"{base!r} is not a BasicFusion file name (TERRA_BF_L1B_O<orbit>_<YYYYMMDDhhmmss>_F<n>_V<n>.h5)"
            )
        try:
            start = datetime.strptime(match["time"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError as exc:
            raise BadFileName(f"{base!r}: bad start time {match['time']!r}: {exc}") from exc
        orbit = int(match["orbit"])
        check_orbit(orbit)
        expected = orbit_start(orbit)
        if abs((start - expected).total_seconds()) > ORBIT_START_TOLERANCE_S:
            raise BadFileName(
                f"{base!r}: start time {start:%Y-%m-%dT%H:%M:%SZ} is not orbit {orbit}'s "
                f"({expected:%Y-%m-%dT%H:%M:%SZ}, within {ORBIT_START_TOLERANCE_S} s)"
            )
        return cls(orbit=orbit, start=start, software=f"F{match['f']}", collection=f"V{match['v']}")


def archive_key(name: BasicFusionName, prefix: str = "") -> str:
    """Key of an orbit file in the archive bucket: one folder per MISR path, as the AWS sampler."""
    return f"{prefix}P{name.misr_path}/{name.file_name}"


def hsds_domain(folder: str, name: BasicFusionName) -> str:
    """HSDS domain of a file: `<folder><YYYY>.<MM>/<file name>`."""
    if not folder.startswith("/") or not folder.endswith("/"):
        raise ValueError(f"HSDS folder must start and end with '/': {folder!r}")
    return f"{folder}{name.year_month}/{name.file_name}"


def result_key(job_id: str, name: BasicFusionName, *, prefix: str = RESULT_PREFIX, suffix: str = ".npz") -> str:
    """Key of one orbit's result: job, year-month and orbit identify it; prefix and suffix are its definition's."""
    return f"{RESULTS_PREFIX}/{job_id}/{name.year_month}/{name.result_file(prefix, suffix)}"


def composite_key(job_id: str, period: str, suffix: str = ".npz") -> str:
    """Key of a job's composite for one period (`YYYY.MM` or `YYYY.MM.DD`)."""
    return f"{RESULTS_PREFIX}/{job_id}/{COMPOSITES_DIR}/{period}{suffix}"


def reduced_marker_key(job_id: str) -> str:
    """Key of the JSON a job's reducer writes last ({"keys": [...]}): its existence means reduced."""
    return f"{RESULTS_PREFIX}/{job_id}/{REDUCED_MARKER}"
