"""The worker's own small HTTP listener: ``/metrics`` (relay, deliveries, partner calls, deadlines: series
defined in this process are invisible anywhere else), ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.ops import broker_health
from gateway.settings import Settings
from gateway.storage.database import Database

log = logging.getLogger(__name__)

#: Whether both broker connections (publish, consume) are open.
BrokerCheck = Callable[[], bool]


def make_app(db: Database, broker_ok: BrokerCheck, settings: Settings | None = None) -> web.Application:
    """``settings`` given: /readyz also carries the broker's health readings (``broker_health``, at
    worst ``warn``; see gateway/web/routes_health.py for why an alarm keeps the process ready — here
    too the consumers must keep draining, which is what clears a memory alarm)."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks: dict[str, dict[str, Any]] = {"database": {"status": "pass"}, "broker": {"status": "pass"}}
        try:
            async with db.read() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            checks["database"] = {"status": "fail", "detail": "the database does not answer"}
        if not broker_ok():
            checks["broker"] = {"status": "fail", "detail": "a broker connection is closed (reconnecting)"}
        warnings: list[str] = []
        if settings is not None:
            health = await broker_health.cached(settings)
            checks["broker_health"] = broker_health.readiness_check(health)
            warnings = list(health.verdict.alarms) + list(health.verdict.warnings)
        failing = sorted(name for name, check in checks.items() if check["status"] == "fail")
        body = {
            "status": "unavailable" if failing else "ready",
            "checks": checks,
            "failing": failing,
            "warnings": warnings,
        }
        return web.json_response(body, status=503 if failing else 200)

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler())
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner | None:
    """Serve ``app``; ``None`` (and an error in the log) if the port cannot be bound: a worker without
    its metrics still moves documents, so it keeps running."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        log.error("worker metrics listener on %s:%s failed (%s); running without it", host, port, exc)
        await runner.cleanup()
        return None
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("worker metrics on http://%s:%s/metrics", host, bound)
    return runner
