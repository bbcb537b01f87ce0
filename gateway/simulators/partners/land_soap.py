"""The land registry's SOAP 1.1 dialect as the simulator speaks it (config/wsdl/land-registry.wsdl): names
in its namespace, its faults, the WSDL and the schema requests are checked against. No HTTP server here:
:mod:`.land` serves it, :mod:`.land_register` executes its orders.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Final

import xmlschema
from aiohttp import web
from lxml import etree

from gateway.settings import DEFAULT_CONFIG_DIR
from gateway.soap import SOAP_ENV
from gateway.soap.xml_safety import parse_untrusted

CODE = "LAND-REG"
NS = "urn:vn:gov:land:registry:1"
QUERY: Final = "QueryLandRights"
SUSPEND: Final = "SuspendTransfer"
LIFT: Final = "LiftSuspension"
REVOKE: Final = "RevokeOrder"
OPERATIONS: Final = (QUERY, SUSPEND, LIFT, REVOKE)
ACTIONS: Final = {f"{NS}#{operation}": operation for operation in OPERATIONS}
WSDL = DEFAULT_CONFIG_DIR / "wsdl" / "land-registry.wsdl"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
XML_TYPE = "text/xml; charset=utf-8"


def q(name: str) -> str:
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
    detail = etree.SubElement(etree.SubElement(fault, "detail"), q("LandRegistryFault"))
    etree.SubElement(detail, q("Code")).text = detail_code
    etree.SubElement(detail, q("Message")).text = message
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return web.Response(status=status, body=body, headers={"Content-Type": XML_TYPE})


def unavailable() -> web.Response:
    return fault_response("Server", "UNAVAILABLE", "Hệ thống đang bận, vui lòng thử lại sau.", 503)


def garbage() -> web.Response:
    # A 200 whose envelope stops mid-way, as when a partner's proxy cuts a response short.
    body = f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><lr:QueryLandRightsResp'
    return web.Response(status=200, body=body.encode(), headers={"Content-Type": XML_TYPE})


@cache
def wsdl_and_schema(path: Path) -> tuple[bytes, Any]:
    raw = path.read_bytes()
    schema = parse_untrusted(raw).find(f"{{{WSDL_NS}}}types/{{{XS}}}schema")
    if schema is None:
        raise ValueError(f"{path}: no inline xs:schema in wsdl:types")
    # Serialised on its own, the schema element carries the namespace declarations it inherited.
    return raw, xmlschema.XMLSchema(etree.tostring(schema).decode())


@cache
def served_wsdl(path: Path, address: str) -> bytes:
    root = parse_untrusted(wsdl_and_schema(path)[0])
    for location in root.iter(f"{{{WSDL_SOAP}}}address"):
        location.set("location", address)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def as_json(element: etree._Element) -> Any:
    """An element as JSON under its local names: text for a leaf, an object for a container (the
    request's elements never repeat)."""
    children = [child for child in element if isinstance(child.tag, str)]
    if not children:
        return element.text
    return {etree.QName(child).localname: as_json(child) for child in children}


def subject_identifier(payload: etree._Element) -> str:
    # The schema guarantees a Subject holding exactly one of the two identifiers.
    identifier = payload.findtext(f"{q('Subject')}/{q('IdNumber')}")
    return identifier or payload.findtext(f"{q('Subject')}/{q('EnterpriseCode')}") or ""
