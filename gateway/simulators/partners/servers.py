"""Every partner simulator as a real HTTP server, one port per partner kind (banks share one).

``start_partners`` returns a :class:`Partners` whose ``urls`` are the endpoints to configure, keyed by
partner code like ``config/partners.toml`` (``LAND-REG``, ``BANK-VCB``…, ``TAX``, ``POLICE-VEH``,
``POP-REG``, ``CA-HN``, ``VNEID``). ``set_mode`` switches a kind at runtime; ``down`` really stops
listening (connection refused) and resets connections kept alive from before, and any other mode listens
again on the same port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509

from gateway.domain.doctypes import PartnerKind
from gateway.simulators.partners import (
    LAST_REQUEST,
    banks,
    land,
    police,
    population,
    prefix_of,
    tax,
    vehicles,
    vneid,
)
from gateway.simulators.partners.behaviour import Behaviour
from gateway.simulators.partners.callbacks import DEFAULT_GATEWAY_URL

log = logging.getLogger(__name__)

# Every partner kind (in this order: each kind's simulated faults draw from a seed of its own).
KINDS: tuple[PartnerKind, ...] = (
    PartnerKind.LAND_REGISTRY,
    PartnerKind.BANK,
    PartnerKind.TAX_AUTHORITY,
    PartnerKind.VEHICLE_REGISTER,
    PartnerKind.POPULATION_REGISTER,
    PartnerKind.VNEID,
    PartnerKind.POLICE_UNIT,
)
# Endpoint paths per partner code, under each kind's server.
PATHS: dict[str, dict[str, str]] = {
    "land": {land.CODE: land.PATH},
    "bank": dict(banks.PATHS),
    "tax": {tax.CODE: "/tax"},
    "vehicle": {vehicles.CODE: "/vehicles"},
    "population": {population.CODE: "/population"},
    "police": {police.CODE: police.PATH},
    "vneid": {vneid.CODE: vneid.PATH},
}


@dataclass
class _Server:
    runner: web.AppRunner
    host: str
    port: int
    site: web.TCPSite | None = None

    async def listen(self) -> None:
        if self.site is None:
            self.site = web.TCPSite(self.runner, self.host, self.port)
            await self.site.start()
            # Port 0 asks the system for a free port: keep the real one, to listen there again later.
            self.port = int(self.runner.addresses[-1][1])

    async def stop_listening(self) -> None:
        if self.site is not None:
            site, self.site = self.site, None
            await site.stop()


@dataclass
class Partners:
    host: str
    behaviours: dict[str, Behaviour]
    _servers: dict[str, _Server] = field(repr=False)

    @property
    def ports(self) -> dict[str, int]:
        """Port per kind (``land``, ``bank``, ``tax``, ``vehicle``, ``population``)."""
        return {kind: server.port for kind, server in self._servers.items()}

    @property
    def base_urls(self) -> dict[str, str]:
        """Root URL per kind: where ``/_sim/mode`` is."""
        return {kind: f"http://{self.host}:{port}" for kind, port in self.ports.items()}

    @property
    def urls(self) -> dict[str, str]:
        """Endpoint per partner code, shaped like ``config/partners.toml``'s."""
        return {
            code: self.base_urls[kind] + path for kind, paths in PATHS.items() for code, path in paths.items()
        }

    def last_request_url(self, code: str) -> str:
        """Where partner ``code`` shows the last lookup it was sent (personal IDs masked)."""
        for kind, paths in PATHS.items():
            if code in paths:
                return self.base_urls[kind] + prefix_of(paths[code]) + LAST_REQUEST
        raise KeyError(code)

    def env(self) -> dict[str, str]:
        """The ``GATEWAY_PARTNER_<CODE>__ENDPOINT`` overrides pointing the gateway at these servers."""
        return {f"GATEWAY_PARTNER_{code.replace('-', '_')}__ENDPOINT": url for code, url in self.urls.items()}

    async def set_mode(self, kind: str, mode: str) -> None:
        behaviour = self.behaviours[kind]
        behaviour.set_mode(mode)
        server = self._servers[kind]
        if mode == "down":
            await server.stop_listening()
        else:
            await server.listen()
        log.info("partner simulator %s: %s", kind, mode)

    async def close(self) -> None:
        for server in self._servers.values():
            await server.runner.cleanup()


