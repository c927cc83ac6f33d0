"""NetCDF (CF-1.8) export of an orbit result or a composite, with xarray and the h5netcdf engine."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from batch_jobs.compute_radiance.composite import COUNTS, SUM_TO_COUNT, mean_name
from batch_jobs.compute_radiance.science import JD_J2000, MISR_BANDS
from datacarousel.times import ISO_SECONDS

RADIANCE_UNITS = "W m-2 sr-1 um-1"
CERES_UNITS = "W m-2 sr-1"
MODIS_CHANNELS = np.arange(1, 8, dtype=np.int32)  # MODIS bands 1..7


def jd_to_iso(jd: float) -> str:
    if not np.isfinite(jd):
        return ""
    t = datetime(2000, 1, 1, 12) + timedelta(days=float(jd) - JD_J2000)
    return t.strftime(ISO_SECONDS)


def _dims(name: str, ndim: int) -> tuple[str, ...]:
    if name.startswith("modis"):
        return ("latitude", "longitude", "modis_band")
    if name.startswith("misr"):
        return ("latitude", "longitude", "misr_band")
    return ("latitude", "longitude")


def _attrs(name: str) -> dict[str, str]:
    instrument = name.split("_", 1)[0].upper()
    if name in COUNTS:
        return {"long_name": f"{instrument} number of samples per cell", "units": "1"}
    what = {
        "modis_rad": "MODIS VIS spectral radiance",
        "modis_sol": "MODIS band insolation factor cos(SZA) * radiance_scale / reflectance_scale",
        "misr_rad": "MISR AN spectral radiance",
        "ceres_sw": "CERES FM1 shortwave radiance",
        "ceres_lw": "CERES FM1 longwave radiance",
    }[name.rsplit("_", 1)[0]]
    units = CERES_UNITS if name.startswith("ceres") else RADIANCE_UNITS
    if name.endswith("_mean"):
        return {"long_name": f"mean {what}", "units": units, "cell_methods": "area: mean"}
    return {"long_name": f"sum of {what}", "units": units, "cell_methods": "area: sum"}


def to_dataset(arrays: Mapping[str, npt.NDArray[Any]]) -> xr.Dataset:
    """CF dataset of sums, counts and means (means computed for orbit results too)."""
    lat = np.asarray(arrays["latitude"])
    lon = np.asarray(arrays["longitude"])
    data_vars: dict[str, Any] = {}
    for name in (*SUM_TO_COUNT, *COUNTS):
        a = np.asarray(arrays[name])
        data_vars[name] = (_dims(name, a.ndim), a, _attrs(name))
    for sum_name, count_name in SUM_TO_COUNT.items():
        m = mean_name(sum_name)
        if m in arrays:
            mean = np.asarray(arrays[m])
        else:
            total, count = np.asarray(arrays[sum_name]), np.asarray(arrays[count_name])
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        data_vars[m] = (_dims(sum_name, mean.ndim), mean.astype(np.float32), _attrs(m))
    coords = {
        "latitude": ("latitude", lat, {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"}),
        "longitude": ("longitude", lon, {"standard_name": "longitude", "units": "degrees_east", "axis": "X"}),
        "modis_band": ("modis_band", MODIS_CHANNELS, {"long_name": "MODIS band number"}),
        "misr_band": ("misr_band", np.array(MISR_BANDS, dtype=object), {"long_name": "MISR AN band"}),
    }
    t0, t1 = float(arrays["t0"]), float(arrays["t1"])
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.8",
        "title": "Climate Marble gridded Terra radiances (MODIS, MISR, CERES)",
        "source": "Terra BasicFusion L1B (TERRA_BF_L1B)",
        "parameters": str(arrays["parameters"]),
        "time_coverage_start": jd_to_iso(t0),
        "time_coverage_end": jd_to_iso(t1),
        "t0_julian_date": t0,
        "t1_julian_date": t1,
    }
    if "sources" in arrays:
        attrs["period"] = str(arrays["period"])
        attrs["n_orbits"] = int(arrays["n_orbits"])
        attrs["orbit_sources"] = json.dumps([str(s) for s in np.atleast_1d(arrays["sources"])])
    else:
        attrs["orbit_source"] = str(arrays["source"])
        attrs["skipped"] = str(arrays["skipped"])
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)


def write_netcdf(arrays: Mapping[str, npt.NDArray[Any]], path: str | Path) -> Path:
    ds = to_dataset(arrays)
    encoding = {name: {"zlib": True, "complevel": 4} for name in ds.data_vars}
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    tmp.replace(path)
    return path
