"""The partners around the gateway, simulated as real servers on loopback (docs/partners.md).

Land registry (SOAP), banks, tax, vehicles and population (REST JSON) answering lookups from the seeded
data of :mod:`.seed`; banks, the land registry, the police unit and the e-ID notification service taking
documents. Start them all with :func:`.servers.start_partners`. This module holds what the REST
simulators share: reading an inquiry, the partner's reference and the answer's timestamp. What every
partner taking documents shares is :mod:`.desk` (each message_id executed once, answered at once, later
or never) and :mod:`.callbacks` (signed, retried calls back to the gateway).

Like a partner bound by the law on requests for information, every simulator refuses a lookup that does
not state its case (``case_ref``), officer (``officer_id``), legal basis (``legal_basis``), title (the
judgment and the enforcement decision), purpose and deadline (``due_at``). Each remembers the last lookup
it was sent, personal IDs masked: ``GET /<partner>/_sim/last-request`` (404 before the first), e.g.
``/tax/_sim/last-request``, ``/vcb/_sim/last-request``, ``/land/_sim/last-request``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final

from aiohttp import web

from gateway.domain.identifiers import PERSONAL_ID, mask
from gateway.simulators.partners import seed
from gateway.simulators.partners.behaviour import (
    ADMIN_PREFIX,
    Behaviour,
    json_garbage,
    json_unavailable,
    simulator_app,
)

ICT = timezone(timedelta(hours=7), "ICT")  # partners stamp their answers in Vietnam's time


@dataclass(frozen=True, slots=True)
class Inquiry:
    request_ref: str
    identifier: str  # the ID number, or the enterprise code
    body: dict[str, Any]


def dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, dumps=dumps)


class Refused(Exception):
    """A request the partner turns down; ``response`` is what it answers."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.response = json_error(status, error, message)


def check_bearer(authorization: str | None) -> None:
    # Simulators accept any token, but a call without one is a connector bug worth seeing at once.
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "unauthorized", "Authorization: Bearer <token> is required")


#: Members holding a personal ID, in a REST body and in a SOAP request read by ``land.as_json``.
PERSONAL_ID_MEMBERS: Final = frozenset({"id_number", "officer_id", "IdNumber", "OfficerId"})


