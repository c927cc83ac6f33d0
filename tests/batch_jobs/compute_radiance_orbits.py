"""Small BasicFusion-layout orbit files built in the tests (fixed seed), with exact edge values planted.

The SYNTH helper's generator (`workbench.synthetic.generator`) makes realistic
orbits; these files are smaller and plant what the index rules must get right
(latitudes exactly on cell edges, at +-90 and 0; longitudes at +-180), fill values,
saturation (-992) and out-of-range angles. Layout and storage follow
docs/basicfusion-layout.md: MISR radiances and geolocation are whole-array gzip-1 chunks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import h5py
import numpy as np

from datacarousel.naming import BasicFusionName


def granule_name(t: datetime) -> str:
    return f"granule_{t:%Y}{t.timetuple().tm_yday:03d}_{t:%H%M}"


def build_orbit(
    out_dir: Path,
    *,
    orbit: int = 85079,
    seed: int = 0,
    rows: int = 30,
    cols: int = 40,
    lines: int = 4,
    samples: int = 16,
    geometry: tuple[int, int] = (2, 8),
    footprints: int = 300,
    n_granules: int = 20,
    descending: range = range(5, 15),
    first_block_in_window: bool = False,
    no_descending: bool = False,
    ceres_without_fm1: bool = False,
    refsb_missing_in: tuple[int, ...] = (),
) -> Path:
    rng = np.random.default_rng(seed)
    name = BasicFusionName.for_orbit(orbit)
    start = name.start.replace(tzinfo=None, second=0)  # granule names carry minutes only
    path = out_dir / name.file_name
    with h5py.File(path, "w", libver="earliest") as f:
        modis = f.create_group("MODIS")
        for k in range(n_granules):
            t = start + timedelta(minutes=5 * (k + 1))
            g = modis.create_group(granule_name(t))
            desc = (k in descending) and not no_descending
            if desc:
                top = 80 - 16 * (k - descending.start)
                lat = top - (16 / rows) * np.arange(rows)[:, None] + np.linspace(-0.3, 0.3, cols)[None, :]
                lon = np.linspace(-100, -80, cols)[None, :] + rng.uniform(-2, 2, (rows, 1))
            else:
                # ascending: latitude grows down the rows, so every row fails the test (>= 1000 rows needed)
                n = 1002
                lat = -70 + 7 * k * 0.1 + 0.01 * np.arange(n)[:, None] + np.zeros((1, 2))
                lon = np.full((n, 2), 20.0)
            lat, lon = lat.astype(np.float32), lon.astype(np.float32)
            if desc:
                # plant exact cell edges, poles, +-180 and fills
                lat[rows // 2, 0] = np.float32(np.trunc(lat[rows // 2, 1]))
                lat[rows // 2 + 1, 1] = np.float32(np.trunc(lat[rows // 2 + 1, 2]) - 0.5)
                lon[rows // 2, 0:4] = np.array([-180.0, 180.0, -179.5, 0.0], np.float32)
                lon[rows // 3, 2] = -999.0
                lat[rows // 3, 3] = -999.0
                if k == descending.start:
                    lat[0, 3] = 90.0
                if k == descending.stop - 1:
                    lat[-1, 3] = -90.0
            geo = g.create_group("_1KM/Geolocation")
            geo.create_dataset("Latitude", data=lat, chunks=lat.shape, compression="gzip", compression_opts=1)
            geo.create_dataset("Longitude", data=lon, chunks=lon.shape, compression="gzip", compression_opts=1)
            shape = lat.shape
            sza = rng.uniform(-5, 100, shape).astype(np.float32)
            vza = rng.uniform(-2, 40, shape).astype(np.float32)
            if desc:
                sza[0, :2] = [89.0, 0.0]
                vza[1, :2] = [18.0, 0.0]
                vza[rows // 2, :4] = 5.0
                sza[rows // 2, :4] = 30.0
                vza[-1, 3] = sza[-1, 3] = 1.0
            g.create_dataset("SolarZenith", data=sza)
            g.create_dataset("SensorZenith", data=vza)
            if desc and k not in refsb_missing_in:
                df = g.create_group("_1KM/Data_Fields")
                for fname, nb in (("EV_250_Aggr1km_RefSB", 2), ("EV_500_Aggr1km_RefSB", 5)):
                    ref = rng.uniform(3e-5, 6e-5, nb).astype(np.float32)
                    rad_s = (ref * rng.uniform(30, 500, nb)).astype(np.float32)
                    data = rng.uniform(-0.05, 1.02, (nb, rows, cols)) * (32767 * rad_s)[:, None, None]
                    special = rng.random((nb, rows, cols))
                    data[special < 0.05] = -992.0
                    data[(special >= 0.05) & (special < 0.08)] = -999.0
                    data[(special >= 0.08) & (special < 0.1)] = 0.0
                    data = data.astype(np.float32)
                    data[0, 2, 2] = np.float32(32767) * rad_s[0]  # exactly at the ceiling
                    ds = df.create_dataset(
                        fname, data=data, chunks=(1, rows, cols), compression="gzip", compression_opts=1
                    )
                    ds.attrs["radiance_scales"] = rad_s
                    ds.attrs["reflectance_scales"] = ref
        # --- MISR
        misr = f.create_group("MISR")
        t0 = start + timedelta(minutes=5 * (descending.start + 1))
        bct = []
        for b in range(180):
            tb = t0 + timedelta(seconds=25 * (b - 40))  # block 160 falls exactly on t1 (t0 + 50 min)
            bct.append(
                b"0000-00-00T00:00:00.000000Z" if b < 3 or b > 175 else f"{tb:%Y-%m-%dT%H:%M:%S}.000000Z".encode()
            )
        if first_block_in_window:
            bct[0] = f"{t0 + timedelta(seconds=1):%Y-%m-%dT%H:%M:%S}.000000Z".encode()
        an = misr.create_group("AN")
        an.create_dataset("BlockCenterTime", data=np.array(bct, dtype="S28"))
        blat = np.linspace(75, -75, 180)[:, None, None] + np.linspace(0.6, -0.6, lines)[None, :, None]
        blat = blat + np.zeros((1, 1, samples))
        blon = np.linspace(-120, 60, 180)[:, None, None] + np.linspace(-3, 3, samples)[None, None, :] + 0 * blat
        blat, blon = blat.astype(np.float32), blon.astype(np.float32)
        blat[60, 0, 0] = -90.0
        blat[61, 0, 0] = 90.0
        blat[62, 0, 0] = 0.0
        blon[63, 0, :3] = [180.0, -180.0, 179.5]
        blat[64, 1, 1] = 10.5
        geo = misr.create_group("Geolocation")
        for nm, arr in (("GeoLatitude", blat), ("GeoLongitude", blon)):
            geo.create_dataset(nm, data=arr, chunks=arr.shape, compression="gzip", compression_opts=1)
        gs = (180, *geometry)
        solar = rng.uniform(20, 95, gs)
        solar[rng.random(gs) < 0.05] = -555.0
        misr.create_dataset("Solar_Geometry/SolarZenith", data=solar)
        view = rng.uniform(0, 25, gs)
        view[rng.random(gs) < 0.05] = -555.0
        an.create_dataset("Sensor_Geometry/AnZenith", data=view)
        for band in ("Blue", "Green", "Red", "NIR"):
            rad = rng.uniform(-100, 1100, (180, 4 * lines, 4 * samples)).astype(np.float32)
            rad[rng.random(rad.shape) < 0.05] = -999.0
            rad[:, :4, :4] = -999.0  # an all-fill tile
            an.create_dataset(f"Data_Fields/{band}_Radiance", data=rad, chunks=rad.shape, compression="gzip",
                              compression_opts=1)  # fmt: skip
        # --- CERES
        ceres = f.create_group("CERES")
        for h in range(2):
            th = start.replace(minute=0, second=0) + timedelta(hours=h)
            g = ceres.create_group(f"granule_{th:%Y%m%d%H}")
            for inst in ("FM1", "FM2"):
                if inst == "FM1" and ceres_without_fm1 and h == 1:
                    continue
                n = footprints
                t_start = (start - datetime(2000, 1, 1, 12)).total_seconds() / 86400 + 2451545.0
                times = t_start + (h * 50 + np.sort(rng.uniform(0, 50, n))) / 1440
                lat = rng.uniform(-90, 90, n).astype(np.float32)
                lat[:6] = [-90.0, 90.0, 0.0, -0.5, 45.5, -45.5]
                lon = rng.uniform(-180, 180, n).astype(np.float32)
                lon[:6] = [-180.0, 180.0, 0.0, -0.5, 179.5, -179.5]
                sub = g.create_group(inst)
                tp = sub.create_group("Time_and_Position")
                tp.create_dataset("Time_of_observation", data=times)
                tp.create_dataset("Latitude", data=lat)
                tp.create_dataset("Longitude", data=lon)
                rd = sub.create_group("Radiances")
                rd.create_dataset("SW_Radiance", data=rng.uniform(-10, 1100, n).astype(np.float32))
                rd.create_dataset("LW_Radiance", data=rng.uniform(-10, 1100, n).astype(np.float32))
                rd.create_dataset("Radiance_Mode_Flags", data=rng.integers(0, 2, n).astype(np.int32))
                va = sub.create_group("Viewing_Angles")
                va.create_dataset("Solar_Zenith", data=rng.uniform(0, 120, n).astype(np.float32))
                va.create_dataset("Viewing_Zenith", data=rng.uniform(0, 40, n).astype(np.float32))
    return path
