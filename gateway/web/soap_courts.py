"""The courts' SOAP 1.1 endpoint: ``POST /soap/courts``, the legacy form of ``POST /v1/judgments``
(``PushJudgment``) and of pushing a ``court.event`` to ``POST /v1/documents`` (``PushCourtEvent``).

Same service, same rules, same receipt; only the envelope differs. Errors are SOAP Faults (never
problem+json) with the HTTP status the REST API would answer: see :mod:`gateway.soap.faults`. Both a new and
a duplicate push answer HTTP 200 (SOAP clients treat anything else as a failure); ``Duplicate`` tells them
apart. ``GET /soap/courts?wsdl`` and ``?xsd=courts.xsd`` describe the service.

Through X-Road (gateway/security/xroad_inbound.py): a call a trusted security server forwards needs no
token; the envelope's X-Road header says who calls (``xrd:client``, mapped to a registered client), and
the answer, receipt or fault, echoes every X-Road header field of the request, as the protocol requires.
``GET /soap/courts?wsdl=xroad`` is the WSDL to register the service on the security server with.
"""

from __future__ import annotations

import logging
import uuid
from functools import cache
from typing import Final

from aiohttp import web
from lxml import etree

from gateway.domain.errors import DomainError
from gateway.domain.registry import REGISTRY
from gateway.problems import (
    Problem,
    bad_request,
    forbidden,
    invalid,
    problem_for,
    too_complex,
    unavailable,
    unsupported_media_type,
)
from gateway.security.tokens import Principal
from gateway.soap import CONTENT_TYPE, COURTS_NS, EnvelopeError, body_payload, faults
from gateway.soap.courts_mapping import (
    EVENT_REQUEST,
    REQUEST,
    WSDL_NAME,
    XSD_NAME,
    message_type_of,
    message_type_of_tag,
    package_file,
    receipt_to_xml,
    response_of,
    xml_to_message,
    xsd_violations,
)
from gateway.soap.xml_safety import XmlRejected, XmlTooComplex, parse_bounded, parse_untrusted
from gateway.soap.xroad_header import XSD_FILES, SoapXRoadHeader, read_header, xroad_wsdl
from gateway.validation import Violations, catalog, off_loop, remember_verdict
from gateway.web.auth import admit_soap_header, authenticate, trusted_security_server
from gateway.web.body import read_limited
from gateway.web.context import SERVICES
from gateway.web.middleware import audit_rejection
from gateway.web.operation import Operation, Parameter, Response, may_hold_one

__all__ = ["OPERATIONS", "PATH", "ROUTE"]

log = logging.getLogger(__name__)

PATH: Final = "/soap/courts"
ROUTE: Final = "judgments.push.soap"
#: ``?wsdl=xroad``: the WSDL with the X-Road header, for registering the service on a security server.
XROAD_WSDL: Final = "xroad"
#: The X-Road header of the request being answered, once read: its answer echoes it, fault or not.
XROAD_HEADER = web.RequestKey("soap_xroad_header", SoapXRoadHeader)
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"

#: The allow-list: the only Body elements accepted, each with the SOAPAction its WSDL operation declares.
SOAP_ACTIONS: Final = {
    REQUEST: f"{COURTS_NS}#PushJudgment",
    EVENT_REQUEST: f"{COURTS_NS}#PushCourtEvent",
}

#: Grants of which a client must hold one before its XML is even read: those of any document type this
#: door takes (``judgments.push`` or ``documents.send:judgment.delivery``, ``documents.send:court.event``).
#: The exact grant of the operation the Body names is checked by the service after parsing.
ADMITTING: Final = frozenset(
    grant
    for message_type in (message_type_of_tag(tag) for tag in SOAP_ACTIONS)
    for grant in (REGISTRY[message_type].grant, *REGISTRY[message_type].extra_grants)
)


async def describe(request: web.Request) -> web.Response:
    """The WSDL (``?wsdl``, any case) or the XSD it imports (``?xsd=courts.xsd``)."""
    keys = {key.lower(): value for key, value in request.query.items()}
    services = request.app[SERVICES]
    if keys.get("wsdl") == XROAD_WSDL:
        base = services.xroad.provider.service_url or services.settings.api.public_url
        return _xml(
            served_xroad_wsdl(base.rstrip("/") + PATH), headers={"Cache-Control": "public, max-age=300"}
        )
    if "wsdl" in keys:
        address = services.settings.api.public_url.rstrip("/") + PATH
        return _xml(served_wsdl(address), headers={"Cache-Control": "public, max-age=300"})
    if keys.get("xsd") == XSD_NAME:
        return _xml(package_file(XSD_NAME), headers={"Cache-Control": "public, max-age=300"})
    raise bad_request(f"GET {PATH}?wsdl for the service description, or {PATH}?xsd={XSD_NAME} for its schema")