def masked(value: Any) -> Any:
    """``value`` (JSON) with the personal IDs it holds masked (``001*******45``), at any depth."""
    if isinstance(value, dict):
        return {
            key: mask(item) if key in PERSONAL_ID_MEMBERS and isinstance(item, str) else masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


#: The last lookup each partner was sent (personal IDs masked), keyed by the partner's path prefix.
LAST_REQUESTS = web.AppKey("last_requests", dict[str, Any])
LAST_REQUEST = ADMIN_PREFIX + "last-request"


def prefix_of(path: str) -> str:
    """A partner's path prefix: ``/tax`` of ``/tax/api/v1/income-sources/search``."""
    return "/" + path.strip("/").split("/", 1)[0]


def last_request_handler(prefix: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def last(request: web.Request) -> web.Response:
        seen = request.app[LAST_REQUESTS].get(prefix)
        if seen is None:
            return json_error(404, "no_request", "no lookup received yet")
        return web.json_response(seen, dumps=dumps)

    return last


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _date(value: object) -> bool:
    """A date as YYYY-MM-DD."""
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _date_time(value: object) -> bool:
    """An ISO 8601 date and time with its offset."""
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        return datetime.fromisoformat(value).utcoffset() is not None
    except ValueError:
        return False


def stated_reasons(body: Mapping[str, Any]) -> None:
    """What a lookup must state besides its subject; raises :class:`Refused` naming the first field missing
    or malformed (never its value)."""
    for name in ("case_ref", "legal_basis", "purpose"):
        if not _text(body.get(name)):
            raise Refused(400, "invalid_request", f"{name} is required")
    officer = body.get("officer_id")
    if not isinstance(officer, str) or not PERSONAL_ID.fullmatch(officer):
        raise Refused(400, "invalid_request", "officer_id (the officer's 12-digit personal ID) is required")
    title = body.get("title")
    judgment = title.get("judgment") if isinstance(title, dict) else None
    decision = title.get("enforcement_decision") if isinstance(title, dict) else None
    if not (
        isinstance(judgment, dict)
        and _text(judgment.get("court_code"))
        and _text(judgment.get("number"))
        and _date(judgment.get("date"))
        and isinstance(decision, dict)
        and _text(decision.get("number"))
        and _date(decision.get("date"))
    ):
        raise Refused(
            400,
            "invalid_request",
            "title is required: judgment {court_code, number, date} and enforcement_decision {number, date}",
        )
    if not _date_time(body.get("due_at")):
        raise Refused(400, "invalid_request", "due_at (ISO 8601 date and time with offset) is required")


async def read_inquiry(request: web.Request, prefix: str | None = None) -> Inquiry:
    """The request's body, checked as docs/partners.md describes it; raises :class:`Refused`. Under
    ``prefix`` the body is remembered (masked) as that partner's last request, even when refused."""
    check_bearer(request.headers.get("Authorization"))
    try:
        body = await request.json()
    except ValueError as exc:
        raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Refused(400, "invalid_request", "the body must be a JSON object")
    if prefix is not None:
        request.app[LAST_REQUESTS][prefix] = masked(body)
    request_ref = body.get("request_ref")
    if not isinstance(request_ref, str) or not request_ref.strip():
        raise Refused(400, "invalid_request", "request_ref is required")
    subject = body.get("subject")
    if not isinstance(subject, dict):
        raise Refused(400, "invalid_request", "subject is required")
    keys = [subject[k] for k in ("id_number", "enterprise_code") if subject.get(k) is not None]
    if len(keys) != 1 or not isinstance(keys[0], str) or not seed.is_well_formed(keys[0]):
        raise Refused(
            400,
            "invalid_subject",
            "subject needs exactly one of id_number (12 digits) or enterprise_code (10 digits[-3 digits])",
        )
    stated_reasons(body)
    return Inquiry(request_ref=request_ref, identifier=keys[0], body=body)


def reference(partner_code: str, request_ref: str) -> str:
    """The partner's own reference: the same for the same request_ref, as an idempotent partner's is."""
    digest = hashlib.sha256(f"{partner_code}|{request_ref}".encode()).hexdigest()[:12].upper()
    return f"{partner_code}-{digest}"


def as_of() -> str:
    return datetime.now(ICT).isoformat(timespec="seconds")


def answer(partner_code: str, inquiry: Inquiry, match_status: str, **rows: Any) -> web.Response:
    body = {"reference": reference(partner_code, inquiry.request_ref), "match_status": match_status}
    return web.json_response(body | {"as_of": as_of()} | rows, dumps=dumps)


Answerer = Callable[[web.Request, Inquiry], Awaitable[web.Response]]


def rest_app(behaviour: Behaviour | None, routes: Mapping[str, Answerer]) -> web.Application:
    """A REST simulator: ``POST path`` → answerer, behind the misbehaving middleware, and
    ``GET <prefix>/_sim/last-request`` per partner prefix (the first segment of its paths)."""
    app = simulator_app(behaviour or Behaviour(), json_unavailable, json_garbage)
    app[LAST_REQUESTS] = {}
    for path, answerer in routes.items():
        app.router.add_post(path, _endpoint(answerer, prefix_of(path)))
    for prefix in sorted({prefix_of(path) for path in routes}):
        app.router.add_get(prefix + LAST_REQUEST, last_request_handler(prefix))
    return app


def _endpoint(answerer: Answerer, prefix: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            return await answerer(request, await read_inquiry(request, prefix))
        except Refused as exc:
            return exc.response

    return handle
