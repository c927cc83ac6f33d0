"""Each instrument's samples in the box, read through an `OrbitSource` (section numbers: docs/basicfusion-layout.md).

A sample is kept when its geolocation is inside the box (`science.Box.contains`: fill and NaN never
are), its time is valid, and at least one of the selected bands (radiances for CERES) holds a valid
value. Invalid values of a kept sample are NaN (the NetCDF file writes them as its _FillValue).
Samples keep the file's order (MODIS granules by name, then row-major pixels; MISR by block, line,
sample; CERES granules by name, then footprints), which is time order in a BasicFusion file.

- MODIS (§2), one sample per 1 km pixel of a granule with reflective solar bands: lat, lon, time,
  SolarZenith, SensorZenith and each selected band. A band value is valid when
  `0 <= L <= 32767 * radiance_scales[b]` (the L1B DN range 0..32767, the float32 product as
  ComputeRadiance computes its ceiling); this drops the reserved values -964..-999 (saturation -992,
  fill -999). Unlike ComputeRadiance, 0 (DN 0) is kept, and -992 is not refilled: both are choices
  of its gridding, not properties of the data.
  Time: the granule start from its name plus the middle of the pixel's scan, the 300 s granule
  split evenly into its R/10 scans (BF files carry no per-scan time; real scans last 1.477 s).
  A night granule has no reflective bands: if it has pixels in the box, it is recorded as skipped.
- MISR (§3), one sample per 1.1 km pixel: lat, lon (Geolocation), block (1-based, as MISR numbers
  them), line and sample (0-based, 1.1 km), time = the camera's BlockCenterTime of the block (the only
  MISR time in the file), and each selected band. A radiance is valid when `0 <= L <= 800` (the
  `valid_min`/`valid_max` attributes; fill -999 is below). A 275 m band (all AN bands, every Red) gives
  the mean of the valid values of the pixel's 4 x 4 sub-pixels, summed in float64 line by line, then
  rounded to float32; NaN when none is valid. Blocks with a fill BlockCenterTime (outside the daylit
  range) give no sample. Geolocation is read for the valid-time block range, radiances only for the
  range of blocks that hold a sample in the box.
- CERES (§4), one sample per footprint of the chosen instrument (FM1 by default) in every granule:
  lat, lon, time, Solar_Zenith, Viewing_Zenith, SW_Radiance, LW_Radiance, Radiance_Mode_Flags. A value
  is valid when finite and below the fill 3.4028235e38 in magnitude; a footprint needs a valid time
  and a valid SW or LW radiance.
- Zenith angles (all instruments) outside [0, 180] degrees are NaN (fills -999 and 3.4e38).
- Times are seconds since 1970-01-01 00:00:00 UTC (float64): MISR's as an exact microsecond count
  divided by 1e6, CERES's from its Julian Date as `(jd - 2440587.5) * 86400`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from batch_jobs.region_extract.layout import (
    ANGLE_MAX,
    ANGLE_MIN,
    CERES,
    CERES_FILL,
    CERES_VARIABLES,
    MODIS,
    MODIS_BAND_FIELD,
    MODIS_DN_MAX,
    MODIS_FIELD_BANDS,
    MODIS_GEO_VARIABLES,
    MODIS_GRANULE_S,
    MODIS_ROWS_PER_SCAN,
    SECONDS_PER_DAY,
    UNIX_EPOCH_JD,
    dtype_of,
    modis_band_variable,
)
from datacarousel.orbit import MissingData

if TYPE_CHECKING:
    from batch_jobs.region_extract.science import Box
    from datacarousel.orbit import OrbitSource

Samples = dict[str, npt.NDArray[np.generic]]
F32 = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GRANULE_RE = re.compile(r"^granule_(?P<year>[0-9]{4})(?P<doy>[0-9]{3})_(?P<hh>[0-9]{2})(?P<mm>[0-9]{2})$")


@dataclass(frozen=True)
class Skip:
    """Something that gave no samples although the selection asked for it, and why."""

    instrument: str
    item: str
    reason: str
    detail: str = ""


def empty_samples(names: Sequence[str]) -> Samples:
    return {name: np.empty(0, dtype=dtype_of(name)) for name in names}


def joined(parts: list[Samples], names: Sequence[str]) -> Samples:
    if not parts:
        return empty_samples(names)
    return {name: np.concatenate([p[name] for p in parts]).astype(dtype_of(name), copy=False) for name in names}


def valid_angles(values: npt.ArrayLike) -> F32:
    a = np.asarray(values, dtype=np.float32)
    return np.where((a >= ANGLE_MIN) & (a <= ANGLE_MAX), a, np.float32(np.nan))


# --- MODIS ---------------------------------------------------------------------------------------
def granule_start_seconds(name: str) -> int | None:
    """Seconds since 1970 of a `granule_YYYYDDD_hhmm` group's start, None for any other name."""
    match = _GRANULE_RE.match(name)
    if match is None or not 1 <= int(match["doy"]) <= 366 or int(match["hh"]) > 23 or int(match["mm"]) > 59:
        return None
    start = datetime(int(match["year"]), 1, 1, int(match["hh"]), int(match["mm"]), tzinfo=UTC)
    return (start + timedelta(days=int(match["doy"]) - 1) - EPOCH) // timedelta(seconds=1)


