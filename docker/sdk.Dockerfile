# The job SDK image: what a research group's own analysis builds FROM (see examples/).
# The shared dependency image (docker/base.Dockerfile), the analyses' dependencies (numpy, h5py,
# xarray with h5netcdf, matplotlib) and the Data Carousel's kernel (`datacarousel`, with the job SDK
# `datacarousel.job` and the orbit readers), nothing of the pipeline's workers.
# No credentials, endpoints or resource names inside: they come from the job's environment.
ARG BASE_IMAGE=datacarousel-base:local
FROM ${BASE_IMAGE}

ENV PYTHONPATH=/opt/datacarousel \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

USER 0:0
COPY docker/requirements-analyses.txt /opt/requirements-analyses.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && pip install --no-cache-dir --no-deps --only-binary=:all: -r /opt/requirements-analyses.txt \
    && pip check \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*/tests' -exec rm -rf {} + \
    && python -c 'import matplotlib.pyplot, pandas, xarray, h5netcdf' \
    && rm -rf /tmp/matplotlib

# The kernel only. Owned by root, read-only to the analysis.
COPY datacarousel /opt/datacarousel/datacarousel
RUN python -m compileall -q /opt/datacarousel

USER 10001:10001
WORKDIR /home/datacarousel
CMD ["python", "-c", "import datacarousel.job; print('the Data Carousel job SDK: build your analysis FROM this image')"]
