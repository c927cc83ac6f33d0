"""Typed researcher queries over BasicFusionFiles, their validation, matching and index lookups.

A query is a conjunction of optional fields; a field lists alternatives:
`years` (2000..2015), `months` (1..12), `misr_paths` (1..233), and an inclusive
orbit range `orbit_min` / `orbit_max`. At least one field must be given (the
whole archive is 2.5 PB; nobody selects it by accident).

`lookups(query)` turns a query into DynamoDB index queries, each one
`hash key = value AND orbit BETWEEN lo AND hi` on a GSI of the files table,
never a Scan; the adapter then keeps the items for which `matches` holds (the
fields the chosen index cannot express). Every value is typed and bounded
before it reaches an expression: no user string is ever pasted into one.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from datacarousel import naming
from datacarousel.contract import FileAttr, FileIndex
from datacarousel.errors import BadInput

FIRST_YEAR = 2000
LAST_YEAR = 2015
MISR_PATHS = 233
MAX_LIST = 512  # no field legitimately lists more values than there are MISR paths
LOOKUP_OVERHEAD_ITEMS = 25  # one Query request costs about as much as reading this many items

QUERY_FIELDS = ("years", "months", "misr_paths", "orbit_min", "orbit_max")


class FileLike(Protocol):
    @property
    def orbit(self) -> int: ...

    @property
    def year_month(self) -> str: ...

    @property
    def misr_path(self) -> int: ...


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class JobQuery:
    years: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    misr_paths: tuple[int, ...] = ()
    orbit_min: int | None = None
    orbit_max: int | None = None

    def __post_init__(self) -> None:
        problems = validate_fields(
            {
                "years": self.years,
                "months": self.months,
                "misr_paths": self.misr_paths,
                "orbit_min": self.orbit_min,
                "orbit_max": self.orbit_max,
            }
        )
        if problems:
            raise BadInput("invalid query: " + "; ".join(problems))
        # Canonical form: sorted, unique, plain ints.
        object.__setattr__(self, "years", tuple(sorted({int(v) for v in self.years})))
        object.__setattr__(self, "months", tuple(sorted({int(v) for v in self.months})))
        object.__setattr__(self, "misr_paths", tuple(sorted({int(v) for v in self.misr_paths})))

    @classmethod
    def from_dict(cls, raw: Any) -> JobQuery:
        """Parse a JSON-decoded query; every problem is named in one BadInput."""
        if not isinstance(raw, Mapping):
            raise BadInput(f"invalid query: expected an object, got {type(raw).__name__}")
        unknown = sorted(str(k) for k in raw if k not in QUERY_FIELDS)
        problems = [f"unknown field(s) {', '.join(map(repr, unknown))}"] if unknown else []
        problems += validate_fields(raw)
        if problems:
            raise BadInput("invalid query: " + "; ".join(problems))
        return cls(
            years=tuple(raw.get("years") or ()),
            months=tuple(raw.get("months") or ()),
            misr_paths=tuple(raw.get("misr_paths") or ()),
            orbit_min=raw.get("orbit_min"),
            orbit_max=raw.get("orbit_max"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("years", "months", "misr_paths"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        if self.orbit_min is not None:
            out["orbit_min"] = self.orbit_min
        if self.orbit_max is not None:
            out["orbit_max"] = self.orbit_max
        return out

    @property
    def orbit_bounds(self) -> tuple[int, int]:
        lo = naming.FIRST_ORBIT if self.orbit_min is None else self.orbit_min
        hi = naming.LAST_ORBIT if self.orbit_max is None else self.orbit_max
        return lo, hi


def validate_fields(raw: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    bounds = {"years": (FIRST_YEAR, LAST_YEAR), "months": (1, 12), "misr_paths": (1, MISR_PATHS)}
    for name, (lo, hi) in bounds.items():
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            problems.append(f"{name} must be a list of integers, got {type(value).__name__}")
            continue
        if len(value) > MAX_LIST:
            problems.append(f"{name} lists {len(value)} values (at most {MAX_LIST})")
            continue
        bad_type = [v for v in value if not _is_int(v)]
        if bad_type:
            problems.append(f"{name} must hold integers only, got {', '.join(repr(v) for v in bad_type[:3])}")
            continue
        out_of_range = [int(v) for v in value if not lo <= v <= hi]
        if out_of_range:
            problems.append(f"{name} must lie in {lo}..{hi}, got {', '.join(map(str, out_of_range[:3]))}")
    for name in ("orbit_min", "orbit_max"):
        value = raw.get(name)
        if value is None:
            continue
        if not _is_int(value):
            problems.append(f"{name} must be an integer, got {type(value).__name__} {value!r}"[:200])
        elif not naming.FIRST_ORBIT <= value <= naming.LAST_ORBIT:
            problems.append(f"{name} must lie in {naming.FIRST_ORBIT}..{naming.LAST_ORBIT}, got {value}")
    omin: Any = raw.get("orbit_min")
    omax: Any = raw.get("orbit_max")
    if _is_int(omin) and _is_int(omax) and omin > omax:
        problems.append(f"orbit_min {omin} is greater than orbit_max {omax}")
    if not problems and not any(raw.get(name) not in (None, (), []) for name in QUERY_FIELDS):
        problems.append("the query selects the whole archive; give years, months, misr_paths or an orbit range")
    return problems


def year_month_code(year_month: str) -> int:
    """`YYYY.MM` -> year * 12 + month - 1 (a dense integer for numpy)."""
    year, month = year_month.split(".")
    return int(year) * 12 + int(month) - 1


def matches(query: JobQuery, file: FileLike) -> bool:
    """Whether a file belongs to the query (every given field must hold)."""
    lo, hi = query.orbit_bounds
    if not lo <= file.orbit <= hi:
        return False
    if query.misr_paths and file.misr_path not in query.misr_paths:
        return False
    year, month = (int(p) for p in file.year_month.split("."))
    if query.years and year not in query.years:
        return False
    return not (query.months and month not in query.months)


def match_mask(
    query: JobQuery, orbit: npt.NDArray[Any], year_month_code: npt.NDArray[Any], misr_path: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    """Vectorised `matches` over catalogue columns (year_month as `year_month_code`)."""
    lo, hi = query.orbit_bounds
    mask = (orbit >= lo) & (orbit <= hi)
    if query.misr_paths:
        mask &= np.isin(misr_path, query.misr_paths)
    if query.years:
        mask &= np.isin(year_month_code // 12, query.years)
    if query.months:
        mask &= np.isin(year_month_code % 12 + 1, query.months)
    return np.asarray(mask, dtype=bool)


# --- index lookups ---------------------------------------------------------------------


@dataclass(frozen=True)
class IndexLookup:
    """One DynamoDB Query: `hash_attribute = hash_value AND orbit BETWEEN orbit_min AND orbit_max`."""

    index_name: str
    hash_attribute: str
    hash_value: str | int
    orbit_min: int
    orbit_max: int
    range_attribute: str = FileAttr.ORBIT

    @property
    def estimated_items(self) -> int:
        span = self.orbit_max - self.orbit_min + 1
        return span if self.index_name == FileIndex.BY_YEAR_MONTH else -(-span // MISR_PATHS)


def _start_seconds(orbit: int) -> float:
    return naming.orbit_start(orbit).timestamp()


class _OrbitStarts(Sequence[float]):
    """Orbit start times as a lazily evaluated sorted sequence (for bisect)."""

    def __len__(self) -> int:
        return naming.ORBIT_COUNT

    def __getitem__(self, i: Any) -> Any:
        return _start_seconds(naming.FIRST_ORBIT + int(i))


@lru_cache(maxsize=512)
def month_orbits(year: int, month: int) -> tuple[int, int] | None:
    """First and last orbit starting in a calendar month, or None if the archive has none."""
    start = datetime(year, month, 1, tzinfo=UTC).timestamp()
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC).timestamp()
    starts = _OrbitStarts()
    lo = bisect.bisect_left(starts, start)
    hi = bisect.bisect_left(starts, end) - 1
    if hi < lo:
        return None
    return naming.FIRST_ORBIT + lo, naming.FIRST_ORBIT + hi


def lookups(query: JobQuery) -> tuple[IndexLookup, ...]:
    """The index queries that together return a superset of the query's files (filter with `matches`).

    Year-month queries go to `by_year_month`, path queries to `by_misr_path`; when
    both are given, the one reading fewer items wins. Orbit bounds narrow each one.
    """
    lo, hi = query.orbit_bounds
    by_month: list[IndexLookup] = []
    years = query.years or tuple(range(FIRST_YEAR, LAST_YEAR + 1))
    months = query.months or tuple(range(1, 13))
    for year in years:
        for month in months:
            span = month_orbits(year, month)
            if span is None or span[1] < lo or span[0] > hi:
                continue
            by_month.append(
                IndexLookup(
                    FileIndex.BY_YEAR_MONTH,
                    FileAttr.YEAR_MONTH,
                    f"{year:04d}.{month:02d}",
                    max(lo, span[0]),
                    min(hi, span[1]),
                )
            )
    if not query.misr_paths:
        return tuple(by_month)
    # The orbit span the months cover bounds each path lookup too.
    if by_month:
        lo, hi = min(x.orbit_min for x in by_month), max(x.orbit_max for x in by_month)
    elif query.years or query.months:
        return ()
    by_path = tuple(IndexLookup(FileIndex.BY_MISR_PATH, FileAttr.MISR_PATH, p, lo, hi) for p in query.misr_paths)
    if query.years or query.months:
        cost_month = sum(x.estimated_items + LOOKUP_OVERHEAD_ITEMS for x in by_month)
        cost_path = sum(x.estimated_items + LOOKUP_OVERHEAD_ITEMS for x in by_path)
        if cost_month <= cost_path:
            return tuple(by_month)
    return by_path
