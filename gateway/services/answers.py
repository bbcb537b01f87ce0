"""Late answers pushed by partners that accepted a request earlier and call back when ready."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.domain.errors import NotFound, Refused
from gateway.domain.lookup import LookupAnswer, PartnerError
from gateway.domain.violations import Violation
from gateway.security.tokens import Principal
from gateway.services.inquiry_results import apply_answer
from gateway.services.inquiry_watch import InquiryWatch
from gateway.storage import inquiries as store
from gateway.storage.database import Database
from gateway.storage.inquiries import Answer

#: Reads a partner's late answer: (request_ref, canonical answer); raises PartnerError when unusable.
AnswerParser = Callable[[Mapping[str, Any]], tuple[str, LookupAnswer]]


class AnswerService:
    def __init__(self, db: Database, parse: AnswerParser) -> None:
        self._db = db
        self._parse = parse
        #: Waiters of this process (``Prefer: wait``) are woken when an answer lands here.
        self.watch = InquiryWatch()

    async def accept(self, principal: Principal, body: object) -> bool:
        """Record the answer if its source is still pending; True if this call recorded it.
        A partner can only answer its own requests (anything else is 404, like an unknown ref)."""
        if not isinstance(body, dict):
            raise Refused([Violation("$", "must be a JSON object")])
        try:
            request_ref, answer = self._parse(body)
        except PartnerError as exc:
            raise Refused([Violation("$", exc.reason)]) from exc
        async with self._db.read() as conn:
            source = await store.source_by_ref(conn, request_ref)
        if source is None or source.partner_code != principal.client.id:
            raise NotFound("no pending request with this request_ref for this partner")
        applied = await apply_answer(
            self._db,
            request_ref,
            Answer(
                status="found" if answer.match_status == "found" else "not_found",
                match_status=answer.match_status,
                rows=answer.rows,
                as_of=answer.as_of,
                reference=answer.reference,
            ),
            principal.client.id,
        )
        if applied is None:
            return False
        self.watch.changed(applied.inquiry_id)
        return True
