"""What storing an accepted document writes: its row (with its deadline and reminder), its outbox
entry, its signed receipt, its audit entry and first evidence; and the note on the document it answers.
The one transaction that writes them is the document service's (``services/documents.py``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.domain.calendar import WorkingCalendar, due_at, reminder_at
from gateway.domain.doctypes import Document, DocumentType
from gateway.domain.identifiers import mask, person_refs
from gateway.domain.status import Status
from gateway.security.signing import Signer
from gateway.services.document_rules import DocumentRules
from gateway.storage import messages as store
from gateway.storage import outbox
from gateway.storage.audit import AuditEntry
from gateway.storage.messages import OutboxItem
from gateway.storage.timestamps import iso

SIGNED_FIELDS = ("receipt_id", "message_id", "received_at", "sha256", "sender", "recipient", "key_id")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who hands a document in: a client (authenticated), a partner through its connector, or the gateway."""

    id: str
    subject: str | None = None
    #: How a client's request arrived, kept in its audit record (``{"xroad": {...}}`` for an X-Road call).
    via: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prepared:
    """One document ready to be stored: row, outbox entry, receipt, audit entry, first evidence."""

    row: dict[str, Any]
    item: OutboxItem
    receipt: dict[str, Any]
    audit: AuditEntry
    evidence: dict[str, Any]


class DocumentRecords:
    def __init__(self, signer: Signer, rules: DocumentRules) -> None:
        self._signer = signer
        self._rules = rules
        self._pepper = signer.pseudonym_pepper()

    def prepared(
        self,
        doc_type: DocumentType,
        doc: Document,
        digest: str,
        natural_key: str,
        received_at: datetime,
        original: Any,
        actor: Actor,
        action: str,
    ) -> Prepared:
        """What storing ``doc`` writes: its row, outbox entry, receipt, audit entry, first evidence."""
        priority = doc_type.priority(doc)
        receipt = self.receipt(doc, digest, iso(received_at) or "")
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        row = {
            "message_id": doc["message_id"],
            "message_type": doc["message_type"],
            "schema_version": doc["schema_version"],
            "sender": doc["sender"],
            "recipient": doc["recipient"],
            "correlation_id": doc.get("correlation_id") or (original.correlation_id if original else None),
            "in_reply_to": doc.get("in_reply_to"),
            "replaces": doc.get("replaces"),
            "case_ref": doc.get("case_ref"),
            "priority": priority,
            "natural_key": natural_key,
            "sha256": digest,
            "payload": body,
            "receipt": json.dumps(receipt),
            "received_at": received_at,
            "due_at": (due := self.due_at(doc_type, priority, received_at)),
            "remind_at": reminder_at(received_at, due, self._rules.reminder_lead) if due else None,
        }
        item = OutboxItem(
            exchange=outbox.DOCUMENTS,
            routing_key=doc["recipient"],
            priority=5 if priority == "urgent" else 0,
            headers={
                "message_type": doc["message_type"],
                "sender": doc["sender"],
                "recipient": doc["recipient"],
                "correlation_id": row["correlation_id"] or doc["message_id"],
                "sha256": digest,
                "receipt_id": receipt["receipt_id"],
                "received_at": receipt["received_at"],
                "priority": priority,
                **({"in_reply_to": doc["in_reply_to"]} if doc.get("in_reply_to") else {}),
                **({"due_at": _local_iso(row["due_at"], self._rules.calendar)} if row["due_at"] else {}),
            },
            body=body,
        )
        audit = AuditEntry(
            actor=actor.id,
            subject=actor.subject,
            action=action,
            outcome="accepted",
            status_code=202,
            message_id=doc["message_id"],
            object_ref=natural_key[:200],
            data={
                "message_type": doc["message_type"],
                "debtors": list(doc_type.debtor_refs(doc)),
                # Keyed pseudonyms of every person the document names: the data-access report's key.
                **({"persons": persons} if (persons := person_refs(doc, self._pepper)) else {}),
                **({"officer_id": mask(doc["officer_id"])} if doc.get("officer_id") else {}),
                **({"purpose": doc["purpose"]} if doc.get("purpose") else {}),
                "recipient": doc["recipient"],
                **({"case_ref": doc["case_ref"]} if doc.get("case_ref") else {}),
                **({"legal_basis": doc["legal_basis"]} if doc.get("legal_basis") else {}),
                **({"copy_of": doc["copy_of"]} if doc.get("copy_of") else {}),
                **actor.via,
            },
        )
        evidence = {"receipt_id": receipt["receipt_id"]}
        if doc.get("copy_of"):
            evidence["copy_of"] = doc["copy_of"]
        return Prepared(row, item, receipt, audit, evidence)

    def due_at(self, doc_type: DocumentType, priority: str, at: datetime) -> datetime | None:
        """When the awaited step is due, in UTC (SQLite keeps no offset; the calendar speaks local time)."""
        deadlines, calendar = self._rules.deadlines, self._rules.calendar
        spec = deadlines.get(doc_type.message_type, doc_type.deadline)
        if spec is None:
            return None
        deadline = due_at(at, spec, calendar, urgent=False)
        urgent_spec = deadlines.get("urgent")
        if priority == "urgent" and urgent_spec:
            deadline = min(deadline, due_at(at, urgent_spec, calendar, urgent=False))
        return deadline.astimezone(UTC)

    def receipt(self, doc: Document, digest: str, received_at: str) -> dict[str, Any]:
        fields = {
            "receipt_id": str(uuid.uuid4()),
            "message_id": doc["message_id"],
            "received_at": received_at,
            "sha256": digest,
            "sender": doc["sender"],
            "recipient": doc["recipient"],
            "key_id": self._signer.key_id,
        }
        return fields | {
            "alg": "EdDSA",
            "signed_fields": list(SIGNED_FIELDS),
            "signature": self._signer.sign(fields),
        }


async def record_answer(conn: Any, original: Any, doc: Document, actor: str, at: datetime) -> None:
    """Notes on ``original`` that ``doc`` answers it: answered, or evidence of a further answer."""
    detail = {"reply": doc["message_id"], "message_type": doc["message_type"]}
    moved = await store.transition(conn, original.message_id, Status.ANSWERED, actor, detail, at=at)
    if not moved:
        await store.add_evidence(conn, original.message_id, "answered", actor, detail, at)


def _local_iso(at: datetime, calendar: WorkingCalendar) -> str:
    """A deadline as partners read it: local time with its offset, to the second."""
    return at.astimezone(calendar.tz).replace(microsecond=0).isoformat()
