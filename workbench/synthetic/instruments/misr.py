"""The MISR group of a synthetic orbit file: 180 SOM blocks seen by nine cameras.

Geolocation at 1.1 km and 275 m, solar geometry on the coarse geometry grid,
and per camera the four band radiances (275 m for AN and every Red band, 1.1 km
means otherwise), BRF conversion factors, sensor geometry and block centre times
(docs/basicfusion-layout.md section 3). Only the daylit blocks of the MODIS
descending window carry radiances; the others are fill.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import h5py
import numpy as np
from numpy.typing import NDArray

from workbench.synthetic import fields
from workbench.synthetic.geometry import (
    BCT_STEP_S,
    EARTH_RADIUS_KM,
    MISR_BLOCK_WIDTH_KM,
    MISR_SWATH_HALF_KM,
    OrbitGeometry,
    earth_fixed,
    ground_to_view,
)
from workbench.synthetic.instruments.common import F32, F64, FILL, RADIANCE_UNITS, OrbitFile
from workbench.synthetic.presets import MISR_BLOCKS
from workbench.synthetic.writer import set_attrs

MISR_FILL = -555.0
BCT_FILL = b"0000-00-00T00:00:00.000000Z"
MISR_MAX_DN = 16377
MISR_SCALE = np.array([0.04716, 0.04470, 0.03598, 0.02436], dtype=np.float32)  # W m-2 um-1 sr-1 per DN
MISR_CAMERAS = ("AA", "AF", "AN", "BA", "BF", "CA", "CF", "DA", "DF")
MISR_VIEW_DEG = {"AN": 0.0, "AF": 26.1, "AA": 26.1, "BF": 45.6, "BA": 45.6, "CF": 60.0, "CA": 60.0, "DF": 70.5,
                 "DA": 70.5}  # fmt: skip
# Seconds between the AN view of a block and this camera's view (forward cameras see it earlier).
MISR_TIME_OFFSET_S = {c: (-1 if c.endswith("F") else 1) * 210.0 * np.tan(np.radians(v)) / np.tan(np.radians(70.5))
                      for c, v in MISR_VIEW_DEG.items()}  # fmt: skip


class GeometryGrid(NamedTuple):
    """Solar and track geometry on the (180, lines, samples) MISR geometry grid, shared by all cameras."""

    sza: F64
    saz: F64
    sun_down: NDArray[np.bool_]
    in_swath: NDArray[np.bool_]
    heading: F64
    cross: F64  # signed cross-track central angle (degrees)


def write(orbit_file: OrbitFile) -> None:
    """Write the MISR group: geolocation, solar geometry and the nine cameras."""
    MisrWriter(orbit_file).write()


class MisrWriter:
    """Writes the MISR group of one orbit file: shared geolocation and geometry, then camera by camera."""

    def __init__(self, orbit_file: OrbitFile) -> None:
        self.file = orbit_file

    def misr_latlon(self, blocks: NDArray[np.int64], lines: int, samples: int) -> tuple[F64, F64]:
        """(len(blocks), lines, samples) ground positions of MISR SOM pixels (blocks 0-based)."""
        t, cross = self.misr_grid(blocks, lines, samples)
        return self.file.geom.latlon(t, cross)

    def misr_grid(self, blocks: NDArray[np.int64], lines: int, samples: int) -> tuple[F64, F64]:
        """AN view time (s since T0) and signed cross-track central angle of MISR SOM pixels."""
        centres = self.file.geom.window_blocks(MISR_BLOCKS)[blocks]
        line_t = ((np.arange(lines) + 0.5) / lines - 0.5) * BCT_STEP_S
        t = centres[:, None, None] + line_t[None, :, None] + np.zeros((1, 1, samples))
        x_km = ((np.arange(samples) + 0.5) / samples - 0.5) * MISR_BLOCK_WIDTH_KM
        cross = np.degrees(x_km / EARTH_RADIUS_KM)[None, None, :]
        return t, np.broadcast_to(cross, t.shape)

    def daylit_blocks(self) -> tuple[int, int]:
        """First and last daylit block (1-based): centre sunlit and BCT inside the MODIS window."""
        geom, window = self.file.geom, self.file.window
        bct = geom.window_blocks(MISR_BLOCKS)
        lat, lon = geom.latlon(bct, np.zeros_like(bct))
        sza, _ = geom.solar_angles(bct, lat, lon)
        ok = (bct >= window[0]) & (bct <= window[1]) & (sza < 89.0)
        ok[0] = False
        (idx,) = np.nonzero(ok)
        if len(idx) == 0:
            return 0, -1
        return int(idx[0]) + 1, int(idx[-1]) + 1

    def write(self) -> None:
        f = self.file
        p, w, g = f.preset, f.writer, f.geom
        misr = f.h5.create_group("MISR")
        first, last = self.daylit_blocks()
        day = np.zeros(MISR_BLOCKS, dtype=bool)
        if last >= first:
            day[first - 1 : last] = True
        orbit6 = f"{f.orbit:06d}"
        names = [f"MISR_AM1_GRP_ELLIPSOID_GM_P{g.path:03d}_O{orbit6}_{c}_F03_0024.hdf" for c in MISR_CAMERAS]
        names += [f"MISR_AM1_AGP_P{g.path:03d}_F01_24.hdf", f"MISR_AM1_GP_GMP_P{g.path:03d}_O{orbit6}_F03_0013.hdf",
                  f"MISR_HRLL_P{g.path:03d}.hdf"]  # fmt: skip
        f.inputs += names
        set_attrs(
            misr,
            {
                "comment_for_fillvalue": "-999.0 marks radiances with RDQI 2 or 3, outside the swath or outside "
                "the acquired blocks; -555.0 marks undefined geometry.",
                "comment_for_low_accuracy_index": "Rows of (block 1-based, line, sample) of pixels with RDQI 1.",
                "comment_for_GranuleTime": "GranuleTime is the 6-digit orbit number of the MISR granule.",
                "GranuleName": ",".join(names),
                "GranuleTime": orbit6,
            },
        )
        L, S = p.misr_lines, p.misr_samples  # noqa: N806
        HL, HS = p.misr_hr  # noqa: N806
        all_blocks = np.arange(MISR_BLOCKS)
        lat, lon = self.misr_latlon(all_blocks, L, S)
        geo = misr.create_group("Geolocation")
        w.gzip(geo, "GeoLatitude", lat.astype(np.float32), attrs={"units": "degrees_north"})
        w.gzip(geo, "GeoLongitude", lon.astype(np.float32), attrs={"units": "degrees_east"})

        # 275 m geolocation, computed in block batches (bounded memory).
        hr_lat = np.empty((MISR_BLOCKS, HL, HS), dtype=np.float32)
        hr_lon = np.empty((MISR_BLOCKS, HL, HS), dtype=np.float32)
        batch = max(1, 4_000_000 // (HL * HS))
        for b0 in range(0, MISR_BLOCKS, batch):
            sl = slice(b0, min(b0 + batch, MISR_BLOCKS))
            la, lo = self.misr_latlon(all_blocks[sl], HL, HS)
            hr_lat[sl], hr_lon[sl] = la, lo
        hr = misr.create_group("HRGeolocation")
        w.gzip(hr, "GeoLatitude", hr_lat, attrs={"units": "degrees_north"})
        w.gzip(hr, "GeoLongitude", hr_lon)  # the C code forgets this `units` (spec section 3)

        # Geometry grid (contiguous float64).
        GL, GS = p.misr_geometry  # noqa: N806
        t_g, cross_g = self.misr_grid(all_blocks, GL, GS)
        glat, glon = g.latlon(t_g, cross_g)
        sza, saz = g.solar_angles(t_g, glat, glon)
        sun_down = sza >= 90.0
        solar = misr.create_group("Solar_Geometry")
        geometry_attrs = {"units": "degree", "_Fillvalue": np.float64(MISR_FILL)}
        w.plain(solar, "SolarAzimuth", np.where(sun_down, MISR_FILL, saz), geometry_attrs)
        w.plain(solar, "SolarZenith", np.where(sun_down, MISR_FILL, sza), geometry_attrs)
        in_swath_g = np.abs(cross_g) <= np.degrees(MISR_SWATH_HALF_KM / EARTH_RADIUS_KM) * 1.02
        heading = _heading(g, t_g)

        # Radiance fields of the daylit blocks at 275 m (AN), then 1.1 km means.
        rng = f.rng(3)
        day_idx = np.nonzero(day)[0]
        radiance_hr = self.misr_radiance(day_idx, hr_lat, hr_lon, rng)  # (4, nday, HL, HS) physical, NaN = fill
        del hr_lat, hr_lon  # freed once deflated
        for cam in MISR_CAMERAS:
            self.write_camera(misr, cam, rng, day=day, day_idx=day_idx, radiance_hr=radiance_hr,
                              geometry=GeometryGrid(sza, saz, sun_down, in_swath_g, heading, cross_g))  # fmt: skip

    def misr_radiance(self, day_idx: NDArray[np.int64], hr_lat: F32, hr_lon: F32, rng: np.random.Generator) -> F32:
        f = self.file
        HL, HS = f.preset.misr_hr  # noqa: N806
        out = np.full((4, len(day_idx), HL, HS), np.nan, dtype=np.float32)
        x_km = ((np.arange(HS) + 0.5) / HS - 0.5) * MISR_BLOCK_WIDTH_KM
        off_swath = np.abs(x_km) > MISR_SWATH_HALF_KM
        batch = max(1, 2_000_000 // (HL * HS))
        rho_table = np.stack([fields.RHO_OCEAN, fields.RHO_LAND, fields.RHO_CLOUD])[:, [2, 3, 0, 1]]  # B G R NIR
        e0 = (fields.MISR_E0_PI / f.d2).astype(np.float32)[:, None, None, None]
        for i0 in range(0, len(day_idx), batch):
            blocks = day_idx[i0 : i0 + batch]
            la = hr_lat[blocks]
            lo = hr_lon[blocks]
            t, _ = self.misr_grid(blocks, HL, HS)
            sza, _ = f.geom.solar_angles(t, la, lo)
            q = earth_fixed(la, lo, np.float32)
            rho = fields.mix_reflectance(f.scene.land(q), f.scene.cloud(q), rho_table)
            cos = np.clip(np.cos(np.radians(sza)), 0.0, None).astype(np.float32)
            out[:, i0 : i0 + len(blocks)] = rho * cos[None] * e0
        out[..., off_swath] = np.nan
        return out

    def misr_quantise(self, physical: F32, band: int, rng: np.random.Generator) -> F32:
        """L = ScaleFactor * (DN >> 2), -999 for fill and RDQI 2/3."""
        scale = MISR_SCALE[band : band + 1]
        noise = fields.dn_noise(rng, physical.shape, 1.5)
        nan = np.isnan(physical)
        quant, _ = fields.quantise(np.where(nan, 0, physical)[None], scale, noise[None], MISR_MAX_DN)
        out = quant[0]
        out[nan] = FILL
        out[rng.random(physical.shape, dtype=np.float32) < 1e-4] = FILL
        return out

    def write_camera(
        self, misr: h5py.Group, cam: str, rng: np.random.Generator, *, day: NDArray[np.bool_],
        day_idx: NDArray[np.int64], radiance_hr: F32, geometry: GeometryGrid,
    ) -> None:  # fmt: skip
        grp = misr.create_group(cam)
        self.write_camera_radiances(grp, cam, rng, day_idx=day_idx, radiance_hr=radiance_hr)
        self.write_brf_conversion_factors(grp, day=day, geometry=geometry)
        self.write_sensor_geometry(grp, cam, geometry)
        self.write_block_centre_times(grp, cam, day)

    def write_camera_radiances(
        self, grp: h5py.Group, cam: str, rng: np.random.Generator, *, day_idx: NDArray[np.int64], radiance_hr: F32
    ) -> None:
        """`Data_Fields`: the four band radiances of the daylit blocks, and the RDQI 1 pixels of AN."""
        f = self.file
        p, w = f.preset, f.writer
        L, S = p.misr_lines, p.misr_samples  # noqa: N806
        HL, HS = p.misr_hr  # noqa: N806
        data = grp.create_group("Data_Fields")
        view = MISR_VIEW_DEG[cam]
        # Off-nadir cameras: same scene, a mild view-angle brightening (forward scattering of cloud).
        factor = np.float32(1.0 + 0.12 * (1.0 - np.cos(np.radians(view))))
        rad_attrs = {
            "units": RADIANCE_UNITS,
            "_FillValue": FILL,
            "valid_min": np.float32(0.0),
            "valid_max": np.float32(800.0),
            "coordinates": "/MISR/Geolocation/GeoLongitude /MISR/Geolocation/GeoLatitude",
        }
        for band, band_name in enumerate(fields.MISR_BANDS):
            high = cam == "AN" or band_name == "Red"
            key = f"misr/offnadir/{band_name}"
            name = f"{band_name}_Radiance"
            if cam != "AN" and f.reuses_template(key):
                w.gzip(data, name, None, attrs=rad_attrs, reuse=key)
                continue
            shape = (MISR_BLOCKS, HL, HS) if high else (MISR_BLOCKS, L, S)
            full = np.full(shape, FILL, dtype=np.float32)
            # Quantised in batches of blocks to bound the temporaries (full preset: 755 MB per band).
            batch = max(1, 8_000_000 // (HL * HS))
            for i0 in range(0, len(day_idx), batch):
                physical = radiance_hr[band, i0 : i0 + batch] * factor
                if not high:
                    physical = physical.reshape(len(physical), L, 4, S, 4).mean(axis=(2, 4))
                full[day_idx[i0 : i0 + batch]] = self.misr_quantise(physical, band, rng)
            reuse = key if (cam != "AN" and p.reuse_unread) else None
            w.gzip(data, name, full, attrs=rad_attrs, reuse=reuse)
            if cam == "AN" and band_name in ("Red", "Blue") and len(day_idx):
                # A few RDQI=1 pixels: rows of (block 1-based, line, sample).
                n = 5 + int(rng.integers(0, 20))
                rows = np.stack([rng.choice(day_idx, n) + 1, rng.integers(0, shape[1], n),
                                 rng.integers(0, shape[2], n)], axis=1).astype(np.uint16)  # fmt: skip
                w.gzip(data, f"{name}_low_accuracy_index", rows)

    def write_brf_conversion_factors(self, grp: h5py.Group, *, day: NDArray[np.bool_], geometry: GeometryGrid) -> None:
        """`BRF_Conversion_Factors`: d^2 / (E0/pi cos SZA) per band, fill where undefined."""
        sza, sun_down, in_swath = geometry.sza, geometry.sun_down, geometry.in_swath
        w = self.file.writer
        brf = grp.create_group("BRF_Conversion_Factors")
        fill_attrs = {"_Fillvalue": np.float32(MISR_FILL)}
        cos = np.cos(np.radians(np.where(sun_down, 89.0, sza)))
        undefined = sun_down | ~day[:, None, None] | ~in_swath
        for band, band_name in enumerate(fields.MISR_BANDS):
            factor_brf = self.file.d2 / (fields.MISR_E0_PI[band] * cos)
            w.plain(brf, f"{band_name}ConversionFactor", np.where(undefined, MISR_FILL, factor_brf).astype(np.float32),
                    fill_attrs)  # fmt: skip

    def write_sensor_geometry(self, grp: h5py.Group, cam: str, geometry: GeometryGrid) -> None:
        """`Sensor_Geometry`: view azimuth, glitter, scatter and zenith angles of this camera."""
        sza, saz, sun_down, in_swath, heading, cross = geometry
        view = MISR_VIEW_DEG[cam]
        # Sensor geometry: zenith from the cross-track position and the camera's along-track view angle.
        cross_view = np.radians(ground_to_view(cross))
        zen = np.degrees(np.arccos(np.cos(np.radians(view)) * np.cos(cross_view)))
        if cam == "AN":
            az = self.file.geom.track_azimuth(*self.misr_grid(np.arange(MISR_BLOCKS), *sza.shape[1:]))
        else:
            az = (heading + (180.0 if cam.endswith("F") else 0.0)) % 360.0
        vz, sz = np.radians(zen), np.radians(np.where(sun_down, 90.0, sza))
        dphi = np.radians(az - saz)
        glitter = np.degrees(
            np.arccos(np.clip(np.cos(sz) * np.cos(vz) - np.sin(sz) * np.sin(vz) * np.cos(dphi), -1, 1))
        )
        scatter = np.degrees(
            np.arccos(np.clip(-np.cos(sz) * np.cos(vz) - np.sin(sz) * np.sin(vz) * np.cos(dphi), -1, 1))
        )
        w = self.file.writer
        sensor = grp.create_group("Sensor_Geometry")
        prefix = cam[0] + cam[1].lower()
        geometry_attrs = {"units": "degree", "_Fillvalue": np.float64(MISR_FILL)}
        no_view = ~in_swath
        for what, values, extra in (("Azimuth", az, no_view), ("Glitter", glitter, no_view | sun_down),
                                    ("Scatter", scatter, no_view | sun_down), ("Zenith", zen, no_view)):  # fmt: skip
            w.plain(sensor, f"{prefix}{what}", np.where(extra, MISR_FILL, values).astype(np.float64), geometry_attrs)

    def write_block_centre_times(self, grp: h5py.Group, cam: str, day: NDArray[np.bool_]) -> None:
        """`BlockCenterTime`: when this camera saw each daylit block, fill for the others."""
        geom = self.file.geom
        bct = geom.window_blocks(MISR_BLOCKS) + MISR_TIME_OFFSET_S[cam]
        values = [_bct(geom.start + timedelta(seconds=float(t))) if day[i] else BCT_FILL for i, t in enumerate(bct)]
        w = self.file.writer
        w.fixed_strings(grp, "BlockCenterTime", values, 28, {"units": "UTC", "_FillValue": BCT_FILL.decode()})


def _heading(g: OrbitGeometry, t: F64) -> F64:
    lat1, lon1 = g.latlon(t - 1.0, np.zeros_like(t))
    lat2, lon2 = g.latlon(t + 1.0, np.zeros_like(t))
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(lon2 - lon1)
    y = np.sin(dl) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    return np.asarray(np.degrees(np.arctan2(y, x)) % 360.0, dtype=np.float64)


def _bct(when: datetime) -> bytes:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode("ascii")
