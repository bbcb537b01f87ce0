"""The police unit of Hà Nội (CA-HN), REST: ``POST /ca-hn/api/v1/documents``.

It takes a ``police.protection_request`` or a ``police.urgent_assistance`` (or a ``document.revocation``)
at its :class:`PoliceDesk` (see :mod:`.desk`: idempotency on the message_id, test switches under
``/ca-hn/_sim/``) and answers according to its **answer mode**:

- ``at_once`` (default): ``200`` with the answer body (``police.protection_answer``: the forces agreed,
  their commander and contact, or a refusal with its reason; ``police.assistance_ack``: the unit
  dispatched and its arrival time), its reference in ``X-Reference``;
- ``late``: ``202 {"status": "processing", "reference"}``, then ``answer_delay`` seconds later it pushes the
  answer document to ``POST {gateway_url}/v1/documents`` as client ``CA-HN`` (a JWT signed with its key);
- ``never``: ``202 processing`` and no answer ever (the gateway's deadline escalates).

Seeded outcomes: a protection request asking for more than :data:`MAX_OFFICERS` officers is refused
(forces committed elsewhere), any other agreed; an assistance request is always acknowledged with a unit
dispatched.

Its own test switch: ``POST /ca-hn/_sim/hold {"hold": bool, "delay"?: s}`` keeps normal-priority
documents waiting (until released, or ``delay`` seconds each) while urgent ones are answered at once: a
slow or paused desk that still takes emergency calls. ``POST /ca-hn/_sim/answers {"mode": ...}`` switches
the answer mode and ``GET /ca-hn/_sim/received`` lists what arrived, in order (:mod:`.desk`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from cryptography import x509

from gateway.domain.issued import REVOCATION
from gateway.simulators.partners import ICT, json_error, rest_app
from gateway.simulators.partners.behaviour import ADMIN_PREFIX, Behaviour
from gateway.simulators.partners.callbacks import DEFAULT_GATEWAY_URL, Callbacks, signing_key
from gateway.simulators.partners.desk import Desk, Document

log = logging.getLogger(__name__)

CODE: Final = "CA-HN"
PATH: Final = "/ca-hn"
DOCUMENTS_PATH: Final = "/api/v1/documents"
PROTECTION_REQUEST: Final = "police.protection_request"
URGENT_ASSISTANCE: Final = "police.urgent_assistance"
#: More officers than this for one coercion: refused, the unit's forces are committed elsewhere.
MAX_OFFICERS: Final = 50
COMMANDER: Final = {"name": "Nguyễn Quang Minh", "rank": "Thiếu tá", "phone": "0987654321"}
DUTY_DESK: Final = {"name": "Lê Văn Tú", "rank": "Đại úy", "role": "Trực ban", "phone": "0243 9421234"}


class PoliceDesk(Desk):
    """The unit's desk: it answers protection and assistance requests, and holds normal ones on demand."""

    takes = frozenset({PROTECTION_REQUEST, URGENT_ASSISTANCE, REVOCATION})

    def __init__(self, **options: Any) -> None:
        super().__init__(CODE, PATH, **options)
        self.hold = False
        self.hold_delay = 0.0
        self.released = asyncio.Event()
        self.released.set()

    def execute(self, document: Document, reference: str) -> dict[str, Any]:
        if document["message_type"] == PROTECTION_REQUEST:
            return protection_answer(document, reference)
        return assistance_ack(document, reference)

    async def wait(self, document: Document) -> None:
        if document.get("priority") == "urgent":
            return
        if self.hold_delay:
            await asyncio.sleep(self.hold_delay)
        if self.hold:
            await self.released.wait()

    async def set_hold(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("hold"), bool):
            return json_error(
                400, "invalid_request", 'the body must be {"hold": true|false, "delay"?: seconds}'
            )
        self.hold = body["hold"]
        delay = body.get("delay", 0.0)
        self.hold_delay = float(delay) if isinstance(delay, int | float) and delay >= 0 else 0.0
        if self.hold:
            self.released.clear()
        else:
            self.released.set()
        return web.json_response({"hold": self.hold, "delay": self.hold_delay})


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


def make_app(
    behaviour: Behaviour | None = None,
    *,
    key: Path | None = None,
    audience: str = "thads-gateway",
    answer_delay: float = 3.0,
    gateway_url: str = DEFAULT_GATEWAY_URL,
    mode: str = "at_once",
    request_signature_anchors: Sequence[x509.Certificate] | None = None,
) -> web.Application:
    """``key``: PEM private key of client ``CA-HN`` that signs the late answers it pushes (without one, an
    ephemeral key: a gateway that checks tokens refuses them). ``mode``: the answer mode at start.
    ``request_signature_anchors``: it takes only requests signed by their sending office under one of these
    roots (None: signatures are not looked at)."""
    pushes = Callbacks(signing_key(key, CODE), audience, answer_delay)
    desk = PoliceDesk(
        mode=mode, callbacks=pushes, gateway_url=gateway_url, signature_anchors=request_signature_anchors
    )
    app = rest_app(behaviour, {})
    app.cleanup_ctx.append(pushes.context)
    desk.install(app, DOCUMENTS_PATH)
    app.router.add_post(PATH + ADMIN_PREFIX + "hold", desk.set_hold)
    return app
