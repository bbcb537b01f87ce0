"""``GET /openapi.json``: the OpenAPI 3.1 description of the HTTP API (no authentication)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from gateway.openapi import build_document
from gateway.web.context import SERVICES

PATH = "/openapi.json"
ROUTE = "openapi"


@dataclass(slots=True)
class _Cached:
    body: bytes | None = None


OPENAPI_CACHE = web.AppKey("openapi_cache", _Cached)


async def openapi(request: web.Request) -> web.Response:
    """The document, built on first use from the application's settings and kept for its lifetime."""
    cached = request.app[OPENAPI_CACHE]
    if cached.body is None:
        document = build_document(request.app[SERVICES].settings)
        cached.body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return web.Response(
        body=cached.body,
        content_type="application/json",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


def add_routes(app: web.Application) -> None:
    app[OPENAPI_CACHE] = _Cached()
    app.router.add_get(PATH, openapi, name=ROUTE)
