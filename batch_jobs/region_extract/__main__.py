"""`python -m batch_jobs.region_extract {queue,run,reduce}`: RegionExtract on the job SDK.

Per orbit: every MODIS, MISR and CERES sample inside the job's lat/lon box, as one CF-1.8 NetCDF
file (`results/<job>/<YYYY.MM>/<orbit>.nc`). Once the job's last file is final: one time series
per instrument (`results/<job>/timeseries/<INSTRUMENT>.nc`).
"""

from __future__ import annotations

import sys

from batch_jobs.region_extract.netcdf import orbit_netcdf_bytes
from batch_jobs.region_extract.reduce import concatenate
from batch_jobs.region_extract.science import extract, selection_from_parameters
from datacarousel import job
from datacarousel.errors import BadInput

DEFINITION = job.describe(__file__)
NETCDF = "application/x-netcdf"
TIMESERIES_DIR = "timeseries"


def process(work: job.Work) -> job.Result:
    try:
        selection = selection_from_parameters(work.canonical)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    with work.open_orbit() as source:
        found = extract(source, selection)
    data = orbit_netcdf_bytes(found, orbit=work.name.orbit, source_name=work.name.file_name, selection=selection)
    return job.Result(data, skipped=tuple(sorted({s.reason for s in found.skipped})), content_type=NETCDF)


def reduce(reduction: job.Reduction) -> None:
    files = [body for _, body in reduction.results()]
    if not files:
        return  # every file failed: nothing to join
    try:
        series = concatenate(files)
    except ValueError as exc:
        raise BadInput(f"job {reduction.job_id}: cannot join its orbit files: {exc}") from exc
    for instrument, data in sorted(series.items()):
        reduction.put(f"{TIMESERIES_DIR}/{instrument}.nc", data, NETCDF)


if __name__ == "__main__":
    sys.exit(job.main(DEFINITION, process, reduce))
