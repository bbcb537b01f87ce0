"""Evidence bundles: everything that shows what happened to one message, checkable offline.

A bundle is one JSON object: the message's envelope, the document (or only its SHA-256 once the payload
was dropped), the signed receipt, the timeline, the replies (each with its own receipt), the audit records
concerning the message with the chain segment that links them to a signed checkpoint, the checkpoint, and
the gateway's public keys. :func:`verify_bundle` needs nothing else: no database, no network.

The bundle proves one message's story and shows nothing of anyone else's: of the records of the segment
that do not concern the message (other agencies' exchanges), it carries only their links — id, message id,
content digest and hashes (:func:`gateway.storage.audit.link`) — enough to recompute every hash from the
message's first record to the checkpoint, none of their content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.security.signing import canonical_json, keys_by_id, verify
from gateway.storage import checkpoints
from gateway.storage import messages as store
from gateway.storage.audit import holds, is_link, link, linkable, record
from gateway.storage.tables import audit_log, messages
from gateway.storage.timestamps import iso, now

FORMAT = "thads-gateway.evidence/1"
#: What every receipt signs (services/document_records.py); a receipt naming fewer signed fields proves less.
RECEIPT_FIELDS = ("receipt_id", "message_id", "received_at", "sha256", "sender", "recipient", "key_id")


class NotCovered(Exception):
    """No checkpoint covers the last audit record concerning the message yet."""


def _envelope(row: Any) -> dict[str, Any]:
    fields = {
        "message_id": row.message_id,
        "message_type": row.message_type,
        "schema_version": row.schema_version,
        "sender": row.sender,
        "recipient": row.recipient,
        "correlation_id": row.correlation_id,
        "in_reply_to": row.in_reply_to,
        "replaces": row.replaces,
        "case_ref": row.case_ref,
        "priority": row.priority,
        "status": row.status,
        "status_reason": row.status_reason,
        "received_at": iso(row.received_at),
        "updated_at": iso(row.updated_at),
        "due_at": iso(row.due_at),
        "sha256": row.sha256,
    }
    return {k: v for k, v in fields.items() if v is not None}


async def _message_part(conn: AsyncConnection, row: Any) -> dict[str, Any]:
    return {
        "message": _envelope(row),
        "document": json.loads(row.payload) if row.payload is not None else None,
        "document_sha256": row.sha256,
        "receipt": json.loads(row.receipt),
        "timeline": await store.timeline(conn, row.message_id),
    }


async def export(conn: AsyncConnection, message_id: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The bundle of ``message_id``. ``LookupError`` if there is no such message, :class:`NotCovered` if no
    checkpoint covers its audit records yet (sign one and export again)."""
    row = await store.get(conn, message_id)
    if row is None:
        raise LookupError(message_id)
    reply_rows = (
        await conn.execute(
            select(messages).where(messages.c.in_reply_to == message_id).order_by(messages.c.received_at)
        )
    ).all()
    ids = [message_id, *(r.message_id for r in reply_rows)]
    concerned = [
        int(i)
        for i in (
            await conn.execute(
                select(audit_log.c.id).where(audit_log.c.message_id.in_(ids)).order_by(audit_log.c.id)
            )
        ).scalars()
    ]
    audit: dict[str, Any] = {"concerned": concerned, "records": [], "checkpoint": None}
    if concerned:
        found = await checkpoints.covering(conn, concerned[-1])
        if found is None:
            raise NotCovered(concerned[-1])
        checkpoint_row, previous = found
        segment = await conn.execute(
            select(audit_log)
            .where(audit_log.c.id >= concerned[0], audit_log.c.id <= checkpoint_row.audit_id)
            .order_by(audit_log.c.id)
        )
        audit["records"] = [_shown(record(r), set(ids)) for r in segment]
        audit["checkpoint"] = checkpoints.as_json(checkpoint_row, previous)
    return {
        "format": FORMAT,
        "exported_at": iso(now()),
        "message_id": message_id,
        **await _message_part(conn, row),
        "replies": [await _message_part(conn, r) for r in reply_rows],
        "audit": audit,
        "keys": jwks,
    }


def _shown(rec: dict[str, Any], ids: set[str]) -> dict[str, Any]:
    """A record of the message in full; anyone else's as its link only (a record written before links
    existed, format 1, can only be shown in full)."""
    if rec.get("message_id") in ids or not linkable(rec):
        return rec
    return link(rec)


@dataclass(frozen=True, slots=True)
class Check:
    part: str
    ok: bool
    detail: str


def verify_bundle(
    bundle: Mapping[str, Any], pinned: Mapping[str, ed25519.Ed25519PublicKey] | None = None
) -> list[Check]:
    """Every check a bundle allows, in order; a part that does not hold is a :class:`Check` with
    ``ok=False`` naming it. With ``pinned`` keys (the gateway's JWKS obtained independently) the bundle's
    own keys must be among them."""
    checks: list[Check] = []
    if bundle.get("format") != FORMAT:
        return [Check("bundle", False, f"not an evidence bundle of format {FORMAT}")]
    keys = _keys(bundle, pinned, checks)
    message_id = str(bundle.get("message_id"))
    _message_checks("", bundle, message_id, keys, checks)
    for reply in bundle.get("replies") or []:
        rid = str((reply.get("message") or {}).get("message_id"))
        _message_checks(f"reply {rid} ", reply, rid, keys, checks)
        if (reply.get("message") or {}).get("in_reply_to") != message_id:
            checks.append(Check(f"reply {rid}", False, f"does not answer {message_id}"))
    ids = {
        message_id,
        *(str((r.get("message") or {}).get("message_id")) for r in bundle.get("replies") or []),
    }
    _audit_checks(bundle.get("audit") or {}, ids, keys, checks)
    timeline = bundle.get("timeline") or []
    checks.append(
        Check("timeline", True, f"{len(timeline)} event(s), as recorded (the timeline is not signed)")
    )
    return checks


