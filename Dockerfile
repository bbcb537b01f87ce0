FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system gateway \
    && useradd --system --gid gateway --home-dir /app --shell /usr/sbin/nologin gateway

WORKDIR /app

# Built outside /app so run.py imports the installed package (with its package data),
# not a source tree that happens to sit next to it.
COPY pyproject.toml README.md /tmp/src/
COPY gateway /tmp/src/gateway
RUN pip install /tmp/src \
    && rm -rf /tmp/src

COPY config ./config
COPY run.py ./run.py
RUN mkdir -p /app/var && chown -R gateway:gateway /app/var

ENV GATEWAY_CONFIG_DIR=/app/config

USER gateway

EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

CMD ["python", "run.py", "api"]
