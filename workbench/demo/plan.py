"""The demo's options and its pure planning: what to generate and who submits what.

`DemoOptions` is the command line's choice (checked before anything starts); `researchers` splits
the MISR paths between alice and bob; `choose_orbits` says which orbits to generate;
`carousel_environment` is the carousel settings the run uses. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datacarousel import registry
from datacarousel.contract import DEFAULT_WINDOW_BYTES, Env
from datacarousel.definitions import JobDefinition
from datacarousel.errors import BadInput, ConfigError, DataCarouselError
from workbench.local.carousel_settings import local_carousel_env
from workbench.synthetic.selection import select_orbits

DEFAULT_STATE_DIR = Path("var/demo")
DEFAULT_OUT_DIR = Path("demo-output")
DEFAULT_MONTH = "2015.12"
DEFAULT_PATHS = (22, 23, 24)
# "small": its MODIS granules have 40 rows, so a swath is continuous on the 0.5° grid ("tiny"'s 10 rows
# draw it as dashes); it costs about 50 s more than "tiny" end to end (docs/demo.md).
DEFAULT_PRESET = "small"
DEFAULT_RESTORE_DELAY_S = 8.0
DEFAULT_LEASE_DAYS = 1
DEFAULT_INTERVAL_S = 1.0
DEFAULT_TIMEOUT_S = 900.0
DEFAULT_DEFINITION = "ComputeRadiance"
# The demo's own ComputeRadiance output (composites, maps) runs for that definition only.
RADIANCE = "ComputeRadiance"


class DemoError(DataCarouselError):
    """The demo cannot run (bad options, container images missing, timeout)."""


@dataclass(frozen=True)
class Researcher:
    owner: str
    misr_paths: tuple[int, ...]


@dataclass(frozen=True)
class DemoOptions:
    month: str = DEFAULT_MONTH
    paths: tuple[int, ...] = DEFAULT_PATHS
    orbits: int | None = None  # at most this many orbits of the month (first ones), None = all
    preset: str = DEFAULT_PRESET
    seed: int = 0
    tier: str = "Bulk"
    window_files: int | None = None  # None: every file of the run fits (see docs/demo.md)
    window_bytes: int | None = None
    restore_delay_s: float = DEFAULT_RESTORE_DELAY_S
    lease_days: int = DEFAULT_LEASE_DAYS
    definition: str = DEFAULT_DEFINITION  # the job definition both researchers submit
    params: Mapping[str, str] = field(default_factory=dict)  # --param NAME=VALUE, as given
    resolution: float | None = None  # ComputeRadiance only: --resolution, its grid cell (= --param resolution=X)
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_index_workers: int = 2
    max_job_workers: int = 2
    keep: bool = False
    containers: bool = False
    out_dir: Path = DEFAULT_OUT_DIR
    state_dir: Path = DEFAULT_STATE_DIR

    def validate(self) -> None:
        problems = []
        try:
            year, month = (int(x) for x in self.month.split("."))
            if not (2000 <= year <= 2015 and 1 <= month <= 12):
                problems.append(f"--month {self.month!r} must lie in 2000.01..2015.12")
        except ValueError:
            problems.append(f"--month {self.month!r} is not YYYY.MM")
        if not self.paths or any(not 1 <= p <= 233 for p in self.paths):
            problems.append(f"--paths {list(self.paths)} must be MISR paths 1..233")
        if self.orbits is not None and self.orbits < 1:
            problems.append("--orbits must be >= 1")
        if self.window_files is not None and self.window_files < 1:
            problems.append("--window-files must be >= 1")
        if self.window_bytes is not None and self.window_bytes < 1:
            problems.append("--window-bytes must be >= 1")
        if self.restore_delay_s < 0:
            problems.append("--restore-delay must be >= 0")
        if self.tier not in ("Bulk", "Standard"):
            problems.append("--tier must be Bulk or Standard (Deep Archive has no Expedited tier)")
        try:
            self.job_parameters()
        except (BadInput, ConfigError) as exc:
            problems.append(str(exc))
        if problems:
            raise DemoError("; ".join(problems))

    def job_definition(self) -> JobDefinition:
        """The chosen job definition; BadInput naming the known ones."""
        return registry.get(self.definition)

    def job_parameters(self) -> dict[str, str]:
        """The jobs' parameters, checked against the definition's description (canonical, defaults filled
        in); BadInput naming every problem. `--resolution` is a ComputeRadiance shortcut only."""
        definition = self.job_definition()
        given: dict[str, Any] = dict(self.params)
        if self.resolution is not None:
            if definition.name != RADIANCE:
                raise BadInput(
                    f"--resolution is a {RADIANCE} option; {definition.name} takes --param NAME=VALUE "
                    f"({', '.join(p.name for p in definition.parameters)})"
                )
            if "resolution" in given:
                raise BadInput("--resolution and --param resolution=... are the same parameter: give one")
            given["resolution"] = self.resolution
        return definition.validate(given)

    @property
    def year(self) -> int:
        return int(self.month.split(".")[0])

    @property
    def month_number(self) -> int:
        return int(self.month.split(".")[1])


def researchers(paths: Sequence[int]) -> tuple[Researcher, Researcher]:
    """alice takes the first half of the paths and bob the second; they overlap on the middle one(s)."""
    ordered = sorted(dict.fromkeys(paths))
    middle = (len(ordered) - 1) // 2
    return Researcher("alice", tuple(ordered[: middle + 1])), Researcher("bob", tuple(ordered[middle:]))


def choose_orbits(month: str, paths: Sequence[int], limit: int | None) -> list[int]:
    """Orbits starting in `month` on `paths`, in orbit order, at most `limit`."""

    orbits = select_orbits(year_month=month, paths=list(paths))
    return orbits[:limit] if limit is not None else orbits


def carousel_environment(options: DemoOptions, file_count: int) -> dict[str, str]:
    """The carousel settings the demo runs with (the window, fast probes, few workers)."""
    # The embedded environment's probe and index-retry settings, with a probe matched to the demo's restore delay.
    probe = max(1.0, min(2.0, options.restore_delay_s / 2)) if options.restore_delay_s else 1.0
    return {
        Env.WINDOW_FILES: str(options.window_files or file_count),
        Env.WINDOW_BYTES: str(options.window_bytes or DEFAULT_WINDOW_BYTES),
        Env.RESTORE_TIER: options.tier,
        Env.RESTORE_DAYS: str(options.lease_days),
        **local_carousel_env(probe_after_s=probe),
        Env.MAX_INDEX_WORKERS: str(options.max_index_workers),
        Env.MAX_JOB_WORKERS: str(options.max_job_workers),
        Env.LOG_LEVEL: "INFO",
    }
