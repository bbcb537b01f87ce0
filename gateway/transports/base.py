"""What a transport is given (:class:`Call`) and gives back (:class:`Reply`), and how it fails.

A transport performs one HTTP exchange. It raises ``aiohttp`` client errors and ``TimeoutError`` as they
come (the connector classifies them, as for a direct call), and :class:`PlatformError` when the platform
in between — not the partner — failed: an X-Road error, a refused platform token, an answer whose request
hash does not match. A platform failure is never taken for the partner's answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.connectors.base import ConnectorError

TransportKind = Literal["direct", "xroad", "lgsp"]
TRANSPORTS: Final[tuple[TransportKind, ...]] = ("direct", "xroad", "lgsp")


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the connector built it.

    ``path`` is relative to the partner's service (``/api/v1/account-inquiries``; empty for SOAP, whose
    operation is in the envelope). ``headers`` are the connector's own (``Content-Type``, ``Accept``,
    ``Idempotency-Key``, ``SOAPAction``, ``X-Request-Ref``); credentials are the transport's business.
    ``soap``: the body is a SOAP envelope (``operation`` names its operation).
    """

    method: str
    path: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    soap: bool = False
    operation: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """The partner's HTTP answer, as the transport received it (platform headers already checked)."""

    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes
    content_type: str = ""
    charset: str | None = None


class PlatformError(ConnectorError):
    """The exchange platform (X-Road security server, LGSP), not the partner, failed or refused the call.

    ``reason`` names the platform (``X-Road: Server.ServerProxy.ServiceFailed``); ``retryable`` as for any
    partner failure. ``counts_for_breaker=False`` (a platform's rate limit) keeps the partner's breaker
    closed: the partner did nothing wrong. ``retry_after``: seconds the platform asked to wait, if any."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        counts_for_breaker: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, retryable=retryable)
        self.counts_for_breaker = counts_for_breaker
        self.retry_after = retry_after


class Transport(Protocol):
    """Carries a partner's calls. One instance per partner, built at start-up, shared by its calls."""

    kind: TransportKind

    async def send(self, call: Call, timeout_seconds: float) -> Reply: ...

    async def close(self) -> None: ...
