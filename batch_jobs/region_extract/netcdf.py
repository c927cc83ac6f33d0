"""One orbit's extract as a CF-1.8 NetCDF-4 file (xarray, h5netcdf engine), and back.

Layout: one group per selected instrument (`/MODIS`, `/MISR`, `/CERES`, groups being part of CF since
1.8), each a discrete sampling geometry of featureType "point": one dimension `obs` (`sample` is a
MISR variable), the coordinates `time`, `lat`, `lon` and the instrument's variables on it. An
instrument without samples has `obs` of length 0. Global attributes: the orbit, the source file, the
box, the instruments and bands, counts, and the skipped items as JSON; `extract_status` says
"no_samples_in_box" when the orbit gave no sample at all.

Values: `time` in seconds since 1970-01-01 00:00:00 UTC (float64); float data variables use
_FillValue -999.0 where a value is invalid (NaN in memory; no valid value is -999: radiances and
angles are >= 0, and CERES holds no such value); time, lat and lon are never missing and have no
_FillValue; integer variables have none either. Identical input gives identical bytes (the
file carries no timestamps), tests/batch_jobs/test_region_extract_netcdf.py checks it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from batch_jobs.region_extract.layout import CERES, MISR, MODIS, MODIS_BAND_FIELD, TIME_UNITS

if TYPE_CHECKING:
    from batch_jobs.region_extract.science import OrbitExtract, Selection

Samples = dict[str, npt.NDArray[np.generic]]
DIMENSION = "obs"
COORDINATES = ("time", "lat", "lon")
FILL = np.float32(-999.0)
COMPRESSION = {"zlib": True, "complevel": 4}
RADIANCE = {"standard_name": "toa_outgoing_radiance_per_unit_wavelength", "units": "W m-2 sr-1 um-1"}
TIME_COMMENT = {
    MODIS: "granule start (group name) plus the middle of the pixel's scan, the 300 s granule split evenly into scans",
    MISR: "BlockCenterTime of the pixel's block for the camera",
    CERES: "Time_of_observation (Julian Date) as seconds since 1970",
}
# Global attributes that must agree between orbit files before their samples are joined (reduce.py).
SELECTION_ATTRS = ("box_lat_min", "box_lat_max", "box_lon_min", "box_lon_max", "instruments", "modis_bands",
                   "misr_camera", "misr_bands", "ceres_instrument")  # fmt: skip


def variable_attrs(instrument: str, name: str, context: Mapping[str, Any]) -> dict[str, str]:
    """CF attributes of a sample variable; `context` holds `misr_camera` and `ceres_instrument`."""
    fixed: dict[str, dict[str, str]] = {
        "time": {"standard_name": "time", "long_name": "time of observation", "units": TIME_UNITS,
                 "calendar": "standard", "comment": TIME_COMMENT[instrument]},
        "lat": {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north"},
        "lon": {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east"},
        "solar_zenith": {
            "standard_name": "solar_zenith_angle",
            "long_name": "MODIS SolarZenith" if instrument == MODIS else "CERES solar zenith at surface",
            "units": "degree",
        },
        "sensor_zenith": {"standard_name": "sensor_zenith_angle", "long_name": "MODIS SensorZenith", "units": "degree"},
        "viewing_zenith": {"standard_name": "sensor_zenith_angle", "long_name": "CERES viewing zenith at surface",
                           "units": "degree"},
        "block": {"long_name": "MISR SOM block number (1-based)", "units": "1"},
        "line": {"long_name": "MISR 1.1 km line within the block (0-based, along track)", "units": "1"},
        "sample": {"long_name": "MISR 1.1 km sample within the block (0-based, across track)", "units": "1"},
        "sw_radiance": {"long_name": f"CERES {context.get('ceres_instrument')} shortwave radiance - upwards "
                        "(SW_Radiance, unfiltered)", "units": "W m-2 sr-1"},
        "lw_radiance": {"long_name": f"CERES {context.get('ceres_instrument')} longwave radiance - upwards "
                        "(LW_Radiance, unfiltered)", "units": "W m-2 sr-1"},
        "radiance_mode_flags": {"long_name": "CERES Radiance_Mode_Flags (0: normal cross-track scan)"},
        "orbit": {"long_name": "Terra orbit number of the sample", "units": "1"},
        "orbit_number": {"long_name": "Terra orbit number of each orbit file joined", "units": "1"},
        "orbit_file_name": {"long_name": "BasicFusion file name of each orbit file joined"},
    }  # fmt: skip
    if name in fixed:
        return fixed[name]
    if instrument == MODIS and name.startswith("band_"):
        band = name.removeprefix("band_").removesuffix("_radiance")
        return {**RADIANCE, "long_name": f"MODIS band {band} spectral radiance ({MODIS_BAND_FIELD[band]}, 1 km)"}
    if instrument == MISR and name.endswith("_radiance"):
        band = {"blue": "Blue", "green": "Green", "red": "Red", "nir": "NIR"}[name.removesuffix("_radiance")]
        camera = context.get("misr_camera")
        return {**RADIANCE, "long_name": f"MISR {camera} {band}_Radiance at 1.1 km (275 m: mean of the valid 4 x 4)"}
    raise ValueError(f"no attributes for {instrument} variable {name!r}")


def instrument_dataset(
    instrument: str, samples: Samples, attrs: dict[str, Any], context: Mapping[str, Any]
) -> xr.Dataset:
    """A point dataset of one instrument's samples (variables in the order of `samples`)."""
    coords: dict[str, Any] = {}
    data_vars: dict[str, Any] = {}
    for name, values in samples.items():
        entry = (DIMENSION, np.asarray(values), variable_attrs(instrument, name, context))
        (coords if name in COORDINATES else data_vars)[name] = entry
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def encoding(dataset: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Per variable: compression (not for length 0: HDF5 cannot chunk it), and the fill of float data."""
    out: dict[str, dict[str, Any]] = {}
    for name, variable in dataset.variables.items():
        entry: dict[str, Any] = dict(COMPRESSION) if variable.size else {}
        floating = np.issubdtype(variable.dtype, np.floating)
        entry["_FillValue"] = FILL.astype(variable.dtype) if floating and name not in COORDINATES else None
        out[str(name)] = entry
    return out


def time_coverage(times: npt.NDArray[np.generic]) -> dict[str, str]:
    if len(times) == 0:
        return {}
    iso = [
        datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in (np.min(times), np.max(times))
    ]
    return {"time_coverage_start": iso[0], "time_coverage_end": iso[1]}


def selection_attrs(selection: Selection) -> dict[str, Any]:
    box = selection.box
    return {
        "box_lat_min": box.lat_min, "box_lat_max": box.lat_max, "box_lon_min": box.lon_min, "box_lon_max": box.lon_max,
        "box": box.describe(), "box_crosses_antimeridian": np.int8(box.crosses_antimeridian),
        "geospatial_lat_min": box.lat_min, "geospatial_lat_max": box.lat_max,
        "geospatial_lon_min": box.lon_min, "geospatial_lon_max": box.lon_max,
        "instruments": ",".join(selection.instruments), "modis_bands": ",".join(selection.modis_bands),
        "misr_camera": selection.misr_camera, "misr_bands": ",".join(selection.misr_bands),
        "ceres_instrument": selection.ceres_instrument,
    }  # fmt: skip


def orbit_netcdf_bytes(extract: OrbitExtract, *, orbit: int, source_name: str, selection: Selection) -> bytes:
    """The orbit's file: one group per instrument, global attributes at the root (layout: module docstring)."""
    if list(extract.samples) != list(selection.instruments):
        raise ValueError(
            f"the extract holds {list(extract.samples)}, the selection names {list(selection.instruments)}"
        )
    total = extract.count()
    all_times = [s["time"] for s in extract.samples.values()]
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.8",
        "featureType": "point",
        "title": "RegionExtract: Terra BasicFusion samples in a lat/lon box",
        "source": f"Terra BasicFusion L1B orbit file {source_name}",
        "source_file": source_name,
        "orbit": np.int32(orbit),
        **selection_attrs(selection),
        "sample_count": np.int64(total),
        "extract_status": "samples" if total else "no_samples_in_box",
        **time_coverage(np.concatenate(all_times) if all_times else np.empty(0)),
        "skipped": json.dumps([asdict(s) for s in extract.skipped]),
        "comment": "Samples inside the box (bounds inclusive) with a valid time and at least one valid band; "
        "invalid values are _FillValue. Rules: batch_jobs/region_extract/instruments.py.",
    }
    tree: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs=attrs)}
    context = {"misr_camera": selection.misr_camera, "ceres_instrument": selection.ceres_instrument}
    for instrument, samples in extract.samples.items():
        group = {"instrument": instrument, "sample_count": np.int64(len(samples["time"]))}
        tree[f"/{instrument}"] = instrument_dataset(instrument, samples, group, context)
    enc = {path: encoding(ds) for path, ds in tree.items() if path != "/"}
    return bytes(xr.DataTree.from_dict(tree).to_netcdf(engine="h5netcdf", encoding=enc))


@dataclass(frozen=True)
class OrbitFile:
    """A decoded orbit file: global attributes and instrument -> variable -> values (NaN where missing)."""

    attrs: dict[str, Any]
    samples: dict[str, Samples]

    @property
    def orbit(self) -> int:
        return int(self.attrs["orbit"])

    @property
    def source_file(self) -> str:
        return str(self.attrs["source_file"])


def read_orbit_netcdf(data: bytes) -> OrbitFile:
    """Decode `orbit_netcdf_bytes` output (times stay seconds since 1970: decode_times=False)."""
    with xr.open_datatree(io.BytesIO(data), engine="h5netcdf", decode_times=False) as tree:
        attrs = {str(key): value for key, value in tree.attrs.items()}
        samples: dict[str, Samples] = {}
        for instrument in str(attrs["instruments"]).split(","):
            ds = tree[instrument].to_dataset()
            samples[instrument] = {str(name): ds[name].values for name in _file_order(ds)}
    return OrbitFile(attrs, samples)


def _file_order(ds: xr.Dataset) -> list[str]:
    """Coordinates first, in COORDINATES order, then the data variables as stored."""
    return [*COORDINATES, *(str(name) for name in ds.data_vars)]
