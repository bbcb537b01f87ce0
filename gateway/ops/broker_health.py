"""The broker's health readings: descriptors, memory, disk and alarms of every node, from the RabbitMQ
management API (``GET /api/nodes``, plus ``GET /api/queues`` for the quorum queue count that decides
how many descriptors are reserved). Judged by gateway/domain/broker_limits.py.

Never raises and never waits long: a management API that is down, slow or refusing the credentials
gives readings that say ``unknown`` (readiness must not depend on the management plugin). Readings are
cached for ``broker.health_cache_seconds`` so frequent probes cost the broker one request per interval."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.domain.broker_limits import NodeReading, Thresholds, Verdict, committed_descriptors, judge
from gateway.metrics import observe_broker_health
from gateway.settings import Settings

log = logging.getLogger(__name__)

MANAGEMENT = "management API"
UNKNOWN = "unknown"
_NODE_COLUMNS = (
    "name,running,fd_used,fd_total,mem_used,mem_limit,mem_alarm,disk_free,disk_free_limit,disk_free_alarm"
)


@dataclass(frozen=True, slots=True)
class BrokerHealth:
    source: str  # MANAGEMENT | UNKNOWN
    nodes: tuple[NodeReading, ...] = ()
    quorum_queues: int | None = None
    verdict: Verdict = field(default_factory=Verdict)
    detail: str = ""  # why the readings are unknown

    @property
    def known(self) -> bool:
        return self.source == MANAGEMENT

    def as_json(self) -> dict[str, Any]:
        return {
            "readings": self.source if self.known else UNKNOWN,
            **({"detail": self.detail} if self.detail else {}),
            "quorum_queues": self.quorum_queues,
            "nodes": [
                {
                    "name": n.name,
                    "running": n.running,
                    "descriptors_used": n.fd_used,
                    "descriptors_committed": committed_descriptors(n, self.quorum_queues),
                    "descriptors_limit": n.fd_total,
                    "memory_used": n.mem_used,
                    "memory_high_watermark": n.mem_limit,
                    "disk_free": n.disk_free,
                    "disk_free_limit": n.disk_free_limit,
                }
                for n in self.nodes
            ],
            "warnings": list(self.verdict.warnings),
            "alarms": list(self.verdict.alarms),
        }


def thresholds(settings: Settings) -> Thresholds:
    b = settings.broker
    return Thresholds(
        descriptors=b.warn_descriptors_ratio,
        memory=b.warn_memory_ratio,
        disk=b.warn_disk_factor,
        planned_partners=b.planned_partners,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_node(raw: dict[str, Any]) -> NodeReading:
    """One entry of ``/api/nodes``; a stopped cluster member has only ``name`` and ``running``."""
    return NodeReading(
        name=str(raw.get("name", "?")),
        running=raw.get("running", True) is not False,
        fd_used=_int(raw.get("fd_used")),
        fd_total=_int(raw.get("fd_total")),
        mem_used=_int(raw.get("mem_used")),
        mem_limit=_int(raw.get("mem_limit")),
        disk_free=_int(raw.get("disk_free")),
        disk_free_limit=_int(raw.get("disk_free_limit")),
        mem_alarm=raw.get("mem_alarm") is True,
        disk_alarm=raw.get("disk_free_alarm") is True,
    )


async def read(settings: Settings) -> BrokerHealth:
    """Fresh readings (no cache), within ``broker.health_timeout_seconds``."""
    ops = settings.ops
    if not ops.management_url:
        return BrokerHealth(UNKNOWN, detail="no management API configured (ops.management_url)")
    base = ops.management_url.rstrip("/")
    # aiohttp.BasicAuth is deprecated; the header is simple enough to build here (as gateway/ops/queues.py).
    credentials = base64.b64encode(f"{ops.management_user}:{ops.management_password}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    timeout = settings.broker.health_timeout_seconds
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        ):
            async with session.get(
                f"{base}/api/nodes", params={"columns": _NODE_COLUMNS}, headers=headers
            ) as r:
                if r.status != 200:
                    return BrokerHealth(UNKNOWN, detail=f"the management API answered {r.status}")
                listed = await r.json()
            async with session.get(f"{base}/api/queues", params={"columns": "type"}, headers=headers) as r:
                queues = await r.json() if r.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError, OSError) as exc:
        log.debug("broker health: management API unreachable: %s", exc)
        return BrokerHealth(UNKNOWN, detail=f"the management API does not answer ({type(exc).__name__})")
    if not isinstance(listed, list):
        return BrokerHealth(UNKNOWN, detail="the management API answered something else than a node list")
    nodes = [parse_node(n) for n in listed if isinstance(n, dict)]
    quorum = (
        sum(1 for q in queues if isinstance(q, dict) and q.get("type") == "quorum")
        if isinstance(queues, list)
        else None
    )
    return BrokerHealth(MANAGEMENT, tuple(nodes), quorum, judge(nodes, quorum, thresholds(settings)))


_cache: dict[str, tuple[float, BrokerHealth]] = {}


async def cached(settings: Settings) -> BrokerHealth:
    """The readings at most ``broker.health_cache_seconds`` old. Probes arriving together while the
    cache is stale each fetch (no lock shared across event loops); that costs at most one timeout."""
    key = settings.ops.management_url
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < settings.broker.health_cache_seconds:
        return hit[1]
    health = await read(settings)
    observe_broker_health(health.known, len(health.verdict.warnings), len(health.verdict.alarms))
    _cache[key] = (time.monotonic(), health)
    return health


def readiness_check(health: BrokerHealth) -> dict[str, Any]:
    """The ``broker_health`` entry of /readyz: ``warn`` near a limit or under an alarm, ``pass``
    otherwise — also when the readings are unknown (the management API being down says nothing about
    the broker, and must not page anyone or take a process out of service)."""
    return {"status": "warn" if health.verdict.near_limit else "pass", **health.as_json()}
