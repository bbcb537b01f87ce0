"""What the gateway knows about a kind of document: one :class:`DocumentType` per ``message_type``.

Pure data and functions, no I/O. The pipeline (``services/documents.py``, the delivery worker, the
deadline watcher) reads everything type-specific from here, so a new document family is a schema,
examples, rules and one entry in ``gateway/domain/registry.py`` — not new endpoints or services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gateway.domain.parties import GATEWAY
from gateway.domain.violations import Violation

Document = dict[str, Any]

#: Who may receive a type: a registered client (its AMQP queue or webhook), or a partner reached through
#: its connector (config/partners.toml), limited to some partner kinds.
RecipientKind = Literal["client", "partner", "any"]
#: Who confirms a document once it reached its end of the exchange.
ConfirmedBy = Literal["recipient", "sender", "nobody"]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Limits the rules need that come from configuration, not from the document."""

    max_inline_document_bytes: int = 5_000_000
    #: When the document is being accepted (set by the service for each document; rules that compare a
    #: date with today use it, so tests can fix the clock). ``None`` outside the service.
    now: datetime | None = None


#: Who sent an earlier document a reference names, seen from the referring one: ``same`` — this
#: sender to this recipient (a transfer names the sender's own blocking order); ``reverse`` — this
#: recipient to this sender (a question about a judgment the sender received).
ReferenceParties = Literal["same", "reverse"]


@dataclass(frozen=True, slots=True)
class Reference:
    """A body field naming an earlier document: it must exist, be of one of ``types`` and have gone
    between the same two parties (``parties``).

    The field holds the earlier document's ``message_id``; or, when ``key`` is set, an object from which
    ``key`` builds the earlier document's natural key (a judgment's court code + number + date), with an
    optional ``message_id`` member that then wins and must agree with it."""

    field: str  # top-level key of ``body``
    types: frozenset[str] = frozenset()  # empty: any type
    parties: ReferenceParties = "same"
    key: Callable[[dict[str, Any]], str] | None = None
    #: Evidence written in the referenced document's timeline when this one is accepted (a court
    #: event on the judgment it concerns), in the same transaction.
    noted_as: str | None = None


def _no_rules(_doc: Document, _ctx: RuleContext) -> list[Violation]:
    return []


def _no_debtors(_doc: Document) -> tuple[str, ...]:
    return ()


def envelope_priority(doc: Document) -> str:
    return str(doc.get("priority", "normal"))


@dataclass(frozen=True, slots=True)
class DocumentType:
    message_type: str
    #: Business identity, unique per type: a resend under a new message_id gets the original receipt.
    natural_key: Callable[[Document], str]
    recipients: RecipientKind
    #: Partner kinds (``bank``, ``land``) that may receive it when ``recipients == "partner"``.
    partner_kinds: frozenset[str] = frozenset()
    rules: Callable[[Document, RuleContext], list[Violation]] = _no_rules
    #: Masked debtor references for the audit log (never a clear ID).
    debtor_refs: Callable[[Document], tuple[str, ...]] = _no_debtors
    priority: Callable[[Document], str] = envelope_priority
    #: The type that answers this one (its ``in_reply_to`` names this document).
    answer_type: str | None = None
    #: Types this one answers: ``in_reply_to`` is then required and must name one of them.
    answers: frozenset[str] = frozenset()
    references: tuple[Reference, ...] = ()
    #: Deadline for the awaited step (delivery, or the answer when ``answer_type`` is set):
    #: ``"15m"``, ``"2h"``, ``"3wd"``; ``None``: no deadline. Overridden by ``config/documents.toml``.
    deadline: str | None = None
    confirmed_by: ConfirmedBy = "recipient"
    #: Confirmation must carry the enforcement case number (judgments: the case opened for them).
    confirmation_needs_case_ref: bool = False
    #: Noted in the timeline of the documents it references once this one is delivered
    #: (a revocation: ``revocation_delivered`` on the document it revokes).
    delivered_event: str | None = None
    #: Grants that also allow sending it, besides ``documents.send:<message_type>`` (older names).
    extra_grants: frozenset[str] = field(default_factory=frozenset)
    #: Names of checks that need stored state (a citizen's consent on record...), run by the service
    #: inside acceptance; each name must be registered with the DocumentService (``admissions``).
    admissions: tuple[str, ...] = ()
    #: Name of a routing table in ``config/routing.toml``: every accepted document of this type is
    #: copied, as a document of its own with its own receipt, to the recipient that table gives for
    #: the original's sender (an enforcement decision to the procuracy of the same level).
    copy_to: str | None = None
    #: Roles of the parties that send it (``gateway/domain/parties.py``): a client needs one of them
    #: besides its grant. Empty: no client sends it. ``{"gateway"}``: only the gateway issues it.
    sent_by: frozenset[str] = frozenset()

    @property
    def grant(self) -> str:
        return f"documents.send:{self.message_type}"

    @property
    def gateway_only(self) -> bool:
        """Issued by the gateway alone (deadline events, revocations): refused to every client."""
        return self.sent_by == frozenset({GATEWAY})

    def violations(self, doc: Document, ctx: RuleContext) -> list[Violation]:
        """Rules beyond the schema, including the envelope's answer rules. Schema-valid ``doc`` only."""
        out = list(self.rules(doc, ctx))
        if self.answers and not doc.get("in_reply_to"):
            out.append(Violation("$.in_reply_to", "is required: name the document this answers", "required"))
        if not self.answers and doc.get("in_reply_to"):
            out.append(Violation("$.in_reply_to", f"a {self.message_type} answers no document", "answer"))
        return out
