"""One connector per configured partner, keyed by partner code."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aiohttp

from gateway.connectors.bank import BankConnector
from gateway.connectors.base import Connector
from gateway.connectors.land import LandConnector
from gateway.connectors.police import PoliceConnector
from gateway.connectors.population import PopulationConnector
from gateway.connectors.pull import PullConnector
from gateway.connectors.rest import RestConnector
from gateway.connectors.tax import TaxConnector
from gateway.connectors.vehicle import VehicleConnector
from gateway.connectors.vneid import VneidConnector
from gateway.domain.doctypes import PartnerKind
from gateway.partners import Partner, Platforms
from gateway.signatures.departure import DepartureSigning
from gateway.storage.database import Database
from gateway.transports.registry import TransportCache, build_transport

log = logging.getLogger(__name__)

REST_CONNECTORS: dict[str, type[RestConnector]] = {
    connector.kind: connector
    for connector in (
        BankConnector,
        TaxConnector,
        VehicleConnector,
        PopulationConnector,
        PoliceConnector,
        VneidConnector,
    )
}


async def build_connector(
    partner: Partner,
    session: aiohttp.ClientSession,
    db: Database | None = None,
    platforms: Platforms | None = None,
    cache: TransportCache | None = None,
    signing: DepartureSigning | None = None,
) -> Connector:
    """The partner's connector over the transport its configuration names (``platforms``: the
    ``[platforms]`` of partners.toml; none given: no platform is configured). ``cache``: what the
    partners of one build share (an LGSP platform's token); none: nothing shared."""
    if partner.pulls:
        # Never called: what it is sent waits in its inbox, in the gateway's database.
        if db is None:
            raise ValueError(f"partner {partner.code}: a pull partner's connector needs the database")
        return PullConnector(partner, db)
    if partner.protocol == "soap" and partner.kind != PartnerKind.LAND_REGISTRY:
        raise ValueError(f"partner {partner.code}: no SOAP connector for kind {partner.kind!r}")
    if partner.protocol == "rest" and partner.kind not in REST_CONNECTORS:
        raise ValueError(f"partner {partner.code}: no REST connector for kind {partner.kind!r}")
    transport = build_transport(partner, session, platforms or Platforms(), cache)
    if partner.protocol == "soap":
        return await LandConnector.create(partner, session, transport)
    return REST_CONNECTORS[partner.kind](partner, session, transport, signing)


async def build_connectors(
    partners: list[Partner],
    session: aiohttp.ClientSession,
    db: Database | None = None,
    platforms: Platforms | None = None,
    signing: DepartureSigning | None = None,
) -> dict[str, Connector]:
    """Build every partner's connector (SOAP clients load their WSDL now, once); ``db`` holds the inboxes
    of pull partners (required when there is one).

    A partner that cannot be built stops start-up: a misconfigured partner would otherwise only show
    up as failed inquiries. ``signing``: the offices' keys that sign the documents handed to REST partners.
    """
    connectors: dict[str, Connector] = {}
    # One OAuth2 token per LGSP platform for all its partners: one token request per expiry, not one each.
    cache = TransportCache()
    try:
        for partner in partners:
            connectors[partner.code] = await build_connector(partner, session, db, platforms, cache, signing)
    except BaseException:
        await close_all(connectors)
        raise
    return connectors


async def close_all(connectors: Mapping[str, Connector]) -> None:
    """Close every connector; one failing to close does not keep the others open."""
    codes = list(connectors)
    results = await asyncio.gather(*(connectors[c].close() for c in codes), return_exceptions=True)
    for code, result in zip(codes, results, strict=True):
        if isinstance(result, Exception):
            log.warning("closing the connector of %s failed: %s", code, type(result).__name__)
        elif isinstance(result, BaseException):
            raise result
