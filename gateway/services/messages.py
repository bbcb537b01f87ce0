"""Following a message (status, timeline, replies), confirming its processing, revoking it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.domain.doctypes import DocumentType
from gateway.domain.errors import Conflict, Forbidden, NotFound, Refused
from gateway.domain.identifiers import canonical_uuid
from gateway.domain.revocation import not_revocable, revocation_document
from gateway.domain.status import Status, is_delivered
from gateway.domain.violations import Violation
from gateway.security.tokens import Principal
from gateway.services.documents import DocumentService
from gateway.services.signature_intake import EVENT as SIGNATURE_EVENT
from gateway.services.signature_intake import summary as signature_summary
from gateway.storage import messages as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.timestamps import iso, now
from gateway.validation import SchemaCatalog


class MessageService:
    def __init__(
        self,
        db: Database,
        catalog: SchemaCatalog,
        documents: DocumentService,
        keep_payload_after_confirmation: bool = False,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._documents = documents
        self._types: Mapping[str, DocumentType] = documents.registry
        self._keep_payload = keep_payload_after_confirmation

    async def status(self, principal: Principal, message_id: str) -> dict[str, Any]:
        """Status, timeline and replies, for the sender or the recipient only (others get 404, not 403).

        A read of a message is audited (who, for which officer or user, which message) before it is
        answered: no record, no answer."""
        view = await self._status(principal, message_id)
        async with self._db.transaction() as conn:
            await append(
                conn,
                AuditEntry(
                    actor=principal.client.id,
                    subject=principal.subject,
                    action="messages.read",
                    outcome="read",
                    status_code=200,
                    message_id=view["message_id"],
                    data={
                        "message_type": view["message_type"],
                        "status": view["status"],
                        **principal.audit_data(),
                    },
                ),
            )
        return view

    async def _status(self, principal: Principal, message_id: str) -> dict[str, Any]:
        async with self._db.read() as conn:
            row = await self._visible(conn, principal, message_id)
            events = await store.timeline(conn, row.message_id)
            replies = await store.replies(conn, row.message_id)
        optional: dict[str, Any] = {
            "reason": row.status_reason,
            "case_ref": row.case_ref,
            "in_reply_to": row.in_reply_to,
            "replaces": row.replaces,
            "correlation_id": row.correlation_id,
            "due_at": iso(row.due_at),
        }
        checked = [e for e in events if e["event"] == SIGNATURE_EVENT and e.get("detail")]
        if checked:
            optional["signature"] = signature_summary(checked[-1]["detail"])
        return {
            "message_id": row.message_id,
            "message_type": row.message_type,
            "sender": row.sender,
            "recipient": row.recipient,
            "priority": row.priority,
            "status": row.status,
            **{k: v for k, v in optional.items() if v},
            "received_at": iso(row.received_at),
            "updated_at": iso(row.updated_at),
            "sha256": row.sha256,
            "receipt": json.loads(row.receipt),
            "timeline": events,
            "replies": replies,
        }

    async def confirm(
        self, principal: Principal, message_id: str, document: object
    ) -> tuple[dict[str, Any], bool]:
        """Record a processing confirmation. Returns (status view, first time?).

        A document is confirmed by its recipient once delivered (a judgment, a report), or, for a type
        confirmed by its sender (an order), by the sender once answered. Confirming an answer also
        confirms the document it answers when that one is confirmed by its sender.
        """
        violations = self._catalog.violations("confirmation.request", document)
        if violations:
            raise Refused(violations)
        assert isinstance(document, dict)
        case_ref, note = document.get("case_ref"), document.get("note")
        who = principal.client.id
        async with self._db.transaction() as conn:
            row = await self._visible(conn, principal, message_id)
            doc_type = self._types.get(row.message_type)
            by = doc_type.confirmed_by if doc_type else "recipient"
            confirmer = row.recipient if by == "recipient" else row.sender
            if by == "nobody" or who != confirmer:
                raise Forbidden(f"only the {by} confirms a {row.message_type}")
            if doc_type and doc_type.confirmation_needs_case_ref and not case_ref:
                raise Refused([_case_ref_required()])
            if row.status == Status.CONFIRMED:
                if case_ref and row.case_ref != case_ref:
                    raise Conflict(f"already confirmed with case number {row.case_ref}")
                first = False
            else:
                ready = Status.DELIVERED if by == "recipient" else Status.ANSWERED
                if row.status != ready and not (by == "recipient" and row.status == Status.ANSWERED):
                    raise Conflict(f"cannot confirm a message whose status is {row.status}")
                first = await self._confirm(conn, row, who, case_ref, note)
                if not first:
                    raise Conflict("the message changed status meanwhile; read it and retry")
                await self._confirm_original(conn, row, who)
                await append(
                    conn,
                    AuditEntry(
                        actor=who,
                        subject=principal.subject,
                        action="messages.confirm",
                        outcome="confirmed",
                        status_code=200,
                        message_id=row.message_id,
                        object_ref=case_ref,
                        data=principal.audit_data() or None,
                    ),
                )
        return await self._status(principal, row.message_id), first

    async def _confirm(self, conn: Any, row: Any, who: str, case_ref: str | None, note: str | None) -> bool:
        extra: dict[str, Any] = {"case_ref": case_ref} if case_ref else {}
        if not self._keep_payload:
            # The other side has the document now; the gateway keeps metadata and evidence only.
            extra["payload"] = None
        detail = {k: v for k, v in {"case_ref": case_ref, "note": note}.items() if v}
        return await store.transition(
            conn, row.message_id, Status.CONFIRMED, who, detail or None, extra=extra
        )

    async def _confirm_original(self, conn: Any, row: Any, who: str) -> None:
        if not row.in_reply_to:
            return
        original = await store.get(conn, row.in_reply_to)
        original_type = self._types.get(original.message_type) if original else None
        if original is None or original_type is None or original_type.confirmed_by != "sender":
            return
        if original.sender == who and original.status == Status.ANSWERED:
            await self._confirm(conn, original, who, None, None)

    async def revoke(self, principal: Principal, message_id: str, document: object) -> dict[str, Any]:
        """Withdraw a document: before delivery it is never delivered; after, a revocation goes to its
        recipient. An answered document stays: an executed measure is undone by a release instead."""
        violations = self._catalog.violations("revocation.request", document)
        if violations:
            raise Refused(violations)
        assert isinstance(document, dict)
        reason = str(document["reason"])
        async with self._db.read() as conn:
            row = await self._visible(conn, principal, message_id)
        if row.sender != principal.client.id:
            raise Forbidden("only the sender revokes a document")
        if why := not_revocable(row.message_type, str(row.status)):
            raise Conflict(why)
        if row.status == Status.REVOKED:
            return await self._status(principal, row.message_id)
        audit = AuditEntry(
            actor=principal.client.id,
            subject=principal.subject,
            action="messages.revoke",
            outcome="revoked",
            status_code=200,
            message_id=row.message_id,
            reason=reason,
            data=principal.audit_data() or None,
        )
        await self.revoke_row(row, principal.client.id, reason, audit)
        return await self._status(principal, row.message_id)

    async def revoke_row(self, row: Any, actor: str, reason: str, audit: AuditEntry) -> None:
        """Revoke ``row`` (checked revocable by the caller) as ``actor``, with ``audit`` written in the
        same transaction; the sender's revocation and an operator's acting for it both come here.
        Raises :class:`Conflict` when the status changed meanwhile."""
        status = Status(row.status)
        async with self._db.transaction() as conn:
            moved = await store.transition(
                conn, row.message_id, Status.REVOKED, actor, {"reason": reason}, reason=reason
            )
            if not moved:
                raise Conflict("the message changed status meanwhile; read it and retry")
            await append(conn, audit)
            current = await store.get(conn, row.message_id)
        # Read after the change: a delivery recorded in between counts. One still in flight finds the
        # document revoked when it records itself, and sends the revocation then (same revocation id).
        if current is not None and (is_delivered(status) or current.delivery_count > 0):
            await self._documents.issue(revocation_document(current, reason, iso(now()) or ""))

    async def _visible(self, conn: Any, principal: Principal, message_id: str) -> Any:
        canonical = canonical_uuid(message_id)
        row = await store.get(conn, canonical) if canonical else None
        if row is None or principal.client.id not in (row.sender, row.recipient):
            raise NotFound()
        return row


def _case_ref_required() -> Violation:
    return Violation("$.case_ref", "is required: the enforcement case number opened for it", "required")
