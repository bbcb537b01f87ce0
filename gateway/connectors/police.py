"""Police units (REST): protection requests and urgent assistance requests, answered at once or later.

Every document (``police.protection_request``, ``police.urgent_assistance``, ``document.revocation``)
goes whole to ``POST /api/v1/documents`` with ``Idempotency-Key: <message_id>``: the police unit registers
each message_id once. ``200`` carries the answer body (a ``police.protection_answer`` body for a
protection request, a ``police.assistance_ack`` body for an assistance request), which the delivery
worker turns into the reply document; ``202 {"status": "processing"}`` means the police push their
answer document to the gateway later, as a client (``POST /v1/documents``, ``in_reply_to`` = ours). The
unit's reference comes in ``X-Reference`` (or the 202 body).

A police unit is no source of asset lookups: it answers no inquiry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.connectors.bank import processing
from gateway.connectors.base import ConnectorError, LookupAnswer, LookupRequest, PartnerReceipt, document_id
from gateway.connectors.rest import RestConnector, parse_object
from gateway.domain.issued import REVOCATION

KIND: Final = "police"
DOCUMENTS_PATH: Final = "/api/v1/documents"


class PoliceConnector(RestConnector):
    kind = KIND
    path = DOCUMENTS_PATH

    async def lookup(self, request: LookupRequest) -> LookupAnswer:
        raise ConnectorError(f"police unit {self.partner.code} answers no asset lookup", retryable=False)

    async def deliver(self, document: Mapping[str, Any]) -> PartnerReceipt:
        message_id = document_id(document)
        reply = await self.client.send(
            DOCUMENTS_PATH, document, message_id, extra_headers={"Idempotency-Key": message_id}
        )
        if document.get("message_type") == REVOCATION:
            return PartnerReceipt(report=None, reference=reply.reference)
        data = parse_object(reply.body)
        if reply.status == 202:
            return PartnerReceipt(reference=processing(data) or reply.reference, accepted_later=True)
        return PartnerReceipt(report=data, reference=reply.reference)