def modis_samples(source: OrbitSource, box: Box, bands: Sequence[str], skipped: list[Skip]) -> Samples:
    names = (*MODIS_GEO_VARIABLES, *map(modis_band_variable, bands))
    fields = tuple(f for f in MODIS_FIELD_BANDS if any(MODIS_BAND_FIELD[b] == f for b in bands))  # read no other
    parts: list[Samples] = []
    for granule in source.modis_granules():
        part = _modis_granule(source, granule, box=box, bands=bands, fields=fields, skipped=skipped)
        if part is not None:
            parts.append(part)
    return joined(parts, names)


def _modis_granule(
    source: OrbitSource, granule: str, *, box: Box, bands: Sequence[str], fields: tuple[str, ...], skipped: list[Skip]
) -> Samples | None:
    def skip(reason: str, detail: str) -> Samples | None:  # no samples from this granule, and why
        skipped.append(Skip(MODIS, granule, reason, detail))
        return None

    start = granule_start_seconds(granule)
    if start is None:
        return skip("bad_granule_name", "not a granule_YYYYDDD_hhmm group")
    try:
        lat, lon = source.modis_latlon(granule)
    except MissingData as exc:
        return skip("granule_without_geolocation", str(exc))
    if lat.ndim != 2 or lat.shape != lon.shape:
        return skip("granule_shape_mismatch", f"Latitude {lat.shape}, Longitude {lon.shape}")
    pixel = np.flatnonzero(box.contains(lat, lon))
    if pixel.size == 0:
        return None  # angles and bands are read only for granules with samples in the box
    try:
        sza, vza = source.modis_angles(granule)
        radiance, radiance_scales, _ = source.modis_bands(granule, fields)
    except MissingData as exc:
        return skip("granule_without_bands", f"{pixel.size} pixels in the box but no {exc} (a night granule?)")
    if sza.shape != lat.shape or vza.shape != lat.shape or radiance.shape[1:] != lat.shape:
        return skip("granule_shape_mismatch", f"geolocation {lat.shape}, angles {sza.shape}, bands {radiance.shape}")
    first_of_field = {f: sum(len(MODIS_FIELD_BANDS[g]) for g in fields[:i]) for i, f in enumerate(fields)}
    out: Samples = {}
    any_valid = np.zeros(pixel.size, dtype=bool)
    for band in bands:
        field = MODIS_BAND_FIELD[band]
        k = first_of_field[field] + MODIS_FIELD_BANDS[field].index(band)
        values = np.asarray(radiance[k], dtype=np.float32).ravel()[pixel]
        ceiling = MODIS_DN_MAX * np.float32(radiance_scales[k])
        ok = (values >= 0) & (values <= ceiling)
        out[modis_band_variable(band)] = np.where(ok, values, np.float32(np.nan))
        any_valid |= ok
    rows = pixel // lat.shape[1]
    scans = -(-lat.shape[0] // MODIS_ROWS_PER_SCAN)
    out["time"] = start + (rows // MODIS_ROWS_PER_SCAN + 0.5) * MODIS_GRANULE_S / scans
    out["lat"] = np.asarray(lat, dtype=np.float32).ravel()[pixel]
    out["lon"] = np.asarray(lon, dtype=np.float32).ravel()[pixel]
    out["solar_zenith"] = valid_angles(sza.ravel()[pixel])
    out["sensor_zenith"] = valid_angles(vza.ravel()[pixel])
    return {name: values[any_valid] for name, values in out.items()}


# --- CERES ---------------------------------------------------------------------------------------
def _ceres_valid(values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    a = np.asarray(values, dtype=np.float64)
    return np.isfinite(a) & (np.abs(a) < CERES_FILL)


def ceres_samples(source: OrbitSource, box: Box, instrument: str, skipped: list[Skip]) -> Samples:
    parts: list[Samples] = []
    for granule in source.ceres_granules():
        try:
            fp = source.ceres_instrument(granule, instrument)
        except MissingData as exc:
            skipped.append(Skip(CERES, f"{granule}/{instrument}", "ceres_without_instrument", str(exc)))
            continue
        if len({np.shape(v) for v in fp.values()}) != 1 or np.ndim(fp["time"]) != 1:
            skipped.append(Skip(CERES, f"{granule}/{instrument}", "ceres_shape_mismatch", "arrays of unequal shape"))
            continue
        sw, lw = (np.asarray(fp[k], dtype=np.float32) for k in ("sw", "lw"))
        sw_ok, lw_ok = _ceres_valid(sw), _ceres_valid(lw)
        keep = box.contains(fp["lat"], fp["lon"]) & _ceres_valid(fp["time"]) & (sw_ok | lw_ok)
        index = np.flatnonzero(keep)
        jd = np.asarray(fp["time"], dtype=np.float64)[index]
        parts.append({
            "time": (jd - UNIX_EPOCH_JD) * SECONDS_PER_DAY,
            "lat": np.asarray(fp["lat"], dtype=np.float32)[index],
            "lon": np.asarray(fp["lon"], dtype=np.float32)[index],
            "solar_zenith": valid_angles(np.asarray(fp["sza"])[index]),
            "viewing_zenith": valid_angles(np.asarray(fp["vza"])[index]),
            "sw_radiance": np.where(sw_ok, sw, np.float32(np.nan))[index],
            "lw_radiance": np.where(lw_ok, lw, np.float32(np.nan))[index],
            "radiance_mode_flags": np.asarray(fp["mode_flags"]).astype(np.int32)[index],
        })  # fmt: skip
    return joined(parts, CERES_VARIABLES)
