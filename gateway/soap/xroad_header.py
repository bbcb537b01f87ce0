"""The X-Road SOAP header (X-Road message protocol 4.x) on the courts' service: read from a request,
echoed in its answer, and declared in the WSDL a security server registers the service from.

A provider-side security server forwards the SOAP envelope as the client sent it, with no X-Road HTTP
headers: who calls is in the envelope's header (``xrd:client``), with ``xrd:service``, ``xrd:id``,
``xrd:userId``, ``xrd:issue`` and ``xrd:protocolVersion``. The service must answer with every X-Road
header field of the request, in the same order and with the same values; the security server checks it.

The X-Road WSDL (``GET /soap/courts?wsdl=xroad``) is derived from ``courts.wsdl`` when served, so the two
can never describe different operations: the header fields' schemas are inlined, every operation's input
and output declares them, and each binding operation states its X-Road service version.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Final

from lxml import etree

from gateway.security.xroad_inbound import XRoadClaim, XRoadRefused, client_of_parts, is_identifier_part
from gateway.soap import SOAP_ENV, XROAD_NS, EnvelopeError

__all__ = [
    "IDENTIFIERS_NS",
    "SERVICE_VERSION",
    "XROAD_NS",
    "SoapXRoadHeader",
    "read_header",
    "xroad_wsdl",
]

IDENTIFIERS_NS: Final = "http://x-road.eu/xsd/identifiers"
#: The X-Road service version of every operation (``xrd:version`` in the WSDL, ``serviceVersion``).
SERVICE_VERSION: Final = "v1"
XSD_FILES: Final = ("xroad-identifiers.xsd", "xroad.xsd")
#: The header fields this service declares, in the order the protocol lists them.
FIELDS: Final = ("client", "service", "id", "userId", "issue", "protocolVersion")

WSDL: Final = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP: Final = "http://schemas.xmlsoap.org/wsdl/soap/"
XS: Final = "http://www.w3.org/2001/XMLSchema"
_X = f"{{{XROAD_NS}}}"
_ID = f"{{{IDENTIFIERS_NS}}}"
_CLIENT_PARTS: Final = ("xRoadInstance", "memberClass", "memberCode", "subsystemCode")
_SERVICE_PARTS: Final = (*_CLIENT_PARTS, "serviceCode", "serviceVersion")


@dataclass(frozen=True, slots=True)
class SoapXRoadHeader:
    """The X-Road header of one request: the claim it makes, the service code it calls, and the header
    blocks to echo (copies, in the request's order)."""

    claim: XRoadClaim
    service_code: str | None
    blocks: tuple[etree._Element, ...]


def read_header(root: etree._Element) -> SoapXRoadHeader | None:
    """The X-Road header of a SOAP 1.1 request envelope; None when it has no X-Road header block.
    :class:`EnvelopeError` (``Client``) for one that is incomplete or malformed."""
    header = root.find(f"{{{SOAP_ENV}}}Header")
    if header is None:
        return None
    blocks = [block for block in header if isinstance(block.tag, str) and block.tag.startswith(_X)]
    if not blocks:
        return None
    fields: dict[str, etree._Element] = {}
    for block in blocks:
        name = etree.QName(block).localname
        if name in fields:
            raise EnvelopeError("Client", f"the X-Road header holds {name} more than once")
        fields[name] = block
    if "client" not in fields or "id" not in fields or "protocolVersion" not in fields:
        raise EnvelopeError("Client", "an X-Road header names at least client, id and protocolVersion")
    version = _text(fields["protocolVersion"])
    if version is None or not (version == "4" or version.startswith("4.")):
        raise EnvelopeError("Client", f"X-Road protocolVersion {version!r} is not supported; send 4.0")
    client = _client(fields["client"])
    service, service_code = _service(fields["service"]) if "service" in fields else (None, None)
    try:
        claim = XRoadClaim.of(
            client,
            _text(fields["id"]),
            _text(fields["userId"]) if "userId" in fields else None,
            _text(fields["issue"]) if "issue" in fields else None,
            service,
            version,
        )
    except XRoadRefused as exc:
        raise EnvelopeError("Client", str(exc)) from None
    if claim.message_id is None:
        raise EnvelopeError("Client", "the X-Road header's id is empty")
    return SoapXRoadHeader(claim, service_code, tuple(copy.deepcopy(block) for block in blocks))


def _text(element: etree._Element) -> str | None:
    text = (element.text or "").strip()
    return text or None


def _parts(element: etree._Element, names: tuple[str, ...], what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in element:
        if not isinstance(part.tag, str):
            continue
        name = etree.QName(part).localname
        if not part.tag.startswith(_ID) or name not in names or name in found:
            raise EnvelopeError("Client", f"the X-Road {what} holds an unexpected element {name}")
        found[name] = (part.text or "").strip()
    return found


def _client(element: etree._Element) -> tuple[str, ...]:
    kind = element.get(f"{_ID}objectType")
    found = _parts(element, _CLIENT_PARTS, "client")
    if kind not in ("MEMBER", "SUBSYSTEM") or (kind == "SUBSYSTEM") != ("subsystemCode" in found):
        raise EnvelopeError("Client", "the X-Road client is a MEMBER, or a SUBSYSTEM with its subsystemCode")
    names = _CLIENT_PARTS if "subsystemCode" in found else _CLIENT_PARTS[:3]
    try:
        return client_of_parts([found.get(name, "") for name in names])
    except ValueError as exc:
        raise EnvelopeError("Client", f"the X-Road client: {exc}") from None


def _service(element: etree._Element) -> tuple[str, str]:
    """The service as ``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]/CODE[/VERSION]``, and its code."""
    found = _parts(element, _SERVICE_PARTS, "service")
    if element.get(f"{_ID}objectType") != "SERVICE":
        raise EnvelopeError("Client", "the X-Road service's objectType is SERVICE")
    required = ("xRoadInstance", "memberClass", "memberCode", "serviceCode")
    names = [name for name in _SERVICE_PARTS if name in found or name in required]
    values = [found.get(name, "") for name in names]
    if not all(is_identifier_part(value) for value in values):
        raise EnvelopeError("Client", "the X-Road service names instance, class, member and service code")
    return "/".join(values), found["serviceCode"]


# -- the X-Road WSDL -------------------------------------------------------------------------------

_DOCUMENTATION: Final = (
    "The courts' service as registered on an X-Road security server: the operations of "
    "GET /soap/courts?wsdl, with the X-Road SOAP header (client, service, id, userId, issue, "
    "protocolVersion 4.0) on every request and echoed on every answer. Call it through X-Road: the "
    "gateway believes the header only as forwarded by a security server it trusts, and takes the client "
    "for the registered client config/xroad.toml maps it to (its grants apply). The body, the rules, the "
    "receipt and the faults are those of GET /soap/courts?wsdl; each message id is accepted once."
)

_TITLES: Final = {
    "PushJudgment": "Push a legally effective judgment for enforcement",
    "PushCourtEvent": "Push an event on a judgment (appeal, correction, annulment)",
}


def xroad_wsdl(courts_wsdl: bytes, schemas: dict[str, bytes]) -> etree._Element:
    """The X-Road WSDL, derived from ``courts_wsdl``; ``schemas``: the X-Road XSD files by name."""
    original = etree.fromstring(courts_wsdl, etree.XMLParser(resolve_entities=False, no_network=True))
    target = original.get("targetNamespace")
    # A new root declaring the X-Road prefixes: lxml cannot add declarations to an element, and the
    # WSDL's own prefixes (tns in attribute values) must stay declared.
    nsmap = {prefix: uri for prefix, uri in original.nsmap.items() if prefix}
    root = etree.Element(
        original.tag, dict(original.attrib), nsmap={**nsmap, "xrd": XROAD_NS, "id": IDENTIFIERS_NS}
    )
    root.text = original.text
    for child in list(original):
        root.append(child)
    documentation = root.find(f"{{{WSDL}}}documentation")
    if documentation is not None:
        documentation.text = _DOCUMENTATION
    types = root.find(f"{{{WSDL}}}types")
    if types is None:
        raise ValueError("courts.wsdl has no types")
    for name in XSD_FILES:
        types.append(
            etree.fromstring(schemas[name], etree.XMLParser(resolve_entities=False, no_network=True))
        )
    messages = root.findall(f"{{{WSDL}}}message")
    header_message = etree.Element(f"{{{WSDL}}}message", name="XRoadHeader")
    for field in FIELDS:
        etree.SubElement(header_message, f"{{{WSDL}}}part", name=field, element=f"xrd:{field}")
    messages[-1].addnext(header_message)
    prefix = _prefix_of(root, target)
    for operation in root.iterfind(f"{{{WSDL}}}portType/{{{WSDL}}}operation"):
        title = _TITLES.get(operation.get("name", ""))
        if title is not None:
            doc = etree.Element(f"{{{WSDL}}}documentation")
            etree.SubElement(doc, f"{_X}title").text = title
            operation.insert(0, doc)
    for operation in root.iterfind(f"{{{WSDL}}}binding/{{{WSDL}}}operation"):
        soap_operation = operation.find(f"{{{WSDL_SOAP}}}operation")
        version = etree.Element(f"{_X}version")
        version.text = SERVICE_VERSION
        if soap_operation is not None:
            soap_operation.addnext(version)
        else:
            operation.insert(0, version)
        for direction in ("input", "output"):
            message = operation.find(f"{{{WSDL}}}{direction}")
            if message is None:
                continue
            for field in FIELDS:
                etree.SubElement(
                    message,
                    f"{{{WSDL_SOAP}}}header",
                    message=f"{prefix}:XRoadHeader",
                    part=field,
                    use="literal",
                )
    return root


def _prefix_of(root: etree._Element, namespace: str | None) -> str:
    for prefix, uri in root.nsmap.items():
        if uri == namespace and prefix:
            return prefix
    raise ValueError(f"courts.wsdl declares no prefix for its target namespace {namespace}")
