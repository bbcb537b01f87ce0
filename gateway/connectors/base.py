"""What every connector is: canonical lookup in, partner protocol out, canonical answer back."""

from __future__ import annotations

from typing import Protocol

from gateway.domain.lookup import LookupAnswer, LookupRequest, PartnerError, Subject

__all__ = ["Connector", "ConnectorError", "LookupAnswer", "LookupRequest", "PartnerError", "Subject"]


class ConnectorError(PartnerError):
    """A call that did not produce an answer (see :class:`PartnerError`)."""


class Connector(Protocol):
    async def lookup(self, request: LookupRequest) -> LookupAnswer: ...

    async def close(self) -> None: ...
