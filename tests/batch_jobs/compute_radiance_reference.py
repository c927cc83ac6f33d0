"""A slow, plain transcription of docs/compute-radiance.md: one Python loop step per sample.

It reads the file with h5py directly (not through the job's readers) and shares no
code with `batch_jobs.compute_radiance`. Small inputs only. skimage.transform.resize
is the spec's own definition of the MISR geometry resize.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from skimage.transform import resize


def _jd(t: datetime) -> float:
    # JD 2451545.0 = 2000-01-01 12:00 UTC (spec §2.3), with the `julian` package's arithmetic.
    a = (14 - t.month) // 12
    y = t.year + 4800 - a
    m = t.month + 12 * a - 3
    jdn = t.day + (153 * m + 2) // 5 + 365 * y + y // 4 - y // 100 + y // 400 - 32045
    return jdn + (t.hour - 12) / 24 + t.minute / 1440 + t.second / 86400 + t.microsecond / 86400000000


def _granule_start(name: str) -> datetime:
    _, ydoy, hhmm = name.split("_")
    return datetime(int(ydoy[:4]), 1, 1, int(hhmm[:2]), int(hhmm[2:])) + timedelta(days=int(ydoy[4:]) - 1)


def modis_ceres_cell(lat: float, lon: float, res: float) -> tuple[int, int] | None:
    """Spec §1, MODIS/CERES rule, on Python scalars."""
    n = 1 / res
    lat_i = int(lat)
    lat_f = lat - lat_i
    row = (90 - lat_i) * n - int(lat_f * n)
    if lat >= 0:
        row -= 1
    lon_i = int(lon)
    lon_f = lon - lon_i
    col = (180 + lon_i) * n + int(lon_f * n)
    if lon < 0:
        col -= 1
    if col == 360 * n:
        col = 0
    row_i, col_i = int(row), int(col)
    if not (0 <= row_i < int(180 / res) and 0 <= col_i < int(360 / res)):
        return None
    return row_i, col_i


def misr_cell(lat: float, lon: float, res: float) -> tuple[int, int] | None:
    """Spec §1, MISR rule: row = floor((90 - lat) / res), col = floor((lon + 180) / res); 90S / 180E in the last bin."""
    nlat, nlon = int(180 / res), int(360 / res)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    row = min(math.floor((90 - lat) / res), nlat - 1)
    col = min(math.floor((lon + 180) / res), nlon - 1)
    return row, col


def reference(path: Path, res: float = 0.5, vza_max: float = 18.0, ceres_mode: str = "ct") -> dict[str, Any]:
    nlat, nlon = int(180 / res), int(360 / res)
    out: dict[str, Any] = {
        "modis_rad_sum": np.zeros((nlat, nlon, 7)),
        "modis_sol_sum": np.zeros((nlat, nlon, 7)),
        "modis_count": np.zeros((nlat, nlon, 7), dtype=np.int64),
        "misr_rad_sum": np.zeros((nlat, nlon, 4)),
        "misr_count": np.zeros((nlat, nlon, 4), dtype=np.int64),
        "ceres_sw_sum": np.zeros((nlat, nlon)),
        "ceres_lw_sum": np.zeros((nlat, nlon)),
        "ceres_count": np.zeros((nlat, nlon), dtype=np.int64),
    }
    with h5py.File(path, "r") as f:
        # §2 descending granules and the window
        granules = sorted(f["MODIS"].keys(), key=_granule_start)
        descending = []
        for g in granules:
            lat = f[f"MODIS/{g}/_1KM/Geolocation/Latitude"][()]
            failing = 0
            for i in range(1, lat.shape[0]):
                if not all(lat[i][j] < lat[i - 1][j] for j in range(lat.shape[1])):
                    failing += 1
            # spec: fewer than 1000; a granule of at most 1000 rows (shrunk synthetic) allows half its rows
            if failing < (1000 if lat.shape[0] > 1000 else lat.shape[0] // 2):
                descending.append(g)
        if not descending:
            return out
        t0 = _jd(_granule_start(descending[0]))
        t1 = _jd(_granule_start(descending[-1]) + timedelta(minutes=5))
        out["t0"], out["t1"] = t0, t1
        # §3 MODIS
        for g in descending:
            base = f"MODIS/{g}"
            if "_1KM/Data_Fields/EV_250_Aggr1km_RefSB" not in f[base]:
                continue
            lat = f[f"{base}/_1KM/Geolocation/Latitude"][()]
            lon = f[f"{base}/_1KM/Geolocation/Longitude"][()]
            sza = f[f"{base}/SolarZenith"][()]
            vza = f[f"{base}/SensorZenith"][()]
            chans, rscale, fscale = [], [], []
            for fld in ("EV_250_Aggr1km_RefSB", "EV_500_Aggr1km_RefSB"):
                ds = f[f"{base}/_1KM/Data_Fields/{fld}"]
                for b in range(ds.shape[0]):
                    chans.append(ds[b])
                    rscale.append(float(ds.attrs["radiance_scales"][b]))
                    fscale.append(float(ds.attrs["reflectance_scales"][b]))
            rad_max = [float(np.float32(32767) * np.float32(s)) for s in rscale]
            for y in range(lat.shape[0]):
                for x in range(lat.shape[1]):
                    la, lo, sz, vz = float(lat[y, x]), float(lon[y, x]), float(sza[y, x]), float(vza[y, x])
                    if not (0 <= sz <= 89 and 0 <= vz < vza_max and la > -999 and lo > -999):
                        continue
                    cell = modis_ceres_cell(la, lo, res)
                    if cell is None:
                        continue
                    for c in range(7):
                        v = float(chans[c][y, x])
                        if c > 0 and float(chans[0][y, x]) > 0 and v == -992.0:
                            v = rad_max[c]
                        if 0 < v <= rad_max[c]:
                            out["modis_rad_sum"][cell[0], cell[1], c] += v
                            out["modis_sol_sum"][cell[0], cell[1], c] += (
                                math.cos(math.radians(sz)) * rscale[c] / fscale[c]
                            )
                            out["modis_count"][cell[0], cell[1], c] += 1
        # §4 MISR
        bct = f["MISR/AN/BlockCenterTime"][()]
        blocks = []
        for b, raw in enumerate(bct):
            text = raw.decode()
            if text.startswith("0000"):
                continue
            t = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
            if t0 <= _jd(t) <= t1:
                blocks.append(b)
        glat = f["MISR/Geolocation/GeoLatitude"]
        glon = f["MISR/Geolocation/GeoLongitude"]
        for b in blocks:
            la_b, lo_b = glat[b], glon[b]
            shape = la_b.shape
            raw_sza = f["MISR/Solar_Geometry/SolarZenith"][b].astype(float)
            raw_vza = f["MISR/AN/Sensor_Geometry/AnZenith"][b].astype(float)
            raw_sza[raw_sza < 0] = np.nan
            raw_vza[raw_vza < 0] = np.nan
            rs, rv = resize(raw_sza, shape), resize(raw_vza, shape)
            for c, band in enumerate(("Blue", "Green", "Red", "NIR")):
                blk = f[f"MISR/AN/Data_Fields/{band}_Radiance"][b].astype(np.float32)
                if blk.shape != shape:
                    blk[blk < 0] = np.nan
                    agg = np.full(shape, np.nan, dtype=np.float32)
                    for i in range(shape[0]):
                        for j in range(shape[1]):
                            tile = blk[4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
                            if not np.all(np.isnan(tile)):
                                agg[i, j] = np.nanmean(tile)
                    blk = agg
                for i in range(shape[0]):
                    for j in range(shape[1]):
                        if not (rs[i, j] < 89 and rv[i, j] < vza_max):
                            continue
                        v = 0.0 if np.isnan(blk[i, j]) else float(blk[i, j])
                        if not 0 < v < 1000:
                            continue
                        cell = misr_cell(float(la_b[i, j]), float(lo_b[i, j]), res)
                        if cell is None:
                            continue
                        out["misr_rad_sum"][cell[0], cell[1], c] += v
                        out["misr_count"][cell[0], cell[1], c] += 1
        # §5 CERES
        for g in f["CERES"]:
            if "FM1" not in f[f"CERES/{g}"]:
                continue
            base = f"CERES/{g}/FM1"
            cols = {
                k: f[f"{base}/{p}"][()]
                for k, p in {
                    "t": "Time_and_Position/Time_of_observation", "lat": "Time_and_Position/Latitude",
                    "lon": "Time_and_Position/Longitude", "sw": "Radiances/SW_Radiance", "lw": "Radiances/LW_Radiance",
                    "flag": "Radiances/Radiance_Mode_Flags", "sza": "Viewing_Angles/Solar_Zenith",
                    "vza": "Viewing_Angles/Viewing_Zenith",
                }.items()
            }  # fmt: skip
            for i in range(len(cols["t"])):
                sw, lw = float(cols["sw"][i]), float(cols["lw"][i])
                if not (
                    t0 <= cols["t"][i] <= t1 and 0 < sw < 1000 and cols["vza"][i] < vza_max and cols["sza"][i] <= 89
                ):
                    continue
                if ceres_mode == "ct" and cols["flag"][i] != 0:
                    continue
                if ceres_mode == "all" and not 0 < lw < 1000:
                    continue
                cell = modis_ceres_cell(float(cols["lat"][i]), float(cols["lon"][i]), res)
                if cell is None:
                    continue
                out["ceres_sw_sum"][cell] += sw
                out["ceres_lw_sum"][cell] += lw
                out["ceres_count"][cell] += 1
    return out
