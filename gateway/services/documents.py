"""Accepting any document: validate, authorise, de-duplicate, store with its outbox entry, sign a receipt.

One path for every type in the registry (``gateway/domain/registry.py``) and every door: the generic
``POST /v1/documents``, the type-specific ``POST /v1/judgments`` and ``/soap/courts``, a partner's answer
returned synchronously by its connector, and the gateway's own documents (deadline events, revocations).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.calendar import WorkingCalendar, due_at, reminder_at
from gateway.domain.doctypes import Document, DocumentType, Reference, RuleContext
from gateway.domain.errors import Conflict, Forbidden, Refused
from gateway.domain.identifiers import canonical_ids, mask, person_refs
from gateway.domain.issued import copy_type
from gateway.domain.parties import client_role
from gateway.domain.registry import REGISTRY
from gateway.domain.status import Status
from gateway.domain.violations import Violation
from gateway.partners import Partner
from gateway.security.clients import ClientStore
from gateway.security.signing import Signer, canonical_json
from gateway.services.admissions import ADMISSIONS, AdmissionCheck, AdmissionContext
from gateway.services.document_ids import copy_document, copy_id, issued_id, issued_id_key, stored_key
from gateway.storage import messages as store
from gateway.storage import outbox
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.messages import OutboxItem
from gateway.storage.timestamps import as_utc, iso, now
from gateway.validation import SchemaCatalog

#: How long before its deadline a document's sender is reminded, unless documents.toml says otherwise.
DEFAULT_REMINDER_LEAD = timedelta(hours=4)
SIGNED_FIELDS = ("receipt_id", "message_id", "received_at", "sha256", "sender", "recipient", "key_id")
#: A write run inside another's transaction (see ``accept_from_partner``).
WriteStep = Callable[[AsyncConnection], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PushResult:
    receipt: dict[str, Any]
    duplicate: bool


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One document ready to be stored: row, outbox entry, receipt, audit entry, first evidence."""

    row: dict[str, Any]
    item: OutboxItem
    receipt: dict[str, Any]
    audit: AuditEntry
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who hands a document in: a client (authenticated), a partner through its connector, or the gateway."""

    id: str
    subject: str | None = None


class DocumentService:
    def __init__(
        self,
        db: Database,
        catalog: SchemaCatalog,
        signer: Signer,
        clients: ClientStore,
        partners: list[Partner],
        calendar: WorkingCalendar,
        deadlines: Mapping[str, str],
        rule_context: RuleContext,
        clock: Callable[[], datetime] = now,
        registry: Mapping[str, DocumentType] = REGISTRY,
        admissions: Mapping[str, AdmissionCheck] | None = None,
        routing: Mapping[str, Mapping[str, str]] | None = None,
        reminder_lead: timedelta = DEFAULT_REMINDER_LEAD,
        legal_bases: Collection[str] = (),
    ) -> None:
        self._db = db
        #: Codes of ``config/legal_bases.toml``: a document citing another is refused (none: every one is).
        self._legal_bases = frozenset(legal_bases)
        self._reminder_lead = reminder_lead
        self._catalog = catalog
        self._signer = signer
        self._clients = clients
        self._partners = {p.code: p for p in partners}
        self._calendar = calendar
        self._deadlines = deadlines
        self._ctx = rule_context
        self._clock = clock
        self.registry = registry
        #: The relay of this process (set where one runs): takes the outbox rows of each accepted
        #: document from the commit, so nothing waits for a polling pass.
        self.relay: outbox.Handover = outbox.NoHandover()
        self._admissions = dict(ADMISSIONS if admissions is None else admissions)
        self._pepper = signer.pseudonym_pepper()
        # The ids of what the gateway issues (events, revocations, copies): stable across processes,
        # unguessable for clients.
        self._id_key = issued_id_key(signer)
        #: Routing tables of ``config/routing.toml`` (table -> sender -> recipient of the copy).
        self._routing = {table: dict(rows) for table, rows in (routing or {}).items()}
        missing = {name for t in registry.values() for name in t.admissions} - set(self._admissions)
        if missing:
            raise ValueError(f"document types need admission checks nobody registered: {sorted(missing)}")

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
        return await self._accept(doc_type, doc, Actor(client.id, principal.subject), action, trusted=False)

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
        partner = self._partners.get(client.id)
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
        original = await self._answered(doc_type, doc)
        accepting_at = self._clock()
        violations = doc_type.violations(doc, replace(self._ctx, now=accepting_at))
        violations += self._recipient_violations(doc_type, doc, original)
        violations += self._legal_basis_violations(doc)
        violations += await self._replaces_violations(doc_type, doc)
        references, reference_violations = await self._references(doc_type, doc)
        violations += reference_violations
        copy_to, copy_violations = self._copy_target(doc_type, doc, trusted)
        violations += copy_violations
        if not violations and doc_type.admissions:
            async with self._db.read() as conn:
                for name in doc_type.admissions:
                    context = AdmissionContext(self._pepper, accepting_at)
                    violations += await self._admissions[name](conn, doc_type, doc, context)
        if violations:
            raise Refused(violations)

        action = action or doc_type.grant
        digest = hashlib.sha256(canonical_json(doc)).hexdigest()
        natural_key = doc_type.natural_key(doc)
        if doc.get("replaces"):
            # A replacement restates the same decision: it is a new document, not a resend of the old.
            natural_key = f"{natural_key}|replaces:{doc['replaces']}"
        natural_key = stored_key(natural_key)
        # No read first: the message_id and (message_type, natural_key) constraints refuse a repeat, and the
        # refusal below answers it as the duplicate (or conflict) it is. A read per push was a sixth of the
        # api's time, spent for the rare resend.
        received_at = as_utc(self._clock())  # SQLite compares timestamps as text: always UTC
        accepted = self._prepared(doc_type, doc, digest, natural_key, received_at, original, actor, action)
        copies = []
        if copy_to is not None:
            # Stored with the original, in its transaction: every copy the law requires, and only once.
            copy = copy_document(doc, copy_to, doc_type.copy_to or "", self._id_key)
            copy_digest = hashlib.sha256(canonical_json(copy)).hexdigest()
            copy_key = stored_key(f"{copy_type(doc_type.copy_to or '')}|{natural_key}")
            copies.append(
                self._prepared(doc_type, copy, copy_digest, copy_key, received_at, None, actor, action)
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
                await self._record_answer(conn, original, doc, actor.id, received_at)
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

    def _prepared(
        self,
        doc_type: DocumentType,
        doc: Document,
        digest: str,
        natural_key: str,
        received_at: datetime,
        original: Any,
        actor: Actor,
        action: str,
    ) -> _Prepared:
        """What storing ``doc`` writes: its row, outbox entry, receipt, audit entry, first evidence."""
        priority = doc_type.priority(doc)
        receipt = self._receipt(doc, digest, iso(received_at) or "")
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
            "due_at": (due := self._due_at(doc_type, priority, received_at)),
            "remind_at": reminder_at(received_at, due, self._reminder_lead) if due else None,
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
                **({"due_at": _local_iso(row["due_at"], self._calendar)} if row["due_at"] else {}),
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
            },
        )
        evidence = {"receipt_id": receipt["receipt_id"]}
        if doc.get("copy_of"):
            evidence["copy_of"] = doc["copy_of"]
        return _Prepared(row, item, receipt, audit, evidence)

    async def _answered(self, doc_type: DocumentType, doc: Document) -> Any:
        """The document ``doc`` answers, if it exists (checked in ``_recipient_violations``)."""
        ref = doc.get("in_reply_to")
        if not doc_type.answers or not isinstance(ref, str):
            return None
        async with self._db.read() as conn:
            return await store.get(conn, ref)

    def _recipient_violations(self, doc_type: DocumentType, doc: Document, original: Any) -> list[Violation]:
        recipient = doc["recipient"]
        out: list[Violation] = []
        if doc_type.answers and doc.get("in_reply_to"):
            if original is None or original.message_type not in doc_type.answers:
                wanted = " or ".join(sorted(doc_type.answers))
                return [Violation("$.in_reply_to", f"names no {wanted} known to the gateway", "reference")]
            if original.recipient != doc["sender"]:
                out.append(
                    Violation("$.in_reply_to", "only the recipient of a document answers it", "answer")
                )
            if original.sender != recipient:
                out.append(
                    Violation("$.recipient", f"must be {original.sender}, who sent the original", "answer")
                )
            return out
        partner = self._partners.get(recipient)
        if partner is not None and (
            doc_type.recipients == "any"
            or (doc_type.recipients == "partner" and partner.kind in doc_type.partner_kinds)
        ):
            return []
        if doc_type.recipients == "partner":
            kinds = ", ".join(sorted(doc_type.partner_kinds))
            message = f"{recipient!r} is not a configured partner ({kinds})"
            return [Violation("$.recipient", message, "recipient")]
        target = self._clients.get(recipient)
        if target is None or target.revoked or target.deliver_to is None:
            return [Violation("$.recipient", f"{recipient!r} is not a registered recipient", "recipient")]
        return []

    async def _references(
        self, doc_type: DocumentType, doc: Document
    ) -> tuple[list[tuple[str, str]], list[Violation]]:
        """The earlier documents ``doc`` names (by ``message_id`` or natural key), checked; returns the
        ``(message_id, event)`` pairs to note in their timelines, and the violations."""
        noted: list[tuple[str, str]] = []
        out: list[Violation] = []
        body = doc.get("body") or {}
        for ref in doc_type.references:
            path = f"$.body.{ref.field}"
            async with self._db.read() as conn:
                earlier, violations = await _resolve(conn, ref, body.get(ref.field), path)
            out += violations
            if earlier is None:
                continue
            parties = (earlier.sender, earlier.recipient)
            if ref.parties == "same" and parties != (doc["sender"], doc["recipient"]):
                message = "must be an earlier order of this sender to this recipient"
                out.append(Violation(path, message, "reference"))
            elif ref.parties == "reverse" and parties != (doc["recipient"], doc["sender"]):
                message = "must be an earlier document of this recipient to this sender"
                out.append(Violation(path, message, "reference"))
            elif ref.noted_as:
                noted.append((earlier.message_id, ref.noted_as))
        return noted, out

    def _legal_basis_violations(self, doc: Document) -> list[Violation]:
        """A stated legal basis must be one of ``config/legal_bases.toml``, as for lookups."""
        basis = doc.get("legal_basis")
        if basis is None or basis in self._legal_bases:
            return []
        known = ", ".join(sorted(self._legal_bases)) or "none configured"
        message = f"{str(basis)[:64]!r} is not a known legal basis (config/legal_bases.toml); known: {known}"
        return [Violation("$.legal_basis", message, "legal_basis")]

    async def _replaces_violations(self, doc_type: DocumentType, doc: Document) -> list[Violation]:
        """``replaces`` resolves like ``in_reply_to``: an earlier document of this type from this
        sender. One message for "unknown" and "someone else's": it tells nothing about other parties."""
        replaced = doc.get("replaces")
        if not isinstance(replaced, str):
            return []
        async with self._db.read() as conn:
            earlier = await store.get(conn, replaced)
        mine = (doc["sender"], doc_type.message_type)
        if earlier is None or (earlier.sender, earlier.message_type) != mine:
            message = (
                f"names no earlier {doc_type.message_type} of {doc['sender']} known to the gateway: "
                "a document replaces only its sender's own document of the same type"
            )
            return [Violation("$.replaces", message, "reference")]
        return []

    def _copy_target(
        self, doc_type: DocumentType, doc: Document, trusted: bool
    ) -> tuple[str | None, list[Violation]]:
        """Who receives the copy of ``doc`` (its type's routing table, by sender); none when the original
        already goes there. A sender the table does not name is refused: a copy the law requires is
        never silently skipped."""
        if doc.get("copy_of") and not trusted:
            return None, [Violation("$.copy_of", "is set by the gateway on the copies it makes", "copy")]
        table = doc_type.copy_to
        if table is None:
            return None, []
        target = self._routing.get(table, {}).get(doc["sender"])
        if target is None:
            message = (
                f"{doc['sender']!r} has no {table} in config/routing.toml [{table}]: "
                "the copy the law requires cannot be made"
            )
            return None, [Violation("$.sender", message, "routing")]
        if target == doc["recipient"]:
            return None, []
        client = self._clients.get(target)
        if client is None or client.revoked or client.deliver_to is None:
            message = f"its {table} {target!r} (config/routing.toml) is not a registered recipient"
            return None, [Violation("$.sender", message, "routing")]
        return target, []

    def _due_at(self, doc_type: DocumentType, priority: str, at: datetime) -> datetime | None:
        """When the awaited step is due, in UTC (SQLite keeps no offset; the calendar speaks local time)."""
        spec = self._deadlines.get(doc_type.message_type, doc_type.deadline)
        if spec is None:
            return None
        deadline = due_at(at, spec, self._calendar, urgent=False)
        urgent_spec = self._deadlines.get("urgent")
        if priority == "urgent" and urgent_spec:
            deadline = min(deadline, due_at(at, urgent_spec, self._calendar, urgent=False))
        return deadline.astimezone(UTC)

    async def _record_answer(self, conn: Any, original: Any, doc: Document, actor: str, at: datetime) -> None:
        detail = {"reply": doc["message_id"], "message_type": doc["message_type"]}
        moved = await store.transition(conn, original.message_id, Status.ANSWERED, actor, detail, at=at)
        if not moved:
            await store.add_evidence(conn, original.message_id, "answered", actor, detail, at)

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
                ),
            )
        return PushResult(json.loads(earlier.receipt), duplicate=True)

    def _receipt(self, doc: Document, digest: str, received_at: str) -> dict[str, Any]:
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


_ID_TAKEN = "this message_id was already used for a different message; use a new message_id for a new message"


def _local_iso(at: datetime, calendar: WorkingCalendar) -> str:
    """A deadline as partners read it: local time with its offset, to the second."""
    return at.astimezone(calendar.tz).replace(microsecond=0).isoformat()


async def _resolve(
    conn: AsyncConnection, ref: Reference, value: object, path: str
) -> tuple[Any, list[Violation]]:
    """The earlier document a reference field names: by ``message_id``, or by the natural key built from
    an object whose optional ``message_id`` must then name that same document.

    Each refusal says what is true, where it is: nothing the other fields describe and nothing the
    ``message_id`` names is at ``path``; a ``message_id`` naming another document, or none while the
    other fields describe a known one, is at ``path.message_id``."""
    wanted = " or ".join(sorted(ref.types)) or "document"
    if isinstance(value, str):
        earlier = await store.get(conn, value.lower())
    elif isinstance(value, dict) and ref.key is not None:
        key = stored_key(ref.key(value))
        described = None
        for message_type in sorted(ref.types):
            described = described or await store.get_by_natural_key(conn, message_type, key)
        by_id = value.get("message_id")
        if not isinstance(by_id, str):
            earlier = described
        else:
            earlier = await store.get(conn, by_id.lower())
            if earlier is not None and ref.types and earlier.message_type not in ref.types:
                earlier = None  # what another type's id names is none of this reference's business
            if earlier is not None and earlier.natural_key.split("|replaces:")[0] != key:
                # A replacement is stored under its key and what it replaces: it is still that document.
                message = f"names a {earlier.message_type} other than the one the other fields describe"
                return None, [Violation(f"{path}.message_id", message, "reference")]
            if earlier is None and described is not None:
                message = (
                    f"names no {wanted} known to the gateway, although the other fields describe one: "
                    "leave message_id out to name it by them alone, or give its own message_id"
                )
                return None, [Violation(f"{path}.message_id", message, "reference")]
    else:
        return None, []
    if earlier is None or (ref.types and earlier.message_type not in ref.types):
        return None, [Violation(path, f"names no {wanted} known to the gateway", "reference")]
    return earlier, []
