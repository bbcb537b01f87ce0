"""A partner's synchronous answer, turned into the document that answers the original. Pure."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.domain.doctypes import Document

#: Answers are named after what they answer: a redelivered order rebuilds the same answer id, so the
#: pipeline stores it once however often the partner is asked.
_ANSWER_NS = uuid.UUID("0b7f4a2e-64a1-4f0c-8a53-7f2d1c9e5b10")


def answer_id(original_id: str, answer_type: str) -> str:
    return str(uuid.uuid5(_ANSWER_NS, f"{original_id}/{answer_type}"))


def answer_document(original: Document, answer_type: str, body: dict[str, Any], created_at: str) -> Document:
    """The envelope around ``body``: from the original's recipient back to its sender, in reply to it."""
    doc: Document = {
        "message_id": answer_id(original["message_id"], answer_type),
        "message_type": answer_type,
        "schema_version": "1",
        "created_at": created_at,
        "sender": original["recipient"],
        "recipient": original["sender"],
        "in_reply_to": original["message_id"],
        "correlation_id": original.get("correlation_id") or original["message_id"],
        "body": body,
    }
    if original.get("case_ref"):
        doc["case_ref"] = original["case_ref"]
    if original.get("priority") == "urgent":
        doc["priority"] = "urgent"
    return doc
