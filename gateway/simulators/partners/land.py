"""The land registry over SOAP 1.1, document/literal (config/wsdl/land-registry.wsdl): ``QueryLandRights``,
and the orders ``SuspendTransfer``, ``LiftSuspension`` and ``RevokeOrder``.

``GET /land/soap?wsdl`` serves the WSDL with its address rewritten to the URL the caller reached;
``POST /land/soap`` reads the envelope with the hardened parser, checks SOAPAction and the payload against
the WSDL's schema, and answers the operation's response or a Fault: ``soap:Client`` with HTTP 500 (401
without a bearer token) for a request it refuses, ``soap:Server`` with HTTP 503 when unavailable.

Orders are executed by the registry's :class:`.land_register.Register`, once per MessageId (see there
what happens to which parcel). ``GET /land/_sim/orders`` -> ``{MessageId: times executed}``.

A ``QueryLandRights`` without OfficerId, LegalBasis, Title or DueAt (optional in the WSDL for older callers)
is refused with a ``soap:Client`` fault, as a registry bound by the law on requests for information would.
``GET /land/_sim/last-request`` -> the last ``QueryLandRightsRequest`` received, as JSON under its element
names, personal IDs masked (404 before the first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from aiohttp import web
from lxml import etree

from gateway.simulators.partners import (
    Refused,
    as_of,
    check_bearer,
    dumps,
    json_error,
    masked,
    reference,
    seed,
)
from gateway.simulators.partners.behaviour import Behaviour, simulator_app
from gateway.simulators.partners.land_register import Register
from gateway.simulators.partners.land_soap import (
    ACTIONS,
    CODE,
    NS,
    OPERATIONS,
    QUERY,
    WSDL,
    XML_TYPE,
    SoapFault,
    as_json,
    fault_response,
    garbage,
    q,
    served_wsdl,
    subject_identifier,
    unavailable,
    wsdl_and_schema,
)
from gateway.soap import EnvelopeError, body_payload, envelope
from gateway.soap.xml_safety import XmlRejected, parse_untrusted

__all__ = ["CODE", "NS", "PATH", "as_json", "make_app"]

PATH = "/land/soap"
ORDERS_PATH = "/land/_sim/orders"
LAST_REQUEST_PATH = "/land/_sim/last-request"
# What a query must state besides CaseRef and Purpose (which the WSDL requires).
STATED: Final = ("OfficerId", "LegalBasis", "Title", "DueAt")
ACTION = f"{NS}#{QUERY}"
_SCALARS = (
    ("ParcelId", "parcel_id"),
    ("MapSheet", "map_sheet"),
    ("Address", "address"),
    ("AreaM2", "area_m2"),
    ("CertificateNumber", "certificate_number"),
)
_LISTS = (
    ("CoOwners", "CoOwner", "co_owners"),
    ("Encumbrances", "Encumbrance", "encumbrances"),
    ("PendingTransactions", "Transaction", "pending_transactions"),
)


def parcels_xml(parent: etree._Element, parcels: list[dict[str, Any]]) -> None:
    container = etree.SubElement(parent, q("Parcels"))
    for parcel in parcels:
        element = etree.SubElement(container, q("Parcel"))
        for name, key in _SCALARS:
            etree.SubElement(element, q(name)).text = str(parcel[key])
        for group, item, key in _LISTS:
            items = etree.SubElement(element, q(group))
            for value in parcel[key]:
                etree.SubElement(items, q(item)).text = value


def answer_xml(request_ref: str, identifier: str) -> bytes:
    status, parcels = seed.land_parcels(identifier)
    root = etree.Element(q("QueryLandRightsResponse"), nsmap={"lr": NS})
    for name, value in (
        ("Reference", reference(CODE, request_ref)),
        ("MatchStatus", status),
        ("AsOf", as_of()),
    ):
        etree.SubElement(root, q(name)).text = value
    parcels_xml(root, parcels)
    return envelope(root)


def _operation(payload: etree._Element, action: str, schema: Any) -> str:
    """The operation a valid request payload asks for; raises :class:`SoapFault`."""
    operation = next((op for op in OPERATIONS if payload.tag == q(f"{op}Request")), None)
    if operation is None:
        raise SoapFault("Client", "INVALID_REQUEST", f"unknown operation {payload.tag}")
    if action and ACTIONS[action] != operation:
        raise SoapFault("Client", "INVALID_REQUEST", f"SOAPAction {action!r} does not match {operation}")
    errors = [f"{error.path}: {error.reason}" for error in schema.iter_errors(payload)]
    if errors:
        raise SoapFault("Client", "INVALID_REQUEST", "; ".join(errors[:5]))
    return operation


def check_stated(payload: etree._Element) -> None:
    """Refuse a query that does not state what the law requires of it; raises :class:`SoapFault`."""
    missing = [name for name in STATED if payload.find(q(name)) is None]
    if missing:
        raise SoapFault("Client", "INVALID_REQUEST", f"the query must state {', '.join(missing)}")


REGISTER = web.AppKey("land_register", Register)
#: The last QueryLandRightsRequest received (see :func:`as_json`), personal IDs masked.
LAST_LOOKUP = web.AppKey("land_last_lookup", dict[str, Any])


def make_app(behaviour: Behaviour | None = None, wsdl: Path = WSDL) -> web.Application:
    wsdl_and_schema(wsdl)  # a broken WSDL fails at start-up, not on the first call

    async def describe(request: web.Request) -> web.Response:
        if "wsdl" not in {key.lower() for key in request.query}:
            return web.Response(status=400, text=f"GET {PATH}?wsdl for the service description")
        body = served_wsdl(wsdl, f"{request.scheme}://{request.host}{PATH}")
        return web.Response(body=body, headers={"Content-Type": XML_TYPE})

    async def query(request: web.Request) -> web.Response:
        try:
            check_bearer(request.headers.get("Authorization"))
            if request.content_type != "text/xml":
                raise SoapFault("Client", "INVALID_REQUEST", "SOAP 1.1 requires Content-Type text/xml")
            action = (request.headers.get("SOAPAction") or "").strip().strip('"')
            if "SOAPAction" not in request.headers or (action and action not in ACTIONS):
                raise SoapFault("Client", "INVALID_REQUEST", f"SOAPAction must be one of {sorted(ACTIONS)}")
            payload = body_payload(parse_untrusted(await request.read()))
            if payload.tag == q(f"{QUERY}Request"):
                last = request.app[LAST_LOOKUP]
                last.clear()
                last.update(masked(as_json(payload)))
            operation = _operation(payload, action, wsdl_and_schema(wsdl)[1])
            if operation == QUERY:
                check_stated(payload)
                body = answer_xml(payload.findtext(q("RequestRef")) or "", subject_identifier(payload))
            else:
                body = request.app[REGISTER].execute(operation, payload)
        except Refused as exc:
            return fault_response("Client", "UNAUTHORIZED", str(exc), 401)
        except XmlRejected as exc:
            return fault_response("Client", "INVALID_REQUEST", str(exc), 500)
        except EnvelopeError as exc:
            return fault_response(exc.code, "INVALID_REQUEST", str(exc), 500)
        except SoapFault as exc:
            return fault_response(exc.code, exc.detail_code, str(exc), exc.status)
        return web.Response(body=body, headers={"Content-Type": XML_TYPE})

    async def orders(request: web.Request) -> web.Response:
        return web.json_response(request.app[REGISTER].counts)

    async def last_request(request: web.Request) -> web.Response:
        last = request.app[LAST_LOOKUP]
        if not last:
            return json_error(404, "no_request", "no lookup received yet")
        return web.json_response(last, dumps=dumps)

    app = simulator_app(behaviour or Behaviour(), unavailable, garbage)
    app[REGISTER] = Register()
    app[LAST_LOOKUP] = {}
    app.router.add_get(PATH, describe)
    app.router.add_post(PATH, query)
    app.router.add_get(ORDERS_PATH, orders)
    app.router.add_get(LAST_REQUEST_PATH, last_request)
    return app
