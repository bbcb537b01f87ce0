"""What every connector is: canonical lookup in, partner protocol out, canonical answer back; and a
canonical document (an order, a revocation) handed to the partner, its receipt back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.domain.delivery import PartnerReceipt
from gateway.domain.lookup import LookupAnswer, LookupRequest, PartnerError, Subject

__all__ = [
    "Connector",
    "ConnectorError",
    "LookupAnswer",
    "LookupRequest",
    "PartnerError",
    "PartnerReceipt",
    "Subject",
    "document_id",
]


class ConnectorError(PartnerError):
    """A call that did not produce an answer (see :class:`PartnerError`)."""


class Connector(Protocol):
    async def lookup(self, request: LookupRequest) -> LookupAnswer: ...

    async def deliver(self, document: Mapping[str, Any]) -> PartnerReceipt:
        """Hand the whole document to the partner. Raises ``ConnectorError`` (retryable or not) when the
        partner did not take it; a partner that takes no documents at all raises a non-retryable one."""
        ...

    async def close(self) -> None: ...


def document_id(document: Mapping[str, Any]) -> str:
    """The document's ``message_id``: the partner's idempotency key, so it must be there."""
    message_id = document.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip():
        raise ConnectorError("document without a message_id", retryable=False)
    return message_id
