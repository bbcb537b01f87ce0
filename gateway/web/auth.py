"""Authentication and authorisation of web requests: Bearer JWT, then a grant per service."""

from __future__ import annotations

from aiohttp import web

from gateway.problems import forbidden, unauthorized
from gateway.security.tokens import Principal, TokenRejected
from gateway.web.context import SERVICES

PRINCIPAL_KEY = web.RequestKey("principal", Principal)
#: Why a request was refused before it had a principal (no token, a bad one, one already used).
REFUSED_BECAUSE = web.RequestKey("refused_because", str)

USED_AGAIN = "token already used: mint a new token for every request (auth.single_use_tokens)"


async def authenticate(request: web.Request) -> Principal:
    """The caller, from its ``Authorization: Bearer`` token; raises a 401 problem otherwise (also for a
    token already used once, when tokens are single-use), a 429 past the client's rate limit."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        request[REFUSED_BECAUSE] = "no-token"
        raise unauthorized("send Authorization: Bearer <JWT signed with your client key>")
    services = request.app[SERVICES]
    try:
        principal = services.verifier.verify(token.strip())
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
    request[PRINCIPAL_KEY] = principal
    services.limiter.check(principal.client.id, principal.client.rate_limit)
    return principal


async def require(request: web.Request, service: str) -> Principal:
    """Authenticate, then deny unless the client is granted ``service``."""
    principal = await authenticate(request)
    if not principal.client.allows(service):
        raise forbidden(f"client {principal.client.id} is not granted {service}")
    return principal
