"""REST endpoints for asset inquiries (case system) and late answers (partners that call back)."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.problems import Violation, invalid
from gateway.web.auth import authenticate, require
from gateway.web.body import read_json
from gateway.web.context import SERVICES

PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)")
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


async def create_inquiry(request: web.Request) -> web.Response:
    principal = authenticate(request)
    body = await read_json(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise invalid([Violation("Idempotency-Key", "must be 8-128 characters of A-Z a-z 0-9 . _ : -")])
    services = request.app[SERVICES]
    callback = services.settings.api.public_url.rstrip("/") + "/v1/partner-answers"
    view, _created = await services.inquiries.create(principal, body, key, callback)
    match = PREFER_WAIT.search(request.headers.get("Prefer", ""))
    headers = {"Location": f"/v1/asset-inquiries/{view['inquiry_id']}"}
    if match:
        seconds = min(float(match.group(1)), services.settings.api.max_wait_seconds)
        view = await services.inquiries.wait(principal, view["inquiry_id"], seconds)
        headers["Preference-Applied"] = f"wait={seconds:g}"
    status = 200 if view["status"] in ("complete", "expired") and match else 202
    return web.json_response(view, status=status, headers=headers)


async def get_inquiry(request: web.Request) -> web.Response:
    principal = authenticate(request)
    view = await request.app[SERVICES].inquiries.view(principal, request.match_info["inquiry_id"])
    return web.json_response(view)


async def list_inquiries(request: web.Request) -> web.Response:
    principal = authenticate(request)
    case_ref = request.query.get("case_ref")
    if not case_ref:
        raise invalid([Violation("case_ref", "query parameter case_ref is required")])
    views = await request.app[SERVICES].inquiries.for_case(principal, case_ref)
    return web.json_response({"case_ref": case_ref, "inquiries": views})


async def partner_answer(request: web.Request) -> web.Response:
    """A partner's late answer to a request it accepted earlier (e.g. a bank's account inquiry)."""
    principal = require(request, "assets.answer")
    body = await read_json(request)
    recorded = await request.app[SERVICES].answers.accept(principal, body)
    return web.json_response({"recorded": recorded}, status=200)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/asset-inquiries", create_inquiry, name="assets.inquire")
    app.router.add_get("/v1/asset-inquiries", list_inquiries, name="assets.list")
    app.router.add_get("/v1/asset-inquiries/{inquiry_id}", get_inquiry, name="assets.read")
    app.router.add_post("/v1/partner-answers", partner_answer, name="assets.answer")
