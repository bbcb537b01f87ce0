"""What the gateway knows about a kind of document: one :class:`DocumentType` per ``message_type``.

Pure data and functions, no I/O. The pipeline (``services/documents.py``, the delivery worker, the
deadline watcher) reads everything type-specific from here, so a new document family is a schema,
examples and one ``DocumentType(...)`` entry in ``gateway/domain/registry.py`` — not new endpoints or
services. An entry that names an unknown partner kind or role fails when it is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from gateway.domain.parties import CLIENT_ROLES, GATEWAY
from gateway.domain.violations import Violation

Document = dict[str, Any]


class PartnerKind(StrEnum):
    """The kinds of partner the gateway reaches through a connector: ``kind`` in ``config/partners.toml``,
    ``DocumentType.partner_kinds``, the connector (``gateway/connectors/``) and the simulator serving it.

    A kind names what the partner *is*, not which ministry runs it: the traffic police's vehicle register
    (``POLICE-VEH``) is :attr:`VEHICLE_REGISTER` (``"vehicle"``); :attr:`POLICE_UNIT` (``"police"``) is a
    police unit protecting a coercion (``CA-HN``).
    """

    #: The land registry (``LAND-REG``, SOAP): parcels, transfer suspensions.
    LAND_REGISTRY = "land"
    #: A bank (``BANK-VCB``...): accounts, blocking, transfers, releases.
    BANK = "bank"
    #: The tax authority (``TAX``): employers and businesses.
    TAX_AUTHORITY = "tax"
    #: The traffic police's vehicle register (``POLICE-VEH``): registered vehicles. Not ``police``.
    VEHICLE_REGISTER = "vehicle"
    #: The national population database (``POP-REG``): identity and residence.
    POPULATION_REGISTER = "population"
    #: A police unit of the place of enforcement (``CA-HN``): protection of coercions, urgent assistance.
    POLICE_UNIT = "police"
    #: The national e-ID notification service (``VNEID``): notices to citizens.
    VNEID = "vneid"

    @classmethod
    def parse(cls, value: object, where: str = "") -> PartnerKind:
        """``value`` as a kind; ``ValueError`` naming ``where`` and every valid kind otherwise."""
        for kind in cls:
            if value == kind.value:
                return kind
        raise ValueError(
            f"{where + ': ' if where else ''}unknown partner kind {value!r}; partner kinds are "
            f"{', '.join(cls)} (the vehicle register is 'vehicle', a police unit is 'police')"
        )


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
    #: Partner kinds (:class:`PartnerKind`) that may receive it when ``recipients == "partner"``.
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

    def __post_init__(self) -> None:
        where = f"document type {self.message_type}"
        kinds = frozenset(PartnerKind.parse(kind, where) for kind in self.partner_kinds)
        # Plain strings, whichever way the entry spelled them: the kinds compare with config values.
        object.__setattr__(self, "partner_kinds", frozenset(str(kind.value) for kind in kinds))
        if (self.recipients == "partner") != bool(kinds):
            raise ValueError(f"{where}: partner_kinds are given exactly when recipients is 'partner'")
        unknown = sorted(str(role) for role in self.sent_by - CLIENT_ROLES - {GATEWAY})
        if unknown:
            known = ", ".join(sorted(CLIENT_ROLES | {GATEWAY}))
            raise ValueError(f"{where}: unknown role(s) {', '.join(unknown)} in sent_by; roles are {known}")
        object.__setattr__(self, "sent_by", frozenset(str(role) for role in self.sent_by))

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
