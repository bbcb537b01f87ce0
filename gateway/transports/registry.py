"""One transport per partner, as ``config/partners.toml`` says."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from gateway.partners import Partner, Platforms
from gateway.transports.base import Transport
from gateway.transports.direct import DirectTransport
from gateway.transports.lgsp import LgspTransport, TokenSource
from gateway.transports.tls import client_context
from gateway.transports.xroad import XRoadTransport


@dataclass
class TransportCache:
    """What the partners of one build share: one OAuth2 token source per LGSP platform, keyed by the
    platform's name, so every partner on a platform uses one token (and one refresh when it expires)."""

    lgsp_tokens: dict[str, TokenSource] = field(default_factory=dict)


def build_transport(
    partner: Partner,
    session: aiohttp.ClientSession,
    platforms: Platforms,
    cache: TransportCache | None = None,
) -> Transport:
    """The partner's transport. Configuration was checked on load (gateway/partners.py); what cannot be
    built here (an unreadable certificate, a platform secret that is not there) raises ``ValueError``
    naming the partner. ``cache``: shared by the partners of one build (none: this partner's own)."""
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
        if partner.transport == "lgsp":
            return _lgsp(partner, session, platforms, cache or TransportCache())
        raise ValueError(f"transport {partner.transport!r} is not available in this build")
    except ValueError as exc:
        raise ValueError(f"partner {partner.code}: {exc}") from None


def _lgsp(
    partner: Partner, session: aiohttp.ClientSession, platforms: Platforms, cache: TransportCache
) -> LgspTransport:
    if partner.lgsp is None:
        raise ValueError('transport = "lgsp" needs lgsp = { platform = "…", path = "/…" }')
    name = partner.lgsp.platform
    platform = platforms.lgsp.get(name)
    if platform is None:
        known = ", ".join(sorted(platforms.lgsp)) or "none"
        raise ValueError(f"no [platforms.lgsp.{name}] table (configured: {known})")
    tokens = cache.lgsp_tokens.get(name)
    if tokens is None:
        tokens = TokenSource(name, platform, session, client_context(platform.tls))
        # Every call would be refused: say so now, not as failed inquiries.
        missing = tokens.missing()
        if missing is not None:
            raise ValueError(f"{tokens.label}: {missing}")
        cache.lgsp_tokens[name] = tokens
    return LgspTransport(partner, platform, tokens, session, tokens.ssl_context)
