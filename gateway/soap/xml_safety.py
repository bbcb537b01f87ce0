"""Parsing XML from partners without exposing the gateway to entity expansion or external fetches.

SOAP never needs a DTD, so any document declaring one is refused outright rather than parsed "safely":
that closes billion-laughs, external entities (XXE) and DTD-driven network access in one rule.
"""

from __future__ import annotations

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


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers keep state and are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,  # keeps libxml2's depth and text-size limits
        remove_comments=True,  # a comment inside a value would otherwise cut its .text short
        remove_pis=True,
        collect_ids=False,
    )


def parse_untrusted(data: bytes) -> etree._Element:
    """The root element of ``data``; raises :class:`XmlRejected` if malformed or if it has a DTD."""
    if not data.strip():
        raise XmlRejected("malformed", "the body is empty")
    if any(marker in data for marker in _MARKERS):
        raise XmlRejected("forbidden", "DOCTYPE and ENTITY declarations are not allowed")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRejected("malformed", f"not well-formed XML: {exc.msg}") from exc
    docinfo = root.getroottree().docinfo
    doctype: str = getattr(docinfo, "doctype", "")  # not in lxml-stubs, always in lxml
    if doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlRejected("forbidden", "DOCTYPE and ENTITY declarations are not allowed")
    return root
