"""The police unit of Hà Nội (CA-HN), REST: ``POST /ca-hn/api/v1/documents``.

It takes a ``police.protection_request`` or a ``police.urgent_assistance`` (or a ``document.revocation``)
with a bearer token and ``Idempotency-Key: <message_id>`` (it must equal the document's), registers each
message_id once (a repeat gets the first answer again; 409 if its document differs) and answers
according to its **answer mode**:

- ``at_once`` (default): ``200`` with the answer body (``police.protection_answer``: the forces agreed,
  their commander and contact, or a refusal with its reason; ``police.assistance_ack``: the unit
  dispatched and its arrival time), its reference in ``X-Reference``;
- ``late``: ``202 {"status": "processing", "reference"}``, then ``answer_delay`` seconds later it pushes the
  answer document to ``POST {gateway_url}/v1/documents`` as client ``CA-HN`` (a JWT signed with its key;
  message_id derived from ours, so a repeated push is a duplicate), retrying while the gateway does not
  take it;
- ``never``: ``202 processing`` and no answer ever (the gateway's deadline escalates).

Seeded outcomes: a protection request asking for more than :data:`MAX_OFFICERS` officers is refused
(forces committed elsewhere), any other agreed; an assistance request is always acknowledged with a unit
dispatched.

Test switches: ``POST /ca-hn/_sim/answers {"mode": "at_once"|"late"|"never"}``;
``POST /ca-hn/_sim/hold {"hold": bool, "delay"?: s}`` keeps normal-priority documents waiting (until
released, or ``delay`` seconds each) while urgent ones are answered at once: a slow or paused desk that
still takes emergency calls; ``GET /ca-hn/_sim/received`` lists what arrived, in order (message_id,
message_type, priority, times received).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from gateway.domain.answers import answer_document
from gateway.domain.issued import REVOCATION
from gateway.security.keys import PrivateKey, generate_keypair, load_private_key
from gateway.simulators.partners import ICT, Refused, check_bearer, dumps, json_error, reference, rest_app
from gateway.simulators.partners.banks import DEFAULT_GATEWAY_URL, Callbacks
from gateway.simulators.partners.behaviour import ADMIN_PREFIX, Behaviour

log = logging.getLogger(__name__)

CODE: Final = "CA-HN"
PATH: Final = "/ca-hn"
DOCUMENTS_PATH: Final = "/api/v1/documents"
PROTECTION_REQUEST: Final = "police.protection_request"
URGENT_ASSISTANCE: Final = "police.urgent_assistance"
ANSWER_TYPES: Final = {
    PROTECTION_REQUEST: "police.protection_answer",
    URGENT_ASSISTANCE: "police.assistance_ack",
}
ANSWER_MODES: Final = ("at_once", "late", "never")
#: More officers than this for one coercion: refused, the unit's forces are committed elsewhere.
MAX_OFFICERS: Final = 50
COMMANDER: Final = {"name": "Nguyễn Quang Minh", "rank": "Thiếu tá", "phone": "0987654321"}
DUTY_DESK: Final = {"name": "Lê Văn Tú", "rank": "Đại úy", "role": "Trực ban", "phone": "0243 9421234"}


@dataclass
class PoliceDesk:
    mode: str = "at_once"
    hold: bool = False
    hold_delay: float = 0.0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    #: message_id -> (fingerprint, status, body, reference)
    done: dict[str, tuple[str, int, dict[str, Any], str]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    pushes: dict[str, asyncio.Task[None]] = field(default_factory=dict)


DESK = web.AppKey("police_desk", PoliceDesk)
PUSHES = web.AppKey("police_pushes", Callbacks)


def protection_answer(document: Mapping[str, Any], ref: str) -> dict[str, Any]:
    body = document["body"]
    asked = body["forces_requested"]
    if asked["officers"] > MAX_OFFICERS:
        reason = (
            f"Không thể bố trí {asked['officers']} cán bộ: lực lượng đã được huy động cho nhiệm vụ khác "
            "trong cùng thời gian; đề nghị điều chỉnh kế hoạch cưỡng chế."
        )
        return {"decision": "refused", "reason": reason, "reference": ref}
    forces = {"officers": asked["officers"], "units": asked.get("units") or ["Công an phường sở tại"]}
    muster = f"{body['coercion_plan']['coercion_date']}T07:00:00+07:00"
    return {
        "decision": "agreed",
        "forces": forces,
        "commander": COMMANDER,
        "contact": DUTY_DESK,
        "muster": {"at": muster, "place": f"Trụ sở công an gần {body['place']['address']}"[:300]},
        "reference": ref,
    }


def assistance_ack(document: Mapping[str, Any], ref: str) -> dict[str, Any]:
    ward = document["body"]["place"].get("ward") or document["body"]["place"]["province"]
    return {
        "acknowledged_at": datetime.now(ICT).isoformat(timespec="seconds"),
        "dispatched": True,
        "unit": f"Công an {ward}"[:300],
        "officers": max(4, document["body"]["officers_on_site"] * 2),
        "eta_minutes": 10,
        "commander": COMMANDER,
        "reference": ref,
    }


def _fingerprint(document: Mapping[str, Any]) -> str:
    canonical = {k: v for k, v in document.items() if k not in ("created_at", "due_at")}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def _check(raw: object, idempotency_key: str | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Refused(400, "invalid_request", "the body must be a JSON object")
    message_id = raw.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise Refused(400, "invalid_request", "message_id is required")
    if idempotency_key != message_id:
        raise Refused(400, "invalid_request", "Idempotency-Key must equal the document's message_id")
    if raw.get("recipient") != CODE:
        raise Refused(422, "wrong_unit", f"this is {CODE}; the document is for {raw.get('recipient')!r}")
    kind = raw.get("message_type")
    if kind not in (PROTECTION_REQUEST, URGENT_ASSISTANCE, REVOCATION):
        raise Refused(422, "unsupported", f"{CODE} takes no {kind!r}")
    if not isinstance(raw.get("body"), dict):
        raise Refused(400, "invalid_request", "body is required")
    return raw


def _take(gateway_url: str) -> Callable[[web.Request], Any]:
    documents_url = gateway_url.rstrip("/") + "/v1/documents"

    async def take(request: web.Request) -> web.Response:
        desk = request.app[DESK]
        try:
            check_bearer(request.headers.get("Authorization"))
            try:
                raw = await request.json()
            except ValueError as exc:
                raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
            document = _check(raw, request.headers.get("Idempotency-Key"))
        except Refused as exc:
            return exc.response
        message_id = document["message_id"]
        urgent = document.get("priority") == "urgent"
        desk.received.append(
            {
                "message_id": message_id,
                "message_type": document["message_type"],
                "priority": "urgent" if urgent else "normal",
                "at": asyncio.get_running_loop().time(),
            }
        )
        if not urgent:
            if desk.hold_delay:
                await asyncio.sleep(desk.hold_delay)
            if desk.hold:
                await desk.released.wait()
        ref = reference(CODE, message_id)
        headers = {"X-Reference": ref}
        earlier = desk.done.get(message_id)
        if earlier is not None:
            fingerprint, status, body, ref = earlier
            if fingerprint != _fingerprint(document):
                return json_error(409, "conflict", "this message_id was taken with another document")
            return web.json_response(body, status=status, headers={"X-Reference": ref}, dumps=dumps)
        if document["message_type"] == REVOCATION:
            acknowledged: dict[str, Any] = {"status": "acknowledged", "reference": ref}
            desk.done[message_id] = (_fingerprint(document), 200, acknowledged, ref)
            return web.json_response(acknowledged, headers=headers)
        if desk.mode == "at_once":
            answer = _answer(document, ref)
            desk.done[message_id] = (_fingerprint(document), 200, answer, ref)
            return web.json_response(answer, headers=headers, dumps=dumps)
        processing = {"status": "processing", "reference": ref}
        desk.done[message_id] = (_fingerprint(document), 202, processing, ref)
        if desk.mode == "late":
            answer_type = ANSWER_TYPES[document["message_type"]]
            created = datetime.now(ICT).isoformat(timespec="seconds")
            pushed = answer_document(document, answer_type, _answer(document, ref), created)
            desk.pushes[message_id] = request.app[PUSHES].schedule(
                CODE, documents_url, pushed["message_id"], lambda: pushed
            )
        return web.json_response(processing, status=202, headers=headers)

    return take


def _answer(document: Mapping[str, Any], ref: str) -> dict[str, Any]:
    if document["message_type"] == PROTECTION_REQUEST:
        return protection_answer(document, ref)
    return assistance_ack(document, ref)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


async def _set_answers(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _json(request)
    mode = body.get("mode")
    if mode not in ANSWER_MODES:
        return json_error(400, "invalid_request", f"mode must be one of {', '.join(ANSWER_MODES)}")
    desk.mode = str(mode)
    return web.json_response({"mode": desk.mode})


async def _set_hold(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    body = await _json(request)
    if not isinstance(body.get("hold"), bool):
        return json_error(400, "invalid_request", 'the body must be {"hold": true|false, "delay"?: seconds}')
    desk.hold = body["hold"]
    delay = body.get("delay", 0.0)
    desk.hold_delay = float(delay) if isinstance(delay, int | float) and delay >= 0 else 0.0
    if desk.hold:
        desk.released.clear()
    else:
        desk.released.set()
    return web.json_response({"hold": desk.hold, "delay": desk.hold_delay})


async def _received(request: web.Request) -> web.Response:
    return web.json_response(request.app[DESK].received)


def make_app(
    behaviour: Behaviour | None = None,
    *,
    key: Path | None = None,
    audience: str = "thads-gateway",
    answer_delay: float = 3.0,
    gateway_url: str = DEFAULT_GATEWAY_URL,
    mode: str = "at_once",
) -> web.Application:
    """``key``: PEM private key of client ``CA-HN`` that signs the late answers it pushes (without one, an
    ephemeral key: a gateway that checks tokens refuses them). ``mode``: the answer mode at start."""
    if mode not in ANSWER_MODES:
        raise ValueError(f"unknown answer mode {mode!r}; one of {', '.join(ANSWER_MODES)}")
    signing: PrivateKey = load_private_key(key.read_bytes()) if key is not None else generate_keypair()
    if key is None:
        log.warning("no key for %s: its late answers are signed with an ephemeral key", CODE)
    app = rest_app(behaviour, {})
    desk = PoliceDesk(mode=mode)
    desk.released.set()
    app[DESK] = desk
    pushes = Callbacks(signing, audience, answer_delay)
    app[PUSHES] = pushes
    app.cleanup_ctx.append(pushes.context)
    app.router.add_post(PATH + DOCUMENTS_PATH, _take(gateway_url))
    app.router.add_post(PATH + ADMIN_PREFIX + "answers", _set_answers)
    app.router.add_post(PATH + ADMIN_PREFIX + "hold", _set_hold)
    app.router.add_get(PATH + ADMIN_PREFIX + "received", _received)
    return app
