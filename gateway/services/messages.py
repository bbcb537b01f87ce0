"""Following a message (status and timeline) and confirming its processing."""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.domain.status import Status
from gateway.problems import Violation, conflict, forbidden, invalid, not_found
from gateway.security.tokens import Principal
from gateway.storage import messages as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.timestamps import iso

CASE_REF = re.compile(r"^[A-Z0-9][A-Z0-9/-]{2,63}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class MessageService:
    def __init__(self, db: Database, keep_payload_after_confirmation: bool = False) -> None:
        self._db = db
        self._keep_payload = keep_payload_after_confirmation

    async def status(self, principal: Principal, message_id: str) -> dict[str, Any]:
        """Status and timeline, for the sender or the recipient only (others get 404, not 403)."""
        async with self._db.read() as conn:
            row = await self._visible(conn, principal, message_id)
            events = await store.timeline(conn, message_id)
        return {
            "message_id": row.message_id,
            "message_type": row.message_type,
            "sender": row.sender,
            "recipient": row.recipient,
            "priority": row.priority,
            "status": row.status,
            **({"reason": row.status_reason} if row.status_reason else {}),
            **({"case_ref": row.case_ref} if row.case_ref else {}),
            "received_at": iso(row.received_at),
            "updated_at": iso(row.updated_at),
            "sha256": row.sha256,
            "receipt": json.loads(row.receipt),
            "timeline": events,
        }

    async def confirm(
        self, principal: Principal, message_id: str, document: object
    ) -> tuple[dict[str, Any], bool]:
        """Record the recipient's processing confirmation. Returns (status view, first time?)."""
        if not isinstance(document, dict) or not isinstance(document.get("case_ref"), str):
            raise invalid([Violation("$.case_ref", "is a required string (the enforcement case number)")])
        case_ref = document["case_ref"]
        violations = [] if CASE_REF.match(case_ref) else [Violation("$.case_ref", "is not a case number")]
        unknown = sorted(set(document) - {"case_ref", "note"})
        violations += [
            Violation(f"$.{k}", "is not an allowed property", "additionalProperties") for k in unknown
        ]
        note = document.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > 1000):
            violations.append(Violation("$.note", "must be a string of at most 1000 characters"))
        if violations:
            raise invalid(violations)

        async with self._db.transaction() as conn:
            row = await self._visible(conn, principal, message_id)
            if row.recipient != principal.client.id:
                raise forbidden("only the recipient confirms processing")
            if row.status == Status.CONFIRMED:
                if row.case_ref != case_ref:
                    raise conflict(f"already confirmed with case number {row.case_ref}")
                first = False
            elif row.status != Status.DELIVERED:
                raise conflict(f"cannot confirm a message whose status is {row.status}")
            else:
                extra: dict[str, Any] = {"case_ref": case_ref}
                if not self._keep_payload:
                    # The case system has the document now; the gateway keeps metadata and evidence only.
                    extra["payload"] = None
                detail = {"case_ref": case_ref} | ({"note": note} if note else {})
                first = await store.transition(
                    conn, message_id, Status.CONFIRMED, principal.client.id, detail, extra=extra
                )
                if not first:
                    raise conflict("the message changed status meanwhile; read it and retry")
                await append(
                    conn,
                    AuditEntry(
                        actor=principal.client.id,
                        subject=principal.subject,
                        action="messages.confirm",
                        outcome="confirmed",
                        status_code=200,
                        message_id=message_id,
                        object_ref=case_ref,
                    ),
                )
        return await self.status(principal, message_id), first

    async def _visible(self, conn: Any, principal: Principal, message_id: str) -> Any:
        row = await store.get(conn, message_id) if UUID.match(message_id) else None
        if row is None or principal.client.id not in (row.sender, row.recipient):
            raise not_found()
        return row
