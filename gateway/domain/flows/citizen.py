"""The citizen document family (see docs/flows.md): notices through the national e-ID app (VNeID) and
the delivery statuses that come back.

``notice.citizen`` (enforcement office -> ``VNEID``, a partner of kind ``vneid`` reached through its
connector) tells one person that a document exists and where to read it. From the second notice to a
person on, it needs the person's consent on record: the ``citizen_consent`` admission check
(``gateway/services/admissions.py``), which needs stored state and the keyed pseudonym, so it is not a
pure rule here. ``notice.delivery_status`` (``VNEID`` -> the office) answers it: delivered, read or
failed. The office confirms the first status it receives, which confirms the notice: its exchange is
complete; later statuses (read after delivered) are added to the notice's timeline as answers.
"""

from __future__ import annotations

from gateway.domain.doctypes import Document, DocumentType, RuleContext
from gateway.domain.identifiers import mask
from gateway.domain.parties import ENFORCEMENT_OFFICE, VNEID
from gateway.domain.violations import Violation

NOTICE = "notice.citizen"
DELIVERY_STATUS = "notice.delivery_status"
#: The partner kind of the national e-ID notification service (``config/partners.toml``).
VNEID_KIND = "vneid"
#: The admission check that needs the person's consent from the second notice on.
CONSENT_CHECK = "citizen_consent"
STATUSES = ("delivered", "read", "failed")


def person_id(doc: Document) -> str:
    """The recipient's personal ID (clear: the pipeline keeps it in the payload only)."""
    return str(doc["body"]["person"]["id_number"])


def notice_key(doc: Document) -> str:
    """A notice is one message: its identity is its ``message_id``. Two notices of the same document to
    two people differ only by the person, whose ID the natural key (stored, audited) must not hold, and
    whose keyed pseudonym pure rules cannot compute. The document hash keeps the key readable."""
    return f"{doc['body']['document']['sha256']}|{doc['message_id']}"


def notice_debtors(doc: Document) -> tuple[str, ...]:
    return (mask(person_id(doc)),)


def status_key(doc: Document) -> str:
    """One document per status of a notice: a resend of "read" is a duplicate."""
    return f"{doc['in_reply_to']}|{doc['body']['status']}"


def status_rules(doc: Document, _ctx: RuleContext) -> list[Violation]:
    body = doc["body"]
    if body["status"] == "failed" and "reason" not in body:
        return [Violation("$.body.reason", "is required when the status is failed", "required")]
    if body["status"] != "failed" and "reason" in body:
        return [Violation("$.body.reason", "is given with status failed only", "reason")]
    return []


TYPES: list[DocumentType] = [
    DocumentType(
        message_type=NOTICE,
        natural_key=notice_key,
        recipients="partner",
        partner_kinds=frozenset({VNEID_KIND}),
        debtor_refs=notice_debtors,
        answer_type=DELIVERY_STATUS,
        deadline="2wd",
        # The office confirms the delivery status it received: the notice is then confirmed too.
        confirmed_by="sender",
        admissions=(CONSENT_CHECK,),
        sent_by=frozenset({ENFORCEMENT_OFFICE}),
    ),
    DocumentType(
        message_type=DELIVERY_STATUS,
        natural_key=status_key,
        recipients="client",
        rules=status_rules,
        answers=frozenset({NOTICE}),
        sent_by=frozenset({VNEID}),
    ),
]