async def start_partners(
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    modes: Mapping[str, str] | None = None,
    bank_callback_key: Path | None = None,
    audience: str = "thads-gateway",
    callback_delay: float = 3.0,
    *,
    error_rate: float = 0.01,
    latency: tuple[float, float] = (0.005, 0.05),
    slow_delay: float = 30.0,
    seed: int = 0,
    gateway_url: str = DEFAULT_GATEWAY_URL,
    silent_banks: Iterable[str] = (),
    police_key: Path | None = None,
    vneid_key: Path | None = None,
    status_delay: float = 2.0,
    bank_routes: Callable[[web.Application], None] | None = None,
    order_signature_anchors: Sequence[x509.Certificate] | None = None,
) -> Partners:
    """Start a simulator of every partner kind. ``ports`` and ``modes`` are keyed by kind; a missing port
    is 0 (any free port), a missing mode ``normal``. ``bank_callback_key`` signs BANK-TCB's callbacks and
    pushed reports, which go to ``gateway_url``; ``silent_banks`` take orders and never answer them (see
    banks.py).
    ``vneid_key`` signs the notification service's delivery statuses and consents (client ``VNEID``),
    pushed ``status_delay`` seconds after a notice (see vneid.py). ``bank_routes`` adds routes to the
    banks' server (the pull banks' test switches, pull.py). ``order_signature_anchors``: the banks and the
    police take only documents signed by their sending office under one of these roots (None: signatures
    are not looked at)."""
    ports, modes, silent = dict(ports or {}), dict(modes or {}), frozenset(silent_banks)
    unknown = (set(ports) | set(modes)) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown partner kinds: {', '.join(sorted(unknown))}")
    behaviours: dict[str, Behaviour] = {}
    for n, kind in enumerate(KINDS):
        behaviours[kind] = Behaviour(
            latency=latency, error_rate=error_rate, slow_delay=slow_delay, seed=seed + n
        )
        behaviours[kind].set_mode(modes.get(kind, "normal"))
    factories: dict[str, Callable[[Behaviour], web.Application]] = {
        "land": land.make_app,
        "bank": lambda b: _with(
            banks.make_app(
                b,
                callback_key=bank_callback_key,
                audience=audience,
                callback_delay=callback_delay,
                gateway_url=gateway_url,
                silent_banks=silent,
                order_signature_anchors=order_signature_anchors,
            ),
            bank_routes,
        ),
        "tax": tax.make_app,
        "vehicle": vehicles.make_app,
        "population": population.make_app,
        "police": lambda b: police.make_app(
            b,
            key=police_key,
            audience=audience,
            answer_delay=callback_delay,
            gateway_url=gateway_url,
            request_signature_anchors=order_signature_anchors,
        ),
        "vneid": lambda b: vneid.make_app(
            b, key=vneid_key, audience=audience, status_delay=status_delay, gateway_url=gateway_url
        ),
    }
    partners = Partners(host, behaviours, {})
    try:
        for kind in KINDS:
            # handler_cancellation: a "slow" answer whose caller gave up stops waiting with it.
            runner = web.AppRunner(
                factories[kind](behaviours[kind]), handler_cancellation=True, shutdown_timeout=1.0
            )
            await runner.setup()
            server = partners._servers[kind] = _Server(runner, host, ports.get(kind, 0))
            if behaviours[kind].mode != "down" or server.port == 0:
                await server.listen()  # port 0: bind once to learn the port it will use when switched up
            if behaviours[kind].mode == "down":
                await server.stop_listening()
    except BaseException:
        await partners.close()
        raise
    described = (f"{kind} {url} ({behaviours[kind].mode})" for kind, url in partners.base_urls.items())
    log.info("partner simulators: %s", ", ".join(described))
    return partners


def _with(app: web.Application, routes: Callable[[web.Application], None] | None) -> web.Application:
    if routes is not None:
        routes(app)
    return app
