"""Authentication and authorisation of web requests: Bearer JWT, then a grant per service."""

from __future__ import annotations

from aiohttp import web

from gateway.problems import forbidden, unauthorized
from gateway.security.tokens import Principal, TokenRejected
from gateway.web.context import SERVICES

PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def authenticate(request: web.Request) -> Principal:
    """The caller, from its ``Authorization: Bearer`` token; raises a 401 problem otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send Authorization: Bearer <JWT signed with your client key>")
    try:
        principal = request.app[SERVICES].verifier.verify(token.strip())
    except TokenRejected as exc:
        raise unauthorized(str(exc)) from exc
    request[PRINCIPAL_KEY] = principal
    request.app[SERVICES].limiter.check(principal.client.id, principal.client.rate_limit)
    return principal


def require(request: web.Request, service: str) -> Principal:
    """Authenticate, then deny unless the client is granted ``service``."""
    principal = authenticate(request)
    if not principal.client.allows(service):
        raise forbidden(f"client {principal.client.id} is not granted {service}")
    return principal
