"""SOAP 1.1 Fault envelopes built from the gateway's problems.

HTTP status of a fault: SOAP 1.1 (section 6.2) says a fault is answered with HTTP 500. The gateway's rule
is that it never answers 500, because operators and partners read a 500 as "the gateway is broken" and
alert, retry or escalate on it. A fault is therefore answered with the status the REST API uses for the
same error (400, 401, 403, 409, 413, 415, 422, 503), which is also given in the fault detail as
``HttpStatus``. Standard SOAP clients still recognise the fault from the envelope (they parse any non-2xx
answer whose body is a soap:Fault), and callers can branch on the status as they do for REST.

``faultcode`` is ``soap:Client`` for anything the caller must fix (4xx), ``soap:Server`` for a temporary
failure on our side (5xx: send the same message again later), or a SOAP 1.1 envelope-level code
(``VersionMismatch``, ``MustUnderstand``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lxml import etree

from gateway.problems import PROBLEM_BASE, Problem, Violation
from gateway.soap import COURTS_NS, SOAP_ENV, add_header

ENVELOPE_CODES = frozenset({"VersionMismatch", "MustUnderstand", "Client", "Server"})
# Characters XML 1.0 cannot carry at all; messages may quote caller input or library errors.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def fault_code(status: int) -> str:
    """The SOAP 1.1 faultcode (local part) for a REST status."""
    return "Server" if status >= 500 else "Client"


def from_problem(problem: Problem, code: str | None = None, header: Sequence[etree._Element] = ()) -> bytes:
    """The fault envelope for ``problem``; ``code`` overrides the faultcode derived from its status;
    ``header``: the request's X-Road header blocks, echoed (once they were read)."""
    return build(
        code or fault_code(problem.status),
        problem.detail or problem.title,
        status=problem.status,
        problem_type=PROBLEM_BASE + problem.kind,
        violations=problem.violations,
        omitted=problem.omitted,
        header=header,
    )


def build(
    code: str,
    message: str,
    *,
    status: int,
    problem_type: str,
    violations: Sequence[Violation] = (),
    omitted: int = 0,
    header: Sequence[etree._Element] = (),
) -> bytes:
    """A complete SOAP 1.1 envelope holding one Fault, with a ``GatewayFault`` detail for Client/Server;
    ``omitted``: violations found but not listed (``ErrorsOmitted``, REST's ``errors_omitted``)."""
    if code not in ENVELOPE_CODES:
        raise ValueError(f"not a SOAP 1.1 faultcode: {code}")
    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    add_header(root, header)
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    # faultcode, faultstring and detail are unqualified (SOAP 1.1 section 4.4); the code is a QName whose
    # prefix must resolve to the envelope namespace, declared on the root above.
    etree.SubElement(fault, "faultcode").text = f"soap:{code}"
    etree.SubElement(fault, "faultstring").text = _text(message)
    if code in ("VersionMismatch", "MustUnderstand"):
        # SOAP 1.1 section 4.4: detail belongs to faults about the Body only.
        return _serialise(root)
    detail = etree.SubElement(fault, "detail")
    info = etree.SubElement(detail, f"{{{COURTS_NS}}}GatewayFault", nsmap={"gw": COURTS_NS})
    etree.SubElement(info, f"{{{COURTS_NS}}}HttpStatus").text = str(status)
    etree.SubElement(info, f"{{{COURTS_NS}}}Type").text = problem_type
    for violation in violations:
        item = etree.SubElement(info, f"{{{COURTS_NS}}}Violation", path=_text(violation.path))
        if violation.rule:
            item.set("rule", _text(violation.rule))
        item.text = _text(violation.message)
    if omitted:
        etree.SubElement(info, f"{{{COURTS_NS}}}ErrorsOmitted").text = str(omitted)
    return _serialise(root)


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
