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

from collections.abc import Mapping
from typing import Any, Final

from gateway.connectors.base import ConnectorError, LookupAnswer, LookupRequest
from gateway.connectors.rest import (
    RestConnector,
    as_list,
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
