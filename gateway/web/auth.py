"""Authentication and authorisation of web requests: a Bearer JWT, or an X-Road call forwarded by a
trusted security server (gateway/security/xroad_inbound.py); then a grant per service."""

from __future__ import annotations

import dataclasses
import hashlib
import time

from aiohttp import web

from gateway.problems import Problem, bad_request, forbidden, unauthorized
from gateway.security.tokens import Principal, TokenRejected
from gateway.security.xroad_inbound import (
    XRoadCall,
    XRoadClaim,
    XRoadRefused,
    claim_from_headers,
    is_xroad_request,
)
from gateway.web.context import SERVICES

PRINCIPAL_KEY = web.RequestKey("principal", Principal)
#: Why a request was refused before it had a principal (no token, a bad one, one already used).
REFUSED_BECAUSE = web.RequestKey("refused_because", str)

USED_AGAIN = "token already used: mint a new token for every request (auth.single_use_tokens)"
#: The issuer under which X-Road message ids are remembered as used. Client ids are agency codes
#: (upper case), so no client's token ids share it.
XROAD_ISSUER = "xroad"


async def authenticate(request: web.Request, soap: XRoadClaim | None = None) -> Principal:
    """The caller, from its ``Authorization: Bearer`` token or, for a call a trusted X-Road security
    server forwarded, from its ``X-Road-Client`` (``soap``: the X-Road header of a SOAP envelope, which the
    SOAP door reads). Raises a 401 problem otherwise (also for a token or an X-Road message id already used
    once), a 403 for an X-Road client mapped to no registered client, a 429 past the client's rate limit.

    X-Road headers are claims: from a source that is not a trusted security server they are refused (401),
    whether or not a token comes with them. With both a token and a trusted X-Road call, they must name
    the same client."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    has_token = scheme.lower() == "bearer" and bool(token.strip())
    claim: XRoadClaim | None = None
    server: str | None = None
    if soap is not None or is_xroad_request(request.headers):
        # Whom the source is comes first: from an untrusted one, X-Road headers are refused as such,
        # whatever they say.
        server = _security_server(request)
        if server is None:
            request[REFUSED_BECAUSE] = "xroad-untrusted"
            raise unauthorized(
                "X-Road headers are accepted only as forwarded by a trusted security server; call "
                "through your X-Road security server, or send Authorization: Bearer <JWT> without them"
            )
        try:
            claim = _claim(request, soap)
        except XRoadRefused as refused:
            raise _refusal(request, refused) from None
    if has_token:
        principal = await _by_token(request, token.strip())
    elif claim is not None:
        principal = _by_xroad(request, claim)
    else:
        request[REFUSED_BECAUSE] = "no-token"
        raise unauthorized("send Authorization: Bearer <JWT signed with your client key>")
    if claim is not None and server is not None:
        principal = await _admit_xroad(request, principal, claim, server)
    request[PRINCIPAL_KEY] = principal
    request.app[SERVICES].limiter.check(principal.client.id, principal.client.rate_limit)
    return principal


async def admit_soap_header(request: web.Request, principal: Principal, soap: XRoadClaim) -> Principal:
    """``principal`` (already authenticated before the envelope was read) once the envelope's X-Road
    header ``soap`` is checked: from a trusted security server only, naming the client the request was
    authenticated as. The SOAP door calls it; the answer echoes the header."""
    if principal.xroad is not None:
        if not principal.xroad.claim.agrees_with(soap):
            request[REFUSED_BECAUSE] = "xroad-mismatch"
            raise unauthorized("the SOAP header's X-Road client or id is not the one of the X-Road-* headers")
        call = XRoadCall(principal.xroad.claim.merged(soap), principal.xroad.security_server)
        admitted = dataclasses.replace(principal, xroad=call)
    else:
        server = _security_server(request)
        if server is None:
            request[REFUSED_BECAUSE] = "xroad-untrusted"
            raise unauthorized(
                "an X-Road SOAP header is accepted only as forwarded by a trusted security server"
            )
        admitted = await _admit_xroad(request, principal, soap, server)
    request[PRINCIPAL_KEY] = admitted
    return admitted


def trusted_security_server(request: web.Request) -> str | None:
    """The configured security server a request comes from (``xroad.toml``), or None."""
    return _security_server(request)


async def require(request: web.Request, service: str) -> Principal:
    """Authenticate, then deny unless the client is granted ``service``."""
    principal = await authenticate(request)
    if not principal.client.allows(service):
        raise forbidden(f"client {principal.client.id} is not granted {service}")
    return principal


async def _by_token(request: web.Request, token: str) -> Principal:
    services = request.app[SERVICES]
    try:
        principal = services.verifier.verify(token)
    except TokenRejected as exc:
        request[REFUSED_BECAUSE] = "bad-token"
        raise unauthorized(str(exc)) from exc
    # Whoever sends a used token again is not taken for its client: the refusal is anonymous, and a
    # copied token cannot spend the client's rate limit.
    if services.settings.auth.single_use_tokens and not await services.token_uses.claim(
        principal.client.id, principal.token_id, principal.expires
    ):
        request[REFUSED_BECAUSE] = "token-used"
        raise unauthorized(USED_AGAIN)
    return principal


def _by_xroad(request: web.Request, claim: XRoadClaim) -> Principal:
    """The registered client an X-Road client is mapped to, as a principal (its X-Road call added by
    :func:`_admit_xroad`)."""
    services = request.app[SERVICES]
    client_id = services.xroad.client_for(claim)
    if client_id is None:
        request[REFUSED_BECAUSE] = "xroad-unmapped"
        raise forbidden(f"X-Road client {claim.client_id} is not registered with the gateway")
    client = services.clients.get(client_id)
    if client is None or client.revoked:
        # As for a token of an unknown or revoked issuer: not a caller the gateway knows (any longer).
        request[REFUSED_BECAUSE] = "xroad-unknown-client"
        raise unauthorized(f"X-Road client {claim.client_id} is mapped to an unknown or revoked client")
    lifetime = services.xroad.provider.id_lifetime_seconds
    return Principal(client, claim.user_id or client.id, claim.message_id or "", time.time() + lifetime)


async def _admit_xroad(
    request: web.Request, principal: Principal, claim: XRoadClaim, server: str
) -> Principal:
    """``principal`` with its X-Road call, once the call's client is the principal's and its message id
    is new (when ids are single-use)."""
    services = request.app[SERVICES]
    mapped = services.xroad.client_for(claim)
    if mapped is None:
        request[REFUSED_BECAUSE] = "xroad-unmapped"
        raise forbidden(f"X-Road client {claim.client_id} is not registered with the gateway")
    if mapped != principal.client.id:
        request[REFUSED_BECAUSE] = "xroad-mismatch"
        raise unauthorized(
            f"the token is {principal.client.id}'s, the X-Road client {claim.client_id} is not"
        )
    if not claim.message_id:
        request[REFUSED_BECAUSE] = "xroad-malformed"
        raise bad_request("an X-Road call names its message id (X-Road-Id, or id in the SOAP header)")
    provider = services.xroad.provider
    if provider.single_use_ids:
        # Hashed: an id may be longer than the store's column, and is remembered per X-Road client.
        key = hashlib.sha256(f"{claim.client_id}\n{claim.message_id}".encode()).hexdigest()
        if not await services.token_uses.claim(XROAD_ISSUER, key, time.time() + provider.id_lifetime_seconds):
            request[REFUSED_BECAUSE] = "xroad-id-used"
            raise unauthorized("X-Road message id already used: every call carries a new X-Road-Id")
    return dataclasses.replace(principal, xroad=XRoadCall(claim, server))


def _claim(request: web.Request, soap: XRoadClaim | None) -> XRoadClaim | None:
    """The X-Road claim of the request: its ``X-Road-*`` headers and the SOAP header, which must agree."""
    http = claim_from_headers(request.headers)
    if http is None or soap is None:
        return http or soap
    if not http.agrees_with(soap):
        raise XRoadRefused(
            401,
            "xroad-mismatch",
            "the SOAP header's X-Road client or id is not the one of the X-Road-* headers",
        )
    return soap.merged(http)


def _security_server(request: web.Request) -> str | None:
    # The TCP peer itself, never a forwarded-for header: only the proxy's own connection makes its
    # certificate headers evidence.
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    host = peer[0] if isinstance(peer, tuple) and peer else None
    return request.app[SERVICES].xroad.security_server(host, request.headers)


def _refusal(request: web.Request, refused: XRoadRefused) -> Problem:
    request[REFUSED_BECAUSE] = refused.reason
    if refused.status == 400:
        return bad_request(str(refused))
    if refused.status == 403:
        return forbidden(str(refused))
    return unauthorized(str(refused))
