# The carousel step image: the shared dependency image (docker/base.Dockerfile) plus the code.
# Its default command is the command of the Batch job definition datacarousel-carousel-step;
# a job definition's Command replaces it whole (the images have no ENTRYPOINT), so both run exactly
#   `python -m carousel step`.
# No credentials, endpoints or resource names inside: they come from the job's environment.
ARG BASE_IMAGE=datacarousel-base:local
FROM ${BASE_IMAGE}

ENV PYTHONPATH=/opt/datacarousel

# Code last: changing it rebuilds only these small layers. Owned by root, read-only to the worker.
# The kernel and the carousel; batch_jobs for the built-in analyses' descriptions (definition.toml).
USER 0:0
COPY datacarousel /opt/datacarousel/datacarousel
COPY carousel /opt/datacarousel/carousel
COPY batch_jobs /opt/datacarousel/batch_jobs
RUN python -m compileall -q /opt/datacarousel

USER 10001:10001
WORKDIR /home/datacarousel
CMD ["python", "-m", "carousel", "step"]
