"""REST endpoints for documents: send any document, push a judgment, follow, confirm or revoke a message."""

from __future__ import annotations

from aiohttp import web

from gateway.domain import judgment
from gateway.services.documents import PushResult
from gateway.web.auth import authenticate, require
from gateway.web.body import read_json
from gateway.web.context import SERVICES


def _receipt_response(result: PushResult) -> web.Response:
    location = f"/v1/messages/{result.receipt['message_id']}"
    return web.json_response(
        result.receipt,
        status=200 if result.duplicate else 202,
        headers={"Location": location, **({"Gateway-Duplicate": "true"} if result.duplicate else {})},
    )


async def send_document(request: web.Request) -> web.Response:
    """Any document type the client is granted (``documents.send:<message_type>``)."""
    principal = authenticate(request)
    document = await read_json(request)
    return _receipt_response(await request.app[SERVICES].documents.submit(principal, document))


async def push_judgment(request: web.Request) -> web.Response:
    """The courts' door: judgments only, under the older grant name ``judgments.push`` too."""
    principal = authenticate(request)
    document = await read_json(request)
    result = await request.app[SERVICES].documents.submit(
        principal, document, only_type=judgment.MESSAGE_TYPE, action="judgments.push"
    )
    return _receipt_response(result)


async def get_message(request: web.Request) -> web.Response:
    principal = require(request, "messages.read")
    view = await request.app[SERVICES].messages.status(principal, request.match_info["message_id"])
    return web.json_response(view)


async def confirm_message(request: web.Request) -> web.Response:
    principal = require(request, "messages.confirm")
    document = await read_json(request)
    view, _first = await request.app[SERVICES].messages.confirm(
        principal, request.match_info["message_id"], document
    )
    return web.json_response(view)


async def revoke_message(request: web.Request) -> web.Response:
    principal = authenticate(request)
    document = await read_json(request)
    view = await request.app[SERVICES].messages.revoke(principal, request.match_info["message_id"], document)
    return web.json_response(view)


async def keys(request: web.Request) -> web.Response:
    """The gateway's public signing keys (JWKS), to verify receipts and webhook signatures."""
    return web.json_response(
        request.app[SERVICES].signer.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/documents", send_document, name="documents.send")
    app.router.add_post("/v1/judgments", push_judgment, name="judgments.push")
    app.router.add_get("/v1/messages/{message_id}", get_message, name="messages.read")
    app.router.add_post("/v1/messages/{message_id}/confirmation", confirm_message, name="messages.confirm")
    app.router.add_post("/v1/messages/{message_id}/revocation", revoke_message, name="messages.revoke")
    app.router.add_get("/v1/keys", keys, name="keys")
