"""SOAP 1.1 for partners that cannot use the REST API: envelopes in and out, nothing transport-specific.

Each endpoint owns a WSDL + XSD in this package and maps its payload to the canonical JSON message, so the
services (and their rules) are the same for both transports.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
COURTS_NS = "urn:thads:gateway:courts:1"
#: The X-Road SOAP header's namespace: its blocks are understood (gateway/soap/xroad_header.py).
XROAD_NS = "http://x-road.eu/xsd/xroad.xsd"
CONTENT_TYPE = "text/xml"


class EnvelopeError(ValueError):
    """Well-formed XML that is not an acceptable SOAP 1.1 request; ``code`` is the SOAP 1.1 faultcode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def body_payload(root: etree._Element) -> etree._Element:
    """The single element inside ``soap:Body`` of a SOAP 1.1 request envelope."""
    if etree.QName(root).localname != "Envelope":
        raise EnvelopeError("Client", "the document is not a SOAP envelope")
    # SOAP 1.1 section 4.4: an envelope in another namespace (SOAP 1.2 included) is a VersionMismatch.
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise EnvelopeError("VersionMismatch", "SOAP 1.2 is not supported: send a SOAP 1.1 envelope")
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise EnvelopeError("VersionMismatch", f"the envelope namespace must be {SOAP_ENV}")
    children = _elements(root)
    header = None
    if children and children[0].tag == f"{{{SOAP_ENV}}}Header":
        header = children.pop(0)
    if len(children) != 1 or children[0].tag != f"{{{SOAP_ENV}}}Body":
        raise EnvelopeError("Client", "the envelope must hold an optional Header and then one Body")
    if header is not None:
        _check_header(header)
    payload = _elements(children[0])
    # WS-I Basic Profile, document/literal: exactly one element in the Body.
    if len(payload) != 1:
        raise EnvelopeError("Client", f"the Body must hold exactly one element, not {len(payload)}")
    return payload[0]


def envelope(payload: etree._Element, header: Sequence[etree._Element] = ()) -> bytes:
    """``payload`` wrapped in a SOAP 1.1 envelope, serialised as UTF-8 with an XML declaration;
    ``header``: blocks for its Header (none: no Header)."""
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    add_header(root, header)
    etree.SubElement(root, f"{{{SOAP_ENV}}}Body").append(payload)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def add_header(root: etree._Element, blocks: Sequence[etree._Element]) -> None:
    """A Header holding copies of ``blocks`` as the first child of the envelope ``root`` (none: nothing)."""
    if blocks:
        header = etree.SubElement(root, f"{{{SOAP_ENV}}}Header")
        for block in blocks:
            header.append(copy.deepcopy(block))


def _check_header(header: etree._Element) -> None:
    # Only the X-Road header is understood here (the rest of authentication is the HTTP Bearer token), so
    # SOAP 1.1 requires refusing any other block marked mustUnderstand rather than silently ignoring it.
    for block in _elements(header):
        if block.tag.startswith(f"{{{XROAD_NS}}}"):
            continue
        if block.get(f"{{{SOAP_ENV}}}mustUnderstand", "0").strip() == "1":
            raise EnvelopeError("MustUnderstand", f"header block {block.tag} is not understood")


def _elements(parent: etree._Element) -> list[etree._Element]:
    # Comments and processing instructions are stripped at parse time; isinstance keeps this total anyway.
    return [child for child in parent if isinstance(child.tag, str)]
