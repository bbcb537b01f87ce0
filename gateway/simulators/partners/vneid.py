"""The national e-ID notification service (VNeID): takes citizen notices, tells the gateway what became
of them, and records citizens' consents with the gateway.

``POST /vneid/api/v1/notices`` takes a whole ``notice.citizen`` document (bearer token,
``Idempotency-Key`` equal to its message_id) and answers ``202 {"status": "processing", "reference"}``.
Each message_id reaches the person's app once (a repeat answers the same, ``409`` if its document
differs). ``status_delay`` seconds later it pushes ``notice.delivery_status`` documents to
``POST {gateway_url}/v1/documents``, signed as its gateway client ``VNEID``: ``delivered`` then ``read``;
for a person without an e-ID account — in this simulator, a personal ID ending in ``9`` — one ``failed``
(``no_account``). Status ids are uuid5 of the notice's id and the status, so a repeated push is a
duplicate.

Test switches: ``GET /vneid/_sim/notices`` -> ``{message_id: times received}``;
``POST /vneid/_sim/consents {"id_number", "status": "granted"|"withdrawn"}`` makes the service record
that decision with the gateway (``POST /v1/consents``) and answers with the gateway's status and body.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from gateway.security.keys import PrivateKey, generate_keypair, load_private_key
from gateway.security.tokens import issue_token
from gateway.simulators.partners import (
    ICT,
    LAST_REQUEST,
    LAST_REQUESTS,
    Refused,
    check_bearer,
    last_request_handler,
    masked,
    rest_app,
)
from gateway.simulators.partners.banks import DEFAULT_GATEWAY_URL, Callbacks
from gateway.simulators.partners.behaviour import ADMIN_PREFIX, Behaviour

CODE: Final = "VNEID"
PATH: Final = "/vneid"
NOTICES_PATH: Final = "/api/v1/notices"
NOTICE: Final = "notice.citizen"
STATUS: Final = "notice.delivery_status"
#: A status's message_id is uuid5(STATUS_IDS, "<notice id>:<status>"): the same status every time.
STATUS_IDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:thads:simulators:vneid-status")


class Desk:
    """What the service received, and the key it signs its calls to the gateway with."""

    def __init__(self, key: PrivateKey, audience: str, gateway_url: str) -> None:
        self.key = key
        self.audience = audience
        self.gateway_url = gateway_url.rstrip("/")
        self.received: dict[str, int] = {}
        self.fingerprints: dict[str, str] = {}

    def token(self) -> str:
        return issue_token(CODE, self.key, self.audience, ttl=300)


DESK = web.AppKey("vneid_desk", Desk)
CALLBACKS = web.AppKey("vneid_callbacks", Callbacks)


def status_document(notice: dict[str, Any], status: str, reason: str | None = None) -> dict[str, Any]:
    at = datetime.now(ICT).replace(microsecond=0).isoformat()
    body: dict[str, Any] = {"status": status, "at": at, "reference": reference(notice["message_id"])}
    if reason:
        body["reason"] = reason
    return {
        "message_id": str(uuid.uuid5(STATUS_IDS, f"{notice['message_id']}:{status}")),
        "message_type": STATUS,
        "schema_version": "1",
        "created_at": at,
        "sender": CODE,
        "recipient": notice["sender"],
        "in_reply_to": notice["message_id"],
        **({"case_ref": notice["case_ref"]} if notice.get("case_ref") else {}),
        "body": body,
    }


def reference(message_id: str) -> str:
    return "VNEID-N-" + hashlib.sha256(message_id.encode()).hexdigest()[:10].upper()


def _check(document: object, idempotency_key: str | None) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("message_id"), str):
        raise Refused(400, "invalid_notice", "the body must be a notice document with a message_id")
    if idempotency_key != document["message_id"]:
        raise Refused(400, "invalid_request", "Idempotency-Key must equal the document's message_id")
    if document.get("message_type") != NOTICE or document.get("recipient") != CODE:
        raise Refused(400, "unsupported_document", "this endpoint takes notice.citizen documents for VNEID")
    person = (document.get("body") or {}).get("person") or {}
    if not isinstance(person.get("id_number"), str):
        raise Refused(400, "invalid_notice", "body.person.id_number is required")
    return document


async def take(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    try:
        check_bearer(request.headers.get("Authorization"))
        try:
            raw = await request.json()
        except ValueError as exc:
            raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
        if isinstance(raw, dict):
            request.app[LAST_REQUESTS][PATH] = masked(raw)
        notice = _check(raw, request.headers.get("Idempotency-Key"))
    except Refused as exc:
        return exc.response
    message_id = notice["message_id"]
    fingerprint = hashlib.sha256(json.dumps(notice, sort_keys=True).encode()).hexdigest()
    if desk.fingerprints.setdefault(message_id, fingerprint) != fingerprint:
        return web.json_response({"error": "idempotency_conflict"}, status=409)
    first = message_id not in desk.received
    desk.received[message_id] = desk.received.get(message_id, 0) + 1
    if first:
        _push_statuses(request.app, notice)
    body = {"status": "processing", "reference": reference(message_id)}
    return web.json_response(body, status=202, headers={"X-Reference": body["reference"]})


def _push_statuses(app: web.Application, notice: dict[str, Any]) -> None:
    desk, callbacks = app[DESK], app[CALLBACKS]
    url = desk.gateway_url + "/v1/documents"
    if notice["body"]["person"]["id_number"].endswith("9"):
        failed = status_document(notice, "failed", "no_account")
        callbacks.schedule(CODE, url, failed["message_id"], lambda: failed)
        return
    delivered = status_document(notice, "delivered")
    read = status_document(notice, "read")
    task = callbacks.schedule(CODE, url, delivered["message_id"], lambda: delivered)
    # Read after delivered: the person opens what reached the app.
    task.add_done_callback(
        lambda t: None if t.cancelled() else callbacks.schedule(CODE, url, read["message_id"], lambda: read)
    )


async def notices(request: web.Request) -> web.Response:
    return web.json_response(request.app[DESK].received)


async def consent(request: web.Request) -> web.Response:
    """The person decided in the app: record it with the gateway, and answer what the gateway said."""
    desk = request.app[DESK]
    try:
        wanted = await request.json()
    except ValueError:
        wanted = None
    if not isinstance(wanted, dict) or not isinstance(wanted.get("id_number"), str):
        return web.json_response({"error": 'the body must be {"id_number", "status"}'}, status=400)
    decision = {
        "person": {"id_number": wanted["id_number"]},
        "channel": "vneid",
        "status": wanted.get("status", "granted"),
        "at": datetime.now(ICT).replace(microsecond=0).isoformat(),
        "reference": "VNEID-C-" + uuid.uuid4().hex[:10].upper(),
    }
    headers = {"Authorization": f"Bearer {desk.token()}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.post(desk.gateway_url + "/v1/consents", json=decision, headers=headers) as resp,
    ):
        answer = await resp.json(content_type=None)
        return web.json_response({"gateway_status": resp.status, "gateway_answer": answer})


def make_app(
    behaviour: Behaviour | None = None,
    *,
    key: Path | None = None,
    audience: str = "thads-gateway",
    status_delay: float = 2.0,
    gateway_url: str = DEFAULT_GATEWAY_URL,
) -> web.Application:
    """``key``: PEM private key of the gateway client ``VNEID`` (an ephemeral one without: its pushes
    are then refused by a gateway that checks tokens)."""
    signing: PrivateKey = load_private_key(key.read_bytes()) if key is not None else generate_keypair()
    app = rest_app(behaviour, {})
    app[DESK] = Desk(signing, audience, gateway_url)
    app.router.add_post(PATH + NOTICES_PATH, take)
    app.router.add_get(PATH + ADMIN_PREFIX + "notices", notices)
    app.router.add_post(PATH + ADMIN_PREFIX + "consents", consent)
    app.router.add_get(PATH + LAST_REQUEST, last_request_handler(PATH))
    callbacks = Callbacks(signing, audience, status_delay)
    app[CALLBACKS] = callbacks
    app.cleanup_ctx.append(callbacks.context)
    return app
