"""The courts' SOAP messages <-> the canonical JSON messages ``judgment.delivery`` and ``court.event``,
version 1.

The mapping is purely structural: it copies what is present and omits what is absent, so that every rule
(required fields, patterns, code lists, counts) is judged once, by the JSON Schema, for both transports.
Strings are taken exactly as sent (xs:string keeps whitespace), which also makes a judgment pushed once by
REST and once by SOAP hash the same and be recognised as a duplicate.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from io import BytesIO
from typing import Any

import xmlschema
from lxml import etree
from xmlschema.validators import XsdFacet, XsdSimpleType
from xmlschema.validators.exceptions import XMLSchemaChildrenValidationError

from gateway.domain.judgment import MESSAGE_TYPE
from gateway.soap import COURTS_NS, SOAP_ENV, envelope
from gateway.validation import Violations, bounded_violations

SCHEMA_VERSION = "1"
XSD_NAME = "courts.xsd"
WSDL_NAME = "courts.wsdl"
REQUEST = f"{{{COURTS_NS}}}PushJudgmentRequest"
RESPONSE = f"{{{COURTS_NS}}}PushJudgmentResponse"
EVENT_REQUEST = f"{{{COURTS_NS}}}PushCourtEventRequest"
EVENT_RESPONSE = f"{{{COURTS_NS}}}PushCourtEventResponse"
COURT_EVENT = "court.event"
MAX_XSD_VIOLATIONS = 100

_XML_SPACE = " \t\r\n"
_CLARK = re.compile(r"\{[^}]*\}|\btns:")

Convert = Callable[[etree._Element], Any]


def package_file(name: str) -> bytes:
    """A WSDL or XSD shipped in this package."""
    return resources.files("gateway.soap").joinpath(name).read_bytes()


@cache
def schema() -> xmlschema.XMLSchema10:
    """The request/response schema, compiled once."""
    return xmlschema.XMLSchema10(BytesIO(package_file(XSD_NAME)), base_url=None)


def xsd_violations(
    payload: etree._Element, *, limit: int = MAX_XSD_VIOLATIONS, deadline: float | None = None
) -> Violations:
    """The XSD errors in ``payload``, located by element path (/PushJudgmentRequest/...; a missing element
    at its own path): one per path, at most ``limit`` listed and the rest counted (:class:`Violations`).
    :class:`gateway.validation.BudgetExceeded` past ``deadline`` (``time.monotonic()``)."""
    path_of = _ElementPaths()
    found = (
        (path_of(error), "xsd", functools.partial(_xsd_message, error), None)
        for error in schema().iter_errors(payload, use_location_hints=False)
    )
    return bounded_violations(found, limit, deadline)


class _ElementPaths:
    """``/PushJudgmentRequest/Body/Items/Item[2]/AmountVnd`` for an element of the request: local names from
    the request element down, a 1-based position where siblings share the name (as xmlschema writes it).

    xmlschema's own ``error.path`` walks the tree from the root for every error, which made a body with
    thousands of errors cost seconds; here each parent's children are numbered once per validation.
    """

    def __init__(self) -> None:
        self._numbered: dict[etree._Element, dict[etree._Element, tuple[int, bool]]] = {}

    def __call__(self, error: Any) -> str:
        element = getattr(error, "elem", None)
        path = (
            self._path(element) if isinstance(element, etree._Element) else _CLARK.sub("", error.path or "")
        )
        expected = getattr(error, "expected", None)
        # "The content of element X is not complete. Tag Y expected.": the missing Y is the violation.
        if isinstance(error, XMLSchemaChildrenValidationError) and error.invalid_child is None and expected:
            name = getattr(expected[0], "local_name", None)
            if isinstance(name, str) and len(expected) == 1:
                return f"{path.rstrip('/')}/{name}"
        return path or "/"

    def _path(self, element: etree._Element) -> str:
        steps: list[str] = []
        node: etree._Element | None = element
        while node is not None:
            parent = node.getparent()
            step = etree.QName(node).localname
            if parent is None or parent.tag == f"{{{SOAP_ENV}}}Body":
                steps.append(step)
                break
            position, shared = self._position(parent, node)
            steps.append(f"{step}[{position}]" if shared else step)
            node = parent
        return "/" + "/".join(reversed(steps))

    def _position(self, parent: etree._Element, node: etree._Element) -> tuple[int, bool]:
        numbered = self._numbered.get(parent)
        if numbered is None:
            seen: dict[object, int] = {}
            order: list[tuple[etree._Element, int]] = []
            for child in parent:
                seen[child.tag] = seen.get(child.tag, 0) + 1
                order.append((child, seen[child.tag]))
            numbered = {child: (n, seen[child.tag] > 1) for child, n in order}
            self._numbered[parent] = numbered
        return numbered.get(node, (1, False))


def _xsd_message(error: Any) -> str:
    # A bad value fails several checks (facet, then type); the first one kept per path is the useful one.
    reason = error.reason or ""
    if isinstance(error.validator, XsdFacet | XsdSimpleType):
        return _value_message(error.validator, reason) or "is not valid"
    return _CLARK.sub("", reason) or "is not valid"


def _value_message(validator: object, reason: str) -> str:
    # Type errors quote the value and a library class name: name the XSD type instead. Facet reasons
    # (pattern, range) quote only the facet, which is what the caller needs.
    name = getattr(validator, "prefixed_name", None) if isinstance(validator, XsdSimpleType) else None
    return f"is not a valid {_CLARK.sub('', name)}" if name else _CLARK.sub("", reason)


# ---------------------------------------------------------------------------------------- XML -> JSON


def message_type_of(element: etree._Element) -> str:
    """The JSON message type a request element carries; ``ValueError`` for any other element."""
    if element.tag not in _OPERATIONS:
        raise ValueError(f"expected {' or '.join(_OPERATIONS)}, got {element.tag}")
    return _OPERATIONS[element.tag][0]


def message_type_of_tag(tag: str) -> str:
    """The JSON message type a request element tag (Clark notation) carries; ``KeyError`` for another."""
    return _OPERATIONS[tag][0]


def response_of(element: etree._Element) -> str:
    """The response element answering a request element."""
    return _OPERATIONS[element.tag][2]


def xml_to_message(element: etree._Element) -> dict[str, Any]:
    """The canonical JSON message for a schema-valid request element (``PushJudgmentRequest``,
    ``PushCourtEventRequest``)."""
    message_type = message_type_of(element)
    fields = _record(element, _OPERATIONS[element.tag][1])
    head = {"message_type": message_type, "schema_version": SCHEMA_VERSION}
    return head | fields


def _record(element: etree._Element, spec: Mapping[str, tuple[str, Convert]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        if qname.namespace != COURTS_NS or qname.localname not in spec:
            raise ValueError(f"unexpected element {child.tag} in {element.tag}")
        key, convert = spec[qname.localname]
        out[key] = convert(child)
    return out


def _string(element: etree._Element) -> str:
    return element.text or ""


def _collapsed(element: etree._Element) -> str:
    # xs:date, xs:dateTime and xs:integer collapse whitespace: the surrounding spaces are not the value.
    return (element.text or "").strip(_XML_SPACE)


def _integer(element: etree._Element) -> int:
    return int(_collapsed(element))


def _base64(element: etree._Element) -> str:
    # Base64 in XML is often wrapped every 76 characters; the line breaks carry nothing.
    return "".join((element.text or "").split())


def _nested(spec: Mapping[str, tuple[str, Convert]]) -> Convert:
    return lambda element: _record(element, spec)


def _list(name: str, spec: Mapping[str, tuple[str, Convert]]) -> Convert:
    tag = f"{{{COURTS_NS}}}{name}"

    def convert(element: etree._Element) -> list[dict[str, Any]]:
        children = [child for child in element if isinstance(child.tag, str)]
        if any(child.tag != tag for child in children):
            raise ValueError(f"{element.tag} may only hold {tag}")
        return [_record(child, spec) for child in children]

    return convert


_PERSON = {
    "IdNumber": ("id_number", _string),
    "FullName": ("full_name", _string),
    "DateOfBirth": ("date_of_birth", _collapsed),
    "Address": ("address", _string),
}
_ORGANISATION = {
    "EnterpriseCode": ("enterprise_code", _string),
    "Name": ("name", _string),
    "Address": ("address", _string),
}
_PARTY = {
    "PartyId": ("party_id", _string),
    "Role": ("role", _string),
    "Person": ("person", _nested(_PERSON)),
    "Organisation": ("organisation", _nested(_ORGANISATION)),
}
_ITEM = {
    "Kind": ("kind", _string),
    "AmountVnd": ("amount_vnd", _integer),
    "Description": ("description", _string),
    "Obligor": ("obligor", _string),
    "Beneficiary": ("beneficiary", _string),
}
_BODY = {
    "Court": ("court", _nested({"Code": ("code", _string), "Name": ("name", _string)})),
    "Judgment": (
        "judgment",
        _nested(
            {
                "Number": ("number", _string),
                "Date": ("date", _collapsed),
                "EffectiveDate": ("effective_date", _collapsed),
                "Type": ("type", _string),
                "Summary": ("summary", _string),
            }
        ),
    ),
    "Parties": ("parties", _list("Party", _PARTY)),
    "Items": ("items", _list("Item", _ITEM)),
    "Document": (
        "document",
        _nested(
            {
                "MediaType": ("media_type", _string),
                "Filename": ("filename", _string),
                "ContentBase64": ("content_base64", _base64),
                "Uri": ("uri", _string),
                "Sha256": ("sha256", _string),
            }
        ),
    ),
}
_REQUEST = {
    "MessageId": ("message_id", _string),
    "CreatedAt": ("created_at", _collapsed),
    "Sender": ("sender", _string),
    "Recipient": ("recipient", _string),
    "CorrelationId": ("correlation_id", _string),
    "Priority": ("priority", _string),
    "Body": ("body", _nested(_BODY)),
}


_EVENT_BODY = {
    "Event": ("event", _string),
    "Judgment": (
        "judgment",
        _nested(
            {
                "CourtCode": ("court_code", _string),
                "Number": ("number", _string),
                "Date": ("date", _collapsed),
                "MessageId": ("message_id", _string),
            }
        ),
    ),
    "Decision": (
        "decision",
        _nested(
            {"Number": ("number", _string), "Date": ("date", _collapsed), "IssuedBy": ("issued_by", _string)}
        ),
    ),
    "EffectiveFrom": ("effective_from", _collapsed),
    "Reason": ("reason", _string),
}
_EVENT_REQUEST = {**_REQUEST, "Body": ("body", _nested(_EVENT_BODY))}

#: Request element -> (JSON message type, field mapping, response element).
_OPERATIONS: dict[str, tuple[str, Mapping[str, tuple[str, Convert]], str]] = {
    REQUEST: (MESSAGE_TYPE, _REQUEST, RESPONSE),
    EVENT_REQUEST: (COURT_EVENT, _EVENT_REQUEST, EVENT_RESPONSE),
}


# ---------------------------------------------------------------------------------------- JSON -> XML

_RECEIPT = (
    ("ReceiptId", "receipt_id"),
    ("MessageId", "message_id"),
    ("ReceivedAt", "received_at"),
    ("Sha256", "sha256"),
    ("Sender", "sender"),
    ("Recipient", "recipient"),
    ("KeyId", "key_id"),
    ("Alg", "alg"),
)


def receipt_to_xml(
    receipt: Mapping[str, Any],
    duplicate: bool,
    response_tag: str = RESPONSE,
    header: Sequence[etree._Element] = (),
) -> bytes:
    """The SOAP envelope answering a push: the signed receipt, and whether it is an earlier one;
    ``header``: the request's X-Road header blocks, echoed."""
    response = etree.Element(response_tag, nsmap={"c": COURTS_NS})
    for name, key in _RECEIPT:
        _sub(response, name).text = str(receipt[key])
    signed = _sub(response, "SignedFields")
    for field in receipt.get("signed_fields", ()):
        _sub(signed, "Field").text = str(field)
    _sub(response, "Signature").text = str(receipt["signature"])
    _sub(response, "Duplicate").text = "true" if duplicate else "false"
    return envelope(response, header)


def _sub(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{COURTS_NS}}}{name}")
