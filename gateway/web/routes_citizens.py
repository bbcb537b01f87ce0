"""Citizens: consents recorded by the national e-ID notification service, and the data-access report
the service that answers citizens asks for (docs/flows.md)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.domain.identifiers import PERSONAL_ID
from gateway.services.citizens import CitizenService
from gateway.validation import catalog
from gateway.web.auth import PRINCIPAL_KEY
from gateway.web.body import read_json
from gateway.web.context import SERVICES
from gateway.web.operation import Example, Operation, Parameter, Response

__all__ = ["OPERATIONS"]


def _service(request: web.Request) -> CitizenService:
    services = request.app[SERVICES]
    return CitizenService(services.db, catalog(), services.signer.pseudonym_pepper())


async def record_consent(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    body = await read_json(request)
    view = await _service(request).record_consent(
        principal.client.id, principal.subject, body, via=principal.audit_data()
    )
    return web.json_response(view, status=201)


async def data_access(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    person_id = request.query.get("person_id", "")
    report = await _service(request).data_access(
        principal.client.id, principal.subject, person_id, via=principal.audit_data()
    )
    return web.json_response(report)


OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/consents",
        record_consent,
        name="consents.write",
        operation_id="recordConsent",
        tag="Citizens",
        summary="Record a person's consent to notices, or its withdrawal (e-ID notification service)",
        description=(
            "Grant `consents.write`. The first `notice.citizen` to a person may go without consent; from "
            "the second on the gateway refuses it (`422`) unless the person's latest decision (by `at`) is "
            "`granted`. Kept under the keyed pseudonym of the personal ID, never the ID; audited."
        ),
        grant="consents.write",
        request="consent.request",
        responses={201: Response("Recorded.", "consent")},
        problems=(400, 403, 413, 415, 422, 503),
        problem_notes={422: "Schema violations, or a decision dated in the future."},
        examples=(Example("consent.request", "valid-granted.json", "The person agrees"),),
    ),
    Operation(
        "GET",
        "/v1/data-access",
        data_access,
        name="data_access.read",
        operation_id="getDataAccessReport",
        tag="Citizens",
        summary="Every lookup, order and notice that named one person (the service that answers citizens)",
        description=(
            "Grant `data_access.read`. From the audit trail, found by the keyed pseudonym of the ID: when, "
            "which agency and officer (masked), which case, legal basis and purpose, which categories of "
            "data came back — never the data. The request itself is audited, without the ID."
        ),
        grant="data_access.read",
        parameters=(
            Parameter(
                "person_id",
                "query",
                "The person's 12-digit personal identification number (anything else: `422`).",
                {"type": "string", "pattern": PERSONAL_ID.pattern},
                required=True,
            ),
        ),
        responses={200: Response("The report, oldest access first.", "data-access")},
        problems=(403, 422, 503),
    ),
)