@cache
def served_wsdl(address: str) -> bytes:
    """The WSDL as served: our public address, and the XSD at the URL this endpoint serves it from."""
    root = parse_untrusted(package_file(WSDL_NAME))
    for location in root.iter(f"{{{WSDL_SOAP}}}address"):
        location.set("location", address)
    for schema_import in root.iter(f"{{{XS}}}import"):
        if schema_import.get("schemaLocation") == XSD_NAME:
            # Relative to the WSDL's own URL (…/soap/courts?wsdl), so it resolves to …/soap/courts?xsd=….
            schema_import.set("schemaLocation", f"?xsd={XSD_NAME}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@cache
def served_xroad_wsdl(address: str) -> bytes:
    """The X-Road WSDL as served: :func:`served_wsdl` with the X-Road header declared
    (:func:`gateway.soap.xroad_header.xroad_wsdl`), the service at ``address``."""
    root = xroad_wsdl(served_wsdl(address), {name: package_file(name) for name in XSD_FILES})
    etree.indent(root, space="  ")  # read by people registering the service, too
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


async def push_judgment(request: web.Request) -> web.Response:
    """Every outcome is a SOAP envelope: the receipt, or a Fault where the REST API answers a problem."""
    try:
        return await _push(request)
    except EnvelopeError as exc:
        return await _reject(request, bad_request(str(exc)), code=exc.code)
    except Problem as problem:
        return await _reject(request, problem)
    except DomainError as error:  # the same status and type as the REST API's problem for it
        return await _reject(request, problem_for(error))
    except Exception:
        # A defect or an outage, not the caller's fault: log it with a reference they can quote.
        incident = str(uuid.uuid4())
        log.exception("unhandled error in SOAP push", extra={"incident": incident})
        return _fault(unavailable(f"internal error; retry later (incident {incident})"))


async def _push(request: web.Request) -> web.Response:
    # A call a trusted security server forwards without a token says who calls in the envelope: it is
    # read first (the server is known by then; the limits below still bound the reading). Any other call
    # is authenticated, and its grants checked, before its XML is read.
    deferred = "Authorization" not in request.headers and trusted_security_server(request) is not None
    principal = None if deferred else _admitted(await authenticate(request))
    if request.content_type != CONTENT_TYPE:
        raise unsupported_media_type(f"{CONTENT_TYPE}; charset=utf-8 (SOAP 1.1)")
    action = _soap_action(request)
    raw = await read_limited(request)
    limits = request.app[SERVICES].settings.limits
    try:
        root = parse_bounded(
            raw,
            max_elements=limits.xml_max_elements,
            max_attributes=limits.xml_max_attributes,
            max_depth=limits.xml_max_depth,
        )
    except XmlTooComplex as exc:
        raise too_complex(exc.limit, exc.value, str(exc)) from exc
    except XmlRejected as exc:
        raise bad_request(str(exc)) from exc
    payload = body_payload(root)
    xroad = read_header(root)
    if xroad is not None:
        request[XROAD_HEADER] = xroad
        principal = await (
            authenticate(request, soap=xroad.claim)
            if principal is None
            else admit_soap_header(request, principal, xroad.claim)
        )
    elif principal is None:
        principal = await authenticate(request)  # no token, no X-Road header: refused as unauthenticated
    assert principal is not None  # every branch above authenticated or raised
    principal = _admitted(principal)
    expected = SOAP_ACTIONS.get(payload.tag)
    if expected is None:
        raise bad_request(f"unknown operation: {payload.tag} is not a request of this service")
    operation = expected.rpartition("#")[2]
    if xroad is not None and xroad.service_code not in (None, operation):
        raise bad_request(f"the X-Road service {xroad.service_code} is not the Body's operation {operation}")
    # An empty SOAPAction means "the URI says it" (SOAP 1.1 section 6.1.1): the Body element decides.
    if action not in ("", expected):
        raise bad_request(f"SOAPAction {action!r} does not match the Body's operation; send {expected!r}")
    message_type = message_type_of(payload)

    def validate(deadline: float) -> tuple[Violations, dict[str, object] | None, Violations]:
        # The XSD, then (for a valid envelope) the JSON Schema of the message it maps to: both under one
        # budget, off the event loop for a large body (pure-Python xmlschema holds the GIL between checks).
        xsd = xsd_violations(payload, limit=limits.max_errors, deadline=deadline)
        if xsd:
            return xsd, None, Violations()
        document = xml_to_message(payload)
        schema = catalog().violations(message_type, document, limit=limits.max_errors, deadline=deadline)
        return xsd, document, schema

    xsd, document, verdict = await off_loop(validate, size=len(raw), limits=limits)
    if document is None:
        count = len(xsd) + xsd.omitted
        raise invalid(
            xsd,
            f"{'at least ' if not xsd.counted_all else ''}{count} XSD violation(s); fix all "
            "of them and send again.",
        )
    remember_verdict(document, message_type, verdict)
    result = await request.app[SERVICES].documents.submit(
        principal,
        document,
        only_type=message_type,
        action="judgments.push" if payload.tag == REQUEST else None,
    )
    echoed = xroad.blocks if xroad is not None else ()
    return _xml(receipt_to_xml(result.receipt, result.duplicate, response_of(payload), echoed))


def _admitted(principal: Principal) -> Principal:
    """``principal``, unless its client holds none of the grants this door could use."""
    client = principal.client
    if not may_hold_one(ADMITTING, client.grants, client.revoked):
        raise forbidden(f"client {client.id} holds none of the grants {', '.join(sorted(ADMITTING))}")
    return principal


def _soap_action(request: web.Request) -> str:
    if "SOAPAction" not in request.headers:
        raise bad_request(f"the SOAPAction header is required; send {next(iter(SOAP_ACTIONS.values()))!r}")
    action = request.headers["SOAPAction"].strip().strip('"').strip()
    if action and action not in SOAP_ACTIONS.values():
        raise bad_request(f"unknown SOAPAction {action!r}")
    return action


async def _reject(request: web.Request, problem: Problem, code: str | None = None) -> web.Response:
    # The same audit trail as REST rejections: the error middleware never sees these, they are answered here.
    await audit_rejection(request, problem)
    xroad = request.get(XROAD_HEADER)
    return _fault(problem, code, xroad.blocks if xroad is not None else ())


def _fault(
    problem: Problem, code: str | None = None, header: tuple[etree._Element, ...] = ()
) -> web.Response:
    return _xml(faults.from_problem(problem, code, header), status=problem.status, headers=problem.headers)


def _xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, headers=headers, content_type=CONTENT_TYPE, charset="utf-8")


