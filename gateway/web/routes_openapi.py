"""``GET /openapi.json``: the OpenAPI 3.1 description of the HTTP API (no authentication)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from gateway.openapi import build_document
from gateway.web.context import SERVICES
from gateway.web.operation import OPERATIONS_KEY, Operation, Response

__all__ = ["OPERATIONS", "PATH", "ROUTE"]

PATH: Final = "/openapi.json"
ROUTE: Final = "openapi"


@dataclass(slots=True)
class _Cached:
    body: bytes | None = None


OPENAPI_CACHE = web.AppKey("openapi_cache", _Cached)


async def openapi(request: web.Request) -> web.Response:
    """The document of the operations the app routes, built on first use and kept for its lifetime."""
    cached = request.app[OPENAPI_CACHE]
    if cached.body is None:
        operations = request.app[OPERATIONS_KEY]
        document = build_document(request.app[SERVICES].settings, operations)
        cached.body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return web.Response(
        body=cached.body,
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
)
