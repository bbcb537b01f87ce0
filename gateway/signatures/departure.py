"""The office's signature on a document as it leaves for a partner.

Which form, per partner kind, and why:

- **REST partners** (banks, police, tax, vehicles): a detached JWS over the RFC 8785 canonical JSON of the
  document exactly as sent, in the ``X-Document-Signature`` header (:mod:`gateway.signatures.jws`). The
  partner's integration receives JSON and executes fields, not a rendering: a JWS signs those very fields,
  any JOSE library verifies it, and the document travels once. A PAdES-signed PDF would sign a picture of
  the order that the bank's system does not read.
- **The land registry (SOAP)**: not signed yet; its WSDL has no element for it (docs/evidence.md).

The document's ``sender`` names the office; an office without a key in ``config/signing.toml`` sends
unsigned (a partner that requires signatures refuses it, and the refusal parks the document with the
partner's reason). A certificate that is not valid now stops the hand-over rather than sending a signature
no partner could accept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.signatures.jws import SIGNATURE_HEADER
from gateway.signatures.office import OfficeSigner


@dataclass(frozen=True, slots=True)
class Signed:
    """A document's signature and what the delivery evidence keeps of it."""

    jws: str
    office: str
    key_id: str
    algorithm: str

    def headers(self) -> dict[str, str]:
        return {SIGNATURE_HEADER: self.jws}

    def evidence(self) -> dict[str, Any]:
        return {"form": "jws-detached", "office": self.office, "kid": self.key_id, "alg": self.algorithm}


class DepartureSigning:
    """The offices' signers by office code (``load_office_signers``)."""

    def __init__(self, signers: Mapping[str, OfficeSigner]) -> None:
        self.signers = dict(signers)

    def __bool__(self) -> bool:
        return bool(self.signers)

    async def sign(self, document: Mapping[str, Any]) -> Signed | None:
        """The sending office's signature of ``document``; None when that office has no key.

        Runs on a thread: an HSM's signing call blocks for as long as the device takes.
        ``CertificateNotValid`` when the office's certificate is not valid now."""
        office = document.get("sender")
        signer = self.signers.get(office) if isinstance(office, str) else None
        if signer is None:
            return None
        jws = await asyncio.to_thread(signer.sign, document)
        return Signed(jws, str(office), signer.key_id, signer.algorithm)
