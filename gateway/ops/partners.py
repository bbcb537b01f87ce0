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
from gateway.ops.backlog import NON_FINAL
from gateway.ops.messages import MessageLine, line
from gateway.partners import Partner, Platforms, route_of
from gateway.storage.tables import messages, partner_health
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
#: A partner's judged state (:attr:`PartnerHealth.state`) and its colour.
STATE_OF: Final = {"ok": "state-ok", "degraded": "state-warn", "failing": "state-down", "down": "state-down"}
#: Fewer calls than this in the workers' window say too little to judge a success rate.
MIN_CALLS: Final = 3
#: Below this success rate a partner is failing (red), below :data:`DEGRADED_BELOW` degraded (amber).
FAILING_BELOW: Final = 0.5
DEGRADED_BELOW: Final = 0.9
#: An error more recent than this, even among successes, keeps a partner amber.
RECENT_ERROR_SECONDS: Final = 120.0


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
    def breaker_class(self) -> str:
        return STATE_CLASS.get(self.breaker, "state-unknown")

    @property
    def state(self) -> str:
        """``down`` (breaker open), ``failing``, ``degraded``, ``ok``, ``idle`` (no call in the window)
        or ``unknown`` (no worker reports it). Judged from the success rate and the last error too, not
        only the breaker: a partner answering garbage proves it is up, so its breaker stays closed, yet
        every call fails."""
        if self.breaker == "unknown":
            return "unknown"
        if self.breaker == "open":
            return "down"
        rate = self.success_rate
        if rate is not None and self.calls >= MIN_CALLS and rate < FAILING_BELOW:
            return "failing"
        if self.breaker == "half-open":
            return "degraded"
        if rate is not None and self.calls >= MIN_CALLS and rate < DEGRADED_BELOW:
            return "degraded"
        if self.failures and self.calls < MIN_CALLS:
            return "failing" if self.failures == self.calls else "degraded"
        last, seen = self.last_error_at, self.updated_at
        if (
            self.failures
            and last is not None
            and seen is not None
            and (seen - last).total_seconds() < RECENT_ERROR_SECONDS
        ):
            return "degraded"
        return "ok" if self.calls else "idle"

    @property
    def state_class(self) -> str:
        """The colour of :attr:`state` (the breaker's own colour is :attr:`breaker_class`)."""
        return STATE_OF.get(self.state, "state-unknown")

    @property
    def why(self) -> str:
        """The judged state in words, for a cell's title and the alerts."""
        state, rate = self.state, self.success_rate
        if state == "down":
            return "breaker open: the gateway stopped calling it"
        if state == "unknown":
            return "no worker reports it"
        if state == "idle":
            return "no call in the last minutes"
        pct = "–" if rate is None else f"{rate * 100:.0f} %"
        text = f"{pct} of {self.calls} calls succeeded, breaker {self.breaker}"
        return text + (f"; last error: {self.last_error}" if self.last_error and state != "ok" else "")


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


#: Most messages listed per table of a partner's page.
PARTNER_LIST_LIMIT: Final = 100


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker's report on a partner (a row of ``partner_health``)."""

    worker: str
    updated_at: datetime
    fresh: bool
    breaker: str
    calls: int
    failures: int
    p50_ms: int | None
    p95_ms: int | None
    in_flight: int
    last_error: str | None
    last_error_at: datetime | None


async def worker_views(conn: AsyncConnection, code: str, at: datetime | None = None) -> list[WorkerView]:
    """Every worker's row for ``code``, freshest first (stale ones too, marked: they tell when a worker
    last saw the partner)."""
    at = at or now()
    rows = (
        await conn.execute(
            select(partner_health)
            .where(partner_health.c.partner == code)
            .order_by(partner_health.c.updated_at.desc())
            .limit(50)
        )
    ).all()
    return [
        WorkerView(
            worker=str(r.worker),
            updated_at=as_utc(r.updated_at),
            fresh=(at - as_utc(r.updated_at)).total_seconds() <= STALE_AFTER_SECONDS,
            breaker=str(r.breaker),
            calls=int(r.calls),
            failures=int(r.failures),
            p50_ms=r.p50_ms,
            p95_ms=r.p95_ms,
            in_flight=int(r.in_flight),
            last_error=scrub(str(r.last_error)) if r.last_error else None,
            last_error_at=as_utc(r.last_error_at) if r.last_error_at else None,
        )
        for r in rows
    ]


async def messages_for(
    conn: AsyncConnection, code: str, limit: int = PARTNER_LIST_LIMIT
) -> tuple[list[MessageLine], list[MessageLine]]:
    """(waiting, failed): documents for ``code`` not final yet (oldest first: the longest waiting), and
    those that failed (latest first)."""
    waiting = (
        await conn.execute(
            select(messages)
            .where(messages.c.recipient == code, messages.c.status.in_(NON_FINAL))
            .order_by(messages.c.received_at)
            .limit(limit)
        )
    ).all()
    failed = (
        await conn.execute(
            select(messages)
            .where(messages.c.recipient == code, messages.c.status == "failed")
            .order_by(messages.c.updated_at.desc())
            .limit(limit)
        )
    ).all()
    return [line(r) for r in waiting], [line(r) for r in failed]
