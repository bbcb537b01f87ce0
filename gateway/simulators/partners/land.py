"""The land registry: ``QueryLandRights`` over SOAP 1.1, document/literal (config/wsdl/land-registry.wsdl).

``GET /land/soap?wsdl`` serves the WSDL with its address rewritten to the URL the caller reached;
``POST /land/soap`` reads the envelope with the hardened parser, checks SOAPAction and the payload against
the WSDL's schema, and answers ``QueryLandRightsResponse`` or a Fault: ``soap:Client`` with HTTP 500 (401
without a bearer token) for a request it refuses, ``soap:Server`` with HTTP 503 when unavailable.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import xmlschema
from aiohttp import web
from lxml import etree

from gateway.settings import DEFAULT_CONFIG_DIR
from gateway.simulators.partners import Refused, as_of, check_bearer, reference, seed
from gateway.simulators.partners.behaviour import Behaviour, simulator_app
from gateway.soap import SOAP_ENV, EnvelopeError, body_payload, envelope
from gateway.soap.xml_safety import XmlRejected, parse_untrusted

CODE = "LAND-REG"
NS = "urn:vn:gov:land:registry:1"
PATH = "/land/soap"
ACTION = f"{NS}#QueryLandRights"
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


def _read_query(payload: etree._Element, schema: Any) -> tuple[str, str]:
    if payload.tag != _q("QueryLandRightsRequest"):
        raise SoapFault("Client", "INVALID_REQUEST", f"unknown operation {payload.tag}")
    errors = [f"{error.path}: {error.reason}" for error in schema.iter_errors(payload)]
    if errors:
        raise SoapFault("Client", "INVALID_REQUEST", "; ".join(errors[:5]))
    # The schema guarantees a Subject holding exactly one of the two identifiers.
    identifier = payload.findtext(f"{_q('Subject')}/{_q('IdNumber')}")
    identifier = identifier or payload.findtext(f"{_q('Subject')}/{_q('EnterpriseCode')}")
    return payload.findtext(_q("RequestRef")) or "", identifier or ""


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
            action = request.headers.get("SOAPAction")
            if action is None or action.strip().strip('"') not in ("", ACTION):
                raise SoapFault("Client", "INVALID_REQUEST", f"SOAPAction must be {ACTION!r}")
            payload = body_payload(parse_untrusted(await request.read()))
            request_ref, identifier = _read_query(payload, _wsdl_and_schema(wsdl)[1])
        except Refused as exc:
            return fault_response("Client", "UNAUTHORIZED", str(exc), 401)
        except XmlRejected as exc:
            return fault_response("Client", "INVALID_REQUEST", str(exc), 500)
        except EnvelopeError as exc:
            return fault_response(exc.code, "INVALID_REQUEST", str(exc), 500)
        except SoapFault as exc:
            return fault_response(exc.code, exc.detail_code, str(exc), exc.status)
        body = answer_xml(request_ref, identifier)
        return web.Response(body=body, headers={"Content-Type": XML_TYPE})

    app = simulator_app(behaviour or Behaviour(), unavailable, garbage)
    app.router.add_get(PATH, describe)
    app.router.add_post(PATH, query)
    return app
