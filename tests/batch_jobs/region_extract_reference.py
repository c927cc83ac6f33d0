"""A slow, plain transcription of RegionExtract's rules: one Python loop step per sample.

It reads the file with h5py directly (not through the job's readers) and shares no code with
`batch_jobs.region_extract`. The rules it transcribes (stated in `batch_jobs/region_extract/instruments.py`):
a sample is inside when -90 <= lat <= 90, -180 <= lon <= 180, lat_min <= lat <= lat_max and
lon_min <= lon <= lon_max (or lon >= lon_min or lon <= lon_max when lon_min > lon_max), compared as
Python floats; it is kept when its time is valid and at least one selected band is valid; invalid
values of a kept sample are NaN. Small inputs only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

EPOCH = datetime(1970, 1, 1)
NAN = float("nan")
MODIS_FIELDS = {
    "EV_250_Aggr1km_RefSB": ["1", "2"],
    "EV_500_Aggr1km_RefSB": ["3", "4", "5", "6", "7"],
    "EV_1KM_RefSB": ["8", "9", "10", "11", "12", "13lo", "13hi", "14lo", "14hi", "15", "16", "17", "18", "19", "26"],
}
CERES_FILL = 3.4028234663852886e38  # the largest float32
FLOAT64 = {"time"}
INT16 = {"block", "line", "sample"}
INT32 = {"radiance_mode_flags"}


def _angle(value: float) -> float:
    return value if 0.0 <= value <= 180.0 else NAN


def _arrays(rows: list[dict[str, Any]], names: Sequence[str]) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        dtype = (
            np.float64 if name in FLOAT64 else np.int16 if name in INT16 else np.int32 if name in INT32 else np.float32
        )
        out[name] = np.array([row[name] for row in rows], dtype=dtype)
    return out


def reference(
    path: Path,
    *,
    box: tuple[float, float, float, float],
    instruments: Sequence[str] = ("MODIS", "MISR", "CERES"),
    modis_bands: Sequence[str] = ("1", "2", "3", "4", "5", "6", "7"),
    misr_camera: str = "AN",
    misr_bands: Sequence[str] = ("Blue", "Green", "Red", "NIR"),
    ceres_instrument: str = "FM1",
) -> dict[str, dict[str, np.ndarray]]:
    lat_min, lat_max, lon_min, lon_max = box

    def inside(lat: float, lon: float) -> bool:
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and lat_min <= lat <= lat_max):
            return False
        if lon_min < lon_max:
            return lon_min <= lon <= lon_max
        return lon >= lon_min or lon <= lon_max

    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        for instrument in instruments:
            if instrument == "MODIS":
                names = ["time", "lat", "lon", "solar_zenith", "sensor_zenith"]
                names += [f"band_{b}_radiance" for b in modis_bands]
                rows = _modis(f, inside, modis_bands) if "MODIS" in f else []
            elif instrument == "MISR":
                names = ["time", "lat", "lon", "block", "line", "sample"]
                names += [f"{b.lower()}_radiance" for b in misr_bands]
                rows = _misr(f, inside, misr_camera, misr_bands) if "MISR" in f else []
            else:
                names = ["time", "lat", "lon", "solar_zenith", "viewing_zenith", "sw_radiance", "lw_radiance",
                         "radiance_mode_flags"]  # fmt: skip
                rows = _ceres(f, inside, ceres_instrument) if "CERES" in f else []
            out[instrument] = _arrays(rows, names)
    return out


def _modis(f: h5py.File, inside: Any, bands: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for g in sorted(f["MODIS"].keys()):
        try:
            start = (datetime.strptime(g, "granule_%Y%j_%H%M") - EPOCH).total_seconds()
        except ValueError:
            continue
        grp = f["MODIS"][g]
        if "_1KM/Geolocation/Latitude" not in grp or "_1KM/Geolocation/Longitude" not in grp:
            continue
        lat = grp["_1KM/Geolocation/Latitude"][()].tolist()
        lon = grp["_1KM/Geolocation/Longitude"][()].tolist()
        candidates = [(r, c) for r in range(len(lat)) for c in range(len(lat[0])) if inside(lat[r][c], lon[r][c])]
        if not candidates:
            continue
        fields = [name for name, members in MODIS_FIELDS.items() if any(b in members for b in bands)]
        needed = ["SolarZenith", "SensorZenith", *[f"_1KM/Data_Fields/{name}" for name in fields]]
        if any(n not in grp for n in needed):
            continue
        sza, vza = grp["SolarZenith"][()].tolist(), grp["SensorZenith"][()].tolist()
        data, ceiling = {}, {}
        for band in bands:
            field = next(name for name, members in MODIS_FIELDS.items() if band in members)
            k = MODIS_FIELDS[field].index(band)
            ds = grp[f"_1KM/Data_Fields/{field}"]
            data[band] = ds[k].tolist()
            ceiling[band] = float(np.float32(32767) * np.float32(ds.attrs["radiance_scales"][k]))
        scans = math.ceil(len(lat) / 10)
        for r, c in candidates:
            sample: dict[str, Any] = {}
            for band in bands:
                v = data[band][r][c]
                sample[f"band_{band}_radiance"] = v if 0.0 <= v <= ceiling[band] else NAN
            if all(math.isnan(sample[f"band_{band}_radiance"]) for band in bands):
                continue
            sample["time"] = start + (r // 10 + 0.5) * 300.0 / scans
            sample["lat"], sample["lon"] = lat[r][c], lon[r][c]
            sample["solar_zenith"], sample["sensor_zenith"] = _angle(sza[r][c]), _angle(vza[r][c])
            rows.append(sample)
    return rows


def _misr(f: h5py.File, inside: Any, camera: str, bands: Sequence[str]) -> list[dict[str, Any]]:
    times: list[float | None] = []
    for raw in f[f"MISR/{camera}/BlockCenterTime"][()]:
        try:
            times.append(
                (datetime.strptime(raw.decode().rstrip("\x00"), "%Y-%m-%dT%H:%M:%S.%fZ") - EPOCH).total_seconds()
            )
        except ValueError:  # the fill 0000-00-00T00:00:00.000000Z
            times.append(None)
    # whole arrays read once: each is a single gzip chunk that HDF5 would inflate again for every block
    glat, glon = f["MISR/Geolocation/GeoLatitude"][()], f["MISR/Geolocation/GeoLongitude"][()]
    radiance = {band: f[f"MISR/{camera}/Data_Fields/{band}_Radiance"][()] for band in bands}
    rows = []
    for b, t in enumerate(times):
        if t is None:
            continue
        lat, lon = glat[b].tolist(), glon[b].tolist()
        pixels = [(i, j) for i in range(len(lat)) for j in range(len(lat[0])) if inside(lat[i][j], lon[i][j])]
        if not pixels:
            continue
        blocks = {band: radiance[band][b].tolist() for band in bands}
        for i, j in pixels:
            sample: dict[str, Any] = {"time": t, "lat": lat[i][j], "lon": lon[i][j], "block": b + 1, "line": i,
                                      "sample": j}  # fmt: skip
            for band in bands:
                values = blocks[band]
                if len(values) == len(lat):  # a 1.1 km band
                    v = values[i][j]
                    sample[f"{band.lower()}_radiance"] = v if 0.0 <= v <= 800.0 else NAN
                    continue
                total, count = 0.0, 0
                for di in range(4):  # a 275 m band: mean of the valid sub-pixels, line by line
                    for dj in range(4):
                        v = values[4 * i + di][4 * j + dj]
                        if 0.0 <= v <= 800.0:
                            total += v
                            count += 1
                sample[f"{band.lower()}_radiance"] = float(np.float32(total / count)) if count else NAN
            if all(math.isnan(sample[f"{band.lower()}_radiance"]) for band in bands):
                continue
            rows.append(sample)
    return rows


def _ceres(f: h5py.File, inside: Any, instrument: str) -> list[dict[str, Any]]:
    def valid(v: float) -> bool:
        return math.isfinite(v) and abs(v) < CERES_FILL

    rows = []
    for g in sorted(f["CERES"].keys()):
        if instrument not in f["CERES"][g]:
            continue
        base = f["CERES"][g][instrument]
        t = base["Time_and_Position/Time_of_observation"][()].tolist()
        lat = base["Time_and_Position/Latitude"][()].tolist()
        lon = base["Time_and_Position/Longitude"][()].tolist()
        sw, lw = base["Radiances/SW_Radiance"][()].tolist(), base["Radiances/LW_Radiance"][()].tolist()
        flags = base["Radiances/Radiance_Mode_Flags"][()].tolist()
        sza, vza = base["Viewing_Angles/Solar_Zenith"][()].tolist(), base["Viewing_Angles/Viewing_Zenith"][()].tolist()
        for i in range(len(t)):
            if not (inside(lat[i], lon[i]) and valid(t[i]) and (valid(sw[i]) or valid(lw[i]))):
                continue
            rows.append({
                "time": (t[i] - 2440587.5) * 86400.0, "lat": lat[i], "lon": lon[i],
                "solar_zenith": _angle(sza[i]), "viewing_zenith": _angle(vza[i]),
                "sw_radiance": sw[i] if valid(sw[i]) else NAN, "lw_radiance": lw[i] if valid(lw[i]) else NAN,
                "radiance_mode_flags": flags[i],
            })  # fmt: skip
    return rows
