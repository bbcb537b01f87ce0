"""Partner health as the workers see it (table ``partner_health``, one row per partner and worker,
refreshed every few seconds), and a connection test from the api process.

Rows older than :data:`STALE_AFTER_SECONDS` are ignored: a worker that stopped reporting says nothing
about the partner now. With no fresh row at all the breaker is ``unknown``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identifiers import scrub
from gateway.partners import Partner, Platforms, route_of
from gateway.storage.tables import partner_health
from gateway.storage.timestamps import as_utc, now
from gateway.transports.tls import client_context

STALE_AFTER_SECONDS: Final = 30.0
#: Worst first: one worker seeing the breaker open is what an operator must hear about.
_BREAKER_RANK: Final = {"open": 3, "half-open": 2, "closed": 1}
STATE_CLASS: Final = {
    "closed": "state-ok",
    "open": "state-down",
    "half-open": "state-warn",
    "unknown": "state-unknown",
}


@dataclass(frozen=True, slots=True)
class PartnerHealth:
    code: str
    name: str
    kind: str
    endpoint: str
    breaker: str  # closed | open | half-open | unknown
    workers: int  # workers with a fresh row
    calls: int
    failures: int
    p50_ms: int | None
    p95_ms: int | None
    in_flight: int
    last_error: str | None
    last_error_at: datetime | None
    updated_at: datetime | None

    @property
    def success_rate(self) -> float | None:
        return None if self.calls == 0 else (self.calls - self.failures) / self.calls

    @property
    def state_class(self) -> str:
        return STATE_CLASS.get(self.breaker, "state-unknown")


async def health(
    conn: AsyncConnection,
    partners: list[Partner],
    at: datetime | None = None,
    stale_after: float = STALE_AFTER_SECONDS,
    platforms: Platforms | None = None,
) -> list[PartnerHealth]:
    """One line per configured partner, aggregated over the workers that reported recently: the worst
    breaker state, calls, failures and calls in flight summed, the highest p50/p95 of any worker (an
    upper bound: percentiles cannot be merged exactly), and the most recent error. Its ``endpoint`` says
    how it is reached: its URL, or the platform in front of it (``platforms``)."""
    at = at or now()
    fresh_since = at - timedelta(seconds=stale_after)
    rows = (await conn.execute(select(partner_health))).all()
    by_partner: dict[str, list[Row[Any]]] = {}
    for row in rows:
        if as_utc(row.updated_at) >= fresh_since:
            by_partner.setdefault(row.partner, []).append(row)
    out = []
    for partner in partners:
        reached = route_of(partner, platforms or Platforms()).label
        fresh = by_partner.get(partner.code, [])
        if not fresh:
            out.append(
                PartnerHealth(
                    partner.code, partner.name, partner.kind, reached, "unknown",
                    0, 0, 0, None, None, 0, None, None, None,
                )
            )  # fmt: skip
            continue
        breaker = max((str(r.breaker) for r in fresh), key=lambda b: _BREAKER_RANK.get(b, 0))
        errors = [r for r in fresh if r.last_error and r.last_error_at]
        latest = max(errors, key=lambda r: as_utc(r.last_error_at)) if errors else None
        p50 = [int(r.p50_ms) for r in fresh if r.p50_ms is not None]
        p95 = [int(r.p95_ms) for r in fresh if r.p95_ms is not None]
        out.append(
            PartnerHealth(
                code=partner.code,
                name=partner.name,
                kind=partner.kind,
                endpoint=reached,
                breaker=breaker if breaker in _BREAKER_RANK else "unknown",
                workers=len(fresh),
                calls=sum(int(r.calls) for r in fresh),
                failures=sum(int(r.failures) for r in fresh),
                p50_ms=max(p50) if p50 else None,
                p95_ms=max(p95) if p95 else None,
                in_flight=sum(int(r.in_flight) for r in fresh),
                last_error=scrub(str(latest.last_error)) if latest else None,
                last_error_at=as_utc(latest.last_error_at) if latest else None,
                updated_at=max(as_utc(r.updated_at) for r in fresh),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Probe:
    partner: str
    ok: bool
    latency_ms: int
    detail: str  # "HTTP 200", "TCP connect ok", or the error


async def probe(partner: Partner, within: float = 3.0, platforms: Platforms | None = None) -> Probe:
    """Reach where the gateway connects for the partner — its endpoint, or the platform in front of it
    (``platforms``), with the route's TLS client certificate — from here: an HTTP GET (any HTTP answer
    proves the server serves; 5xx is reported as an error), or a TCP connect for other schemes. Never
    raises."""
    started = time.monotonic()

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    route = route_of(partner, platforms or Platforms())
    url = urlsplit(route.url)
    try:
        if url.scheme in ("http", "https"):
            client_timeout = aiohttp.ClientTimeout(total=within)
            context = client_context(route.tls)
            async with (
                aiohttp.ClientSession(timeout=client_timeout) as session,
                session.get(route.url, allow_redirects=False, ssl=context or True) as resp,
            ):
                ok = resp.status < 500
                return Probe(partner.code, ok, elapsed(), f"HTTP {resp.status}")
        host, port = url.hostname or "", url.port or 0
        async with asyncio.timeout(within):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
        return Probe(partner.code, True, elapsed(), "TCP connect ok")
    except TimeoutError:
        return Probe(partner.code, False, elapsed(), f"no answer within {within:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Probe(partner.code, False, elapsed(), scrub(f"{type(exc).__name__}: {exc}")[:300])
