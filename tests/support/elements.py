"""Reading parsed XML in tests: lxml's ``find`` and ``findtext`` answer ``None`` for a missing element,
and a test that expects the element says so here, naming the path it did not find."""

from __future__ import annotations

from lxml import etree


def child(element: etree._Element, path: str) -> etree._Element:
    """``element.find(path)``, which must be there."""
    found = element.find(path)
    assert found is not None, f"no {path} in {element.tag}"
    return found


def child_text(element: etree._Element, path: str) -> str:
    """``element.findtext(path)``, which must be there."""
    text = element.findtext(path)
    assert text is not None, f"no {path} in {element.tag}"
    return text