#: The query of ``GET /soap/courts``: ``wsdl`` (names are read in any letter case), or ``xsd`` naming the XSD.
_DESCRIBE_QUERY: Final = {
    "type": "object",
    "properties": {
        "wsdl": {
            "type": "string",
            "description": f"`{XROAD_WSDL}`: the WSDL with the X-Road SOAP header, to register the service "
            "on an X-Road security server; any other value or none: the WSDL.",
        },
        "xsd": {"type": "string", "description": f"`{XSD_NAME}`: the XSD the WSDL imports."},
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["wsdl"]}, {"required": ["xsd"], "properties": {"xsd": {"const": XSD_NAME}}}],
}

OPERATIONS: Final = (
    Operation(
        "GET",
        PATH,
        describe,
        name="judgments.soap.describe",
        operation_id="describeSoapCourts",
        tag="SOAP",
        summary="The WSDL (`?wsdl`, for X-Road `?wsdl=xroad`) or the XSD it imports (`?xsd=courts.xsd`)",
        parameters=(
            Parameter(
                "description",
                "query",
                f"`?wsdl` (any value, or none): the WSDL; `?wsdl={XROAD_WSDL}`: the same service with the "
                "X-Road SOAP header declared on every operation (for registering it on an X-Road security "
                f"server); else `?xsd={XSD_NAME}`: the XML Schema of the messages. Neither: `400`.",
                _DESCRIBE_QUERY,
                required=True,
                style="form",
                explode=True,
            ),
        ),
        responses={200: Response("WSDL 1.1 or XSD.", media_type=CONTENT_TYPE)},
        problems=(400,),
    ),
    Operation(
        "POST",
        PATH,
        push_judgment,
        name=ROUTE,
        operation_id="pushJudgmentSoap",
        tag="SOAP",
        summary="Push a judgment or a court event over SOAP 1.1 (legacy courts)",
        description=(
            "SOAP 1.1, document/literal, operations `PushJudgment` and `PushCourtEvent`, described by the "
            f"WSDL at `GET {PATH}?wsdl`. The same token in `Authorization`, the same rules and the same "
            "receipt as `POST /v1/judgments` (a judgment) and `POST /v1/documents` (a `court.event`); a new "
            "and a duplicate push both answer `200` (`Duplicate` in the response tells them apart). Errors "
            "are SOAP Faults. DOCTYPEs and entities are refused; a client holding none of the grants of "
            "either operation is refused (`403`) before its XML is read; XML past `[limits]` (elements, "
            "attributes, depth) is `413` before the XSD sees it, and so is a validation that runs past "
            "`limits.validation_budget_seconds`. Through X-Road, a trusted security server forwards the "
            f"call with no token: the X-Road SOAP header (`GET {PATH}?wsdl={XROAD_WSDL}`) says who calls, "
            "and every answer echoes it."
        ),
        # Authenticated inside the handler, so that a refused token is a SOAP Fault too.
        grant="judgments.push",
        grant_check="service",
        errors="soap-fault",
        parameters=(
            Parameter(
                "SOAPAction", "header", "The operation's SOAPAction from the WSDL, or empty.", required=True
            ),
        ),
        request_media=CONTENT_TYPE,
        request_description=(
            f"A SOAP 1.1 envelope (`{CONTENT_TYPE}`) holding one `PushJudgmentRequest` or "
            "`PushCourtEventRequest`, valid against the "
            f"XSD of the WSDL (`?xsd={XSD_NAME}`). SOAP 1.2 (`application/soap+xml`) is refused: `415`."
        ),
        responses={200: Response("A SOAP envelope holding the receipt.", media_type=CONTENT_TYPE)},
        problems=(400, 403, 409, 413, 415, 422, 503),
        external_docs=("WSDL", f"{PATH}?wsdl"),
    ),
)
