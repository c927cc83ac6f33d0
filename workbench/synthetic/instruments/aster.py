"""The ASTER group of a synthetic orbit file: a few L1T scenes in the middle of the daylit pass.

Each granule has VNIR, SWIR and TIR image bands at their relative resolutions
(1 : 1/2 : 1/6) with their own geolocation, plus an 11 x 11 scene geolocation,
the solar geometry and the pointing angles (docs/basicfusion-layout.md section 5).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from workbench.synthetic.geometry import earth_fixed, wrap_lon
from workbench.synthetic.instruments.common import FILL, RADIANCE_UNITS, OrbitFile
from workbench.synthetic.writer import set_attrs


def write(orbit_file: OrbitFile) -> None:
    """Write the ASTER group: `preset.aster_granules` scenes, 10 minutes apart, centred on the daylit window."""
    f = orbit_file
    g, p, w = f.geom, f.preset, f.writer
    aster = f.h5.create_group("ASTER")
    rng = f.rng(5)
    mid = (f.window[0] + f.window[1]) / 2
    for k in range(p.aster_granules):
        t = mid + (k - (p.aster_granules - 1) / 2) * 600.0
        when = g.start + timedelta(seconds=t)
        gname = f"{when:%m%d%Y%H%M%S}"
        grp = aster.create_group(f"granule_{gname}")
        file_name = f"AST_L1T_003{gname}_20160101000000_{10000 + k}.hdf"
        set_attrs(grp, {"GranuleName": file_name, "GranuleTime": gname})
        f.inputs.append(file_name)
        lat0, lon0 = (float(v) for v in g.latlon(np.array(t), np.array(0.0)))
        sza, saz = (float(v) for v in g.solar_angles(np.array(t), np.array(lat0), np.array(lon0)))
        rows, cols = p.aster_vnir
        for sub_name, bands, div in (("VNIR", ("ImageData1", "ImageData2", "ImageData3N"), 1),
                                     ("SWIR", tuple(f"ImageData{i}" for i in range(4, 10)), 2),
                                     ("TIR", tuple(f"ImageData{i}" for i in range(10, 15)), 6)):  # fmt: skip
            sub = grp.create_group(sub_name)
            shape = (rows // div, cols // div)
            la = lat0 + np.linspace(0.3, -0.3, shape[0])[:, None] + np.zeros(shape)
            lo = lon0 + np.linspace(-0.35, 0.35, shape[1])[None, :] + np.zeros(shape)
            q = earth_fixed(la, lo, np.float32)
            base = 20.0 + 120.0 * f.scene.cloud(q) + 30.0 * f.scene.land(q)
            for i, band in enumerate(bands):
                values = np.rint((base * (1.0 - 0.08 * i) + rng.normal(0, 1, shape)) * 10) / 10
                values = values.astype(np.float32)
                values[0, :3] = np.float32(-999.0)
                values[-1, -2:] = np.float32(-998.0)
                w.gzip(sub, band, values, attrs={"units": RADIANCE_UNITS, "_FillValue": FILL,
                                                 "valid_max": np.float32(569.0)})  # fmt: skip
            sgeo = sub.create_group("Geolocation")
            w.gzip(sgeo, "Latitude", la, attrs={"units": "degrees_north"})
            w.gzip(sgeo, "Longitude", wrap_lon(lo), attrs={"units": "degrees_east"})
        geo = grp.create_group("Geolocation")
        w.plain(geo, "Latitude", lat0 + np.linspace(0.3, -0.3, 11)[:, None] + np.zeros((11, 11)))
        w.plain(geo, "Longitude", wrap_lon(lon0 + np.linspace(-0.35, 0.35, 11)[None, :] + np.zeros((11, 11))))
        solar = grp.create_group("Solar_Geometry")
        w.plain(solar, "SolarAzimuth", np.array([saz]))
        w.plain(solar, "SolarElevation", np.array([90.0 - sza]))
        pointing = grp.create_group("PointingAngle")
        for sub_name in ("VNIR", "SWIR", "TIR"):
            w.plain(pointing, sub_name, np.array([round(float(rng.uniform(-8.5, 8.5)), 3)]))
