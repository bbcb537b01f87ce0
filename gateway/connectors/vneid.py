"""The national e-ID notification service (VNeID, REST): citizen notices.

A ``notice.citizen`` goes whole to ``POST {endpoint}/api/v1/notices`` with the partner's bearer token and
``Idempotency-Key: <message_id>``: the service sends each message_id to the person's app once. It answers
``202 {"status": "processing", "reference"?}``: what became of the notice (delivered, read, failed) comes
later, as ``notice.delivery_status`` documents it pushes to ``POST /v1/documents`` with its own token.
A ``200`` is taken the same way (the service had it already). ``4xx``: refused (not retried); ``5xx``,
timeouts, resets: retried, then parked. It answers no asset lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.connectors.base import ConnectorError, LookupAnswer, LookupRequest, PartnerReceipt, document_id
from gateway.connectors.rest import RestConnector, parse_object

KIND: Final = "vneid"
NOTICES_PATH: Final = "/api/v1/notices"


class VneidConnector(RestConnector):
    kind = KIND

    async def lookup(self, request: LookupRequest) -> LookupAnswer:
        raise ConnectorError(f"{self.partner.code} answers no lookups", retryable=False)

    async def deliver(self, document: Mapping[str, Any]) -> PartnerReceipt:
        message_id = document_id(document)
        reply = await self.client.send(
            NOTICES_PATH, document, message_id, extra_headers={"Idempotency-Key": message_id}
        )
        data = parse_object(reply.body) if reply.body else {}
        reference = data.get("reference")
        if reference is not None and not isinstance(reference, str):
            raise ConnectorError("answer with a non-string reference", retryable=False)
        return PartnerReceipt(reference=reference or reply.reference, accepted_later=True)
