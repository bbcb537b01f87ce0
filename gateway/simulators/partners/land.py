"""The land registry over SOAP 1.1, document/literal (config/wsdl/land-registry.wsdl): ``QueryLandRights``,
and the orders ``SuspendTransfer``, ``LiftSuspension`` and ``RevokeOrder``.

``GET /land/soap?wsdl`` serves the WSDL with its address rewritten to the URL the caller reached;
``POST /land/soap`` reads the envelope with the hardened parser, checks SOAPAction and the payload against
the WSDL's schema, and answers the operation's response or a Fault: ``soap:Client`` with HTTP 500 (401
without a bearer token) for a request it refuses, ``soap:Server`` with HTTP 503 when unavailable.

Orders run against the seeded parcels (:func:`seed.land_parcels`) and are executed once per MessageId: a
repeat gets the first answer again (a Client fault if the request differs). A parcel the debtor does not
own is ``not_owned_by_debtor`` when the registry knows it (the seeded parcels of ``seed.RICH`` and of a
fixed sample of derived subjects), ``not_found`` otherwise; a parcel another order suspended is
``already_suspended`` (unless the new order ``Replaces`` that one: the suspension passes to it). Lifting
without Parcels lifts what the suspension order suspended; a parcel held by another suspension is
``suspended_by_another_order``. ``GET /land/_sim/orders`` -> ``{MessageId: times executed}``.

A ``QueryLandRights`` without OfficerId, LegalBasis, Title or DueAt (optional in the WSDL for older callers)
is refused with a ``soap:Client`` fault, as a registry bound by the law on requests for information would.
``GET /land/_sim/last-request`` -> the last ``QueryLandRightsRequest`` received, as JSON under its element
names, personal IDs masked (404 before the first).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import xmlschema
from aiohttp import web
from lxml import etree

from gateway.settings import DEFAULT_CONFIG_DIR
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
from gateway.soap import SOAP_ENV, EnvelopeError, body_payload, envelope
from gateway.soap.xml_safety import XmlRejected, parse_untrusted

CODE = "LAND-REG"
NS = "urn:vn:gov:land:registry:1"
PATH = "/land/soap"
ORDERS_PATH = "/land/_sim/orders"
LAST_REQUEST_PATH = "/land/_sim/last-request"
# What a query must state besides CaseRef and Purpose (which the WSDL requires).
STATED: Final = ("OfficerId", "LegalBasis", "Title", "DueAt")
QUERY: Final = "QueryLandRights"
SUSPEND: Final = "SuspendTransfer"
LIFT: Final = "LiftSuspension"
REVOKE: Final = "RevokeOrder"
OPERATIONS: Final = (QUERY, SUSPEND, LIFT, REVOKE)
ACTION = f"{NS}#{QUERY}"
ACTIONS: Final = {f"{NS}#{operation}": operation for operation in OPERATIONS}
# Subjects whose seeded parcels the registry knows besides the debtor's own (derived IDs as in the tests).
KNOWN_SUBJECTS: Final = (seed.RICH, *(f"0010{n:08d}" for n in range(300)))
WSDL = DEFAULT_CONFIG_DIR / "wsdl" / "land-registry.wsdl"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
XML_TYPE = "text/xml; charset=utf-8"
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


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


class SoapFault(Exception):
    def __init__(self, code: str, detail_code: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code, self.detail_code, self.status = code, detail_code, status


def fault_response(code: str, detail_code: str, message: str, status: int) -> web.Response:
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "lr": NS})
    fault = etree.SubElement(etree.SubElement(root, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault")
    # faultcode/faultstring/detail are unqualified (SOAP 1.1 section 4.4); "soap:" resolves on the root.
    etree.SubElement(fault, "faultcode").text = f"soap:{code}"
    etree.SubElement(fault, "faultstring").text = message
    detail = etree.SubElement(etree.SubElement(fault, "detail"), _q("LandRegistryFault"))
    etree.SubElement(detail, _q("Code")).text = detail_code
    etree.SubElement(detail, _q("Message")).text = message
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return web.Response(status=status, body=body, headers={"Content-Type": XML_TYPE})


def unavailable() -> web.Response:
    return fault_response("Server", "UNAVAILABLE", "Hệ thống đang bận, vui lòng thử lại sau.", 503)


def garbage() -> web.Response:
    # A 200 whose envelope stops mid-way, as when a partner's proxy cuts a response short.
    body = f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><lr:QueryLandRightsResp'
    return web.Response(status=200, body=body.encode(), headers={"Content-Type": XML_TYPE})


@cache
def _wsdl_and_schema(path: Path) -> tuple[bytes, Any]:
    raw = path.read_bytes()
    schema = parse_untrusted(raw).find(f"{{{WSDL_NS}}}types/{{{XS}}}schema")
    if schema is None:
        raise ValueError(f"{path}: no inline xs:schema in wsdl:types")
    # Serialised on its own, the schema element carries the namespace declarations it inherited.
    return raw, xmlschema.XMLSchema(etree.tostring(schema).decode())


@cache
def served_wsdl(path: Path, address: str) -> bytes:
    root = parse_untrusted(_wsdl_and_schema(path)[0])
    for location in root.iter(f"{{{WSDL_SOAP}}}address"):
        location.set("location", address)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def parcels_xml(parent: etree._Element, parcels: list[dict[str, Any]]) -> None:
    container = etree.SubElement(parent, _q("Parcels"))
    for parcel in parcels:
        element = etree.SubElement(container, _q("Parcel"))
        for name, key in _SCALARS:
            etree.SubElement(element, _q(name)).text = str(parcel[key])
        for group, item, key in _LISTS:
            items = etree.SubElement(element, _q(group))
            for value in parcel[key]:
                etree.SubElement(items, _q(item)).text = value


def answer_xml(request_ref: str, identifier: str) -> bytes:
    status, parcels = seed.land_parcels(identifier)
    root = etree.Element(_q("QueryLandRightsResponse"), nsmap={"lr": NS})
    for name, value in (
        ("Reference", reference(CODE, request_ref)),
        ("MatchStatus", status),
        ("AsOf", as_of()),
    ):
        etree.SubElement(root, _q(name)).text = value
    parcels_xml(root, parcels)
    return envelope(root)


def _operation(payload: etree._Element, action: str, schema: Any) -> str:
    """The operation a valid request payload asks for; raises :class:`SoapFault`."""
    operation = next((op for op in OPERATIONS if payload.tag == _q(f"{op}Request")), None)
    if operation is None:
        raise SoapFault("Client", "INVALID_REQUEST", f"unknown operation {payload.tag}")
    if action and ACTIONS[action] != operation:
        raise SoapFault("Client", "INVALID_REQUEST", f"SOAPAction {action!r} does not match {operation}")
    errors = [f"{error.path}: {error.reason}" for error in schema.iter_errors(payload)]
    if errors:
        raise SoapFault("Client", "INVALID_REQUEST", "; ".join(errors[:5]))
    return operation


def as_json(element: etree._Element) -> Any:
    """An element as JSON under its local names: text for a leaf, an object for a container (the
    request's elements never repeat)."""
    children = [child for child in element if isinstance(child.tag, str)]
    if not children:
        return element.text
    return {etree.QName(child).localname: as_json(child) for child in children}


def check_stated(payload: etree._Element) -> None:
    """Refuse a query that does not state what the law requires of it; raises :class:`SoapFault`."""
    missing = [name for name in STATED if payload.find(_q(name)) is None]
    if missing:
        raise SoapFault("Client", "INVALID_REQUEST", f"the query must state {', '.join(missing)}")


def _identifier(payload: etree._Element) -> str:
    # The schema guarantees a Subject holding exactly one of the two identifiers.
    identifier = payload.findtext(f"{_q('Subject')}/{_q('IdNumber')}")
    return identifier or payload.findtext(f"{_q('Subject')}/{_q('EnterpriseCode')}") or ""


# -- orders ---------------------------------------------------------------------------------------

Key = tuple[str, str]  # (map sheet, parcel number), leading zeros dropped


def parcel_key(map_sheet: str, parcel_number: str) -> Key:
    sheet, number = map_sheet.strip(), parcel_number.strip()
    return (str(int(sheet)) if sheet.isdigit() else sheet, str(int(number)) if number.isdigit() else number)


def seeded_key(parcel: dict[str, Any]) -> Key:
    """A seeded parcel's key: its map sheet and the last part of ``<ward>-<sheet>-<number>``."""
    return parcel_key(str(parcel["map_sheet"]), str(parcel["parcel_id"]).rsplit("-", 1)[-1])


def owned_by(identifier: str) -> frozenset[Key]:
    return frozenset(seeded_key(parcel) for parcel in seed.land_parcels(identifier)[1])


@cache
def known_parcels() -> frozenset[Key]:
    return frozenset().union(*(owned_by(subject) for subject in KNOWN_SUBJECTS))


@dataclass
class ParcelResult:
    map_sheet: str
    parcel_number: str
    status: str
    reason: str | None = None
    registration_ref: str | None = None


def _order_parcels(payload: etree._Element) -> list[tuple[str, str]] | None:
    container = payload.find(_q("Parcels"))
    if container is None:
        return None
    return [
        (parcel.findtext(_q("MapSheet")) or "", parcel.findtext(_q("ParcelNumber")) or "")
        for parcel in container.iterfind(_q("Parcel"))
    ]


def _outcome(results: list[ParcelResult], done: str) -> str:
    succeeded = sum(result.status == done for result in results)
    if succeeded == 0:
        return "not_executed"
    return "executed" if succeeded == len(results) else "partially_executed"


def _result_xml(operation: str, message_id: str, outcome: str, results: list[ParcelResult]) -> etree._Element:
    root = etree.Element(_q(f"{operation}Response"), nsmap={"lr": NS})
    for name, value in (
        ("Reference", reference(CODE, message_id)),
        ("ExecutedAt", as_of()),
        ("Outcome", outcome),
    ):
        etree.SubElement(root, _q(name)).text = value
    container = etree.SubElement(root, _q("Parcels"))
    for result in results:
        element = etree.SubElement(container, _q("Parcel"))
        for name, text in (
            ("MapSheet", result.map_sheet),
            ("ParcelNumber", result.parcel_number),
            ("Status", result.status),
            ("Reason", result.reason),
            ("RegistrationRef", result.registration_ref),
        ):
            if text is not None:
                etree.SubElement(element, _q(name)).text = text
    return root


@dataclass
class Register:
    """What the registry executed: answers per MessageId, and which order suspends which parcel."""

    answers: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # MessageId -> (fingerprint, reply)
    counts: dict[str, int] = field(default_factory=dict)  # MessageId -> times executed
    suspended: dict[Key, str] = field(default_factory=dict)  # parcel -> the suspension order holding it
    # Suspension order -> the parcels (as the order named them) it suspended, lifted since or not.
    suspensions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    revoked: dict[str, str] = field(default_factory=dict)  # revoked order -> the revocation

    def execute(self, operation: str, payload: etree._Element) -> bytes:
        message_id = payload.findtext(_q("MessageId")) or ""
        fingerprint = hashlib.sha256(etree.tostring(payload, method="c14n")).hexdigest()
        known = self.answers.get(message_id)
        if known is not None:
            if known[0] != fingerprint:
                raise SoapFault("Client", "INVALID_REQUEST", "MessageId already used for another request")
            return known[1]
        if operation == SUSPEND:
            answer = self._suspend(message_id, payload)
        elif operation == LIFT:
            answer = self._lift(message_id, payload)
        else:
            answer = self._revoke(message_id, payload)
        reply = envelope(answer)
        self.answers[message_id] = (fingerprint, reply)
        self.counts[message_id] = self.counts.get(message_id, 0) + 1
        return reply

    def _suspend(self, message_id: str, payload: etree._Element) -> etree._Element:
        owned = owned_by(_identifier(payload))
        replaces = payload.findtext(_q("Replaces"))
        results: list[ParcelResult] = []
        seen: set[Key] = set()
        for sheet, number in _order_parcels(payload) or []:
            key = parcel_key(sheet, number)
            if key in seen:
                continue
            seen.add(key)
            holder = self.suspended.get(key)
            if key not in owned:
                reason = "not_owned_by_debtor" if key in known_parcels() else "not_found"
                results.append(ParcelResult(sheet, number, "not_suspended", reason))
            elif holder is not None and holder != replaces:
                results.append(ParcelResult(sheet, number, "not_suspended", "already_suspended"))
            else:
                self.suspended[key] = message_id
                self.suspensions.setdefault(message_id, []).append((sheet, number))
                ref = reference(CODE, f"{message_id}|{key[0]}|{key[1]}")
                results.append(ParcelResult(sheet, number, "suspended", registration_ref=ref))
        if replaces is not None:  # what the replaced order held and this one does not name is free again
            for key in [k for k, order in self.suspended.items() if order == replaces]:
                del self.suspended[key]
        return _result_xml(SUSPEND, message_id, _outcome(results, "suspended"), results)

    def _lift(self, message_id: str, payload: etree._Element) -> etree._Element:
        suspension = payload.findtext(_q("SuspensionOrder")) or ""
        named = _order_parcels(payload)
        if named is None:  # every parcel that suspension suspended
            if suspension not in self.suspensions:
                raise SoapFault("Client", "INVALID_REQUEST", "unknown SuspensionOrder: name the parcels")
            named = self.suspensions[suspension]
        owned = owned_by(_identifier(payload))
        results: list[ParcelResult] = []
        seen: set[Key] = set()
        for sheet, number in named:
            key = parcel_key(sheet, number)
            if key in seen:
                continue
            seen.add(key)
            holder = self.suspended.get(key)
            if holder == suspension:
                del self.suspended[key]
                results.append(ParcelResult(sheet, number, "lifted"))
            elif holder is not None:
                results.append(ParcelResult(sheet, number, "not_lifted", "suspended_by_another_order"))
            else:
                reason = "not_suspended" if key in owned or key in known_parcels() else "not_found"
                results.append(ParcelResult(sheet, number, "not_lifted", reason))
        return _result_xml(LIFT, message_id, _outcome(results, "lifted"), results)

    def _revoke(self, message_id: str, payload: etree._Element) -> etree._Element:
        self.revoked[payload.findtext(_q("Revokes")) or ""] = message_id
        root = etree.Element(_q("RevokeOrderResponse"), nsmap={"lr": NS})
        for name, value in (
            ("Reference", reference(CODE, message_id)),
            ("Status", "acknowledged"),
            ("ReceivedAt", as_of()),
        ):
            etree.SubElement(root, _q(name)).text = value
        return root


REGISTER = web.AppKey("land_register", Register)
#: The last QueryLandRightsRequest received (see :func:`as_json`), personal IDs masked.
LAST_LOOKUP = web.AppKey("land_last_lookup", dict[str, Any])


def make_app(behaviour: Behaviour | None = None, wsdl: Path = WSDL) -> web.Application:
    _wsdl_and_schema(wsdl)  # a broken WSDL fails at start-up, not on the first call

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
            if payload.tag == _q(f"{QUERY}Request"):
                last = request.app[LAST_LOOKUP]
                last.clear()
                last.update(masked(as_json(payload)))
            operation = _operation(payload, action, _wsdl_and_schema(wsdl)[1])
            if operation == QUERY:
                check_stated(payload)
                body = answer_xml(payload.findtext(_q("RequestRef")) or "", _identifier(payload))
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
