"""Accepting any document: validate, authorise, de-duplicate, store with its outbox entry, sign a receipt.

One path for every type in the registry (``gateway/domain/registry.py``) and every door: the generic
``POST /v1/documents``, the type-specific ``POST /v1/judgments`` and ``/soap/courts``, a partner's answer
returned synchronously by its connector, and the gateway's own documents (deadline events, revocations).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.doctypes import Document, DocumentType
from gateway.domain.errors import Conflict, Forbidden, Refused
from gateway.domain.identifiers import canonical_ids
from gateway.domain.issued import copy_type
from gateway.domain.parties import client_role
from gateway.domain.violations import Violation
from gateway.security.clients import ClientStore
from gateway.security.signing import Signer, canonical_json
from gateway.services.document_checks import DocumentChecks
from gateway.services.document_ids import copy_document, copy_id, issued_id, issued_id_key, stored_key
from gateway.services.document_records import Actor, DocumentRecords, record_answer
from gateway.services.document_rules import DocumentRules
from gateway.services.signature_intake import EVENT as SIGNATURE_EVENT
from gateway.services.signature_intake import Checked, SignatureChecks
from gateway.storage import messages as store
from gateway.storage import outbox, signed_documents
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.timestamps import as_utc, now
from gateway.validation import SchemaCatalog

#: A write run inside another's transaction (see ``accept_from_partner``).
WriteStep = Callable[[AsyncConnection], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PushResult:
    receipt: dict[str, Any]
    duplicate: bool


class DocumentService:
    def __init__(
        self,
        db: Database,
        catalog: SchemaCatalog,
        signer: Signer,
        clients: ClientStore,
        rules: DocumentRules,
        clock: Callable[[], datetime] = now,
        signatures: SignatureChecks | None = None,
    ) -> None:
        self._db = db
        #: The signature policies and trust list (None: this installation checks no signature).
        self._signatures = signatures
        self._catalog = catalog
        self._rules = rules
        self._clock = clock
        self.registry = rules.registry
        #: The relay of this process (set where one runs): takes the outbox rows of each accepted
        #: document from the commit, so nothing waits for a polling pass.
        self.relay: outbox.Handover = outbox.NoHandover()
        self._checks = DocumentChecks(db, clients, rules, signer.pseudonym_pepper())
        self._records = DocumentRecords(signer, rules)
        # The ids of what the gateway issues (events, revocations, copies): stable across processes,
        # unguessable for clients.
        self._id_key = issued_id_key(signer)

    # -- doors -------------------------------------------------------------------------------------

    async def submit(
        self, principal: Any, document: object, only_type: str | None = None, action: str | None = None
    ) -> PushResult:
        """A client's document. ``only_type``: the door takes one type only (``/v1/judgments``).

        Raises :class:`Forbidden`, :class:`Conflict` or :class:`Refused` (gateway/domain/errors.py).
        Nothing is written unless the whole document is good.
        """
        client = principal.client
        doc_type = self._type_of(document, only_type)
        self._authorise(client, doc_type)
        doc = self._schema_valid(doc_type, document)
        if doc["sender"] != client.id:
            raise Forbidden(f"client {client.id} may only send messages whose sender is {client.id}")
        return await self._accept(
            doc_type, doc, Actor(client.id, principal.subject, principal.audit_data()), action, trusted=False
        )

    async def accept_from_partner(
        self, partner_code: str, document: Document, *, first: WriteStep | None = None
    ) -> PushResult:
        """A partner's answer returned by its connector (built by the gateway from the partner's reply).
        ``first`` is written in the same transaction, before the answer (the delivery of the document it
        answers, so the two are never seen apart); it is rolled back with the answer when that is a
        duplicate (then ``PushResult.duplicate``) and never runs when the answer is refused."""
        doc_type = self._type_of(document, None)
        doc = self._schema_valid(doc_type, document)
        return await self._accept(doc_type, doc, Actor(partner_code), None, trusted=True, first=first)

    async def issue(self, document: Document) -> PushResult:
        """A document the gateway itself sends (deadline events, revocations). Its ``message_id`` is
        the gateway's: whatever ``document`` holds is replaced by :meth:`issued_id` of its type and
        natural key, so issuing the same event twice (two watchers, the api and a worker) stores it
        once, and no client can know the id beforehand to claim it."""
        doc_type = self._type_of(document, None)
        doc = self._schema_valid(doc_type, document)
        doc["message_id"] = self.issued_id(doc_type.message_type, doc_type.natural_key(doc))
        return await self._accept(doc_type, doc, Actor(doc["sender"]), None, trusted=True)

    def issued_id(self, message_type: str, natural_key: str) -> str:
        """The ``message_id`` of the document of ``message_type`` the gateway issues under
        ``natural_key``: keyed with a secret only the gateway holds."""
        return issued_id(self._id_key, message_type, natural_key)

    def copy_id(self, original_id: str, table: str) -> str:
        """The ``message_id`` of the copy of ``original_id`` made by routing table ``table``."""
        return copy_id(self._id_key, original_id, table)

    def role_of(self, client: Any) -> str | None:
        """What kind of party ``client`` is: its file's ``role``, else its partner kind
        (``config/partners.toml``), else its agency-code prefix (gateway/domain/parties.py)."""
        partner = self._rules.partners.get(client.id)
        return client_role(client.id, client.role, partner.kind if partner else None)

    # -- steps -------------------------------------------------------------------------------------

    def _type_of(self, document: object, only_type: str | None) -> DocumentType:
        if only_type is not None:
            return self.registry[only_type]
        known = ", ".join(sorted(self.registry))
        if not isinstance(document, dict):
            raise Refused([Violation("$", f"must be a JSON object; known message types: {known}", "type")])
        message_type = document.get("message_type")
        if not isinstance(message_type, str) or message_type not in self.registry:  # {} is unhashable
            shown = repr(message_type)[:60] if message_type is not None else "missing"
            raise Refused(
                [Violation("$.message_type", f"{shown} is not a known message type; known: {known}", "enum")]
            )
        return self.registry[str(message_type)]

    def _authorise(self, client: Any, doc_type: DocumentType) -> None:
        """403 unless ``client`` holds a grant for ``doc_type`` *and* is a kind of party that sends it.
        A type only the gateway issues is refused to every client, whatever it holds."""
        if doc_type.gateway_only:
            raise Forbidden(f"{doc_type.message_type} is issued by the gateway only; no client sends it")
        granted = client.allows(doc_type.grant) or any(client.allows(g) for g in doc_type.extra_grants)
        if not granted:
            raise Forbidden(f"client {client.id} is not granted {doc_type.grant}")
        role = self.role_of(client)
        if role not in doc_type.sent_by:
            senders = " or ".join(sorted(doc_type.sent_by)) or "nobody"
            who = f"is a {role}" if role else "has no role on record (role in its client file)"
            raise Forbidden(
                f"client {client.id} {who}; {doc_type.message_type} is sent by {senders} only, "
                "whatever grant the client holds"
            )

    def _schema_valid(self, doc_type: DocumentType, document: object) -> Document:
        violations = self._catalog.violations(doc_type.message_type, document)
        if violations:
            raise Refused(violations)
        assert isinstance(document, dict)
        return canonical_ids(document)

    async def _accept(
        self,
        doc_type: DocumentType,
        doc: Document,
        actor: Actor,
        action: str | None,
        trusted: bool,
        first: WriteStep | None = None,
    ) -> PushResult:
        admitted = await self._checks.admit(doc_type, doc, trusted, self._clock)
        original, references, copy_to = admitted.original, admitted.references, admitted.copy_to
        action = action or doc_type.grant
        digest = hashlib.sha256(canonical_json(doc)).hexdigest()
        natural_key = doc_type.natural_key(doc)
        if doc.get("replaces"):
            # A replacement restates the same decision: it is a new document, not a resend of the old.
            natural_key = f"{natural_key}|replaces:{doc['replaces']}"
        natural_key = stored_key(natural_key)
        signature = None if trusted else await self._signature(doc_type, doc, natural_key)
        # No read first: the message_id and (message_type, natural_key) constraints refuse a repeat, and the
        # refusal below answers it as the duplicate (or conflict) it is. A read per push was a sixth of the
        # api's time, spent for the rare resend.
        received_at = as_utc(self._clock())  # SQLite compares timestamps as text: always UTC
        accepted = self._records.prepared(
            doc_type, doc, digest, natural_key, received_at, original, actor, action
        )
        copies = []
        if copy_to is not None:
            # Stored with the original, in its transaction: every copy the law requires, and only once.
            copy = copy_document(doc, copy_to, doc_type.copy_to or "", self._id_key)
            copy_digest = hashlib.sha256(canonical_json(copy)).hexdigest()
            copy_key = stored_key(f"{copy_type(doc_type.copy_to or '')}|{natural_key}")
            copies.append(
                self._records.prepared(
                    doc_type, copy, copy_digest, copy_key, received_at, None, actor, action
                )
            )

        claim = self.relay.claim()
        held: list[outbox.Pending] = []

        async def store_all(conn: AsyncConnection) -> None:
            held.clear()  # what a rolled-back run of this body inserted
            if first is not None:
                await first(conn)
            for prepared in (accepted, *copies):
                held.append(
                    await store.insert_accepted(
                        conn, prepared.row, prepared.item, actor.id, prepared.evidence, claim
                    )
                )
                await append(conn, prepared.audit)
            if signature is not None:
                # With the document, in its transaction: never a document without the report it passed.
                await store.add_evidence(
                    conn, doc["message_id"], SIGNATURE_EVENT, actor.id, signature.evidence(), received_at
                )
                if signature.pdf is not None:
                    # Kept beyond the payload (dropped once confirmed): the file its long-term proof grows on.
                    await signed_documents.insert(
                        conn, doc["message_id"], actor.id, signature.pdf, received_at
                    )
            for prepared in copies:
                detail = {"copy": prepared.row["message_id"], "to": prepared.row["recipient"]}
                await store.add_evidence(conn, doc["message_id"], "copied", actor.id, detail, received_at)
                earlier_copy = prepared.row["replaces"]
                if earlier_copy and await store.get(conn, earlier_copy) is not None:
                    detail = {"replaced_by": prepared.row["message_id"]}
                    await store.add_evidence(conn, earlier_copy, "replaced", actor.id, detail, received_at)
            for target, event in references:
                detail = {"by": doc["message_id"], "message_type": doc["message_type"]}
                await store.add_evidence(conn, target, event, actor.id, detail, received_at)
            if original is not None:
                await record_answer(conn, original, doc, actor.id, received_at)
            if doc.get("replaces"):
                detail = {"replaced_by": doc["message_id"]}
                await store.add_evidence(conn, doc["replaces"], "replaced", actor.id, detail, received_at)

        try:
            await self._db.write(store_all)
        except IntegrityError:
            # The same message or document is stored already (resent, or a concurrent push won the race):
            # answer as a duplicate — when it is this sender's own document of this type.
            earlier = await self._earlier(doc_type, doc, digest, natural_key, trusted)
            if earlier is None:
                if trusted:
                    raise  # the gateway's own write (a delivery record with it): its caller decides
                # Nothing of this sender's explains it: an id taken by a document the gateway made
                # (a copy). Said without naming it.
                raise Conflict(_ID_TAKEN) from None
            return await self._duplicate(actor, action, earlier, doc["message_id"])
        self.relay.hand_over(held)
        return PushResult(accepted.receipt, duplicate=False)

    async def _signature(self, doc_type: DocumentType, doc: Document, natural_key: str) -> Checked | None:
        """Verify the signature the type's policy asks for; raises :class:`Refused` when the policy
        refuses it. A resend of a stored document is not verified again: the insert that follows answers
        it as the duplicate it is, as for any type."""
        policy = self._signatures.policy(doc_type.message_type) if self._signatures else None
        if policy is None or self._signatures is None:
            return None
        async with self._db.read() as conn:
            stored = await store.get(conn, doc["message_id"]) is not None or (
                await store.get_by_natural_key(conn, doc_type.message_type, natural_key) is not None
            )
        if stored:
            return None
        return await self._signatures.check(policy, doc)

    async def _earlier(
        self, doc_type: DocumentType, doc: Document, digest: str, natural_key: str, trusted: bool
    ) -> Any:
        """The stored document ``doc`` repeats: only ever one of the same type from the same sender.
        A ``message_id`` another sender (or another type) holds is a conflict, answered exactly like a
        reused id of one's own, so it reveals nothing of the other document."""
        async with self._db.read() as conn:
            same_id = await store.get(conn, doc["message_id"])
            if same_id is not None:
                if same_id.sender != doc["sender"] or same_id.message_type != doc_type.message_type:
                    raise Conflict(_ID_TAKEN)
                # The gateway rebuilds a partner's synchronous answer on every redelivery (new created_at):
                # for what it builds itself, the same message_id is the same document.
                if same_id.sha256 != digest and not trusted:
                    raise Conflict(_ID_TAKEN)
                return same_id
            same_key = await store.get_by_natural_key(conn, doc_type.message_type, natural_key)
        if same_key is not None and same_key.sender != doc["sender"]:
            # Natural keys name their sender (docs/documents.md); were one not to, another sender's
            # document is still never answered as this one's duplicate.
            raise Conflict("another sender's document has this natural key: this is no resend of yours")
        return same_key

    async def _duplicate(self, actor: Actor, action: str, earlier: Any, pushed_id: str) -> PushResult:
        async with self._db.transaction() as conn:
            await store.add_evidence(
                conn, earlier.message_id, "duplicate_push", actor.id, {"pushed_message_id": pushed_id}
            )
            await append(
                conn,
                AuditEntry(
                    actor=actor.id,
                    subject=actor.subject,
                    action=action,
                    outcome="duplicate",
                    status_code=200,
                    message_id=earlier.message_id,
                    object_ref=earlier.natural_key,
                    reason=None if pushed_id == earlier.message_id else f"resent as {pushed_id}",
                    data=actor.via or None,
                ),
            )
        return PushResult(json.loads(earlier.receipt), duplicate=True)


_ID_TAKEN = "this message_id was already used for a different message; use a new message_id for a new message"
