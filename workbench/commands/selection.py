"""The one vocabulary every command selects BasicFusion files with (`generate`, `submit`, `files`, `demo`).

    --year-month YYYY.MM   orbits starting in that month (repeat or 2015.11,2015.12)
    --years Y              years 2000..2015 (repeat or 2014,2015)
    --months M             months 1..12 of those years, or of every year (repeat or 6,7)
    --path P               MISR paths 1..233 (repeat or 22,23)
    --orbits A-B           an inclusive orbit range, or one orbit A

Options combine as AND; the values of one option as OR. `--year-month` and `--years`/`--months`
are two ways to say the same thing: give one of them. The old spellings still parse, hidden from
`--help`: `--paths` (= `--path`), `--orbit-min`/`--orbit-max` (= `--orbits A-B`), `--month`
(= `--year-month`). Every value is checked here, once: a bad one is a `BadInput` naming the option
and the value, which each command reports in one line with exit code 2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import typer

from carousel.query import FIRST_YEAR, LAST_YEAR, MISR_PATHS
from datacarousel import naming
from datacarousel.errors import BadInput

EXIT_USAGE = 2
_YEAR_MONTH_RE = re.compile(r"^(\d{4})\.(\d{2})$")
_RANGE_RE = re.compile(r"^(\d+)(?:-(\d+))?$")

YEAR_MONTH_HELP = "Orbits starting in a month, YYYY.MM: 2015.12; 2015.11,2015.12 or repeat."
YEARS_HELP = f"Years {FIRST_YEAR}..{LAST_YEAR}: 2014,2015 or repeat."
MONTHS_HELP = "Months 1..12 (of --years, or of every year): 6,7 or repeat."
PATH_HELP = f"MISR paths 1..{MISR_PATHS}: --path 22,23 or --path 22 --path 23."
ORBITS_HELP = "Inclusive orbit range FIRST-LAST (85079-85085), or one orbit (85079)."

YearMonthOption = Annotated[list[str] | None, typer.Option("--year-month", help=YEAR_MONTH_HELP, metavar="YYYY.MM")]
YearsOption = Annotated[list[str] | None, typer.Option("--years", help=YEARS_HELP, metavar="YEARS")]
MonthsOption = Annotated[list[str] | None, typer.Option("--months", help=MONTHS_HELP, metavar="MONTHS")]
PathOption = Annotated[list[str] | None, typer.Option("--path", help=PATH_HELP, metavar="PATHS")]
OrbitsOption = Annotated[str | None, typer.Option("--orbits", help=ORBITS_HELP, metavar="FIRST-LAST")]
# The old spellings: they still work, `--help` shows only the vocabulary above.
PathsAlias = Annotated[list[str] | None, typer.Option("--paths", hidden=True)]
OrbitMinAlias = Annotated[int | None, typer.Option("--orbit-min", hidden=True)]
OrbitMaxAlias = Annotated[int | None, typer.Option("--orbit-max", hidden=True)]
MonthAlias = Annotated[list[str] | None, typer.Option("--month", hidden=True)]


@dataclass(frozen=True)
class Selection:
    """A checked selection: every field optional, values sorted and unique."""

    year_months: tuple[str, ...] = ()  # "YYYY.MM"
    years: tuple[int, ...] = ()
    months: tuple[int, ...] = ()
    paths: tuple[int, ...] = ()
    orbits: tuple[int, int] | None = None  # inclusive

    @property
    def is_empty(self) -> bool:
        return not (self.year_months or self.years or self.months or self.paths or self.orbits)

    @property
    def by_month(self) -> bool:
        """Whether the selection names months (by --year-month or by --years/--months)."""
        return bool(self.year_months or self.years or self.months)

    def month_list(self) -> tuple[str, ...]:
        """Every YYYY.MM the selection names: --year-month, or --years x --months (all months / all years)."""
        if self.year_months:
            return self.year_months
        if not (self.years or self.months):
            return ()
        years = self.years or tuple(range(FIRST_YEAR, LAST_YEAR + 1))
        months = self.months or tuple(range(1, 13))
        return tuple(f"{y:04d}.{m:02d}" for y in years for m in months)

    def keeps(self, orbit: int) -> bool:
        """Whether a file of `orbit` is in the selection."""
        if self.orbits is not None and not self.orbits[0] <= orbit <= self.orbits[1]:
            return False
        if self.paths and naming.misr_path(orbit) not in self.paths:
            return False
        if self.by_month:
            return naming.BasicFusionName.for_orbit(orbit).year_month in self.month_list()
        return True


def _parts(values: Sequence[str] | None) -> list[str]:
    """`["22,23", "24"]` -> ["22", "23", "24"]: a comma list, repeated, or both (spaces separate too)."""
    return [part for text in values or () for part in text.replace(" ", ",").split(",") if part]


def int_values(option: str, values: Sequence[str] | None, noun: str, lo: int, hi: int) -> tuple[int, ...]:
    """Integers of a comma list or repeated option, each within lo..hi; sorted, unique."""
    out: set[int] = set()
    for part in _parts(values):
        try:
            number = int(part)
        except ValueError:
            raise BadInput(f"{option} takes integers, got {part!r}"[:200]) from None
        if not lo <= number <= hi:
            raise BadInput(f"{option} {number}: {noun} must lie in {lo}..{hi}")
        out.add(number)
    return tuple(sorted(out))


def year_month_values(option: str, values: Sequence[str] | None) -> tuple[str, ...]:
    out: set[str] = set()
    for part in _parts(values):
        match = _YEAR_MONTH_RE.match(part)
        if match is None:
            raise BadInput(f"{option} {part!r}: expected YYYY.MM, e.g. 2015.12"[:200])
        year, month = int(match[1]), int(match[2])
        if not (FIRST_YEAR <= year <= LAST_YEAR and 1 <= month <= 12):
            raise BadInput(f"{option} {part}: must lie in {FIRST_YEAR}.01..{LAST_YEAR}.12")
        out.add(part)
    return tuple(sorted(out))


def orbit_range(option: str, text: str) -> tuple[int, int]:
    """`85079-85085` -> (85079, 85085); `85079` -> (85079, 85079); within the archive, first <= last."""
    match = _RANGE_RE.match(text.replace(" ", ""))
    if match is None:
        raise BadInput(f"{option} {text!r}: expected FIRST-LAST orbit numbers, e.g. 85079-85085"[:200])
    first = int(match[1])
    last = int(match[2]) if match[2] else first
    return _checked_range(option, text, first, last)


def _checked_range(option: str, text: str, first: int, last: int) -> tuple[int, int]:
    for orbit in (first, last):
        check_orbit(option, orbit, text)
    if first > last:
        raise BadInput(f"{option} {text}: the range is empty (FIRST must be <= LAST)")
    return first, last


def check_orbit(option: str, orbit: int, text: object = None) -> int:
    """`orbit` if the archive has it; BadInput naming the option and the value otherwise."""
    if not naming.FIRST_ORBIT <= orbit <= naming.LAST_ORBIT:
        raise BadInput(
            f"{option} {orbit if text is None else text}: orbit {orbit} is outside the archive "
            f"({naming.FIRST_ORBIT}..{naming.LAST_ORBIT})"
        )
    return orbit


def _legacy_bounds(orbit_min: int | None, orbit_max: int | None) -> tuple[int, int] | None:
    """The old `--orbit-min A --orbit-max B` (either may be missing: the archive's end)."""
    if orbit_min is None and orbit_max is None:
        return None
    for option, value in (("--orbit-min", orbit_min), ("--orbit-max", orbit_max)):
        if value is not None:
            check_orbit(option, value)
    first = naming.FIRST_ORBIT if orbit_min is None else orbit_min
    last = naming.LAST_ORBIT if orbit_max is None else orbit_max
    if first > last:
        raise BadInput(f"--orbit-min {first} is greater than --orbit-max {last}: the range is empty")
    return first, last


def parse_selection(
    *,
    year_month: Sequence[str] | None = None,
    years: Sequence[str] | None = None,
    months: Sequence[str] | None = None,
    path: Sequence[str] | None = None,
    orbits: str | None = None,
    paths: Sequence[str] | None = None,
    orbit_min: int | None = None,
    orbit_max: int | None = None,
    month: Sequence[str] | None = None,
) -> Selection:
    """The options as given (the old spellings `paths`, `orbit_min`, `orbit_max`, `month` included) ->
    a checked Selection; BadInput naming the option and the value otherwise."""
    year_months = year_month_values("--year-month", year_month) + year_month_values("--month", month)
    chosen_years = int_values("--years", years, "years", FIRST_YEAR, LAST_YEAR)
    chosen_months = int_values("--months", months, "months", 1, 12)
    chosen_paths = int_values("--path", path, "MISR paths", 1, MISR_PATHS)
    chosen_paths += int_values("--paths", paths, "MISR paths", 1, MISR_PATHS)
    if year_months and (chosen_years or chosen_months):
        raise BadInput("--year-month and --years/--months say the same thing: give one of them")
    legacy = _legacy_bounds(orbit_min, orbit_max)
    if orbits is not None and legacy is not None:
        raise BadInput("--orbits and --orbit-min/--orbit-max say the same thing: give --orbits FIRST-LAST")
    return Selection(
        year_months=tuple(sorted(set(year_months))),
        years=chosen_years,
        months=chosen_months,
        paths=tuple(sorted(set(chosen_paths))),
        orbits=orbit_range("--orbits", orbits) if orbits is not None else legacy,
    )


def register(app: typer.Typer) -> None:
    """The vocabulary is no command of its own (`workbench.cli` calls `register` on every module here)."""
    del app


def refuse(exc: Exception) -> typer.Exit:
    """A usage error: one line on stderr, exit code 2."""
    typer.secho(f"error: {' '.join(str(exc).split())}", err=True, fg=typer.colors.RED)
    return typer.Exit(EXIT_USAGE)
