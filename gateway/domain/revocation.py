"""The revocation of a document already handed to its recipient. Pure."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.domain.issued import REVOCATION


def revocation_document(original: Any, reason: str, created_at: str) -> dict[str, Any]:
    """From the original's sender to its recipient: ``original`` has the stored message's fields.

    Its ``message_id`` is a placeholder: ``DocumentService.issue`` names it after what it revokes, with
    the gateway's secret, so asking twice, or the api and a worker both noticing, gives one revocation,
    and nobody can claim its id beforehand."""
    doc: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "message_type": REVOCATION,
        "schema_version": "1",
        "created_at": created_at,
        "sender": original.sender,
        "recipient": original.recipient,
        "correlation_id": original.correlation_id or original.message_id,
        "body": {"revokes": original.message_id, "reason": reason},
    }
    if original.case_ref:
        doc["case_ref"] = original.case_ref
    return doc


def not_revocable(message_type: str, status: str) -> str:
    """Why a document in ``status`` cannot be revoked ("" when it can), for its sender and for an
    operator acting for it alike. A revoked one is revoked already (the sender's request is then
    answered with its status, an operator's is refused)."""
    if message_type == REVOCATION:
        return "a revocation cannot itself be revoked"
    if status in ("answered", "confirmed"):
        return f"the document is already {status}: it cannot be revoked any more"
    return ""
