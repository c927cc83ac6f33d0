"""Synthetic orbit files follow docs/basicfusion-layout.md, checked with h5py as the radiance job reads them."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest

from datacarousel import naming
from datacarousel.errors import BadFileName
from workbench.synthetic import DEFECTS, PRESETS, generate_orbit

ORBIT = 85079  # path 22, 2015-12-16 16:09:10 - 17:48:03 (spec section 6)
T0 = datetime(2015, 12, 16, 16, 9, 10, tzinfo=UTC)
T1 = datetime(2015, 12, 16, 17, 48, 3, tzinfo=UTC)
GRANULE_RE = re.compile(r"^granule_(\d{4})(\d{3})_(\d{2})(\d{2})$")
BCT_RE = re.compile(rb"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
REFSB = ("EV_250_Aggr1km_RefSB", "EV_500_Aggr1km_RefSB", "EV_1KM_RefSB")


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(ORBIT, tmp_path_factory.mktemp("tiny"), preset="tiny", seed=0)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(ORBIT, tmp_path_factory.mktemp("small"), preset="small", seed=0)


@pytest.fixture(params=["tiny", "small"])
def orbit_file(request: pytest.FixtureRequest, tiny_file: Path, small_file: Path) -> Path:
    return tiny_file if request.param == "tiny" else small_file


def granule_start(name: str) -> datetime:
    m = GRANULE_RE.match(name)
    assert m, name
    year, doy, hh, mm = (int(x) for x in m.groups())
    return datetime(year, 1, 1, hh, mm, tzinfo=UTC) + timedelta(days=doy - 1)


def is_descending(lat: np.ndarray) -> bool:
    """docs/compute-radiance.md section 2; granules of at most 1000 rows (shrunk presets) allow half their rows."""
    failing = sum(1 for i in range(1, lat.shape[0]) if not np.all(lat[i] < lat[i - 1]))
    rows = lat.shape[0]
    return failing < (1000 if rows > 1000 else rows // 2)


def jd(when: datetime) -> float:
    return when.timestamp() / 86400.0 + 2440587.5


def parse_bct(value: bytes) -> datetime | None:
    text = value.decode()
    if text.startswith("0000"):
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def descending_window(h5: h5py.File) -> tuple[datetime, datetime]:
    names = sorted(h5["MODIS"])
    desc = [n for n in names if is_descending(h5["MODIS"][n]["_1KM/Geolocation/Latitude"][...])]
    return granule_start(desc[0]), granule_start(desc[-1]) + timedelta(minutes=5)


# ---------------------------------------------------------------- names, root


def test_file_has_the_real_name_and_root_attributes(tiny_file: Path) -> None:
    assert tiny_file.name == "TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5"
    assert naming.BasicFusionName.parse(tiny_file.name).orbit == ORBIT
    with h5py.File(tiny_file) as h5:
        assert set(h5) >= {"MODIS", "MISR", "CERES", "ASTER", "MOPITT"}
        attrs = {k: h5.attrs[k] for k in h5.attrs}
        assert attrs["title"] == b"TERRA L1B Radiance Basic Fusion Product"
        assert attrs["product_version"] == b"V001"
        assert attrs["sensors"] == b"MODIS,MISR,ASTER,CERES,MOPITT"
        assert attrs["InputGranules"].endswith(b",")
        assert b"MOD021KM.A2015350.1610" in attrs["InputGranules"]
        assert attrs["synthetic_preset"] == b"tiny"
        shrink = json.loads(attrs["synthetic_shrink_factors"])
        assert shrink["modis_cols"] == pytest.approx(68 / 1354)
        assert attrs["synthetic_defects"] == b""
        for key in ("title", "InputGranules", "platform"):  # fixed-length strings, as the C writer stores them
            assert h5.attrs.get_id(key).get_type().is_variable_str() is False
        assert "Band_250M_MODIS_SWATH_Type_L1B" in h5 and h5["Band_250M_MODIS_SWATH_Type_L1B"][...].tolist() == [1, 2]


# ------------------------------------------------------------------- MODIS


def test_modis_has_one_granule_per_five_minutes_of_the_orbit(orbit_file: Path) -> None:
    with h5py.File(orbit_file) as h5:
        names = list(h5["MODIS"])
        starts = [granule_start(n) for n in names]
        assert 19 <= len(names) <= 20
        assert starts == sorted(starts)
        assert all(T0 <= s <= T1 and s.minute % 5 == 0 and s.second == 0 for s in starts)
        assert starts[0] - T0 < timedelta(minutes=5) and T1 - starts[-1] < timedelta(minutes=5)
        assert names[0] == "granule_2015350_1610" and names[-1] == "granule_2015350_1745"
        for name in names:
            assert h5["MODIS"][name].attrs["GranuleTime"] == name[len("granule_") :].replace("_", ".").encode()


def test_day_and_night_granules_differ_as_in_the_real_files(orbit_file: Path) -> None:
    with h5py.File(orbit_file) as h5:
        day, night = [], []
        for name, g in h5["MODIS"].items():
            fields = set(g["_1KM/Data_Fields"])
            assert {"EV_1KM_Emissive", "EV_1KM_Emissive_Uncert_Indexes"} <= fields
            assert {"SolarZenith", "SolarAzimuth", "SensorZenith", "SensorAzimuth", "_1KM"} <= set(g)
            if "EV_250_Aggr1km_RefSB" in fields:
                day.append(name)
                assert {f"{n}{s}" for n in REFSB for s in ("", "_Uncert_Indexes")} <= fields
                assert {"_500m", "_250m"} <= set(g)
                assert set(g["_500m/Data_Fields"]) == {"EV_250_Aggr500_RefSB", "EV_250_Aggr500_RefSB_Uncert_Indexes",
                                                       "EV_500_RefSB", "EV_500_RefSB_Uncert_Indexes"}  # fmt: skip
                assert set(g["_250m/Data_Fields"]) == {"EV_250_RefSB", "EV_250_RefSB_Uncert_Indexes"}
                assert {"GranuleName_HKM", "GranuleName_QKM"} <= set(g.attrs)
            else:
                night.append(name)
                assert not fields & {f"{n}{s}" for n in REFSB for s in ("", "_Uncert_Indexes")}
                assert not {"_500m", "_250m"} & set(g)
                assert "GranuleName_HKM" not in g.attrs
        assert 9 <= len(day) <= 11 and len(night) >= 8


def test_the_descending_test_picks_exactly_the_day_granules(orbit_file: Path) -> None:
    with h5py.File(orbit_file) as h5:
        for g in h5["MODIS"].values():
            lat = g["_1KM/Geolocation/Latitude"][...]
            assert is_descending(lat) == ("EV_250_Aggr1km_RefSB" in g["_1KM/Data_Fields"]), g.name
        t0, t1 = descending_window(h5)
        # Spec section 6: O85079's descending granules are about 16:35 ... 17:20.
        assert abs(t0 - datetime(2015, 12, 16, 16, 35, tzinfo=UTC)) <= timedelta(minutes=5)
        assert abs(t1 - datetime(2015, 12, 16, 17, 25, tzinfo=UTC)) <= timedelta(minutes=5)


def test_modis_geometry_is_the_daylit_southbound_pass(small_file: Path) -> None:
    with h5py.File(small_file) as h5:
        day = [g for g in h5["MODIS"].values() if "EV_250_Aggr1km_RefSB" in g["_1KM/Data_Fields"]]
        for g in day:
            lat = g["_1KM/Geolocation/Latitude"][...]
            lon = g["_1KM/Geolocation/Longitude"][...]
            c = lat.shape[1] // 2
            steps = np.diff(lat[:, c])
            assert np.mean(steps < 0) > 0.5, "latitude decreases down the rows of day granules"
            if np.abs(lat).max() < 80:  # away from the turning points (81.8 deg): everywhere
                assert np.all(steps < 0)
            assert lon.min() >= -180 and lon.max() <= 180
            sza, vza = g["SolarZenith"][...], g["SensorZenith"][...]
            # Columns: sensor zenith 0 at the swath centre, ~65 at the edges, < 18 only near nadir.
            assert vza[:, c].max() < 1.0 and 60 < vza[:, 0].min() < 70 and 60 < vza[:, -1].min() < 70
            near = np.nonzero(vza[0] < 18)[0]
            assert 0.2 < len(near) / lat.shape[1] < 0.4 and np.all(np.abs(near - c) < 0.2 * lat.shape[1])
            # cos SZA = sin(lat) sin(decl) + cos(lat) cos(decl) cos(h): check against the 10:30 pass.
            decl = np.radians(-23.3)
            when = granule_start(g.name.rsplit("/", 1)[-1]) + timedelta(minutes=2.5)
            hour_angle = np.radians(15 * (when.hour + when.minute / 60 - 12) + lon[:, c])
            phi = np.radians(lat[:, c])
            expected = np.degrees(
                np.arccos(np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle))
            )
            assert np.allclose(sza[:, c], expected, atol=2.0)
        # Local solar time at the equator crossing is about 10:30.
        equator = [
            g for g in day if g["_1KM/Geolocation/Latitude"][...].min() < 0 < g["_1KM/Geolocation/Latitude"][...].max()
        ]
        g = equator[0]
        lat, lon = g["_1KM/Geolocation/Latitude"][...], g["_1KM/Geolocation/Longitude"][...]
        row = int(np.argmin(np.abs(lat[:, lat.shape[1] // 2])))
        when = granule_start(g.name.rsplit("/", 1)[-1]) + timedelta(seconds=300 * row / lat.shape[0])
        lst = (when.hour + when.minute / 60 + lon[row, lat.shape[1] // 2] / 15) % 24
        assert 10.2 < lst < 10.8


def test_modis_radiances_are_physical_with_fill_and_saturation(orbit_file: Path) -> None:
    e0_pi = [513, 315, 657, 597, 146, 74, 29]  # spec section 8
    d2 = (1 - 0.01672 * np.cos(np.radians(0.9856 * (350 - 4)))) ** 2
    with h5py.File(orbit_file) as h5:
        seen_fill = seen_sat = 0
        sunlit_b1 = []
        for g in h5["MODIS"].values():
            if "EV_250_Aggr1km_RefSB" not in g["_1KM/Data_Fields"]:
                continue
            bands = []
            for name, first in (("EV_250_Aggr1km_RefSB", 0), ("EV_500_Aggr1km_RefSB", 2)):
                d = g["_1KM/Data_Fields"][name]
                rad_s, ref_s = d.attrs["radiance_scales"], d.attrs["reflectance_scales"]
                assert rad_s.dtype == np.float32 and ref_s.dtype == np.float32 and len(rad_s) == d.shape[0]
                assert np.all((32767 * ref_s > 0.95) & (32767 * ref_s < 1.8))
                assert np.allclose(rad_s / ref_s, np.array(e0_pi[first : first + d.shape[0]]) / d2, rtol=0.01)
                assert d.attrs["_FillValue"] == np.float32(-999.0) and d.attrs["valid_max"] == 900.0
                assert d.attrs["units"] == b"Watts/m^2/micrometer/steradian"
                v = d[...]
                bands.extend(v)
                valid = v[v >= 0]
                assert valid.max() <= 32767 * rad_s.max() * 1.0001
                special = set(np.unique(v[v < 0]).tolist())
                assert special <= {-999.0, -992.0}
                seen_fill += int(np.sum(v == -999.0))
                seen_sat += int(np.sum(v == -992.0))
            b1, sza = bands[0], g["SolarZenith"][...]
            sunlit_b1.append(b1[(sza < 70) & (b1 > 0)])
            assert np.all(b1[sza > 95] < 5), "no sunlight, no reflected radiance"
        assert seen_fill > 0 and seen_sat > 0
        # Band 1: ocean 10-30, land 20-100, cloud 200-600 (spec section 8).
        b1 = np.concatenate(sunlit_b1)
        assert 10 < np.percentile(b1, 10) < 60 and 30 < np.median(b1) < 300 and 200 < np.percentile(b1, 99) < 800


def test_granule_angles_and_latlon_fill_rules(tiny_file: Path) -> None:
    with h5py.File(tiny_file) as h5:
        for g in h5["MODIS"].values():
            for name in ("SolarZenith", "SolarAzimuth", "SensorZenith", "SensorAzimuth"):
                d = g[name]
                assert d.attrs["units"] == b"degree" and list(d.attrs) == ["units"]
                v = d[...]
                assert np.allclose(v * 100, np.round(v * 100), atol=1e-2)  # int16 hundredths of a degree
            assert g["SolarZenith"][...].min() >= 0 and g["SolarZenith"][...].max() <= 180
            assert g["_1KM/Geolocation/Latitude"].attrs["units"] == b"degrees_north"
            assert "_FillValue" not in g["_1KM/Geolocation/Latitude"].attrs


# -------------------------------------------------------------------- MISR


def test_misr_block_centre_times_follow_the_model_and_the_modis_window(orbit_file: Path) -> None:
    with h5py.File(orbit_file) as h5:
        d = h5["MISR/AN/BlockCenterTime"]
        assert d.shape == (180,) and d.dtype == np.dtype("S28")
        assert d.id.get_type().get_strpad() == h5py.h5t.STR_NULLTERM
        assert d.attrs["_FillValue"] == b"0000-00-00T00:00:00.000000Z"
        values = d[...]
        assert all(BCT_RE.match(v) for v in values) and all(len(v) == 27 for v in values)
        parsed = [parse_bct(v) for v in values]
        times = {i: t for i, t in enumerate(parsed) if t is not None}
        daylit = sorted(times)
        assert daylit == list(range(daylit[0], daylit[-1] + 1)), "one contiguous run of daylit blocks"
        assert 20 <= daylit[0] + 1 <= 45 and 140 <= daylit[-1] + 1 <= 170 and daylit[0] > 0
        for b in daylit:
            expected = T0 + timedelta(seconds=1105 + 20.7 * b)
            assert abs(times[b] - expected) < timedelta(seconds=1)
        t0, t1 = descending_window(h5)
        assert all(t0 <= times[b] <= t1 for b in daylit)
        # Forward cameras see a block before the nadir camera, aft cameras after it.
        df = parse_bct(h5["MISR/DF/BlockCenterTime"][daylit[0]])
        da = parse_bct(h5["MISR/DA/BlockCenterTime"][daylit[0]])
        assert df is not None and da is not None and df < times[daylit[0]] < da


def test_misr_shapes_dtypes_and_values(orbit_file: Path) -> None:
    preset = PRESETS["tiny" if "tiny" in str(orbit_file.parent) else "small"]
    lines, samples = preset.misr_lines, preset.misr_samples
    with h5py.File(orbit_file) as h5:
        misr = h5["MISR"]
        assert set(misr) >= {"AA", "AF", "AN", "BA", "BF", "CA", "CF", "DA", "DF", "Geolocation", "HRGeolocation",
                             "Solar_Geometry"}  # fmt: skip
        assert misr.attrs["GranuleTime"] == b"085079"
        assert misr["Geolocation/GeoLatitude"].shape == (180, lines, samples)
        assert misr["HRGeolocation/GeoLatitude"].shape == (180, 4 * lines, 4 * samples)
        assert "units" not in misr["HRGeolocation/GeoLongitude"].attrs  # the C code's omission
        for cam in ("AN", "AA", "DF"):
            for band in ("Blue", "Green", "Red", "NIR"):
                d = misr[f"{cam}/Data_Fields/{band}_Radiance"]
                high = cam == "AN" or band == "Red"
                assert d.shape == ((180, 4 * lines, 4 * samples) if high else (180, lines, samples)), d.name
                assert d.dtype == np.float32 and d.attrs["valid_max"] == 800.0
        geom = [
            misr["Solar_Geometry/SolarZenith"],
            misr["AN/Sensor_Geometry/AnZenith"],
            misr["DF/Sensor_Geometry/DfZenith"],
        ]
        for d in geom:
            assert d.shape == (180, *preset.misr_geometry) and d.dtype == np.float64
            assert d.attrs["_Fillvalue"] == -555.0 and np.any(d[...] == -555.0)
        for name in ("BlueConversionFactor", "GreenConversionFactor", "RedConversionFactor", "NIRConversionFactor"):
            assert misr[f"AN/BRF_Conversion_Factors/{name}"].dtype == np.float32
        times = [parse_bct(v) for v in misr["AN/BlockCenterTime"][...]]
        daylit = [i for i, t in enumerate(times) if t is not None]
        red = misr["AN/Data_Fields/Red_Radiance"][...]
        night = [i for i in range(180) if i not in daylit]
        assert np.all(red[night] == -999.0)
        day_red = red[daylit]
        valid = day_red[day_red > 0]
        assert valid.size > 0.4 * day_red.size and valid.max() < 800
        assert set(np.unique(day_red[day_red <= 0]).tolist()) <= {-999.0, 0.0}
        zen = misr["AN/Sensor_Geometry/AnZenith"][daylit[len(daylit) // 2]]
        inside = zen[zen >= 0]
        assert inside.min() < 8 and inside.max() < 18
        sza = misr["Solar_Geometry/SolarZenith"][daylit[len(daylit) // 2]]
        assert sza.min() >= 0 and sza.max() < 89
        assert misr["DF/Sensor_Geometry/DfZenith"][daylit[0]].max() > 65


# ------------------------------------------------------------------- CERES


def test_ceres_granules_hold_fm1_and_fm2_within_the_orbit(orbit_file: Path) -> None:
    with h5py.File(orbit_file) as h5:
        names = list(h5["CERES"])
        assert names == ["granule_2015121616", "granule_2015121617"]
        all_t, all_vza = [], []
        for name in names:
            g = h5["CERES"][name]
            assert set(g) == {"FM1", "FM2"} and g.attrs["GranuleTime"] == name[-10:].encode()
            fm1 = g["FM1"]
            assert set(fm1) == {"Radiances", "Time_and_Position", "Viewing_Angles"}
            t = fm1["Time_and_Position/Time_of_observation"][...]
            assert t.dtype == np.float64 and np.all(np.diff(t) >= 0)
            assert fm1["Radiances/Radiance_Mode_Flags"].dtype == np.int32
            n = len(t)
            paths = ("Time_and_Position/Latitude", "Time_and_Position/Longitude", "Radiances/SW_Radiance",
                     "Radiances/LW_Radiance", "Viewing_Angles/Solar_Zenith",
                     "Viewing_Angles/Viewing_Zenith")  # fmt: skip
            for path in paths:
                assert fm1[path].shape == (n,) and fm1[path].dtype == np.float32
            assert fm1["Radiances/SW_Radiance"].attrs["_FillValue"] == np.float32(3.4028235e38)
            all_t.append(t)
            all_vza.append(fm1["Viewing_Angles/Viewing_Zenith"][...])
            flags = fm1["Radiances/Radiance_Mode_Flags"][...]
            assert np.mean(flags == 0) > 0.9 and np.any(g["FM2/Radiances/Radiance_Mode_Flags"][...] != 0)
        t = np.concatenate(all_t)
        assert jd(T0) <= t.min() and t.max() <= jd(T1)
        assert t.max() - t.min() > 0.9 * (jd(T1) - jd(T0)), "footprints span the orbit"
        vza = np.concatenate(all_vza)
        vza = vza[vza < 1e30]
        assert 0.1 < np.mean(vza < 18) < 0.5 and vza.max() > 60
        sw = np.concatenate([h5["CERES"][n]["FM1/Radiances/SW_Radiance"][...] for n in names])
        assert np.any(sw == np.float32(3.4028235e38)) or len(sw) < 1000
        valid = sw[sw < 1e30]
        assert valid.max() < 500 and np.percentile(valid, 90) > 100


# ------------------------------------------------------- storage and shapes


def test_every_path_the_radiance_job_reads_has_the_real_storage(small_file: Path) -> None:
    """Spec section 9 table, with the storage of section 1."""
    p = PRESETS["small"]
    r, c = p.modis_rows, p.modis_cols
    hl, hs = p.misr_hr
    with h5py.File(small_file) as h5:
        day = next(g for g in h5["MODIS"].values() if "EV_250_Aggr1km_RefSB" in g["_1KM/Data_Fields"])
        night = next(g for g in h5["MODIS"].values() if "EV_250_Aggr1km_RefSB" not in g["_1KM/Data_Fields"])
        checks: list[tuple[h5py.Dataset, tuple[int, ...], str, tuple[int, ...] | None]] = [
            (day["_1KM/Geolocation/Latitude"], (r, c), "float32", (r, c)),
            (night["_1KM/Geolocation/Longitude"], (r, c), "float32", (r, c)),
            (day["SolarZenith"], (r, c), "float32", (r, c)),
            (day["SensorZenith"], (r, c), "float32", (r, c)),
            (day["_1KM/Data_Fields/EV_250_Aggr1km_RefSB"], (2, r, c), "float32", (1, r, c)),
            (day["_1KM/Data_Fields/EV_500_Aggr1km_RefSB"], (5, r, c), "float32", (1, r, c)),
            (day["_1KM/Data_Fields/EV_1KM_RefSB"], (15, r, c), "float32", (1, r, c)),
            (day["_1KM/Data_Fields/EV_1KM_Emissive"], (16, r, c), "float32", (1, r, c)),
            (day["_500m/Data_Fields/EV_500_RefSB"], (5, 2 * r, 2 * c), "float32", (1, 2 * r, 2 * c)),
            (day["_250m/Data_Fields/EV_250_RefSB"], (2, 4 * r, 4 * c), "float32", (1, 4 * r, 4 * c)),
            (h5["MISR/Geolocation/GeoLatitude"], (180, hl // 4, hs // 4), "float32", (180, hl // 4, hs // 4)),
            (h5["MISR/HRGeolocation/GeoLongitude"], (180, hl, hs), "float32", (180, hl, hs)),
            (h5["MISR/AN/Data_Fields/Blue_Radiance"], (180, hl, hs), "float32", (180, hl, hs)),
            (h5["MISR/AN/Data_Fields/NIR_Radiance"], (180, hl, hs), "float32", (180, hl, hs)),
            (h5["MISR/AF/Data_Fields/Green_Radiance"], (180, hl // 4, hs // 4), "float32", (180, hl // 4, hs // 4)),
        ]
        for d, shape, dtype, chunks in checks:
            assert d.shape == shape and d.dtype == np.dtype(dtype), d.name
            assert d.chunks == chunks, d.name
            assert d.compression == "gzip" and d.compression_opts == 1 and not d.shuffle, d.name
        contiguous = [
            h5["MISR/Solar_Geometry/SolarZenith"],
            h5["MISR/AN/Sensor_Geometry/AnZenith"],
            h5["MISR/AN/BRF_Conversion_Factors/RedConversionFactor"],
            h5["MISR/AN/BlockCenterTime"],
            day["_500m/Geolocation/Latitude"],
            day["_250m/Geolocation/Longitude"],
            h5["MOPITT"][next(iter(h5["MOPITT"]))]["Data_Fields/MOPITTRadiances"],
        ]
        for ceres in h5["CERES"].values():
            for fm in ceres.values():
                fm.visititems(lambda _n, o: contiguous.append(o) if isinstance(o, h5py.Dataset) else None)
        for d in contiguous:
            assert d.chunks is None and d.compression is None, d.name
        assert day["_500m/Geolocation/Latitude"].shape == (2 * r, 2 * c)
        assert day["_250m/Geolocation/Latitude"].shape == (4 * r, 4 * c)


def dataset_tree(path: Path) -> set[str]:
    names: set[str] = set()
    with h5py.File(path) as h5:
        h5.visit(lambda n: names.add(re.sub(r"granule_\d+(_\d+)?", "granule", n)))
    return names


def test_every_preset_keeps_the_whole_tree(tiny_file: Path, small_file: Path) -> None:
    tree = dataset_tree(tiny_file)
    assert tree == dataset_tree(small_file)
    for required in ("MODIS/granule/_1KM/Geolocation/Latitude", "MISR/AN/Data_Fields/Red_Radiance",
                     "MISR/CF/Sensor_Geometry/CfScatter", "CERES/granule/FM2/Radiances/WN_Filtered_Radiance",
                     "ASTER/granule/TIR/ImageData14", "MOPITT/granule/Geolocation/Time",
                     "MODIS/granule/_250m/Data_Fields/EV_250_RefSB_Uncert_Indexes"):  # fmt: skip
        assert required in tree


def test_radiances_compress_like_the_real_files(small_file: Path) -> None:
    """Real files shrink to about a third with gzip-1: radiance datasets must not be noise (ratio 1) or flat (~0)."""
    stored = raw = 0
    with h5py.File(small_file) as h5:

        def add(_name: str, obj: object) -> None:
            nonlocal stored, raw
            if not isinstance(obj, h5py.Dataset):
                return
            if obj.name.endswith(("_RefSB", "_Emissive", "_Radiance")) and obj.compression == "gzip":
                stored += obj.id.get_storage_size()
                raw += obj.size * obj.dtype.itemsize

        h5.visititems(add)
    assert raw > 10_000_000
    assert 0.2 < stored / raw < 0.6
    whole = small_file.stat().st_size
    with h5py.File(small_file) as h5:
        total_raw = 0

        def add_all(_name: str, obj: object) -> None:
            nonlocal total_raw
            if isinstance(obj, h5py.Dataset):
                total_raw += obj.size * obj.dtype.itemsize

        h5.visititems(add_all)
    assert 0.2 < whole / total_raw < 0.6


# ------------------------------------------------------------- determinism


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_orbit_and_seed_give_identical_bytes(tmp_path: Path, tiny_file: Path) -> None:
    again = generate_orbit(ORBIT, tmp_path / "a", preset="tiny", seed=0)
    assert sha256(again) == sha256(tiny_file)
    other_seed = generate_orbit(ORBIT, tmp_path / "b", preset="tiny", seed=1)
    assert sha256(other_seed) != sha256(tiny_file)
    other_orbit = generate_orbit(ORBIT + 1, tmp_path / "c", preset="tiny", seed=0)
    assert other_orbit.name == naming.BasicFusionName.for_orbit(ORBIT + 1).file_name


@pytest.mark.parametrize("orbit", [1000, 40110, 66274, 85302])
def test_other_orbits_have_their_own_times_and_a_daylit_pass(tmp_path: Path, orbit: int) -> None:
    path = generate_orbit(orbit, tmp_path, preset="tiny")
    start = naming.orbit_start(orbit)
    assert path.name == naming.BasicFusionName.for_orbit(orbit).file_name
    with h5py.File(path) as h5:
        assert all(start <= granule_start(n) <= naming.orbit_end(orbit) for n in h5["MODIS"])
        days = [g for g in h5["MODIS"].values() if "EV_250_Aggr1km_RefSB" in g["_1KM/Data_Fields"]]
        assert 9 <= len(days) <= 11
        for g in h5["MODIS"].values():
            assert is_descending(g["_1KM/Geolocation/Latitude"][...]) == (g in days)
        t0, t1 = descending_window(h5)
        times = [parse_bct(v) for v in h5["MISR/AN/BlockCenterTime"][...]]
        assert times[0] is None and all(t0 <= t <= t1 for t in times if t is not None)
        assert sum(t is not None for t in times) > 60


def test_unknown_preset_or_defect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="preset"):
        generate_orbit(ORBIT, tmp_path, preset="huge")
    with pytest.raises(ValueError, match="defect"):
        generate_orbit(ORBIT, tmp_path, preset="tiny", defects=["gremlins"])
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- defects


def generate_defect(tmp_path: Path, defect: str) -> Path:
    return generate_orbit(ORBIT, tmp_path, preset="tiny", defects=[defect])


def recorded_defects(h5: h5py.File) -> list[str]:
    return h5.attrs["synthetic_defects"].decode().split(",")


def test_defect_truncated(tmp_path: Path, tiny_file: Path) -> None:
    path = generate_defect(tmp_path, "truncated")
    assert path.name == tiny_file.name
    assert 0 < path.stat().st_size < tiny_file.stat().st_size * 0.6
    with pytest.raises(OSError), h5py.File(path) as h5:
        h5.visititems(lambda _n, o: o[...] if isinstance(o, h5py.Dataset) else None)


def test_defect_bad_name(tmp_path: Path) -> None:
    path = generate_defect(tmp_path, "bad_name")
    with pytest.raises(BadFileName):
        naming.BasicFusionName.parse(path.name)
    with h5py.File(path) as h5:
        assert recorded_defects(h5) == ["bad_name"]
        assert "MODIS" in h5


def test_defect_not_hdf5(tmp_path: Path, tiny_file: Path) -> None:
    path = generate_defect(tmp_path, "not_hdf5")
    assert path.name == tiny_file.name and path.stat().st_size > 0
    assert not h5py.is_hdf5(path)


def test_defect_day_granule_without_refsb(tmp_path: Path) -> None:
    path = generate_defect(tmp_path, "day_granule_without_refsb")
    with h5py.File(path) as h5:
        assert recorded_defects(h5) == ["day_granule_without_refsb"]
        desc = [g for g in h5["MODIS"].values() if is_descending(g["_1KM/Geolocation/Latitude"][...])]
        lacking = [g for g in desc if "EV_250_Aggr1km_RefSB" not in g["_1KM/Data_Fields"]]
        assert len(lacking) == 1 and len(desc) >= 9
        assert "EV_500_Aggr1km_RefSB" not in lacking[0]["_1KM/Data_Fields"]


def test_defect_ceres_without_fm1(tmp_path: Path) -> None:
    path = generate_defect(tmp_path, "ceres_without_fm1")
    with h5py.File(path) as h5:
        assert recorded_defects(h5) == ["ceres_without_fm1"]
        missing = [n for n, g in h5["CERES"].items() if "FM1" not in g]
        assert len(missing) == 1 and "FM2" in h5["CERES"][missing[0]]


def test_defect_no_descending_granule(tmp_path: Path) -> None:
    path = generate_defect(tmp_path, "no_descending_granule")
    with h5py.File(path) as h5:
        assert recorded_defects(h5) == ["no_descending_granule"]
        granules = list(h5["MODIS"].values())
        assert granules and not any(is_descending(g["_1KM/Geolocation/Latitude"][...]) for g in granules)
        assert not any("EV_250_Aggr1km_RefSB" in g["_1KM/Data_Fields"] for g in granules)


def test_defect_latitude_minus_90(tmp_path: Path) -> None:
    path = generate_defect(tmp_path, "latitude_minus_90")
    with h5py.File(path) as h5:
        assert recorded_defects(h5) == ["latitude_minus_90"]
        t0, t1 = descending_window(h5)
        # A MODIS pixel at exactly -90 that passes every other filter of the MODIS job.
        hits = 0
        for g in h5["MODIS"].values():
            lat = g["_1KM/Geolocation/Latitude"][...]
            for r, c in zip(*np.nonzero(lat == -90.0), strict=True):
                assert is_descending(lat)
                assert 0 <= g["SolarZenith"][r, c] <= 89 and 0 <= g["SensorZenith"][r, c] < 18
                rad = g["_1KM/Data_Fields/EV_250_Aggr1km_RefSB"]
                assert 0 < rad[0, r, c] <= 32767 * rad.attrs["radiance_scales"][0]
                hits += 1
        assert hits == 1
        # A CERES FM1 footprint at exactly -90 that passes the ct-mode filters inside the window.
        found = 0
        for g in h5["CERES"].values():
            fm1 = g["FM1"]
            lat = fm1["Time_and_Position/Latitude"][...]
            for k in np.nonzero(lat == -90.0)[0]:
                t = fm1["Time_and_Position/Time_of_observation"][k]
                assert jd(t0) <= t <= jd(t1)
                assert 0 < fm1["Radiances/SW_Radiance"][k] < 1000
                assert fm1["Viewing_Angles/Viewing_Zenith"][k] < 18 and fm1["Viewing_Angles/Solar_Zenith"][k] <= 89
                assert fm1["Radiances/Radiance_Mode_Flags"][k] == 0
                found += 1
        assert found == 1


def test_defects_combine(tmp_path: Path) -> None:
    path = generate_orbit(ORBIT, tmp_path, preset="tiny", defects=["ceres_without_fm1", "latitude_minus_90"])
    with h5py.File(path) as h5:
        assert recorded_defects(h5) == ["ceres_without_fm1", "latitude_minus_90"]


def test_every_defect_is_covered() -> None:
    tested = {name[len("test_defect_") :] for name in globals() if name.startswith("test_defect_")}
    assert set(DEFECTS) == tested