def _keys(
    bundle: Mapping[str, Any], pinned: Mapping[str, ed25519.Ed25519PublicKey] | None, checks: list[Check]
) -> Mapping[str, ed25519.Ed25519PublicKey]:
    try:
        carried = keys_by_id(bundle.get("keys") or {})
    except (ValueError, TypeError, AttributeError) as exc:
        checks.append(Check("public key", False, f"the bundle's keys are unreadable ({exc})"))
        carried = {}
    if pinned is None:
        names = ", ".join(carried) or "none"
        checks.append(
            Check("public key", bool(carried), f"{names}, as carried by the bundle (pin with --jwks)")
        )
        return carried
    foreign = sorted(set(carried) - set(pinned))
    if foreign:
        checks.append(Check("public key", False, f"{', '.join(foreign)} is not among the pinned keys"))
    else:
        checks.append(Check("public key", True, f"{', '.join(carried) or 'none carried'}; pinned keys used"))
    return pinned


def _message_checks(
    prefix: str,
    part: Mapping[str, Any],
    message_id: str,
    keys: Mapping[str, ed25519.Ed25519PublicKey],
    checks: list[Check],
) -> None:
    envelope = part.get("message") or {}
    receipt = part.get("receipt") or {}
    signed = receipt.get("signed_fields") or []
    key = keys.get(str(receipt.get("key_id")))
    fields = {name: receipt.get(name) for name in signed}
    if not set(RECEIPT_FIELDS) <= set(signed):
        checks.append(Check(f"{prefix}receipt", False, "does not sign every field a receipt signs"))
    elif key is None:
        checks.append(Check(f"{prefix}receipt", False, f"signed with unknown key {receipt.get('key_id')}"))
    elif not verify(key, fields, str(receipt.get("signature"))):
        checks.append(Check(f"{prefix}receipt", False, "its signature does not verify (edited or forged)"))
    elif (
        receipt.get("message_id"),
        receipt.get("sha256"),
        receipt.get("sender"),
        receipt.get("recipient"),
    ) != (
        message_id,
        envelope.get("sha256"),
        envelope.get("sender"),
        envelope.get("recipient"),
    ):
        checks.append(Check(f"{prefix}receipt", False, "names another message, hash, sender or recipient"))
    else:
        checks.append(
            Check(f"{prefix}receipt", True, f"{receipt.get('receipt_id')} signed by {receipt.get('key_id')}")
        )
    expected = receipt.get("sha256")
    document = part.get("document")
    if document is not None:
        digest = hashlib.sha256(canonical_json(document)).hexdigest()
        if digest != expected:
            checks.append(
                Check(f"{prefix}document", False, f"its SHA-256 {digest} is not the receipt's {expected}")
            )
        else:
            checks.append(Check(f"{prefix}document", True, f"SHA-256 {digest} is the receipt's"))
    elif part.get("document_sha256") != expected:
        checks.append(Check(f"{prefix}document", False, "its SHA-256 is not the receipt's"))
    else:
        checks.append(
            Check(f"{prefix}document", True, f"not retained (dropped after confirmation); SHA-256 {expected}")
        )


def _audit_checks(
    audit: Mapping[str, Any], ids: set[str], keys: Mapping[str, ed25519.Ed25519PublicKey], checks: list[Check]
) -> None:
    records: list[dict[str, Any]] = list(audit.get("records") or [])
    concerned = [int(i) for i in audit.get("concerned") or []]
    if not records:
        checks.append(Check("audit", False, "no audit record concerns the message"))
        return
    intact = True
    for i, rec in enumerate(records):
        if not holds(rec):
            checks.append(Check(f"audit record {rec.get('id')}", False, "its hash does not match its fields"))
            intact = False
            break
        if i and rec.get("prev_hash") != records[i - 1].get("hash"):
            checks.append(
                Check(
                    f"audit record {rec.get('id')}",
                    False,
                    f"does not link to record {records[i - 1].get('id')} before it",
                )
            )
            intact = False
            break
    hidden = [int(r["id"]) for r in records if is_link(r) and r.get("message_id") in ids]
    if hidden:
        checks.append(
            Check("audit", False, f"record(s) {hidden} concern the message but are carried without content")
        )
        intact = False
    listed = [int(r["id"]) for r in records if r.get("message_id") in ids and not is_link(r)]
    if listed != concerned or not concerned or concerned[0] != records[0].get("id"):
        checks.append(Check("audit", False, "the records concerning the message are not the ones listed"))
        intact = False
    if intact:
        checks.append(
            Check(
                "audit",
                True,
                f"records {records[0]['id']}..{records[-1]['id']} chain intact, "
                f"{len(concerned)} concerning the message, "
                f"{sum(1 for r in records if is_link(r))} of others shown as links only",
            )
        )
    checkpoint = audit.get("checkpoint") or {}
    last = records[-1]
    if not checkpoints.signature_holds(checkpoint, keys):
        checks.append(Check("checkpoint", False, "its signature does not verify (edited or forged)"))
    elif checkpoint.get("audit_id") != last.get("id") or checkpoint.get("head_hash") != last.get("hash"):
        checks.append(
            Check("checkpoint", False, f"does not sign record {last.get('id')} that ends the audit segment")
        )
    else:
        checks.append(
            Check(
                "checkpoint",
                True,
                f"{checkpoint.get('id')} signed record {last['id']} at {checkpoint.get('at')} "
                f"with {checkpoint.get('key_id')}",
            )
        )
