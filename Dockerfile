# syntax=docker/dockerfile:1
# One image for every jobq component: `jobq api`, `jobq worker`, `jobq operator`, `jobq scheduler`.
#   docker build -t ghcr.io/jobq/jobq:dev .
#   docker run --rm -e REDIS_URL=redis://host.docker.internal:6379/0 -p 8000:8000 ghcr.io/jobq/jobq:dev api --host 0.0.0.0 --port 8000

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: build the wheel and install it with its dependencies into a venv ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/jobq
COPY . .
# Dependencies exactly as requirements.lock pins them (jobq[all]: the core and every extra;
# hash-checked; refreshed deliberately with `bash hack/bootstrap.sh --lock`), then `jobq[all]`
# from the wheel with no index: nothing newer than the lock can slip in, and an extra's
# dependency missing from the lock fails the build. A plain (non-editable) install, so the venv
# holds no source checkout.
# jobq[all] includes the OpenTelemetry SDK and OTLP exporter: with OTEL_EXPORTER_OTLP_ENDPOINT
# set, every command exports spans.
# Bytecode is compiled here because the runtime root filesystem is read-only; from / so that the
# source tree's operator/ folder cannot pass for the standard library's `operator` module.
RUN /opt/jobq/bin/pip install --upgrade pip \
 && /opt/jobq/bin/pip install --require-hashes --no-deps -r requirements.lock \
 && /opt/jobq/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/jobq/bin/pip install --no-index --find-links /tmp/wheels 'jobq[all]' \
 && /opt/jobq/bin/pip check \
 && /opt/jobq/bin/pip uninstall --yes pip \
 && cd / && /opt/jobq/bin/python -m compileall -q /opt/jobq/lib \
 && /opt/jobq/bin/jobq --help > /dev/null

# --- runtime: the venv on a clean slim image (no build tools, no pip in the venv), non-root ---
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 jobq \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/jobq --create-home \
      --shell /usr/sbin/nologin jobq
COPY --from=builder /opt/jobq /opt/jobq
ENV PATH=/opt/jobq/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    JOBQ_LOG_FORMAT=json
USER 10001:10001
WORKDIR /home/jobq
# API, worker metrics, operator metrics.
EXPOSE 8000 9101 9102
ENTRYPOINT ["jobq"]
CMD ["--help"]

# The labels last: two versions built from the same source differ only in the image config and
# share every layer (a registry stores them once, a node pulls them once).
ARG VERSION=dev
LABEL org.opencontainers.image.title="jobq" \
      org.opencontainers.image.description="Kubernetes-native background jobs on Redis: API, workers, operator" \
      org.opencontainers.image.source="https://github.com/jobq/jobq" \
      org.opencontainers.image.version="${VERSION}"
