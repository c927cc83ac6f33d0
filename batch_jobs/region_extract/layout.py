"""What docs/basicfusion-layout.md fixes and the extraction relies on (section numbers of that document).

Nothing here reads a file: band tables, fill values, valid ranges, the time constants, and the
names of the variables each instrument's samples carry.
"""

from __future__ import annotations

import numpy as np

MODIS = "MODIS"
MISR = "MISR"
CERES = "CERES"
INSTRUMENTS = (MODIS, MISR, CERES)

# §2: the 1 km reflective-solar fields the reader's `modis_bands` serves (each carries `radiance_scales`
# and `reflectance_scales`), with their bands in storage order. EV_1KM_Emissive has no
# `reflectance_scales`, so the reader cannot serve it. Night granules hold none of these fields.
MODIS_FIELD_BANDS: dict[str, tuple[str, ...]] = {
    "EV_250_Aggr1km_RefSB": ("1", "2"),
    "EV_500_Aggr1km_RefSB": ("3", "4", "5", "6", "7"),
    "EV_1KM_RefSB": ("8", "9", "10", "11", "12", "13lo", "13hi", "14lo", "14hi", "15", "16", "17", "18", "19", "26"),
}
MODIS_BANDS = tuple(band for bands in MODIS_FIELD_BANDS.values() for band in bands)
MODIS_BAND_FIELD = {band: field for field, bands in MODIS_FIELD_BANDS.items() for band in bands}
MODIS_VIS_BANDS = ("1", "2", "3", "4", "5", "6", "7")
MODIS_DN_MAX = np.float32(32767)  # the L1B valid DN range is 0..32767 (MODFS); above it: reserved values
MODIS_ROWS_PER_SCAN = 10
MODIS_GRANULE_S = 300.0  # granules start on 5-minute boundaries and last 5 minutes

# §3: cameras, bands, radiance valid range and the fill of BlockCenterTime.
MISR_CAMERAS = ("AA", "AF", "AN", "BA", "BF", "CA", "CF", "DA", "DF")
MISR_BANDS = ("Blue", "Green", "Red", "NIR")
MISR_VALID_MIN = 0.0
MISR_VALID_MAX = 800.0  # the radiances' `valid_max` attribute; the fill -999.0 lies below valid_min
MISR_HR_FACTOR = 4  # a 275 m block is 4 x 4 times a 1.1 km block

# §4: CERES instruments and the float fill value (the largest float32).
CERES_INSTRUMENTS = ("FM1", "FM2")
CERES_FILL = float(np.float32(3.4028235e38))

ANGLE_MIN, ANGLE_MAX = 0.0, 180.0  # zenith angles outside this range are fill (-999, -555, 3.4e38)

UNIX_EPOCH_JD = 2440587.5  # Julian Date of 1970-01-01T00:00:00Z
SECONDS_PER_DAY = 86400.0
TIME_UNITS = "seconds since 1970-01-01 00:00:00"


def modis_band_variable(band: str) -> str:
    return f"band_{band}_radiance"


def misr_band_variable(band: str) -> str:
    return f"{band.lower()}_radiance"


MODIS_GEO_VARIABLES = ("time", "lat", "lon", "solar_zenith", "sensor_zenith")
MISR_GEO_VARIABLES = ("time", "lat", "lon", "block", "line", "sample")
CERES_VARIABLES = ("time", "lat", "lon", "solar_zenith", "viewing_zenith", "sw_radiance", "lw_radiance",
                   "radiance_mode_flags")  # fmt: skip
INTEGER_VARIABLES = {"block": np.int16, "line": np.int16, "sample": np.int16, "radiance_mode_flags": np.int32}


def dtype_of(name: str) -> np.dtype[np.generic]:
    """The dtype of a sample variable: time float64, indices and flags integers, everything else float32."""
    if name == "time":
        return np.dtype(np.float64)
    return np.dtype(INTEGER_VARIABLES.get(name, np.float32))
