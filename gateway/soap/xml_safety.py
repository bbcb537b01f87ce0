"""Parsing XML from partners without exposing the gateway to entity expansion or external fetches.

SOAP never needs a DTD, so any document declaring one is refused outright rather than parsed "safely":
that closes billion-laughs, external entities (XXE) and DTD-driven network access in one rule.

:func:`parse_bounded` also counts elements, attributes and depth while parsing and stops at the first limit
passed: schema validation (pure-Python ``xmlschema``) grows faster than linearly with some of them (1,500
attributes on one element took 8 s), so the XSD must never see a document past them.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Final

from lxml import etree

# Markers looked for in the raw bytes, in the encodings a SOAP partner may legitimately use. This only
# spares the parser the work; the check on the parsed tree is what covers any other encoding.
_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be")
)


class XmlRejected(ValueError):
    """The bytes are not acceptable XML. ``reason`` is ``"malformed"`` or ``"forbidden"`` (DTD, entities)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class XmlTooComplex(ValueError):
    """Well-formed so far, but past one of the ``[limits]``: ``limit`` names the setting, ``value`` is it."""

    def __init__(self, limit: str, value: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value


_OPTIONS: Final[dict[str, Any]] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,  # keeps libxml2's depth and text-size limits
    "remove_comments": True,  # a comment inside a value would otherwise cut its .text short
    "remove_pis": True,
    "collect_ids": False,
}


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers keep state and are not safe to share between threads.
    return etree.XMLParser(**_OPTIONS)


def _refuse_markers(data: bytes) -> None:
    if not data.strip():
        raise XmlRejected("malformed", "the body is empty")
    if any(marker in data for marker in _MARKERS):
        raise XmlRejected("forbidden", "DOCTYPE and ENTITY declarations are not allowed")


def _refuse_dtd(root: etree._Element) -> None:
    docinfo = root.getroottree().docinfo
    doctype: str = getattr(docinfo, "doctype", "")  # not in lxml-stubs, always in lxml
    if doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlRejected("forbidden", "DOCTYPE and ENTITY declarations are not allowed")


def parse_bounded(data: bytes, *, max_elements: int, max_attributes: int, max_depth: int) -> etree._Element:
    """Like :func:`parse_untrusted`, counting as it parses: :class:`XmlTooComplex` at the first element past
    ``max_elements`` (in the whole document), ``max_attributes`` (in the whole document; namespace
    declarations are not attributes) or ``max_depth`` (the root is depth 1), without reading further."""
    _refuse_markers(data)
    elements = attributes = depth = 0
    events = etree.iterparse(BytesIO(data), events=("start", "end"), **_OPTIONS)
    try:
        for event, element in events:
            if event == "end":
                depth -= 1
                continue
            depth += 1
            elements += 1
            attributes += len(element.attrib)
            if depth > max_depth:
                raise XmlTooComplex(
                    "xml_max_depth", max_depth, f"the XML nests deeper than {max_depth} elements"
                )
            if elements > max_elements:
                raise XmlTooComplex(
                    "xml_max_elements", max_elements, f"the XML has more than {max_elements} elements"
                )
            if attributes > max_attributes:
                raise XmlTooComplex(
                    "xml_max_attributes", max_attributes, f"the XML has more than {max_attributes} attributes"
                )
    except etree.XMLSyntaxError as exc:
        raise XmlRejected("malformed", f"not well-formed XML: {exc.msg}") from exc
    root: etree._Element = events.root
    _refuse_dtd(root)
    return root


def parse_untrusted(data: bytes) -> etree._Element:
    """The root element of ``data``; raises :class:`XmlRejected` if malformed or if it has a DTD."""
    _refuse_markers(data)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected("malformed", f"not well-formed XML: {exc.msg}") from exc
    _refuse_dtd(root)
    return root
