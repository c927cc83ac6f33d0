"""The MODIS group of a synthetic orbit file: one granule per five minutes of the orbit.

`plan_granules` lays out the granules along the orbit (start times, 1 km
geolocation and observation times); the generator also uses the plan to find
the descending (daylit) window the other instruments place themselves in. Every
granule gets geolocation, angles and emissive radiances; day granules also get
the reflective bands at 1 km and the `_500m` and `_250m` groups
(docs/basicfusion-layout.md section 2). Radiances are quantised as the real L1B
unpacking does, with fill (-999) and saturation (-992) pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import h5py
import numpy as np
from numpy.typing import NDArray

from workbench.synthetic import fields
from workbench.synthetic.geometry import MODIS_MAX_SCAN_DEG, OrbitGeometry, earth_fixed, scan_to_view, slant_factor
from workbench.synthetic.instruments.common import F32, F64, FILL, MAX_DN, RADIANCE_UNITS, OrbitFile
from workbench.synthetic.presets import ROWS_PER_SCAN, Preset
from workbench.synthetic.writer import set_attrs

SATURATED = np.float32(-992.0)
GRANULE_S = 300.0
DESCENDING_THRESHOLD_ROWS = 1000

# Band tables (docs/basicfusion-layout.md section 2).
BANDS_250 = "1,2"
BANDS_500 = "3,4,5,6,7"
BANDS_1KM_REFSB = "8,9,10,11,12,13lo,13hi,14lo,14hi,15,16,17,18,19,26"
BANDS_1KM_EMISSIVE = "20,21,22,23,24,25,27,28,29,30,31,32,33,34,35,36"
# 32767 * reflectance_scale per band 1..7: bands 3 and 4 saturate first over bright cloud.
FULL_SCALE_REFLECTANCE_1_7 = np.array([1.65, 1.65, 1.0, 1.05, 1.6, 1.6, 1.6])
RHO_1KM_REFSB = np.array(
    [
        [0.06, 0.05, 0.04, 0.03, 0.02, 0.012, 0.012, 0.01, 0.01, 0.008, 0.006, 0.005, 0.004, 0.004, 0.002],
        [0.06, 0.07, 0.08, 0.10, 0.12, 0.14, 0.14, 0.18, 0.18, 0.27, 0.28, 0.27, 0.24, 0.25, 0.01],
        [0.72, 0.72, 0.73, 0.73, 0.73, 0.74, 0.74, 0.74, 0.74, 0.74, 0.74, 0.70, 0.68, 0.70, 0.25],
    ]
)
UNCERT_SPECIFIED = np.float32(1.5)
UNCERT_SCALING = np.float32(5.0)


def descending_row_threshold(rows: int) -> int:
    """Rows that may fail the "latitude decreases" test in a descending granule.

    The original uses 1000 of ~2029 (docs/compute-radiance.md section 2), which is what every granule
    taller than 1000 rows gets (all real ones: 1950-2100); a shorter (shrunk) granule could never
    fail that test, so it gets half its rows, the proportion of the original. The ComputeRadiance
    job uses the same rule.
    """
    return DESCENDING_THRESHOLD_ROWS if rows > DESCENDING_THRESHOLD_ROWS else rows // 2


def failing_rows(lat: F32) -> int:
    """Rows i >= 1 where not every latitude is smaller than the one above it."""
    return int(np.count_nonzero(~np.all(lat[1:] < lat[:-1], axis=1)))


@dataclass(frozen=True)
class GranulePlan:
    """One MODIS granule: its start, 1 km geolocation, per-pixel times and column geometry."""

    start: datetime
    t_rel: float  # seconds since orbit start
    lat: F32
    lon: F32
    t: F64  # (R, C) observation time of every pixel (s since orbit start)
    central: F64  # (C,) signed Earth central angle of each column (degrees)
    view_zenith: F64  # (C,) unsigned

    @property
    def name(self) -> str:
        return f"granule_{self.start:%Y%j_%H%M}"

    @property
    def granule_time(self) -> str:
        return f"{self.start:%Y%j.%H%M}"

    @cached_property
    def descending(self) -> bool:
        return failing_rows(self.lat) < descending_row_threshold(self.lat.shape[0])


def plan_granules(geom: OrbitGeometry, preset: Preset) -> list[GranulePlan]:
    """The granules of the orbit: every five minutes on the clock from the first after its start."""
    g, p = geom, preset
    first = g.start.replace(second=0, microsecond=0)
    first += timedelta(minutes=(-first.minute) % 5)
    if first < g.start:
        first += timedelta(minutes=5)
    cols = (np.arange(p.modis_cols) + 0.5) / p.modis_cols - 0.5
    scan = cols * 2.0 * MODIS_MAX_SCAN_DEG
    view, central = scan_to_view(scan)
    bow = slant_factor(scan)
    rows = np.arange(p.modis_rows)
    nscans = p.modis_rows // ROWS_PER_SCAN
    scan_s = GRANULE_S / nscans
    along = (rows // ROWS_PER_SCAN + 0.5)[:, None] * scan_s
    detector = ((rows % ROWS_PER_SCAN) - (ROWS_PER_SCAN - 1) / 2.0)[:, None] * (scan_s / ROWS_PER_SCAN)
    plans = []
    start = first
    while start <= g.end:
        t_rel = (start - g.start).total_seconds()
        t = t_rel + along + detector * bow[None, :]
        lat, lon = g.latlon(t, central[None, :])
        plans.append(
            GranulePlan(start, t_rel, lat.astype(np.float32), lon.astype(np.float32), t, central, np.abs(view))
        )
        start += timedelta(minutes=5)
    return plans


def write(orbit_file: OrbitFile, granules: list[GranulePlan]) -> None:
    """Write the MODIS group: the planned granules, with the defects that concern MODIS."""
    ModisWriter(orbit_file).write(granules)


class ModisWriter:
    """Writes the MODIS group of one orbit file, granule by granule."""

    def __init__(self, orbit_file: OrbitFile) -> None:
        self.file = orbit_file

    def write(self, granules: list[GranulePlan]) -> None:
        defects = self.file.defects
        modis = self.file.h5.create_group("MODIS")
        set_attrs(
            modis,
            {
                "comment": "The MODIS L1B DN values 65501-65535 are mapped to -964.0 ... -999.0 in the unpacked "
                "radiance and uncertainty fields (e.g. 65535 -> -999.0 fill, 65528 -> -992.0).",
                "comment_for_GranuleTime": "GranuleTime is the YYYYDDD.hhmm start time of the MODIS granule.",
            },
        )
        descending = [g for g in granules if g.descending]
        broken = descending[len(descending) // 2] if descending else None
        for index, plan in enumerate(granules):
            day = plan.descending
            if day and "no_descending_granule" in defects:
                continue
            with_refsb = day and not (plan is broken and "day_granule_without_refsb" in defects)
            minus_90 = plan is broken and "latitude_minus_90" in defects
            self.write_granule(modis, index, plan, with_refsb, minus_90)

    def write_granule(self, modis: h5py.Group, index: int, plan: GranulePlan, day: bool, minus_90: bool) -> None:
        f = self.file
        w, g = f.writer, f.geom
        rng = f.rng(1, index)
        R, C = plan.lat.shape  # noqa: N806
        grp = modis.create_group(plan.name)
        stamp = f"A{plan.granule_time}.061.2017{(plan.start.timetuple().tm_yday % 300) + 10:03d}000000.hdf"
        attrs = {"GranuleName_1KM": f"MOD021KM.{stamp}", "GranuleName_MOD03": f"MOD03.{stamp}"}
        if day:
            attrs["GranuleName_HKM"] = f"MOD02HKM.{stamp}"
            attrs["GranuleName_QKM"] = f"MOD02QKM.{stamp}"
        attrs["GranuleTime"] = plan.granule_time
        set_attrs(grp, attrs)
        f.inputs += [v for k, v in attrs.items() if k.startswith("GranuleName")]

        lat, lon = plan.lat.copy(), plan.lon.copy()
        sza, saz = g.solar_angles(plan.t, lat.astype(np.float64), lon.astype(np.float64))
        vza = np.broadcast_to(plan.view_zenith[None, :], (R, C))
        vaz = g.track_azimuth(plan.t, np.broadcast_to(plan.central[None, :], (R, C)))
        named = (("SolarZenith", sza), ("SolarAzimuth", saz), ("SensorZenith", vza), ("SensorAzimuth", vaz))
        angles = {name: _centi(a) for name, a in named}
        special = (R // 2, C // 2)
        if minus_90:
            lat[special] = np.float32(-90.0)
            angles["SolarZenith"][special] = np.float32(60.0)
            angles["SensorZenith"][special] = np.float32(5.0)

        one_km = grp.create_group("_1KM")
        geo = one_km.create_group("Geolocation")
        w.gzip(geo, "Latitude", lat, attrs={"units": "degrees_north"})
        w.gzip(geo, "Longitude", lon, attrs={"units": "degrees_east"})
        data = one_km.create_group("Data_Fields")
        coords = f"/MODIS/{plan.name}/_1KM/Geolocation/Longitude /MODIS/{plan.name}/_1KM/Geolocation/Latitude"
        q = earth_fixed(lat, lon, np.float32)
        cos_sza = np.clip(np.cos(np.radians(sza)), 0.0, None).astype(np.float32)
        land, cloud = f.scene.land(q), f.scene.cloud(q)
        bad = rng.random((R, C)) < 5e-4  # scattered fill (DN 65535) in every band

        # Emissive, all granules.
        temp = f.scene.temperature(q, land, cloud)
        self.write_emissive(data, rng, temp=temp, bad=bad, coords=coords)

        if day:
            rho = fields.mix_reflectance(land, cloud, np.stack([fields.RHO_OCEAN, fields.RHO_LAND, fields.RHO_CLOUD]))
            rad_scales, ref_scales = self.refsb_scales(rng, FULL_SCALE_REFLECTANCE_1_7, fields.MODIS_E0_PI_250_500)
            radiance = rho * cos_sza[None] * (fields.MODIS_E0_PI_250_500 / f.d2).astype(np.float32)[:, None, None]
            noise = fields.dn_noise(rng, (R, C), 2.0)
            quant, saturated = fields.quantise(radiance, rad_scales, noise[None], MAX_DN)
            quant[saturated] = SATURATED
            # Every day granule shows both reserved values: the brightest pixel saturates in bands 2-7
            # (band 1 stays valid, so the saturation refill applies) and one pixel is fill everywhere.
            row, col = np.unravel_index(int(np.argmax(np.where(bad, -1.0, quant[0]))), (R, C))
            quant[1:7, row, col] = SATURATED
            bad[R - 1, 0] = True
            quant[:, bad] = FILL
            if minus_90:
                quant[(slice(None), *special)] = np.float32(4000.0) * rad_scales
            uncert = self.uncert(rho, quant)
            for ds_name, bands, sl in (("EV_250_Aggr1km_RefSB", BANDS_250, slice(0, 2)),
                                       ("EV_500_Aggr1km_RefSB", BANDS_500, slice(2, 7))):  # fmt: skip
                self.refsb(data, ds_name, quant[sl], uncert[sl], rad_scales=rad_scales[sl], ref_scales=ref_scales[sl],
                           bands=bands, coords=coords)  # fmt: skip
            self.write_1km_refsb(data, rng, land=land, cloud=cloud, cos_sza=cos_sza, bad=bad, coords=coords)
            self.write_hires(grp, plan, quant, rng, rad_scales=rad_scales, ref_scales=ref_scales)

        for name, values in angles.items():
            w.gzip(grp, name, values, attrs={"units": "degree"})

    def refsb_scales(
        self, rng: np.random.Generator, full_scale: NDArray[np.float64], e0_pi: NDArray[np.float64]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """radiance_scales = reflectance_scales * E0/(pi d^2); slightly different per granule."""
        ref = full_scale / MAX_DN * (1.0 + rng.uniform(-5e-4, 5e-4, size=len(full_scale)))
        return (ref * e0_pi / self.file.d2).astype(np.float32), ref.astype(np.float32)

    def uncert(self, rho: F32, quant: F32) -> F32:
        index = np.clip(np.rint(np.float32(9.0) - np.float32(8.0) * np.sqrt(np.clip(rho, 0, 1))), 0, 15)
        out = (UNCERT_SPECIFIED * np.exp(index / UNCERT_SCALING)).astype(np.float32)
        out[quant == FILL] = FILL
        return out

    def refsb(
        self,
        parent: h5py.Group,
        name: str,
        radiance: F32 | None,
        uncert: F32 | None,
        *,
        rad_scales: NDArray[np.float32],
        ref_scales: NDArray[np.float32],
        bands: str,
        coords: str,
        reuse: str | None = None,
    ) -> None:
        n = len(rad_scales)
        zeros = np.zeros(n, dtype=np.float32)
        attrs = {
            "units": RADIANCE_UNITS,
            "_FillValue": FILL,
            "valid_min": np.float32(0.0),
            "valid_max": np.float32(900.0),
            "coordinates": coords,
            "band_names": bands,
            "radiance_scales": rad_scales,
            "radiance_offsets": zeros,
            "reflectance_scales": ref_scales,
            "reflectance_offsets": zeros,
        }
        shape = radiance.shape if radiance is not None else None
        chunk = (1, *shape[1:]) if shape is not None else None
        w = self.file.writer
        w.gzip(parent, name, radiance, chunks=chunk, attrs=attrs, reuse=reuse and f"{reuse}/{name}")
        uattrs = {"units": "percent", "_FillValue": FILL, "coordinates": coords}
        w.gzip(parent, f"{name}_Uncert_Indexes", uncert, chunks=chunk, attrs=uattrs,
               reuse=reuse and f"{reuse}/{name}_Uncert_Indexes")  # fmt: skip

    def write_emissive(
        self, data: h5py.Group, rng: np.random.Generator, *, temp: F32, bad: NDArray[np.bool_], coords: str
    ) -> None:
        w = self.file.writer
        key = "modis/1km/EV_1KM_Emissive"
        shape = temp.shape
        chunk = (1, *shape)
        attrs = {
            "units": RADIANCE_UNITS,
            "_FillValue": FILL,
            "valid_min": np.float32(0.0),
            "valid_max": np.float32(100.0),
            "coordinates": coords,
            "band_names": BANDS_1KM_EMISSIVE,
            "radiance_scales": self.emissive_scales(),
            "radiance_offsets": np.zeros(16, dtype=np.float32),
        }
        uattrs = {"units": "percent", "_FillValue": FILL, "coordinates": coords}
        if self.file.reuses_template(key):
            w.gzip(data, "EV_1KM_Emissive", None, chunk, attrs=attrs, reuse=key)
            w.gzip(data, "EV_1KM_Emissive_Uncert_Indexes", None, chunk, attrs=uattrs, reuse=key + "_U")
            return
        reuse = key if self.file.preset.reuse_unread else None
        radiance = fields.planck_radiance(fields.MODIS_EMISSIVE_UM, temp)
        noise = fields.dn_noise(rng, shape, 1.5)
        quant, _ = fields.quantise(radiance, self.emissive_scales(), noise[None], MAX_DN)
        quant[:, bad] = FILL
        uncert = np.where(quant > 0.5 * quant.mean(axis=(1, 2), keepdims=True), np.float32(0.9), np.float32(2.4))
        uncert = uncert.astype(np.float32)
        uncert[:, bad] = FILL
        w.gzip(data, "EV_1KM_Emissive", quant, chunk, attrs=attrs, reuse=reuse)
        w.gzip(data, "EV_1KM_Emissive_Uncert_Indexes", uncert, chunk, attrs=uattrs, reuse=reuse and key + "_U")

    def emissive_scales(self) -> NDArray[np.float32]:
        ceiling = fields.planck_radiance(fields.MODIS_EMISSIVE_UM, np.array([345.0], dtype=np.float32))[:, 0]
        return (ceiling / MAX_DN).astype(np.float32)

    def write_1km_refsb(
        self, data: h5py.Group, rng: np.random.Generator, *, land: F32, cloud: F32, cos_sza: F32,
        bad: NDArray[np.bool_], coords: str,
    ) -> None:  # fmt: skip
        full_scale = np.full(15, 1.2)
        rad_scales, ref_scales = self.refsb_scales(rng, full_scale, fields.MODIS_E0_PI_1KM_REFSB)
        key = "modis/1km"
        if self.file.reuses_template(f"{key}/EV_1KM_RefSB"):
            self.refsb(data, "EV_1KM_RefSB", None, None, rad_scales=rad_scales, ref_scales=ref_scales,
                       bands=BANDS_1KM_REFSB, coords=coords, reuse=key)  # fmt: skip
            return
        rho = fields.mix_reflectance(land, cloud, RHO_1KM_REFSB)
        e0 = (fields.MODIS_E0_PI_1KM_REFSB / self.file.d2).astype(np.float32)[:, None, None]
        noise = fields.dn_noise(rng, land.shape, 2.0)
        quant, saturated = fields.quantise(rho * cos_sza[None] * e0, rad_scales, noise[None], MAX_DN)
        quant[saturated] = SATURATED
        quant[:, bad] = FILL
        self.refsb(data, "EV_1KM_RefSB", quant, self.uncert(rho, quant), rad_scales=rad_scales, ref_scales=ref_scales,
                   bands=BANDS_1KM_REFSB, coords=coords,
                   reuse=key if self.file.preset.reuse_unread else None)  # fmt: skip

    def write_hires(
        self, grp: h5py.Group, plan: GranulePlan, quant: F32, rng: np.random.Generator, *,
        rad_scales: NDArray[np.float32], ref_scales: NDArray[np.float32],
    ) -> None:  # fmt: skip
        """`_500m` and `_250m`: interpolated geolocation (contiguous) and finer radiances (gzip 1)."""
        w = self.file.writer
        for factor, group_name, datasets in (
            (2, "_500m", (("EV_250_Aggr500_RefSB", BANDS_250, slice(0, 2)), ("EV_500_RefSB", BANDS_500, slice(2, 7)))),
            (4, "_250m", (("EV_250_RefSB", BANDS_250, slice(0, 2)),)),
        ):
            sub = grp.create_group(group_name)
            geo = sub.create_group("Geolocation")
            w.plain(geo, "Latitude", upsample(plan.lat, factor), {"units": "degrees_north"})
            w.plain(geo, "Longitude", upsample(plan.lon, factor, wrap=True), {"units": "degrees_east"})
            data = sub.create_group("Data_Fields")
            coords = f"/MODIS/{plan.name}/{group_name}/Geolocation/Longitude " \
                     f"/MODIS/{plan.name}/{group_name}/Geolocation/Latitude"  # fmt: skip
            for name, bands, sl in datasets:
                key = f"modis/{group_name}"
                if self.file.reuses_template(f"{key}/{name}"):
                    self.refsb(data, name, None, None, rad_scales=rad_scales[sl], ref_scales=ref_scales[sl],
                               bands=bands, coords=coords, reuse=key)  # fmt: skip
                    continue
                fine = self.finer(quant[sl], rad_scales[sl], factor, rng)
                uncert = np.where(fine > 0, UNCERT_SPECIFIED * np.exp(np.float32(2.0) / UNCERT_SCALING), FILL)
                self.refsb(data, name, fine, uncert.astype(np.float32), rad_scales=rad_scales[sl],
                           ref_scales=ref_scales[sl], bands=bands, coords=coords,
                           reuse=key if self.file.preset.reuse_unread else None)  # fmt: skip

    def finer(self, coarse: F32, scales: NDArray[np.float32], factor: int, rng: np.random.Generator) -> F32:
        """Finer-resolution radiance: the 1 km field repeated, with sub-pixel texture, re-quantised."""
        up = np.repeat(np.repeat(coarse, factor, axis=1), factor, axis=2)
        special = up < 0
        noise = fields.dn_noise(rng, up.shape[1:], 6.0)
        out, _ = fields.quantise(np.where(special, 0, up), scales, noise[None], MAX_DN)
        out[special] = up[special]
        return out


def upsample(a: F32, factor: int, wrap: bool = False) -> F32:
    """Bilinear interpolation of a 2-D field onto a `factor`-times finer grid (pixel centres aligned)."""
    out = a.astype(np.float32)
    for axis in (0, 1):
        n = out.shape[axis]
        pos = (np.arange(n * factor) + 0.5) / factor - 0.5
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 2)
        frac = (pos - i0).astype(np.float32)
        lo_v = np.take(out, i0, axis=axis)
        diff = np.take(out, i0 + 1, axis=axis) - lo_v
        if wrap:
            diff = (diff + np.float32(180.0)) % np.float32(360.0) - np.float32(180.0)
        shape = [1, 1]
        shape[axis] = -1
        out = lo_v + frac.reshape(shape) * diff
    if wrap:
        out = (out + np.float32(180.0)) % np.float32(360.0) - np.float32(180.0)
    return out.astype(np.float32)


def _centi(a: F64) -> F32:
    """MOD03 angles are int16 hundredths of a degree."""
    return (np.rint(np.asarray(a) * 100.0) / 100.0).astype(np.float32)
