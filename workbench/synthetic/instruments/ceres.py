"""The CERES group of a synthetic orbit file: hourly SSF granules with FM1 and FM2 footprints.

Each instrument (FM1 cross-track, FM2 rotating azimuth plane) gets footprints at
random times over the whole orbit, split into the hours they fall in; each
footprint carries time, position, viewing angles and broadband radiances
(docs/basicfusion-layout.md section 4). Values are stored contiguous, fill 3.4e38.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import h5py
import numpy as np

from workbench.synthetic.geometry import earth_fixed, scan_to_view, to_jd
from workbench.synthetic.instruments.common import F64, OrbitFile
from workbench.synthetic.writer import set_attrs

CERES_FILL = np.float32(3.4028235e38)


def write(orbit_file: OrbitFile) -> None:
    """Write the CERES group, with the defects that concern CERES."""
    CeresWriter(orbit_file).write()


class CeresWriter:
    """Writes the CERES group of one orbit file: FM1 and FM2 footprints by hour."""

    def __init__(self, orbit_file: OrbitFile) -> None:
        self.file = orbit_file

    def write(self) -> None:
        f = self.file
        g, p = f.geom, f.preset
        ceres = f.h5.create_group("CERES")
        set_attrs(ceres, {"comment_for_GranuleTime": "GranuleTime is the YYYYMMDDhh hour of the CERES SSF granule."})
        hours = []
        h = g.start.replace(minute=0, second=0)
        while h <= g.end:
            hours.append(h)
            h += timedelta(hours=1)
        drop_fm1 = hours[min(1, len(hours) - 1)] if "ceres_without_fm1" in f.defects else None
        for fm_index, fm in enumerate(("FM1", "FM2")):
            rng = f.rng(4, fm_index)
            n = p.ceres_footprints
            t = np.sort(rng.uniform(0.0, g.duration_s, n))
            footprints = self.footprints(t, fm, rng)
            if fm == "FM1" and "latitude_minus_90" in f.defects:
                k = int(np.searchsorted(t, (f.window[0] + f.window[1]) / 2))
                footprints["Latitude"][k] = -90.0
                footprints["Longitude"][k] = np.float32(0.0)
                footprints["Solar_Zenith"][k] = 60.0
                footprints["Viewing_Zenith"][k] = 5.0
                footprints["SW_Radiance"][k] = 200.0
                footprints["Radiance_Mode_Flags"][k] = 0
            for hour in hours:
                lo = (hour - g.start).total_seconds()
                sel = (t >= lo) & (t < lo + 3600.0)
                grp = ceres.require_group(f"granule_{hour:%Y%m%d%H}")
                if fm_index == 0:
                    set_attrs(grp, {"GranuleTime": f"{hour:%Y%m%d%H}"})
                if fm == "FM1" and hour == drop_fm1:
                    continue
                self.write_instrument(grp, fm, hour, {k: v[sel] for k, v in footprints.items()})

    def footprints(self, t: F64, fm: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
        f = self.file
        g = f.geom
        n = len(t)
        # Cross-track scan: a triangle wave of scan angle (6.6 s period), +-57 deg -> view zenith up to ~67.
        phase = (t / 6.6) % 1.0
        scan = (4.0 * np.abs(phase - 0.5) - 1.0) * 57.0 + rng.normal(0, 0.3, n)
        vza, central = scan_to_view(scan)
        lat, lon = g.latlon(t, central)
        sza, saz = g.solar_angles(t, lat, lon)
        vaz = g.track_azimuth(t, central)
        q = earth_fixed(lat, lon, np.float32)
        land, cloud = f.scene.land(q), f.scene.cloud(q)
        rho = 0.08 + 0.1 * land + 0.55 * cloud
        cos = np.clip(np.cos(np.radians(sza)), 0.0, None)
        sw = rho * cos * 1361.0 / np.pi / f.d2 * (1.0 + rng.normal(0, 0.02, n))
        sw = np.where(sza < 90.0, sw, rng.normal(0.0, 0.05, n))
        temp = f.scene.temperature(q, land, cloud).astype(np.float64)
        lw = 5.67e-8 * temp**4 / np.pi * 0.83 * (1.0 + rng.normal(0, 0.01, n))
        wn = lw * 0.095 * (1.0 + rng.normal(0, 0.01, n))
        flags = np.zeros(n, dtype=np.int32)
        if fm == "FM2":
            flags[:] = 2  # FM2 in rotating azimuth plane scan mode: not cross-track
        flags[rng.random(n) < 0.03] |= 1  # short scans and the like
        out: dict[str, np.ndarray] = {
            "Time_of_observation": to_jd(g.t0_unix + t),
            "Latitude": lat.astype(np.float32),
            "Longitude": lon.astype(np.float32),
            "Viewing_Zenith": np.abs(vza).astype(np.float32),
            "Solar_Zenith": sza.astype(np.float32),
            "Relative_Azimuth": ((vaz - saz) % 360.0).astype(np.float32),
            "Viewing_Azimuth": vaz.astype(np.float32),
            "SW_Radiance": sw.astype(np.float32),
            "LW_Radiance": lw.astype(np.float32),
            "WN_Radiance": wn.astype(np.float32),
            "TOT_Filtered_Radiance": (sw + lw).astype(np.float32),
            "SW_Filtered_Radiance": (sw * 0.98).astype(np.float32),
            "WN_Filtered_Radiance": (wn * 0.97).astype(np.float32),
            "Radiance_Mode_Flags": flags,
        }
        # A few footprints without data: fill in every float field, colatitude fill -> -3.4e38 latitude.
        missing = rng.random(n) < 2e-3
        for key, values in out.items():
            if values.dtype == np.float32:
                values[missing] = -CERES_FILL if key == "Latitude" else CERES_FILL
        return out

    def write_instrument(self, grp: h5py.Group, fm: str, hour: datetime, fp: dict[str, np.ndarray]) -> None:
        """One instrument's (FM1 or FM2) footprints of one hourly granule."""
        w = self.file.writer
        sub = grp.create_group(fm)
        file_name = f"CER_SSF_Terra-{fm}-MODIS_Edition4A_400403.{hour:%Y%m%d%H}"
        set_attrs(sub, {"FileName": file_name})
        if fm == "FM1":
            self.file.inputs.append(file_name.replace("FM1", "FM1+FM2"))
        fill = {"_FillValue": CERES_FILL, "format": "32-bit float"}
        rad = {"units": "Watts per square meter per steradian", **fill}
        deg = {"units": "degrees", **fill}
        layout: dict[str, dict[str, dict[str, object]]] = {
            "Radiances": {
                "Radiance_Mode_Flags": {"units": "N/A", "format": "32-bit integer"},
                "LW_Radiance": rad,
                "SW_Filtered_Radiance": rad,
                "SW_Radiance": rad,
                "TOT_Filtered_Radiance": rad,
                "WN_Filtered_Radiance": rad,
                "WN_Radiance": rad,
            },
            "Time_and_Position": {
                "Latitude": {"units": "degrees_north", "valid_range": np.array([-90, 90], np.float32), **fill},
                "Longitude": {"units": "degrees_east", "valid_range": np.array([-180, 180], np.float32), **fill},
                "Time_of_observation": {
                    "units": "Julian Date",
                    "format": "64-bit float",
                    "_FillValue": np.float64(CERES_FILL),
                },
            },
            "Viewing_Angles": {
                "Relative_Azimuth": deg,
                "Solar_Zenith": deg,
                "Viewing_Azimuth": deg,
                "Viewing_Zenith": deg,
            },
        }
        for group_name, members in layout.items():
            g2 = sub.create_group(group_name)
            for name, attrs in members.items():
                w.plain(g2, name, fp[name], attrs)
