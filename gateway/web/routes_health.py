"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.metrics import observe_signing_key
from gateway.ops import broker_health
from gateway.partners import load_partners, missing_credentials
from gateway.web.context import SERVICES
from gateway.web.operation import Operation, Response

__all__ = ["OPERATIONS"]

log = logging.getLogger(__name__)


async def healthz(_request: web.Request) -> web.Response:
    """Alive: answers as soon as the process serves."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to take traffic: 200 while the database answers, 503 (naming the failing check) otherwise.

    ``checks`` has one entry per check, each with ``status`` ``pass``, ``warn`` or ``fail``:

    - ``database`` (``fail`` → 503): without it nothing can be accepted.
    - ``partner_credentials`` (at worst ``warn``, still 200): partners whose ``credentials`` variable
      is unset or empty in this process's environment, by code under ``partners_without_credentials``.
      Lookups to them will be refused (401), but documents and inquiries are still accepted, so taking
      the api out of a load balancer would turn one broken source into a full outage. ``status`` thus
      stays ``ready`` (probes and the OpenAPI contract know only ``ready``/``unavailable``); alert on
      any check that says ``warn``. The worker, which makes the calls, logs the same at start-up.
    - ``broker_health`` (at worst ``warn``, still 200): the broker's nodes near a limit (descriptors,
      memory, disk) or under a memory/disk alarm, from the management API (``readings`` says
      ``unknown`` when it does not answer: a pass). Even an alarm, which blocks publishing, keeps the
      api ready: what it accepts waits in the outbox and nothing is lost, while a 503 from every api
      process would turn a broker alarm into a full outage (docs/deployment.md).

    ``warnings`` lists, in words, what every ``warn`` check found (empty when none did).
    """
    services = request.app[SERVICES]
    health = await broker_health.cached(services.settings)
    checks: dict[str, dict[str, Any]] = {
        "database": await _database_check(request),
        "partner_credentials": _credentials_check(services.settings.config_dir),
        "broker_health": broker_health.readiness_check(health),
    }
    failing = [name for name, check in checks.items() if check["status"] == "fail"]
    warnings = list(health.verdict.alarms) + list(health.verdict.warnings)
    if checks["partner_credentials"]["status"] == "warn":
        warnings.insert(0, f"partner_credentials: {checks['partner_credentials']['detail']}")
    body: dict[str, Any] = {
        "status": "unavailable" if failing else "ready",
        "database": "down" if "database" in failing else "up",  # for probes older than `checks`
        "checks": checks,
        "warnings": warnings,
    }
    if failing:
        body["failing"] = failing
    return web.json_response(body, status=503 if failing else 200)


async def _database_check(request: web.Request) -> dict[str, Any]:
    try:
        async with request.app[SERVICES].db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):  # asyncpg raises a refused connection as OSError
        return {"status": "fail", "detail": "the database does not answer"}
    return {"status": "pass"}


def _credentials_check(config_dir: Path) -> dict[str, Any]:
    # Read per probe: the answer then matches the file the worker reads at its start, not a stale copy.
    try:
        partners = load_partners(config_dir)
    except (OSError, ValueError):
        log.warning("readiness: partners.toml cannot be read", exc_info=True)
        return {"status": "warn", "detail": "partners.toml cannot be read (see the api log)"}
    missing = [p.code for p in missing_credentials(partners)]
    if not missing:
        return {"status": "pass", "partners_without_credentials": []}
    return {
        "status": "warn",
        "partners_without_credentials": missing,
        "detail": "calls to these partners will be refused: set the environment variables their "
        "`credentials` names in partners.toml",
    }


_EXPOSITION = make_aiohttp_handler()


async def metrics(request: web.Request) -> web.StreamResponse:
    """prometheus-client's own handler (content negotiation, gzip); the key's expiry read per scrape."""
    observe_signing_key(request.app[SERVICES].settings)
    return await _EXPOSITION(request)


OPERATIONS: Final = (
    Operation(
        "GET",
        "/healthz",
        healthz,
        name="healthz",
        operation_id="healthz",
        tag="Operations",
        summary="Alive",
        responses={200: Response("The process serves.", "health")},
    ),
    Operation(
        "GET",
        "/readyz",
        readyz,
        name="readyz",
        operation_id="readyz",
        tag="Operations",
        summary="Ready: the database answers",
        description=(
            "`checks` has one entry per check, each `pass`, `warn` or `fail`: `database` (`fail`: 503) and "
            "`partner_credentials` (at worst `warn`, still 200: partners whose credentials variable is unset "
            "will refuse lookups, but documents and inquiries are still accepted) and `broker_health` (at "
            "worst `warn`, still 200: broker nodes near their descriptor, memory or disk limit, or under an "
            "alarm; `readings` is `unknown` when the management API does not answer). `warnings` says in "
            "words what each `warn` found. Alert on any `warn`."
        ),
        responses={
            200: Response("Ready.", "readiness"),
            503: Response("A check failed (named in `failing`): the database does not answer.", "readiness"),
        },
    ),
    Operation(
        "GET",
        "/metrics",
        metrics,
        name="metrics",
        operation_id="metrics",
        tag="Operations",
        summary="Prometheus metrics",
        description="HTTP requests by route and status with latency, and the receipt-signing key's "
        "rotation date (docs/metrics.md lists every series).",
        responses={200: Response("Prometheus text exposition format.", media_type="text/plain")},
    ),
)
