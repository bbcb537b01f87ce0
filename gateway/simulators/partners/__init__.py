"""The partners the gateway queries for assets, simulated as real servers on loopback (docs/partners.md).

Land registry (SOAP), banks, tax, vehicles and population (REST JSON), answering from the seeded data of
:mod:`.seed`. Start them all with :func:`.servers.start_partners`. This module holds what the REST
simulators share: reading an inquiry, the partner's reference and the answer's timestamp.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from gateway.simulators.partners import seed
from gateway.simulators.partners.behaviour import Behaviour, json_garbage, json_unavailable, simulator_app

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


async def read_inquiry(request: web.Request) -> Inquiry:
    """The request's body, checked as docs/partners.md describes it; raises :class:`Refused`."""
    check_bearer(request.headers.get("Authorization"))
    try:
        body = await request.json()
    except ValueError as exc:
        raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Refused(400, "invalid_request", "the body must be a JSON object")
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
    """A REST simulator: ``POST path`` → answerer, behind the misbehaving middleware."""
    app = simulator_app(behaviour or Behaviour(), json_unavailable, json_garbage)
    for path, answerer in routes.items():
        app.router.add_post(path, _endpoint(answerer))
    return app


def _endpoint(answerer: Answerer) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            return await answerer(request, await read_inquiry(request))
        except Refused as exc:
            return exc.response

    return handle
