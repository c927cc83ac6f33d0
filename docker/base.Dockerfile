# The shared dependency image of every Data Carousel worker: Python 3.11, a virtual environment
# with the runtime requirements, and the non-root user. The worker images build FROM it and add
# only their code, so the slow layer (pip) is built once for all five and cached apart from code.
#
# BASE_IMAGE: on AWS (or wherever Docker Hub is reachable) the public Python image; on a machine
# without a registry, a local Debian bookworm image (debootstrap + import, see docs/images.md):
# its python3 is 3.11 too, installed here with apt when the base has no Python.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

RUN if ! command -v python3 >/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
        && apt-get clean \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'

# The user every worker runs as (numeric in USER so that "runs as non-root" can be checked).
RUN groupadd --gid 10001 datacarousel \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/datacarousel \
        --shell /usr/sbin/nologin datacarousel

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first (this layer is rebuilt only when the requirements change); the packages'
# test suites are dropped. pip stays for the images that add a few packages of their own.
# The optional build secret `pip-ca` is a CA bundle for pip (a machine behind a TLS-inspecting
# proxy); it is mounted for this step only and never stored in the image.
COPY docker/requirements-runtime.txt /opt/requirements-runtime.txt
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/venv \
    && pip install --no-cache-dir --no-deps --only-binary=:all: -r /opt/requirements-runtime.txt \
    && pip check \
    && pip uninstall --yes setuptools \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*/tests' -exec rm -rf {} + \
    && python -c 'import boto3, h5py, h5pyd, numpy, s3fs, typer'

WORKDIR /home/datacarousel
USER 10001:10001
