"""Series every process serves (the HTTP ones in the api, the signing key's expiry in both).

Series that only the worker moves live beside the code that moves them (relay, delivery, partner calls,
:mod:`gateway.worker.gauges`); ``docs/metrics.md`` lists them all.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

from gateway.settings import Settings

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests answered, by route name ('unmatched' when no route matched), method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "gateway_http_request_duration_seconds",
    "Time to answer an HTTP request, by route name and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UNAUTHENTICATED_REJECTIONS = Counter(
    "gateway_unauthenticated_rejections_total",
    "Requests refused before the caller was known (no token, a bad or used token, malformed), by route "
    "name and reason; the audit log gets one aggregated record per route and reason per minute",
    ["route", "reason"],
)
SIGNIN_ATTEMPTS = Counter(
    "gateway_console_signin_total",
    "Console sign-in attempts by outcome: ok, failed, throttled (429), busy (503: the password checks "
    "are saturated)",
    ["outcome"],
)
SIGNING_KEY_EXPIRY = Gauge(
    "gateway_signing_key_expiry_timestamp_seconds",
    "Unix time by which the receipt-signing key should be rotated (its file's time + rotate_after_days)",
)

_DAY = 86400.0


def signing_key_expiry(path: Path, rotate_after_days: float) -> float | None:
    """When the key at ``path`` should be rotated: its file's modification time plus the rotation period."""
    try:
        written = path.stat().st_mtime
    except OSError:
        return None
    return written + rotate_after_days * _DAY


def observe_signing_key(settings: Settings) -> None:
    """Set :data:`SIGNING_KEY_EXPIRY` from the configured key file (left as is if it cannot be read)."""
    expiry = signing_key_expiry(
        settings.path(settings.signing.private_key_file), settings.signing.rotate_after_days
    )
    if expiry is None:
        log.debug("signing key file not readable; expiry gauge unchanged")
        return
    SIGNING_KEY_EXPIRY.set(expiry)


BROKER_READINGS_KNOWN = Gauge(
    "gateway_broker_readings_known",
    "1 when the broker's health readings came from the management API at the last look, 0 when unknown",
)
BROKER_WARNINGS = Gauge(
    "gateway_broker_warnings",
    "Broker nodes near a limit (descriptors, memory, disk) or down, at the last look (docs/deployment.md)",
)
BROKER_ALARMS = Gauge(
    "gateway_broker_alarms",
    "Memory and disk alarms in force on the broker at the last look: publishing is blocked while > 0",
)


def observe_broker_health(known: bool, warnings: int, alarms: int) -> None:
    """Set the broker series from the last readings (left as they were while the readings are unknown)."""
    BROKER_READINGS_KNOWN.set(1 if known else 0)
    if known:
        BROKER_WARNINGS.set(warnings)
        BROKER_ALARMS.set(alarms)
