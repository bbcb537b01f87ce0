"""The checks made before a document is stored: its type's rules, its recipient (or the document it
answers), its legal basis, what it replaces, the earlier documents it names, the copy the law requires,
and the admission checks that need stored state. Any violation refuses the whole document; nothing is
written here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.doctypes import Document, DocumentType, Reference
from gateway.domain.errors import Refused
from gateway.domain.violations import Violation
from gateway.security.clients import ClientStore
from gateway.services.admissions import AdmissionContext
from gateway.services.document_ids import stored_key
from gateway.services.document_rules import DocumentRules
from gateway.storage import messages as store
from gateway.storage.database import Database


@dataclass(frozen=True, slots=True)
class Admitted:
    """What the checks found for a document they let through."""

    #: The stored document it answers (``in_reply_to``), if any.
    original: Any
    #: ``(message_id, event)``: the earlier documents it names, to note in their timelines.
    references: list[tuple[str, str]]
    #: Who receives the copy the law requires, if one is to be made.
    copy_to: str | None


class DocumentChecks:
    def __init__(self, db: Database, clients: ClientStore, rules: DocumentRules, pepper: bytes) -> None:
        self._db = db
        self._clients = clients
        self._rules = rules
        self._pepper = pepper

    async def admit(
        self, doc_type: DocumentType, doc: Document, trusted: bool, clock: Callable[[], datetime]
    ) -> Admitted:
        """Every check of ``doc``; raises :class:`Refused` with all the violations found."""
        original = await self._answered(doc_type, doc)
        accepting_at = clock()
        violations = doc_type.violations(doc, replace(self._rules.rule_context, now=accepting_at))
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
                    violations += await self._rules.admissions[name](conn, doc_type, doc, context)
        if violations:
            raise Refused(violations)
        return Admitted(original, references, copy_to)

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
        partner = self._rules.partners.get(recipient)
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
        if basis is None or basis in self._rules.legal_bases:
            return []
        known = ", ".join(sorted(self._rules.legal_bases)) or "none configured"
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
        target = self._rules.routing.get(table, {}).get(doc["sender"])
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
