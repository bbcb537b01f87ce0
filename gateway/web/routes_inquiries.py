"""REST endpoints for asset inquiries (case system) and late answers (partners that call back)."""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from gateway.problems import Violation, invalid
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.body import read_json
from gateway.web.context import SERVICES
from gateway.web.operation import ANY_CLIENT, Example, Operation, Parameter, Response

__all__ = ["OPERATIONS"]

PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)")
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


async def create_inquiry(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
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
    view = await request.app[SERVICES].inquiries.view(
        request[PRINCIPAL_KEY], request.match_info["inquiry_id"]
    )
    return web.json_response(view)


async def list_inquiries(request: web.Request) -> web.Response:
    case_ref = request.query.get("case_ref")
    if not case_ref:
        raise invalid([Violation("case_ref", "query parameter case_ref is required")])
    views = await request.app[SERVICES].inquiries.for_case(request[PRINCIPAL_KEY], case_ref)
    return web.json_response({"case_ref": case_ref, "inquiries": views})


async def partner_answer(request: web.Request) -> web.Response:
    """A partner's late answer to a request it accepted earlier (e.g. a bank's account inquiry)."""
    body = await read_json(request)
    recorded = await request.app[SERVICES].answers.accept(request[PRINCIPAL_KEY], body)
    return web.json_response({"recorded": recorded}, status=200)


_HEADERS: Final = ("Location", "Preference-Applied")

OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/asset-inquiries",
        create_inquiry,
        name="assets.inquire",
        operation_id="createAssetInquiry",
        tag="Asset inquiries",
        summary="Look up a debtor's assets in every register at once (case system)",
        description=(
            "Grant `assets.inquire` (every source) or `assets.inquire:<kind>` for each source asked; a "
            "missing grant is `403`, never a silent partial answer. Every lookup is audited. The inquiry is "
            "answered with `Location: /v1/asset-inquiries/{inquiry_id}`."
        ),
        grant="assets.inquire",
        grant_check="service",
        parameters=(
            Parameter(
                "Prefer",
                "header",
                "`wait=N`: wait up to N seconds (capped at `api.max_wait_seconds`) for every source to "
                "answer: `200` with the complete result if they did, else `202`. Without it, `202` at once.",
                {"type": "string", "examples": ["wait=10"]},
            ),
            Parameter(
                "Idempotency-Key",
                "header",
                "The same key returns the same inquiry; another body with it is `409`.",
                {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
            ),
        ),
        request="asset.inquiry",
        responses={
            200: Response("Complete (or expired) within the `Prefer: wait`.", "inquiry", headers=_HEADERS),
            202: Response(
                "Created (or found by its `Idempotency-Key`); sources still pending.",
                "inquiry",
                headers=_HEADERS,
            ),
        },
        problems=(400, 403, 409, 413, 415, 422, 503),
        problem_notes={
            403: "Not granted `assets.inquire` or `assets.inquire:<kind>` for a source asked.",
            409: "The `Idempotency-Key` was used for a different inquiry.",
            422: "Schema violations, an unknown legal basis, a precondition not met, a malformed "
            "`Idempotency-Key`, or a `callback_url` the outbound policy refuses (docs/outbound.md).",
        },
        examples=(Example("asset-inquiry", "valid-all-registers.json", "A person, every register"),),
    ),
    Operation(
        "GET",
        "/v1/asset-inquiries",
        list_inquiries,
        name="assets.list",
        operation_id="listAssetInquiries",
        tag="Asset inquiries",
        summary="The client's inquiries for one case",
        grant=ANY_CLIENT,
        parameters=(
            Parameter(
                "case_ref",
                "query",
                "Enforcement case number (missing or empty: `422`).",
                {"type": "string", "minLength": 1},
                required=True,
            ),
        ),
        responses={200: Response("The inquiries, oldest first.", "inquiry.list")},
        problems=(422, 503),
    ),
    Operation(
        "GET",
        "/v1/asset-inquiries/{inquiry_id}",
        get_inquiry,
        name="assets.read",
        operation_id="getAssetInquiry",
        tag="Asset inquiries",
        summary="An inquiry and its answers",
        description="The client that created it only (anyone else: 404).",
        grant=ANY_CLIENT,
        responses={200: Response("The inquiry.", "inquiry")},
        problems=(404, 503),
    ),
    Operation(
        "POST",
        "/v1/partner-answers",
        partner_answer,
        name="assets.answer",
        operation_id="postPartnerAnswer",
        tag="Partners",
        summary="A partner's late answer (banks that answered `202 processing`)",
        description=(
            "Grant `assets.answer`, with the partner's own token. A partner answers its own requests only "
            "(anything else: 404). An answer after the source timed out or was answered is not recorded: "
            "the first recorded answer stands."
        ),
        grant="assets.answer",
        request="partner.answer",
        responses={200: Response("Received.", "partner.answer.result")},
        problems=(400, 403, 404, 413, 415, 422, 503),
    ),
)
