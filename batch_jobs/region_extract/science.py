"""RegionExtract's science as pure numpy over an `OrbitSource`: the box, the selection and `extract`.

The box. `Box(lat_min, lat_max, lon_min, lon_max)` in degrees, bounds inclusive:
- a sample is inside when `lat_min <= lat <= lat_max` and, if `lon_min < lon_max`,
  `lon_min <= lon <= lon_max`; if `lon_min > lon_max` the box crosses the antimeridian and the
  longitude test is `lon >= lon_min or lon <= lon_max`;
- every sample must also lie in `-90 <= lat <= 90` and `-180 <= lon <= 180`, so fill geolocation
  (-999, -3.4e38) and NaN are never inside, whichever way the box runs;
- the comparisons are made in float64: a float32 latitude exactly equal to `lat_min` is inside, one a
  float32 step below is not, even where `float32(lat_min)` would round onto it.
A box needs `lat_min < lat_max` and `lon_min != lon_max`, every bound a number in range
(latitudes in [-90, 90], longitudes in [-180, 180]); `Box` raises ValueError otherwise.

What a sample is, when it is kept and what its time is: see `batch_jobs.region_extract.instruments`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from batch_jobs.region_extract import instruments, misr
from batch_jobs.region_extract.instruments import Skip
from batch_jobs.region_extract.layout import (
    CERES,
    CERES_INSTRUMENTS,
    CERES_VARIABLES,
    INSTRUMENTS,
    MISR,
    MISR_BANDS,
    MISR_CAMERAS,
    MISR_GEO_VARIABLES,
    MODIS,
    MODIS_BANDS,
    MODIS_GEO_VARIABLES,
    MODIS_VIS_BANDS,
    misr_band_variable,
    modis_band_variable,
)
from datacarousel.definitions import load

if TYPE_CHECKING:
    from datacarousel.orbit import OrbitSource

__all__ = ["DEFAULT_PARAMETERS", "Box", "OrbitExtract", "Selection", "Skip", "extract", "selection_from_parameters"]

# The job's string parameters and their defaults: its description's (definition.toml), read once.
DEFAULT_PARAMETERS: dict[str, str] = load(Path(__file__).with_name("definition.toml")).defaults()


@dataclass(frozen=True)
class Box:
    """A lat/lon box (degrees, bounds inclusive); `lon_min > lon_max` crosses the antimeridian."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def __post_init__(self) -> None:
        for name, limit in (("lat_min", 90.0), ("lat_max", 90.0), ("lon_min", 180.0), ("lon_max", 180.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
            number = float(value)
            if not -limit <= number <= limit:
                raise ValueError(f"{name} must lie in [{-limit:g}, {limit:g}] degrees, got {value!r}")
            object.__setattr__(self, name, number)
        if not self.lat_min < self.lat_max:
            raise ValueError(f"lat_min must be smaller than lat_max, got {self.lat_min!r} and {self.lat_max!r}")
        if self.lon_min == self.lon_max:
            raise ValueError(f"lon_min and lon_max must differ (the box would be empty), both are {self.lon_min!r}")

    @property
    def crosses_antimeridian(self) -> bool:
        return self.lon_min > self.lon_max

    def contains(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Mask of the samples inside (same shape as `lat` and `lon`); NaN and fill values are outside."""
        lat64 = np.asarray(lat, dtype=np.float64)  # float32 -> float64 is exact: compare the stored values
        lon64 = np.asarray(lon, dtype=np.float64)
        inside = (lat64 >= self.lat_min) & (lat64 <= self.lat_max) & (lon64 >= -180.0) & (lon64 <= 180.0)
        if self.crosses_antimeridian:
            return inside & ((lon64 >= self.lon_min) | (lon64 <= self.lon_max))
        return inside & (lon64 >= self.lon_min) & (lon64 <= self.lon_max)

    def describe(self) -> str:
        lon = (
            f"(lon >= {self.lon_min!r} or lon <= {self.lon_max!r})"
            if self.crosses_antimeridian
            else f"{self.lon_min!r} <= lon <= {self.lon_max!r}"
        )
        return f"{self.lat_min!r} <= lat <= {self.lat_max!r} and {lon} (degrees, bounds inclusive)"


def _check_names(parameter: str, given: tuple[str, ...], known: tuple[str, ...]) -> None:
    if not given:
        raise ValueError(f"{parameter} must name at least one of {', '.join(known)}")
    unknown = [name for name in given if name not in known]
    if unknown:
        raise ValueError(f"{parameter}: unknown {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    if len(set(given)) != len(given):
        raise ValueError(f"{parameter} names an entry twice: {','.join(given)}")


@dataclass(frozen=True)
class Selection:
    """What to extract: the box, the instruments (in output order) and each instrument's bands."""

    box: Box
    instruments: tuple[str, ...] = INSTRUMENTS
    modis_bands: tuple[str, ...] = MODIS_VIS_BANDS
    misr_camera: str = "AN"
    misr_bands: tuple[str, ...] = MISR_BANDS
    ceres_instrument: str = "FM1"

    def __post_init__(self) -> None:
        for name in ("instruments", "modis_bands", "misr_bands"):  # lists given by a caller become tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_names("instruments", self.instruments, INSTRUMENTS)
        _check_names("modis_bands", self.modis_bands, MODIS_BANDS)
        _check_names("misr_bands", self.misr_bands, MISR_BANDS)
        if self.misr_camera not in MISR_CAMERAS:
            raise ValueError(f"misr_camera must be one of {', '.join(MISR_CAMERAS)}, got {self.misr_camera!r}")
        if self.ceres_instrument not in CERES_INSTRUMENTS:
            raise ValueError(
                f"ceres_instrument must be one of {', '.join(CERES_INSTRUMENTS)}, got {self.ceres_instrument!r}"
            )

    def variables(self, instrument: str) -> tuple[str, ...]:
        """The sample variables of an instrument, in file order."""
        if instrument == MODIS:
            return (*MODIS_GEO_VARIABLES, *map(modis_band_variable, self.modis_bands))
        if instrument == MISR:
            return (*MISR_GEO_VARIABLES, *map(misr_band_variable, self.misr_bands))
        if instrument == CERES:
            return CERES_VARIABLES
        raise ValueError(f"unknown instrument {instrument!r}")


def _number(params: Mapping[str, str], name: str) -> float:
    text = params[name]
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {text!r}"[:200]) from None


def _names(params: Mapping[str, str], name: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in str(params[name]).split(","))
    if any(not item for item in items):
        raise ValueError(f"{name} must be a comma-separated list with no empty entry, got {params[name]!r}")
    return items


def selection_from_parameters(params: Mapping[str, str]) -> Selection:
    """The job's string parameters (missing ones take DEFAULT_PARAMETERS) as a Selection; ValueError, one line."""
    unknown = sorted(set(params) - set(DEFAULT_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_PARAMETERS)})")
    values = {**DEFAULT_PARAMETERS, **params}
    box = Box(*(_number(values, name) for name in ("lat_min", "lat_max", "lon_min", "lon_max")))
    return Selection(
        box=box,
        instruments=_names(values, "instruments"),
        modis_bands=_names(values, "modis_bands"),
        misr_camera=str(values["misr_camera"]).strip(),
        misr_bands=_names(values, "misr_bands"),
        ceres_instrument=str(values["ceres_instrument"]).strip(),
    )


@dataclass(frozen=True)
class OrbitExtract:
    """One orbit's samples in the box: instrument -> variable -> 1-D array (all of one length per instrument)."""

    samples: dict[str, dict[str, npt.NDArray[np.generic]]]
    skipped: tuple[Skip, ...] = field(default=())

    def count(self, instrument: str | None = None) -> int:
        """Samples of one instrument, or of all of them."""
        names = [instrument] if instrument is not None else list(self.samples)
        return sum(len(self.samples[name]["time"]) for name in names)


def extract(source: OrbitSource, selection: Selection) -> OrbitExtract:
    """Every sample of the selected instruments inside the box (rules: module docstrings)."""
    skipped: list[Skip] = []
    groups = source.groups()
    samples: dict[str, dict[str, npt.NDArray[np.generic]]] = {}
    for instrument in selection.instruments:
        names = selection.variables(instrument)
        if instrument not in groups:
            skipped.append(Skip(instrument, instrument, "instrument_missing", f"the file has no /{instrument} group"))
            samples[instrument] = instruments.empty_samples(names)
            continue
        if instrument == MODIS:
            got = instruments.modis_samples(source, selection.box, selection.modis_bands, skipped)
        elif instrument == MISR:
            got = misr.misr_samples(source, selection.box, selection.misr_camera, selection.misr_bands, skipped)
        else:
            got = instruments.ceres_samples(source, selection.box, selection.ceres_instrument, skipped)
        samples[instrument] = {name: got[name] for name in names}
    return OrbitExtract(samples, tuple(skipped))
