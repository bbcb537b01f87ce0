"""The signed document in an evidence bundle: the file kept as long-term proof, and its offline check.

:func:`signed_part` is what ``run.py evidence export`` adds as ``signed_document`` (the PDF with its
validation material and archive time-stamps, how far its proof has got, and the trust anchors of the
installation). :func:`signed_checks` is what ``run.py evidence verify`` adds to the bundle's checks:

- the file's first ``original_length`` bytes are the file that arrived: their SHA-256 is the one the
  validation report (in the timeline's ``signature_checked``) names;
- the trust anchors: those given with ``--trust`` (the independent way), or else the bundle's own, each of
  which must be one the report was checked against;
- every signature and archive time-stamp again, from the file alone (:mod:`gateway.signatures.longterm`):
  no network, the CA's services may be long gone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.evidence import Check
from gateway.storage.signed_documents import SignedDocument
from gateway.storage.timestamps import iso

FIELD = "signed_document"


def signed_part(kept: SignedDocument, anchors_pem: Sequence[str]) -> dict[str, Any]:
    return {
        "level": kept.level,
        "archive_timestamps": kept.timestamps,
        "archive_expires_at": iso(kept.archive_expires_at),
        "original_sha256": kept.original_sha256,
        "original_length": kept.original_length,
        "pdf_base64": base64.b64encode(kept.pdf).decode("ascii"),
        "trust_anchors_pem": list(anchors_pem),
    }


def _report(bundle: Mapping[str, Any]) -> Mapping[str, Any]:
    for event in bundle.get("timeline") or []:
        if event.get("event") == "signature_checked":
            report = (event.get("detail") or {}).get("report")
            if isinstance(report, Mapping):
                return report
    return {}


async def signed_checks(bundle: Mapping[str, Any], trust_pems: Sequence[bytes] | None = None) -> list[Check]:
    """The checks of the bundle's signed document; none when it carries none."""
    part = bundle.get(FIELD)
    if not isinstance(part, Mapping):
        return []
    from asn1crypto import pem, x509

    from gateway.signatures.longterm import verify_offline

    checks: list[Check] = []
    try:
        pdf = base64.b64decode(str(part.get("pdf_base64")), validate=True)
    except (binascii.Error, ValueError):
        return [Check("signed document", False, "its PDF is not base64")]
    length = int(part.get("original_length") or 0)
    digest = hashlib.sha256(pdf[:length]).hexdigest()
    report = _report(bundle)
    expected = {part.get("original_sha256"), report.get("document_sha256")}
    if expected != {digest}:
        checks.append(Check("signed document", False, "the file kept is not the file that was checked"))
    else:
        checks.append(
            Check("signed document", True, f"the file that arrived (SHA-256 {digest}), {part.get('level')}")
        )
    checked_against = {a.get("sha256") for a in (report.get("trust_list") or {}).get("anchors") or []}
    if trust_pems is not None:
        ders = [bytes(der) for raw in trust_pems for _, _, der in pem.unarmor(raw, multiple=True)]
        source = "given with --trust"
    else:
        ders = [
            bytes(pem.unarmor(str(p).encode())[2])
            for p in part.get("trust_anchors_pem") or []
            if str(p).strip()
        ]
        ders = [d for d in ders if hashlib.sha256(d).hexdigest() in checked_against]
        source = "carried by the bundle, as the report names them (pin with --trust)"
    roots = [x509.Certificate.load(d) for d in ders]
    checks.append(Check("trust anchors", bool(roots), f"{len(roots)} {source}"))
    if not roots:
        return checks
    result = await verify_offline(pdf, roots)
    checks.extend(Check(c.part, c.ok, c.detail) for c in result.checks)
    return checks
