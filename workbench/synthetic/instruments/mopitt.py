"""The MOPITT group of a synthetic orbit file: one granule per UTC day the orbit touches.

The orbit's tracks are spread evenly over its duration; each track has 29
cross-track pixels of 4 stares with 8 channels of 2 radiances, plus latitude,
longitude and TAI93 time (docs/basicfusion-layout.md section 5).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from workbench.synthetic.instruments.common import OrbitFile
from workbench.synthetic.writer import set_attrs

MOPITT_FILL = np.float32(-9999.0)


def write(orbit_file: OrbitFile) -> None:
    """Write the MOPITT group: `preset.mopitt_tracks` tracks, grouped by UTC day."""
    f = orbit_file
    g, p, w = f.geom, f.preset, f.writer
    mopitt = f.h5.create_group("MOPITT")
    rng = f.rng(6)
    t = np.linspace(0.0, g.duration_s, p.mopitt_tracks, endpoint=False)
    days = sorted({(g.start + timedelta(seconds=float(x))).date() for x in t})
    for day in days:
        t_day = np.array([x for x in t if (g.start + timedelta(seconds=float(x))).date() == day])
        n = len(t_day)
        grp = mopitt.create_group(f"granule_{day:%Y%m%d}")
        file_name = f"MOP01-{day:%Y%m%d}-L1V3.50.0.he5"
        set_attrs(grp, {"GranuleName": file_name, "GranuleTime": f"{day:%Y%m%d}", "TrackCount": np.int32(n)})
        f.inputs.append(file_name)
        # 29 pixels across track, 4 pixels per stare.
        cross = np.linspace(-5.5, 5.5, 29)[None, :, None] + np.array([-0.1, -0.03, 0.03, 0.1])[None, None, :]
        lat, lon = g.latlon(t_day[:, None, None] + np.zeros((1, 29, 4)), cross + np.zeros((n, 1, 1)))
        data = grp.create_group("Data_Fields")
        radiance = rng.gamma(4.0, 1.2, (n, 29, 4, 8, 2)).astype(np.float32)
        radiance[rng.random(radiance.shape) < 1e-3] = MOPITT_FILL
        w.plain(data, "MOPITTRadiances", radiance,
                {"units": "Watts/m^2Sr", "_FillValue": MOPITT_FILL, "valid_max": np.float32(20.0)})  # fmt: skip
        geo = grp.create_group("Geolocation")
        w.plain(geo, "Latitude", lat.astype(np.float32), {"units": "degrees_north"})
        w.plain(geo, "Longitude", lon.astype(np.float32), {"units": "degrees_east"})
        tai93 = g.t0_unix + t_day - datetime(1993, 1, 1, tzinfo=UTC).timestamp()
        w.plain(geo, "Time", tai93, {"comment": "seconds since 1993-01-01 (TAI93), converted to UTC"})
