# The RegionExtract image: the shared dependency image (docker/base.Dockerfile) plus the code.
# Its default command is the command of the Batch job definition RegionExtract;
# a job definition's Command replaces it whole (the images have no ENTRYPOINT), so both run exactly
#   `python -m batch_jobs.region_extract queue` with every parameter's default from
#   batch_jobs/region_extract/definition.toml (a test keeps this line equal to it).
# No credentials, endpoints or resource names inside: they come from the job's environment.
ARG BASE_IMAGE=datacarousel-base:local
FROM ${BASE_IMAGE}

# matplotlib (imported with xarray's plotting) keeps its cache in /tmp: the root filesystem is read-only at run time.
ENV PYTHONPATH=/opt/datacarousel \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

USER 0:0
# The analyses' dependencies (xarray with h5netcdf: NetCDF output), before the code.
COPY docker/requirements-analyses.txt /opt/requirements-analyses.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --no-cache-dir --no-deps --only-binary=:all: -r /opt/requirements-analyses.txt \
    && pip check \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*/tests' -exec rm -rf {} + \
    && python -c 'import matplotlib.pyplot, pandas, xarray, h5netcdf' \
    && rm -rf /tmp/matplotlib

# Code last: changing it rebuilds only these small layers. Owned by root, read-only to the worker.
# The kernel and this worker's own package: the parts import none of each other.
COPY datacarousel /opt/datacarousel/datacarousel
COPY batch_jobs /opt/datacarousel/batch_jobs
RUN python -m compileall -q /opt/datacarousel

USER 10001:10001
WORKDIR /home/datacarousel
CMD ["python", "-m", "batch_jobs.region_extract", "queue", "--object", "none", "--lat-min", "30.0", "--lat-max", "40.0", "--lon-min", "-95.0", "--lon-max", "-85.0", "--instruments", "MODIS,MISR,CERES", "--modis-bands", "1,2,3,4,5,6,7", "--misr-camera", "AN", "--misr-bands", "Blue,Green,Red,NIR", "--ceres-instrument", "FM1"]
