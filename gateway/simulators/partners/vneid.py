"""The national e-ID notification service (VNeID): takes citizen notices, tells the gateway what became
of them, and records citizens' consents with the gateway.

``POST /vneid/api/v1/notices`` takes a whole ``notice.citizen`` document at its :class:`NoticeDesk` (see
:mod:`.desk`: bearer token, ``Idempotency-Key`` equal to its message_id, each message_id once, ``409`` if
a repeat's document differs) and always answers later: ``202 {"status": "processing", "reference"}``.
``status_delay`` seconds later it pushes ``notice.delivery_status`` documents to
``POST {gateway_url}/v1/documents``, signed as its gateway client ``VNEID``: ``delivered`` then ``read``;
for a person without an e-ID account — in this simulator, a personal ID ending in ``9`` — one ``failed``
(``no_account``). Status ids are uuid5 of the notice's id and the status, so a repeated push is a
duplicate.

Test switches: ``GET /vneid/_sim/notices`` -> ``{message_id: times received}``;
``POST /vneid/_sim/consents {"id_number", "status": "granted"|"withdrawn"}`` makes the service record
that decision with the gateway (``POST /v1/consents``) and answers with the gateway's status and body.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from gateway.security.keys import PrivateKey
from gateway.security.tokens import issue_token
from gateway.simulators.partners import ICT, LAST_REQUEST, Refused, last_request_handler, reference, rest_app
from gateway.simulators.partners.behaviour import ADMIN_PREFIX, Behaviour
from gateway.simulators.partners.callbacks import DEFAULT_GATEWAY_URL, Callbacks, signing_key
from gateway.simulators.partners.desk import Desk, Document

CODE: Final = "VNEID"
PATH: Final = "/vneid"
NOTICES_PATH: Final = "/api/v1/notices"
NOTICE: Final = "notice.citizen"
STATUS: Final = "notice.delivery_status"
#: A status's message_id is uuid5(STATUS_IDS, "<notice id>:<status>"): the same status every time.
STATUS_IDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:thads:simulators:vneid-status")


class NoticeDesk(Desk):
    """Notices reach the person's app; what became of them comes later, as delivery statuses."""

    takes = frozenset({NOTICE})

    def __init__(self, key: PrivateKey, audience: str, **options: Any) -> None:
        super().__init__(CODE, PATH, mode="late", **options)
        self.key = key
        self.audience = audience

    def token(self) -> str:
        return issue_token(CODE, self.key, self.audience, ttl=300)

    def check(self, document: Document) -> None:
        person = document["body"].get("person") or {}
        if not isinstance(person, dict) or not isinstance(person.get("id_number"), str):
            raise Refused(400, "invalid_notice", "body.person.id_number is required")

    def execute(self, document: Document, reference: str) -> dict[str, Any]:
        return {}  # nothing to say at once: the app has it

    def late_answers(self, document: Document, body: dict[str, Any]) -> list[Document]:
        if document["body"]["person"]["id_number"].endswith("9"):
            return [status_document(document, "failed", "no_account")]
        # Read after delivered: the person opens what reached the app.
        return [status_document(document, "delivered"), status_document(document, "read")]


DESK = web.AppKey("vneid_desk", NoticeDesk)


def status_document(notice: dict[str, Any], status: str, reason: str | None = None) -> dict[str, Any]:
    at = datetime.now(ICT).replace(microsecond=0).isoformat()
    body: dict[str, Any] = {"status": status, "at": at, "reference": reference(CODE, notice["message_id"])}
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


async def notices(request: web.Request) -> web.Response:
    return web.json_response(Counter(item["message_id"] for item in request.app[DESK].received))


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
    signing = signing_key(key, CODE)
    callbacks = Callbacks(signing, audience, status_delay)
    desk = NoticeDesk(signing, audience, callbacks=callbacks, gateway_url=gateway_url)
    app = rest_app(behaviour, {})
    app.cleanup_ctx.append(callbacks.context)
    app[DESK] = desk
    desk.install(app, NOTICES_PATH)
    app.router.add_get(PATH + ADMIN_PREFIX + "notices", notices)
    app.router.add_post(PATH + ADMIN_PREFIX + "consents", consent)
    app.router.add_get(PATH + LAST_REQUEST, last_request_handler(PATH))
    return app
