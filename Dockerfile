FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system gateway \
    && useradd --system --gid gateway --home-dir /app --shell /usr/sbin/nologin gateway

WORKDIR /app

# Built outside /app so run.py imports the installed package (with its package data),
# not a source tree that happens to sit next to it. limits[redis]: api.rate_limit_storage
# may be "redis://…" so that several api processes share the per-client request counts.
COPY pyproject.toml README.md /tmp/src/
COPY gateway /tmp/src/gateway
RUN pip install /tmp/src "limits[redis]" \
    && rm -rf /tmp/src

COPY config ./config
COPY run.py ./run.py
# Writable by the gateway user: the receipt key (var/keys), the simulators' client keys
# (var/demo-keys) and the client registrations (config/clients). A named volume mounted on one
# of these directories starts with its owner.
RUN mkdir -p /app/var/keys /app/var/demo-keys /app/config/clients \
    && chown -R gateway:gateway /app/var /app/config/clients

ENV GATEWAY_CONFIG_DIR=/app/config \
    GATEWAY_API__HOST=0.0.0.0 \
    GATEWAY_WORKER__METRICS_HOST=0.0.0.0

USER gateway

# 8080: api (GATEWAY_API__PORT); 9180: a worker's /metrics, /healthz, /readyz (GATEWAY_WORKER__METRICS_PORT).
EXPOSE 8080 9180

# Checks the api; docker-compose.yml gives the worker its own check on its metrics port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

CMD ["python", "run.py", "api"]
