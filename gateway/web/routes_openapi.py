"""``GET /openapi.json``: the OpenAPI 3.1 description of the HTTP API; ``GET /openapi-xroad.json``: that of
the operations offered over X-Road, for registering the REST service on a security server (both without
authentication)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from gateway.openapi import build_document
from gateway.openapi_xroad import build_xroad_document
from gateway.web.context import SERVICES
from gateway.web.operation import OPERATIONS_KEY, Operation, Response

__all__ = ["OPERATIONS", "PATH", "ROUTE", "XROAD_PATH"]

PATH: Final = "/openapi.json"
ROUTE: Final = "openapi"
XROAD_PATH: Final = "/openapi-xroad.json"


@dataclass(slots=True)
class _Cached:
    body: bytes | None = None
    xroad: bytes | None = None


OPENAPI_CACHE = web.AppKey("openapi_cache", _Cached)


async def openapi(request: web.Request) -> web.Response:
    """The document of the operations the app routes, built on first use and kept for its lifetime."""
    cached = request.app[OPENAPI_CACHE]
    if cached.body is None:
        operations = request.app[OPERATIONS_KEY]
        document = build_document(request.app[SERVICES].settings, operations)
        cached.body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _json(cached.body)


async def openapi_xroad(request: web.Request) -> web.Response:
    """The X-Road description (:mod:`gateway.openapi_xroad`), built on first use and kept likewise."""
    cached = request.app[OPENAPI_CACHE]
    if cached.xroad is None:
        services = request.app[SERVICES]
        operations = request.app[OPERATIONS_KEY]
        document = build_xroad_document(services.settings, operations, services.xroad.provider.service_url)
        cached.xroad = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _json(cached.xroad)


def _json(body: bytes) -> web.Response:
    return web.Response(
        body=body,
        content_type="application/json",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


def _setup(app: web.Application) -> None:
    app[OPENAPI_CACHE] = _Cached()


OPERATIONS: Final = (
    Operation(
        "GET",
        PATH,
        openapi,
        name=ROUTE,
        operation_id="openapi",
        tag="Operations",
        summary="This document",
        responses={200: Response("OpenAPI 3.1.", "openapi.document", headers=("Cache-Control",))},
        setup=_setup,
    ),
    Operation(
        "GET",
        XROAD_PATH,
        openapi_xroad,
        name="openapi.xroad",
        operation_id="openapiXRoad",
        tag="Operations",
        summary="The operations offered over X-Road, for registering the REST service on a security server",
        description=(
            "Every authenticated REST operation of this document, and `GET /v1/keys`, with the `X-Road-*` "
            "request headers a provider-side security server forwards and the response headers it sets. "
            "The SOAP service has its own: `GET /soap/courts?wsdl=xroad`."
        ),
        responses={200: Response("OpenAPI 3.1.", "openapi.document", headers=("Cache-Control",))},
    ),
)
