"""Every HTTP operation of the api, and :func:`add_routes`, the one place that routes them.

Each ``routes_*`` module declares its operations next to their handlers; ``GET /openapi.json`` is
generated from the same declarations (:mod:`gateway.openapi`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.domain.registry import REGISTRY
from gateway.problems import forbidden
from gateway.web import (
    routes_bulk,
    routes_citizens,
    routes_docs,
    routes_documents,
    routes_events,
    routes_health,
    routes_inquiries,
    routes_openapi,
    routes_pulls,
    routes_services,
    soap_courts,
)
from gateway.web.auth import authenticate, require
from gateway.web.operation import ANY_CLIENT, OPERATIONS_KEY, Operation, admitting_grants, may_hold_one

__all__ = ["OPERATIONS", "Operation", "add_routes"]

OPERATIONS: Final[tuple[Operation, ...]] = (
    *routes_documents.OPERATIONS,
    *routes_inquiries.OPERATIONS,
    *routes_pulls.OPERATIONS,
    *routes_bulk.OPERATIONS,
    *routes_citizens.OPERATIONS,
    *soap_courts.OPERATIONS,
    *routes_health.OPERATIONS,
    *routes_openapi.OPERATIONS,
    *routes_docs.OPERATIONS,
    *routes_services.OPERATIONS,
    *routes_events.OPERATIONS,
)


def add_routes(app: web.Application, operations: Sequence[Operation] = OPERATIONS) -> None:
    """Route every operation, behind the check of its grant, and remember them for ``/openapi.json``."""
    app[OPERATIONS_KEY] = tuple(operations)
    for operation in operations:
        if operation.setup is not None:
            operation.setup(app)
        handler = _guarded(operation)
        if operation.method == "GET":
            app.router.add_get(operation.path, handler, name=operation.name)  # HEAD too, as aiohttp does
        else:
            app.router.add_route(operation.method, operation.path, handler, name=operation.name)


def document_grants() -> dict[str, frozenset[str]]:
    """Per document type, the grants that allow sending it."""
    return {name: frozenset({t.grant, *t.extra_grants}) for name, t in REGISTRY.items()}


def _guarded(operation: Operation) -> Handler:
    """The handler, after authentication and the operation's grant; handlers read ``PRINCIPAL_KEY``."""
    grant = operation.grant
    # A SOAP operation answers every error as a Fault, so its handler authenticates inside its own
    # error handling rather than letting a 401 problem+json escape here.
    if grant is None or operation.errors == "soap-fault":
        return operation.handler
    target = operation.handler
    only_authenticate = grant == ANY_CLIENT or operation.grant_check == "service"
    # The service checks the exact grant once the body names it; a client holding none that could apply is
    # refused here, before its body is read, parsed or validated.
    admitting = (
        admitting_grants(operation, document_grants())
        if operation.grant_check == "service" and grant != ANY_CLIENT
        else None
    )

    @functools.wraps(target)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if only_authenticate:
            principal = await authenticate(request)
            client = principal.client
            if admitting and not may_hold_one(admitting, client.grants, client.revoked):
                raise forbidden(f"client {client.id} holds none of the grants {operation.name} needs")
        else:
            await require(request, grant)
        return await target(request)

    return guarded
