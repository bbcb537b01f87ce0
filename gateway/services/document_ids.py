"""The identifiers the gateway issues and the copies it makes: pure functions of a key only the gateway
holds (derived from its receipt-signing key), so every process issues the same ids and no client can
know one beforehand."""

from __future__ import annotations

import hashlib
import hmac
import uuid

from gateway.domain.doctypes import Document
from gateway.domain.issued import copy_type
from gateway.security.signing import Signer

NATURAL_KEY_MAX = 200  # messages.natural_key
#: What the key of the gateway's own message ids is derived from (see :func:`issued_id`).
ISSUED_ID_LABEL = b"thads-gateway issued message ids v1"


def issued_id_key(signer: Signer) -> bytes:
    """The key of the gateway's own message ids, derived from its receipt-signing key (Ed25519
    signatures are deterministic): every process with the signing key derives the same, no client can."""
    return signer.sign_bytes(ISSUED_ID_LABEL).encode()


def issued_id(key: bytes, message_type: str, natural_key: str) -> str:
    """A UUID (RFC 9562 version 8: custom) from HMAC-SHA256 of the type and natural key under ``key``:
    the same for every process holding the key, unpredictable for anyone else."""
    digest = bytearray(hmac.new(key, f"{message_type}|{natural_key}".encode(), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(digest)))


def stored_key(natural_key: str) -> str:
    """A natural key as the bounded column keeps it: a long one as its digest (still unique per type)."""
    if len(natural_key) > NATURAL_KEY_MAX:
        return "sha256:" + hashlib.sha256(natural_key.encode()).hexdigest()
    return natural_key


def copy_id(key: bytes, original_id: str, table: str) -> str:
    """The copy's ``message_id``: named after the original and the routing table under the gateway's
    key (:func:`issued_id`), so however often the original is pushed, and through whichever api, its
    copy is one document, and nobody can know the copy's id before the gateway makes it."""
    return issued_id(key, copy_type(table), original_id.lower())


def copy_document(doc: Document, recipient: str, table: str, key: bytes) -> Document:
    """The copy of ``doc`` for ``recipient``: the same document under its own ``message_id``, with
    ``copy_of`` naming the original and correlated with it."""
    copy = doc | {
        "message_id": copy_id(key, doc["message_id"], table),
        "recipient": recipient,
        "copy_of": doc["message_id"],
        "correlation_id": doc.get("correlation_id") or doc["message_id"],
    }
    if doc.get("replaces"):
        # The recipient of the copies knows the earlier copy, not the original it was made from.
        copy["replaces"] = copy_id(key, doc["replaces"], table)
    return copy
