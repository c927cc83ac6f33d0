# The record_metadata image: the shared dependency image (docker/base.Dockerfile) plus the code.
# Its default command is the command of the Batch job definition datacarousel-record-metadata;
# a job definition's Command replaces it whole (the images have no ENTRYPOINT), so both run exactly
#   `python -m record_metadata`.
# No credentials, endpoints or resource names inside: they come from the job's environment.
ARG BASE_IMAGE=datacarousel-base:local
FROM ${BASE_IMAGE}

ENV PYTHONPATH=/opt/datacarousel

# Code last: changing it rebuilds only these small layers. Owned by root, read-only to the worker.
# The kernel and this worker's own package: the parts import none of each other.
USER 0:0
COPY datacarousel /opt/datacarousel/datacarousel
COPY record_metadata /opt/datacarousel/record_metadata
RUN python -m compileall -q /opt/datacarousel

USER 10001:10001
WORKDIR /home/datacarousel
CMD ["python", "-m", "record_metadata"]
