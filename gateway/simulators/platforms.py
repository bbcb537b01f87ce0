"""The exchange platforms of a configuration, simulated: the X-Road security server and each LGSP that
``config/partners.toml`` routes partners through (``[platforms]``), listening where that table says, in
front of the simulated partners at their ``endpoint``.

The security server publishes every partner whose ``transport`` is ``xroad`` (a REST partner as
``subsystem/service_code``, a SOAP one as its subsystem) and lets the gateway's client id call them; each
LGSP publishes its partners under their ``lgsp.path``. With ``provider`` given, the security server also
publishes the gateway itself, for courts and partners that reach it as X-Road clients.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gateway.partners import Partner, Platforms, load_partners, load_platforms, read_secret
from gateway.security.xroad_inbound import load_xroad_inbound
from gateway.settings import Settings
from gateway.simulators.lgsp import TOKEN_PATH, LgspSim
from gateway.simulators.xroad import SecurityServerSim

log = logging.getLogger(__name__)

#: The token the simulated platforms show the simulated partners (which accept any).
BACKEND_TOKEN = "platform-sim"  # noqa: S105 - a simulator's fixed credential


@dataclass(frozen=True)
class Provided:
    """The gateway published on the simulated security server: its service ids mapped to its base URL,
    and the X-Road clients allowed to call them."""

    services: Mapping[str, str]
    clients: Iterable[str]


@dataclass
class RunningPlatforms:
    security_server: SecurityServerSim | None = None
    lgsp: dict[str, LgspSim] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return self.security_server is not None or bool(self.lgsp)

    async def close(self) -> None:
        if self.security_server is not None:
            await self.security_server.close()
        for sim in self.lgsp.values():
            await sim.close()


def xroad_services(partners: list[Partner]) -> dict[str, str]:
    """Service id (REST: ``subsystem/service_code``; SOAP: the subsystem) → the partner's own endpoint."""
    services: dict[str, str] = {}
    for p in partners:
        if p.transport != "xroad" or p.xroad is None or p.pulls or not p.endpoint:
            continue
        key = p.xroad.subsystem if p.protocol == "soap" else f"{p.xroad.subsystem}/{p.xroad.service_code}"
        services[key] = p.endpoint
    return services


def lgsp_routes(partners: list[Partner], platforms: Platforms) -> dict[str, dict[str, str]]:
    """Per LGSP platform: route prefix (the base URL's path + the partner's path) → its endpoint."""
    routes: dict[str, dict[str, str]] = {name: {} for name in platforms.lgsp}
    for p in partners:
        if p.transport != "lgsp" or p.lgsp is None or p.pulls or not p.endpoint:
            continue
        base = urlsplit(platforms.lgsp[p.lgsp.platform].base_url).path.rstrip("/")
        routes[p.lgsp.platform][base + p.lgsp.path] = p.endpoint
    return routes


async def start_platforms(config_dir: Path, provider: Provided | None = None) -> RunningPlatforms:
    """Start the platforms ``config_dir`` describes (none: nothing starts)."""
    partners = load_partners(config_dir)
    platforms = load_platforms(config_dir)
    running = RunningPlatforms()
    try:
        if platforms.xroad is not None:
            services = xroad_services(partners)
            access: dict[str, set[str]] = {platforms.xroad.client: set(services)}
            if provider is not None:
                services |= dict(provider.services)
                for client in provider.clients:
                    access.setdefault(client, set()).update(provider.services)
            headers = {key: {"Authorization": f"Bearer {BACKEND_TOKEN}"} for key in xroad_services(partners)}
            sim = SecurityServerSim(services, access, backend_headers=headers)
            where = urlsplit(platforms.xroad.security_server)
            await sim.start(where.hostname or "127.0.0.1", where.port or 80)
            running.security_server = sim
            log.info("simulated X-Road security server on %s: %s", sim.url, ", ".join(sorted(services)))
        for name, routes in lgsp_routes(partners, platforms).items():
            platform = platforms.lgsp[name]
            base, token = urlsplit(platform.base_url), urlsplit(platform.token_url)
            if (base.hostname, base.port) != (token.hostname, token.port) or token.path != TOKEN_PATH:
                log.warning(
                    "LGSP %s: the simulator serves its token endpoint at %s on the base URL's host and port",
                    name,
                    TOKEN_PATH,
                )
            lgsp = LgspSim(
                routes,
                name=name,
                client_id=platform.client_id,
                client_secret=read_secret(platform.client_secret_env, platform.client_secret_file, config_dir)
                or "",
                access_token=read_secret(platform.access_token_env, platform.access_token_file, config_dir)
                or "",
                backend_token=BACKEND_TOKEN,
            )
            await lgsp.start(base.hostname or "127.0.0.1", base.port or 80)
            running.lgsp[name] = lgsp
            log.info("simulated LGSP %s on %s: %s", name, lgsp.url, ", ".join(sorted(routes)))
    except BaseException:
        await running.close()
        raise
    return running


#: The service code under which the simulated security server publishes the gateway's REST API.
PROVIDER_SERVICE = "thads"


def provided(settings: Settings) -> Provided | None:
    """The gateway as an X-Road provider on the simulated security server, when ``config/xroad.toml``
    makes it one: its REST API as ``<its subsystem>/thads`` (the path after it is the API's), its SOAP door
    as its subsystem, callable by every X-Road client the file maps to a registered client."""
    platforms = load_platforms(settings.config_dir)
    inbound = load_xroad_inbound(settings.config_dir)
    if platforms.xroad is None or not inbound.enabled:
        return None
    subsystem = platforms.xroad.client
    api = settings.api.public_url.rstrip("/")
    return Provided(
        services={f"{subsystem}/{PROVIDER_SERVICE}": api, subsystem: api + "/soap/courts"},
        clients=[m.xroad_id for m in inbound.settings.client],
    )
