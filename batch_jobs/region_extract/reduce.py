"""The job's reducer: the orbit files of one job joined into one time series per instrument.

Each instrument's file is a flat CF-1.8 point dataset (dimension `obs`) with the variables of the
orbit files' group plus `orbit` (int32, the Terra orbit of each sample), and, on a dimension
`orbit_files`, the orbit number and file name of every orbit file joined. Samples are sorted by time
with a stable sort over the orbits taken in orbit-number order, so the same orbit files give the same
bytes whatever order they arrive in. The orbit files must come from one selection (box, instruments,
bands); an instrument's file exists even when no orbit gave it a sample (`obs` of length 0).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from batch_jobs.region_extract.netcdf import (
    SELECTION_ATTRS,
    OrbitFile,
    Samples,
    encoding,
    instrument_dataset,
    read_orbit_netcdf,
    time_coverage,
    variable_attrs,
)

FILES_DIMENSION = "orbit_files"
SELECTION_COPIED = (*SELECTION_ATTRS, "box", "box_crosses_antimeridian", "geospatial_lat_min", "geospatial_lat_max",
                    "geospatial_lon_min", "geospatial_lon_max")  # fmt: skip


def concatenate(orbit_files: Iterable[bytes]) -> dict[str, bytes]:
    """Instrument -> the bytes of its time-series NetCDF file; {} when there is no orbit file."""
    orbits = sorted((read_orbit_netcdf(data) for data in orbit_files), key=lambda o: (o.orbit, o.source_file))
    if not orbits:
        return {}
    first = orbits[0]
    for other in orbits[1:]:
        differ = [key for key in SELECTION_ATTRS if _attr(first, key) != _attr(other, key)]
        if differ:
            where = f"{first.source_file} and {other.source_file}"
            raise ValueError(f"orbit files of different selections ({', '.join(differ)}): {where}")
    return {instrument: _time_series(instrument, orbits) for instrument in first.samples}


def _attr(orbit: OrbitFile, key: str) -> str:
    return str(orbit.attrs.get(key))


def _time_series(instrument: str, orbits: list[OrbitFile]) -> bytes:
    names = list(orbits[0].samples[instrument])
    for other in orbits:
        if list(other.samples[instrument]) != names:
            raise ValueError(f"{other.source_file}: {instrument} variables differ from {orbits[0].source_file}")
    columns: Samples = {name: np.concatenate([o.samples[instrument][name] for o in orbits]) for name in names}
    orbit = np.concatenate([np.full(len(o.samples[instrument]["time"]), o.orbit, dtype=np.int32) for o in orbits])
    order = np.argsort(columns["time"], kind="stable")
    columns = {name: values[order] for name, values in columns.items()}
    columns["orbit"] = orbit[order]
    first = orbits[0].attrs
    attrs = {
        "Conventions": "CF-1.8",
        "featureType": "point",
        "title": f"RegionExtract: {instrument} samples in a lat/lon box, all orbits, by time",
        "instrument": instrument,
        "orbit_file_count": np.int64(len(orbits)),
        **{key: first[key] for key in SELECTION_COPIED if key in first},
        "sample_count": np.int64(len(order)),
        "extract_status": "samples" if len(order) else "no_samples_in_box",
        **time_coverage(columns["time"]),
    }
    context = {"misr_camera": first.get("misr_camera"), "ceres_instrument": first.get("ceres_instrument")}
    dataset = instrument_dataset(instrument, columns, attrs, context)
    # The orbit files joined, as variables (a job may join thousands: too many for attributes).
    files = {"orbit_number": np.array([o.orbit for o in orbits], dtype=np.int32),
             "orbit_file_name": np.array([o.source_file for o in orbits], dtype=object)}  # fmt: skip
    for name, values in files.items():
        dataset[name] = (FILES_DIMENSION, values, variable_attrs(instrument, name, context))
    return bytes(dataset.to_netcdf(engine="h5netcdf", encoding=encoding(dataset)))
