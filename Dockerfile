# syntax=docker/dockerfile:1
# Bitrix SLA Connector: one image for every role.
#
#   docker build -t bitrix-sla-connector:0.1.0 .
#   docker run -p 8080:8080 -v bitrix-sla-data:/data -v ./settings.yaml:/app/settings.yaml:ro \
#     -e BITRIX_SLA_CONFIG=/app/settings.yaml bitrix-sla-connector:0.1.0 serve --host 0.0.0.0
#
# Commands (the entrypoint is `bitrix-sla`): `web` (default; gunicorn on 0.0.0.0:8080, migrates
# first), `worker [--metrics-port 9102]`, `serve --host 0.0.0.0` (web and worker in one process,
# the SQLite default: ONE container only), and every operator command (`setup`, `jobs`, ...).
#
# Read-only root filesystem: everything written goes to /data (the SQLite file: a volume) and
# /tmp (a tmpfs or emptyDir; `web` keeps gunicorn's Prometheus multiprocess files in a fresh
# directory there unless PROMETHEUS_MULTIPROC_DIR names another empty, writable directory):
#   docker run --read-only --tmpfs /tmp -v bitrix-sla-data:/data ... bitrix-sla-connector:0.1.0
# The HEALTHCHECK asks /healthz on 8080; for a worker point it at its metrics server:
#   -e BITRIX_SLA_HEALTHCHECK_URL=http://127.0.0.1:9102/healthz ... worker --metrics-port 9102

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a wheel of the project and of every dependency --------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector/ connector/
COPY webhooks/ webhooks/
RUN pip wheel --wheel-dir /wheels .

# --- runtime: slim Python, the installed wheel, the shipped mappings, no build tools ---------
FROM ${PYTHON_IMAGE} AS runtime
# HOME=/tmp: whatever a library keeps under ~ (gunicorn >= 25.1 puts its control socket in
# ~/.gunicorn) lands on the writable /tmp, not on the read-only root filesystem.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    DATABASE_URL=sqlite:////data/bitrix-sla.db \
    BITRIX_SLA_MAPPINGS=/app/mappings
RUN groupadd --system --gid 10001 bitrix-sla \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin bitrix-sla \
 && mkdir -p /app /data \
 && chown 10001:10001 /data
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels bitrix-sla-connector
WORKDIR /app
COPY mappings/ /app/mappings/
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('BITRIX_SLA_HEALTHCHECK_URL', 'http://127.0.0.1:8080/healthz'), timeout=4)"]
ENTRYPOINT ["bitrix-sla"]
CMD ["web"]
