"""Banks (REST): account inquiries, answered at once or, by asynchronous banks, later by callback.

An asynchronous bank answers ``202 {"status": "processing"}``: that becomes
``LookupAnswer(match_status="accepted", accepted_later=True, reference=...)``. ``accepted`` is not a
match status of the result schema and is never validated against it; it only tells the worker to keep
the source pending until :func:`parse_callback` reads the bank's late answer.

Orders (``order.account_blocking``, ``order.funds_transfer``, ``order.account_release``) and revocations
go whole to ``POST /api/v1/orders``, as every REST partner takes documents (see ``rest.py``): ``200`` with
the report body, or ``202 {"status": "processing"}`` and the bank pushes its report document later.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.connectors.base import ConnectorError, LookupAnswer, LookupRequest
from gateway.connectors.rest import (
    RestConnector,
    as_list,
    batch_answers,
    canonical_answer,
    lookup_payload,
    pick,
    processing,
)
from gateway.domain.doctypes import PartnerKind

KIND: Final = PartnerKind.BANK
ACCEPTED: Final = "accepted"
ACCOUNT_FIELDS: Final = ("account_number", "branch", "currency", "type", "opened_on", "closed_on")


def account_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [pick(account, ACCOUNT_FIELDS) for account in as_list(data, "accounts")]


class BankConnector(RestConnector):
    kind = KIND
    path = "/api/v1/account-inquiries"
    #: Banks that declare ``batch_size`` take up to that many inquiries in one call here.
    batch_path = "/api/v1/account-inquiries/batch"
    documents_path = "/api/v1/orders"

    def payload(self, request: LookupRequest) -> dict[str, Any]:
        body = lookup_payload(request)
        if request.callback_url:
            body["callback_url"] = request.callback_url
        return body

    def rows(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        return account_rows(data)

    async def lookup(self, request: LookupRequest) -> LookupAnswer:
        status, data = await self.client.post(self.path, self.payload(request), request.request_ref)
        if status == 202:
            return accepted(data)
        return canonical_answer(KIND, data, account_rows(data))

    async def lookup_batch(
        self, requests: Sequence[LookupRequest]
    ) -> dict[str, LookupAnswer | ConnectorError]:
        """Several inquiries in one call (docs/partners.md, "Batches"): each request's answer by its
        ``request_ref`` — answered, accepted for later, or the partner's refusal of that request alone
        (a ``ConnectorError``). A request the answer does not mention is simply absent: the caller
        reports it. Raises ``ConnectorError`` when the call as a whole failed."""
        payload = {"requests": [self.payload(request) for request in requests]}
        # The batch's own reference in X-Request-Ref (each request keeps its request_ref inside).
        _, data = await self.client.post(self.batch_path, payload, str(uuid.uuid4()))
        out: dict[str, LookupAnswer | ConnectorError] = {}
        for ref, item in batch_answers(data).items():
            try:
                out[ref] = batch_item(item)
            except ConnectorError as exc:
                out[ref] = exc
        return out


def batch_item(item: Mapping[str, Any]) -> LookupAnswer:
    """One answer of a batch: as a single call's body (``200``), ``{"status": "processing"}`` (a ``202``),
    or ``{"error": code}`` for a request the bank refused (a ``4xx``: not retried)."""
    error = item.get("error")
    if error is not None:
        code = error if isinstance(error, str) else "error"
        raise ConnectorError(f"partner refused this request ({code[:64]})", retryable=False)
    if item.get("status") == "processing":
        return accepted(item)
    return canonical_answer(KIND, item, account_rows(item))


def accepted(data: Mapping[str, Any]) -> LookupAnswer:
    return LookupAnswer(match_status=ACCEPTED, reference=processing(data), accepted_later=True)


def parse_callback(body: Mapping[str, Any]) -> tuple[str, LookupAnswer]:
    """The late answer an asynchronous bank posts: its ``request_ref`` and the canonical answer.

    Raises ``ConnectorError`` (not retryable) when the body is unusable.
    """
    if not isinstance(body, Mapping):
        raise ConnectorError("callback body is not a JSON object", retryable=False)
    request_ref = body.get("request_ref")
    if not isinstance(request_ref, str) or not request_ref:
        raise ConnectorError("callback without a request_ref", retryable=False)
    return request_ref, canonical_answer(KIND, body, account_rows(body))
