"""REST endpoints for bulk lookups: many debtors in one request (docs/bulk.md)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.problems import Violation, invalid
from gateway.services.bulk import too_many
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.body import read_json
from gateway.web.context import SERVICES
from gateway.web.operation import ANY_CLIENT, Example, Operation, Parameter, Response
from gateway.web.routes_inquiries import IDEMPOTENCY_KEY

__all__ = ["OPERATIONS"]

PATH: Final = "/v1/bulk-asset-inquiries"
DEFAULT_PAGE: Final = 20


async def create_bulk(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    services = request.app[SERVICES]
    limit = services.settings.bulk.max_debtors

    def bounded(document: object) -> None:
        refusal = too_many(document, limit)
        if refusal is not None:
            raise refusal

    body = await read_json(request, before_schema=bounded)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise invalid([Violation("Idempotency-Key", "must be 8-128 characters of A-Z a-z 0-9 . _ : -")])
    callback = services.settings.api.public_url.rstrip("/") + "/v1/partner-answers"
    view, _created = await services.bulk.create(principal, body, key, callback)
    return web.json_response(view, status=202, headers={"Location": f"{PATH}/{view['bulk_id']}"})


async def get_bulk(request: web.Request) -> web.Response:
    raw = request.query.get("limit", str(DEFAULT_PAGE))
    if not raw.isdigit() or len(raw) > 6:
        raise invalid([Violation("limit", "must be a whole number from 0 (progress only)")])
    view = await request.app[SERVICES].bulk.view(
        request[PRINCIPAL_KEY], request.match_info["bulk_id"], int(raw), request.query.get("cursor")
    )
    return web.json_response(view)


OPERATIONS: Final = (
    Operation(
        "POST",
        PATH,
        create_bulk,
        name="assets.bulk",
        operation_id="createBulkAssetInquiry",
        tag="Asset inquiries",
        summary="Look up the assets of many debtors at once (case system)",
        description=(
            "One officer, legal basis, purpose and set of sources for up to `bulk.max_debtors` debtors "
            "(1,000 by default), each with its own case and title. Validated as a whole (every violation "
            "with its path, e.g. `$.debtors[17].id_number`) and authorised like the inquiries it makes: "
            "`assets.inquire` or `assets.inquire:<kind>` for each source asked. Accepted at once (`202`, "
            "`Location: /v1/bulk-asset-inquiries/{bulk_id}`); the workers then turn each debtor into an "
            "ordinary asset inquiry, audited as its own lookup."
        ),
        grant="assets.inquire",
        grant_check="service",
        parameters=(
            Parameter(
                "Idempotency-Key",
                "header",
                "The same key returns the same bulk; another body with it is `409`.",
                {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
            ),
        ),
        request="asset.inquiry.bulk",
        responses={
            202: Response(
                "Accepted (or found by its `Idempotency-Key`): the bulk and its progress.",
                "bulk.inquiry",
                headers=("Location",),
            ),
        },
        problems=(400, 403, 409, 413, 415, 422, 503),
        problem_notes={
            403: "Not granted `assets.inquire` or `assets.inquire:<kind>` for a source asked.",
            409: "The `Idempotency-Key` was used for a different bulk.",
            413: "The body is too large, or names more than `bulk.max_debtors` debtors (`too-complex`).",
            422: "Schema violations (with their paths), an unknown legal basis, a precondition not met, a "
            "malformed `Idempotency-Key`, or a `callback_url` the outbound policy refuses.",
        },
        examples=(Example("asset-inquiry-bulk", summary="Three debtors, their banks and tax"),),
    ),
    Operation(
        "GET",
        PATH + "/{bulk_id}",
        get_bulk,
        name="assets.bulk.read",
        operation_id="getBulkAssetInquiry",
        tag="Asset inquiries",
        summary="A bulk lookup's progress and its debtors' results, page by page",
        description=(
            "The client that created it only (anyone else: 404). Each debtor's inquiry shown is audited "
            "as read; `limit=0` shows the progress alone."
        ),
        grant=ANY_CLIENT,
        parameters=(
            Parameter(
                "limit",
                "query",
                f"Debtors' results per page (default {DEFAULT_PAGE}, at most `bulk.max_page`, 100 by "
                "default); 0: the progress only.",
                {"type": "string", "pattern": "^[0-9]{1,6}$"},
            ),
            Parameter(
                "cursor",
                "query",
                "The `next_cursor` of the previous page.",
                {"type": "string", "pattern": "^[0-9]{1,9}$"},
            ),
        ),
        responses={200: Response("The bulk, its progress and a page of results.", "bulk.inquiry")},
        problems=(404, 422, 503),
    ),
)
