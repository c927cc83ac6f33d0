"""Terra orbit, swath and sun geometry (docs/basicfusion-layout.md section 7 model).

Times are seconds since the orbit start T0. The orbit starts at the ascending
(night-side) equator crossing; the descending node comes at T0 + P/2 at about
10:30 local solar time; the daylit pass is the southbound half.
Everything is vectorised numpy (float64 inside).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from datacarousel import naming

F64 = NDArray[np.float64]

INCLINATION_DEG = 98.2
EARTH_RADIUS_KM = 6371.0
ALTITUDE_KM = 705.0
EARTH_ROTATION_DEG_S = 360.0 / 86400.0  # relative to the sun (sun-synchronous orbit)
JD_UNIX_EPOCH = 2440587.5
MODIS_MAX_SCAN_DEG = 55.0
MISR_SWATH_HALF_KM = 190.0
MISR_BLOCK_WIDTH_KM = 563.2
BCT_OFFSET_S = 1105.0  # BCT(b) = T0 + 1105 s + 20.7 s * (b - 1)
BCT_STEP_S = 20.7

_K = (EARTH_RADIUS_KM + ALTITUDE_KM) / EARTH_RADIUS_KM


def to_jd(unix_seconds: F64 | float) -> F64:
    """Julian Date of Unix seconds (JD 2451545.0 = 2000-01-01 12:00 UTC)."""
    return np.asarray(unix_seconds, dtype=np.float64) / 86400.0 + JD_UNIX_EPOCH


def descending_node_longitude(path: int) -> float:
    """WRS-2 convention: longitude of the descending node of a path (degrees)."""
    return -64.6 - (path - 1) * 360.0 / 233.0


def scan_to_view(scan_deg: F64) -> tuple[F64, F64]:
    """Sensor scan angle -> (view zenith at the ground, Earth central angle), both degrees, signed."""
    theta = np.radians(scan_deg)
    eta = np.arcsin(np.clip(_K * np.sin(theta), -1.0, 1.0))
    return np.degrees(eta), np.degrees(eta - theta)


def ground_to_view(central_deg: F64) -> F64:
    """Earth central angle from nadir -> view zenith at the ground (degrees, signed)."""
    gamma = np.radians(central_deg)
    # Satellite at distance K (Earth radii); ground point at 1: zenith angle of the satellite.
    x = _K * np.cos(gamma) - 1.0
    y = _K * np.sin(gamma)
    return np.degrees(np.arctan2(y, x))


def slant_factor(scan_deg: F64) -> F64:
    """Slant range / altitude for a scan angle (MODIS along-track pixel growth, the bow-tie)."""
    theta = np.radians(scan_deg)
    r, h = EARTH_RADIUS_KM, ALTITUDE_KM
    slant = (r + h) * np.cos(theta) - np.sqrt(r * r - ((r + h) * np.sin(theta)) ** 2)
    return np.asarray(slant / h, dtype=np.float64)


@dataclass(frozen=True)
class OrbitGeometry:
    """Ground geometry of one orbit."""

    orbit: int
    start: datetime
    end: datetime
    path: int
    period_s: float = naming.ORBIT_PERIOD_S

    @classmethod
    def for_orbit(cls, orbit: int) -> OrbitGeometry:
        return cls(orbit, naming.orbit_start(orbit), naming.orbit_end(orbit), naming.misr_path(orbit))

    @property
    def t0_unix(self) -> float:
        return self.start.timestamp()

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def ascending_node_longitude(self) -> float:
        # lambda(T0 + P/2) = lambda_desc: atan2(cos i sin u, cos u) = 180 deg at u = 180 deg.
        return descending_node_longitude(self.path) - 180.0 + EARTH_ROTATION_DEG_S * self.period_s / 2.0

    def inertial(self, t: F64, cross_deg: F64) -> F64:
        """Unit vectors (..., 3) of ground points: along-track time t, signed cross-track central angle."""
        inc = np.radians(INCLINATION_DEG)
        u = 2.0 * np.pi * np.asarray(t, dtype=np.float64) / self.period_s
        d = np.radians(np.asarray(cross_deg, dtype=np.float64))
        cu, su, cd, sd = np.cos(u), np.sin(u), np.cos(d), np.sin(d)
        # p(u) on the orbit plane (x to the ascending node); n = orbit normal (0, -sin i, cos i).
        x = cd * cu
        y = cd * su * np.cos(inc) - sd * np.sin(inc)
        z = cd * su * np.sin(inc) + sd * np.cos(inc)
        return np.stack(np.broadcast_arrays(x, y, z), axis=-1)

    def latlon(self, t: F64, cross_deg: F64) -> tuple[F64, F64]:
        """Latitude and longitude (degrees, lon in [-180, 180)) of ground points."""
        v = self.inertial(t, cross_deg)
        lat = np.degrees(np.arcsin(np.clip(v[..., 2], -1.0, 1.0)))
        lon = np.degrees(np.arctan2(v[..., 1], v[..., 0]))
        lon = lon + self.ascending_node_longitude - EARTH_ROTATION_DEG_S * np.broadcast_to(t, lon.shape)
        return lat, wrap_lon(lon)

    def track_azimuth(self, t: F64, cross_deg: F64) -> F64:
        """Azimuth (degrees from north, clockwise) from a ground point towards the ground track."""
        inc = np.radians(INCLINATION_DEG)
        v = self.inertial(t, cross_deg)
        sign = -np.sign(np.asarray(cross_deg, dtype=np.float64))
        sign = np.where(sign == 0, 1.0, sign)
        w = np.stack([np.zeros_like(sign), -np.sin(inc) * sign, np.cos(inc) * sign], axis=-1)
        return _azimuth(v, w)

    @cached_property
    def _sun_at_middle(self) -> tuple[float, float]:
        """Declination and subsolar longitude (degrees) at mid-orbit."""
        decl, subsolar = solar_position(np.array([self.t0_unix + self.period_s / 2]))
        return float(decl[0]), float(subsolar[0])

    def solar_angles(self, t: F64, lat: np.ndarray, lon: np.ndarray) -> tuple[F64, F64]:
        """Solar zenith and azimuth (degrees) at ground points at orbit time t.

        cos SZA = sin(lat) sin(decl) + cos(lat) cos(decl) cos(h), h the hour angle. Over one orbit
        the declination moves < 0.03 deg, so it is taken at mid-orbit, and the subsolar point moves
        west at 15 deg per hour.
        """
        decl, subsolar_mid = self._sun_at_middle
        subsolar = subsolar_mid - EARTH_ROTATION_DEG_S * (np.asarray(t, dtype=np.float64) - self.period_s / 2)
        h = np.radians(np.asarray(lon, dtype=np.float64) - subsolar)
        phi = np.radians(np.asarray(lat, dtype=np.float64))
        sd, cd = np.sin(np.radians(decl)), np.cos(np.radians(decl))
        sp, cp, ch = np.sin(phi), np.cos(phi), np.cos(h)
        zen = np.degrees(np.arccos(np.clip(sp * sd + cp * cd * ch, -1.0, 1.0)))
        az = np.degrees(np.arctan2(-cd * np.sin(h), cp * sd - sp * cd * ch)) % 360.0
        return zen, az

    def window_blocks(self, n_blocks: int) -> F64:
        """MISR block centre times (s since T0) for blocks 1..n."""
        return BCT_OFFSET_S + BCT_STEP_S * np.arange(n_blocks, dtype=np.float64)


def solar_position(unix: F64) -> tuple[F64, F64]:
    """Declination and subsolar longitude (degrees) from Unix seconds (simple almanac, ~0.5 deg)."""
    days = (np.asarray(unix, dtype=np.float64) - 946728000.0) / 86400.0  # since J2000.0
    g = np.radians(357.529 + 0.98560028 * days)
    q = 280.459 + 0.98564736 * days
    ecl_lon = np.radians(q + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g))
    eps = np.radians(23.439 - 0.00000036 * days)
    decl = np.degrees(np.arcsin(np.sin(eps) * np.sin(ecl_lon)))
    ra = np.degrees(np.arctan2(np.cos(eps) * np.sin(ecl_lon), np.cos(ecl_lon)))
    eot_deg = wrap_lon(q - ra)  # equation of time in degrees
    utc_hours = np.mod(np.asarray(unix, dtype=np.float64), 86400.0) / 3600.0
    subsolar = wrap_lon(-15.0 * (utc_hours - 12.0) - eot_deg)
    return decl, subsolar


def sun_earth_distance_au(when: datetime) -> float:
    doy = when.astimezone(UTC).timetuple().tm_yday
    return float(1.0 - 0.01672 * np.cos(np.radians(0.9856 * (doy - 4))))


def earth_fixed(lat: np.ndarray, lon: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Earth-fixed unit vectors (..., 3), computed in `dtype` (float32 is enough for scene fields)."""
    la, lo = np.radians(np.asarray(lat, dtype=dtype)), np.radians(np.asarray(lon, dtype=dtype))
    cos_la = np.cos(la)
    return np.stack([cos_la * np.cos(lo), cos_la * np.sin(lo), np.sin(la)], axis=-1)


def wrap_lon(lon: F64) -> F64:
    return np.asarray((np.asarray(lon) + 180.0) % 360.0 - 180.0, dtype=np.float64)


def _azimuth(q: F64, w: F64) -> F64:
    """Azimuth of direction w seen from point q (both (..., 3)), degrees clockwise from north in [0, 360)."""
    cos_lat = np.sqrt(q[..., 0] ** 2 + q[..., 1] ** 2)
    cos_lat = np.where(cos_lat < 1e-12, 1e-12, cos_lat)
    east = (-q[..., 1] * w[..., 0] + q[..., 0] * w[..., 1]) / cos_lat
    north = (-q[..., 2] * (q[..., 0] * w[..., 0] + q[..., 1] * w[..., 1]) + cos_lat**2 * w[..., 2]) / cos_lat
    return np.asarray(np.degrees(np.arctan2(east, north)) % 360.0, dtype=np.float64)
