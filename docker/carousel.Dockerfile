# The carousel step image: the shared dependency image (docker/base.Dockerfile) plus the code.
# Its default command is the command of the Batch job definition datacarousel-carousel-step;
# a job definition's Command replaces it whole (the images have no ENTRYPOINT), so both run exactly
#   `python -m carousel step`.
# No credentials, endpoints or resource names inside: they come from the job's environment.
ARG BASE_IMAGE=datacarousel-base:local
FROM ${BASE_IMAGE}

ENV PYTHONPATH=/opt/datacarousel

# Code last: changing it rebuilds only these small layers. Owned by root, read-only to the worker.
# All of the project's packages (they import each other's pure cores; well under 1 MB in all).
USER 0:0
COPY datacarousel /opt/datacarousel/datacarousel
COPY loader /opt/datacarousel/loader
COPY index_file /opt/datacarousel/index_file
COPY record_metadata /opt/datacarousel/record_metadata
COPY carousel /opt/datacarousel/carousel
COPY batch_jobs /opt/datacarousel/batch_jobs
RUN python -m compileall -q /opt/datacarousel

USER 10001:10001
WORKDIR /home/datacarousel
CMD ["python", "-m", "carousel", "step"]
