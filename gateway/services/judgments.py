"""Accepting a pushed judgment: validate, authorise, de-duplicate, store with its outbox entry, sign
a receipt. Transport-neutral: the REST and SOAP endpoints both call :meth:`JudgmentService.push`."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from gateway.domain import judgment
from gateway.problems import Violation, conflict, forbidden, invalid
from gateway.security.clients import ClientStore
from gateway.security.signing import Signer, canonical_json
from gateway.security.tokens import Principal
from gateway.settings import Settings
from gateway.storage import messages as store
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.messages import OutboxItem
from gateway.storage.timestamps import iso, now
from gateway.validation import SchemaCatalog

SERVICE = "judgments.push"
SIGNED_FIELDS = ("receipt_id", "message_id", "received_at", "sha256", "sender", "recipient", "key_id")
DOCUMENTS_EXCHANGE = "documents"


@dataclass(frozen=True, slots=True)
class PushResult:
    receipt: dict[str, Any]
    duplicate: bool


class JudgmentService:
    def __init__(
        self, db: Database, catalog: SchemaCatalog, signer: Signer, clients: ClientStore, settings: Settings
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._signer = signer
        self._clients = clients
        self._max_inline = settings.api.max_inline_document_bytes

    async def push(self, principal: Principal, document: object) -> PushResult:
        """Accept a judgment, or return the original receipt of one already accepted.

        Raises :class:`Problem` (403, 409, 422). Nothing is written unless the whole document is good.
        """
        client = principal.client
        if not client.allows(SERVICE):
            raise forbidden(f"client {client.id} is not granted {SERVICE}")
        violations = self._catalog.violations(judgment.MESSAGE_TYPE, document)
        if violations:
            raise invalid(violations)
        assert isinstance(document, dict)
        if document["sender"] != client.id:
            raise forbidden(f"client {client.id} may only push messages whose sender is {client.id}")
        violations = judgment.rule_violations(document, self._max_inline)
        violations += self._recipient_violations(document["recipient"])
        if violations:
            raise invalid(violations)

        digest = hashlib.sha256(canonical_json(document)).hexdigest()
        earlier = await self._earlier(document, digest)
        if earlier is not None:
            return await self._duplicate(principal, earlier, document["message_id"])

        facts = judgment.facts(document)
        received_at = now()
        receipt = self._receipt(document, digest, iso(received_at) or "")
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        row = {
            "message_id": document["message_id"],
            "message_type": document["message_type"],
            "schema_version": document["schema_version"],
            "sender": document["sender"],
            "recipient": document["recipient"],
            "correlation_id": document.get("correlation_id"),
            "priority": facts.priority,
            "natural_key": facts.natural_key,
            "sha256": digest,
            "payload": body,
            "receipt": json.dumps(receipt),
            "received_at": received_at,
        }
        item = OutboxItem(
            exchange=DOCUMENTS_EXCHANGE,
            routing_key=document["recipient"],
            priority=5 if facts.priority == "urgent" else 0,
            headers={
                "message_type": document["message_type"],
                "sender": document["sender"],
                "recipient": document["recipient"],
                "correlation_id": document.get("correlation_id") or document["message_id"],
                "sha256": digest,
                "receipt_id": receipt["receipt_id"],
                "received_at": receipt["received_at"],
                "priority": facts.priority,
            },
            body=body,
        )
        audit = AuditEntry(
            actor=client.id,
            subject=principal.subject,
            action=SERVICE,
            outcome="accepted",
            status_code=202,
            message_id=document["message_id"],
            object_ref=facts.natural_key,
            data={"debtors": list(facts.debtor_refs), "recipient": document["recipient"]},
        )
        try:
            async with self._db.transaction() as conn:
                await store.insert_accepted(conn, row, item, client.id, {"receipt_id": receipt["receipt_id"]})
                await append(conn, audit)
        except IntegrityError:
            # A concurrent push of the same message or judgment won the race: answer as a duplicate.
            earlier = await self._earlier(document, digest)
            if earlier is None:
                raise
            return await self._duplicate(principal, earlier, document["message_id"])
        return PushResult(receipt, duplicate=False)

    def _recipient_violations(self, recipient: str) -> list[Violation]:
        target = self._clients.get(recipient)
        if target is None or target.revoked or target.deliver_to is None:
            return [Violation("$.recipient", f"{recipient!r} is not a registered recipient", "recipient")]
        return []

    async def _earlier(self, document: dict[str, Any], digest: str) -> Any:
        async with self._db.read() as conn:
            same_id = await store.get(conn, document["message_id"])
            if same_id is not None:
                if same_id.sha256 != digest:
                    raise conflict(
                        "this message_id was already used for a different message; "
                        "use a new message_id for a new message"
                    )
                return same_id
            return await store.get_by_natural_key(conn, judgment.natural_key(document))

    async def _duplicate(self, principal: Principal, earlier: Any, pushed_id: str) -> PushResult:
        async with self._db.transaction() as conn:
            await store.add_evidence(
                conn,
                earlier.message_id,
                "duplicate_push",
                principal.client.id,
                {"pushed_message_id": pushed_id},
            )
            await append(
                conn,
                AuditEntry(
                    actor=principal.client.id,
                    subject=principal.subject,
                    action=SERVICE,
                    outcome="duplicate",
                    status_code=200,
                    message_id=earlier.message_id,
                    object_ref=earlier.natural_key,
                    reason=None if pushed_id == earlier.message_id else f"resent as {pushed_id}",
                ),
            )
        return PushResult(json.loads(earlier.receipt), duplicate=True)

    def _receipt(self, document: dict[str, Any], digest: str, received_at: str) -> dict[str, Any]:
        fields = {
            "receipt_id": str(uuid.uuid4()),
            "message_id": document["message_id"],
            "received_at": received_at,
            "sha256": digest,
            "sender": document["sender"],
            "recipient": document["recipient"],
            "key_id": self._signer.key_id,
        }
        return fields | {
            "alg": "EdDSA",
            "signed_fields": list(SIGNED_FIELDS),
            "signature": self._signer.sign(fields),
        }
