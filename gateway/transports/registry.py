"""One transport per partner, as ``config/partners.toml`` says."""

from __future__ import annotations

import aiohttp

from gateway.partners import Partner, Platforms
from gateway.transports.base import Transport
from gateway.transports.direct import DirectTransport
from gateway.transports.tls import client_context
from gateway.transports.xroad import XRoadTransport


def build_transport(partner: Partner, session: aiohttp.ClientSession, platforms: Platforms) -> Transport:
    """The partner's transport. Configuration was checked on load (gateway/partners.py); what cannot be
    built here (an unreadable certificate) raises ``ValueError`` naming the partner."""
    try:
        if partner.transport == "direct":
            return DirectTransport(
                partner.endpoint, session, client_context(partner.tls), token=partner.token
            )
        if partner.transport == "xroad":
            if platforms.xroad is None:
                raise ValueError("transport xroad needs a [platforms.xroad] table")
            # The security server authenticates the gateway (its TLS client certificate): no partner token.
            return XRoadTransport(partner, platforms.xroad, session, client_context(platforms.xroad.tls))
        raise ValueError(f"transport {partner.transport!r} is not available in this build")
    except ValueError as exc:
        raise ValueError(f"partner {partner.code}: {exc}") from None
