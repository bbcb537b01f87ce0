"""The revocation of a document already handed to its recipient. Pure."""

from __future__ import annotations

import uuid
from typing import Any

REVOCATION = "document.revocation"
#: Revocations are named after what they revoke: asking twice, or the api and a worker both noticing,
#: gives one revocation.
_REVOCATION_NS = uuid.UUID("6f1c2a52-3f0e-4a4b-9d7e-0c6a4c1f7e21")


def revocation_id(message_id: str) -> str:
    return str(uuid.uuid5(_REVOCATION_NS, message_id))


def revocation_document(original: Any, reason: str, created_at: str) -> dict[str, Any]:
    """From the original's sender to its recipient: ``original`` has the stored message's fields."""
    doc: dict[str, Any] = {
        "message_id": revocation_id(original.message_id),
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
