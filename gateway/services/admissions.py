"""Admission checks: rules that need stored state (a citizen's consent on record...), by the name a
:class:`~gateway.domain.doctypes.DocumentType` gives in ``admissions``. The checks made before a
document is stored (``gateway/services/document_checks.py``) run them inside acceptance, after the
pure rules, and refuse the document (:class:`~gateway.domain.errors.Refused`) with their violations.
This module knows nothing of those checks: it only says what a check is and which checks there are."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.doctypes import Document, DocumentType
from gateway.domain.flows import citizen
from gateway.domain.identifiers import pseudonym
from gateway.domain.violations import Violation
from gateway.storage import consents


@dataclass(frozen=True, slots=True)
class AdmissionContext:
    """What an admission check may need besides stored state: the key of personal-ID pseudonyms (a
    consent on record is kept under the pseudonym) and the acceptance time."""

    pepper: bytes
    now: datetime


#: A check that needs stored state, run inside acceptance: the violations that refuse ``doc``.
AdmissionCheck = Callable[
    [AsyncConnection, DocumentType, Document, AdmissionContext], Awaitable[list[Violation]]
]


async def citizen_consent(
    conn: AsyncConnection, doc_type: DocumentType, doc: Document, ctx: AdmissionContext
) -> list[Violation]:
    """The first notice to a person may go without consent; from the second on, only with the
    person's consent on record (latest row ``granted``). Notices refused here are not counted."""
    person = pseudonym(citizen.person_id(doc), ctx.pepper)
    earlier = await consents.notices_sent(conn, person, doc_type.message_type)
    if earlier == 0:
        return []
    if await consents.has_consent(conn, person, consents.VNEID_CHANNEL):
        return []
    return [
        Violation(
            "$.body.person.id_number",
            f"this person was already sent {earlier} notice(s) and has no consent to further notices on "
            "record (the notification service records it with POST /v1/consents)",
            "consent",
        )
    ]


ADMISSIONS: Mapping[str, AdmissionCheck] = {citizen.CONSENT_CHECK: citizen_consent}
