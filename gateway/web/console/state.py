"""What the console keeps per api process: the operators file, the session codec and store, the sign-in
gate, one broker connection and the last overview."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Final

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from gateway.ops import status
from gateway.ops.operators import Operator, OperatorFile, OperatorFileError
from gateway.settings import Settings
from gateway.web.console.session import SessionCodec, SessionStore, derive_key
from gateway.web.console.signin import SignInGate
from gateway.web.context import Services

log = logging.getLogger(__name__)

BROKER_RETRY_SECONDS: Final = 10.0


@dataclass
class ConsoleState:
    settings: Settings
    operators: OperatorFile
    codec: SessionCodec | None = None
    sessions: SessionStore | None = None
    gate: SignInGate | None = None
    broker: AbstractRobustConnection | None = None
    broker_failed_at: float = 0.0
    broker_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cached: tuple[float, status.Snapshot] | None = None
    #: The overview's broker reads, each awaited about a second (gateway/ops/status.py).
    reads: status.BrokerReads | None = None

    def codec_for(self, services: Services) -> SessionCodec:
        if self.codec is None:
            self.codec = SessionCodec(
                derive_key(services.signer),
                self.settings.ops.session_minutes * 60,
                self.settings.ops.session_max_hours * 3600,
            )
        return self.codec

    def sessions_for(self, services: Services) -> SessionStore:
        if self.sessions is None:
            self.sessions = SessionStore(services.db, self.settings.ops.session_max_hours * 3600)
        return self.sessions

    def signin_gate(self) -> SignInGate:
        if self.gate is None:
            self.gate = SignInGate(self.settings.ops, self.settings.api.rate_limit_storage)
        return self.gate

    def accounts(self) -> tuple[dict[str, Operator], str]:
        try:
            return self.operators.accounts(), ""
        except OperatorFileError as exc:
            log.error("operators file unreadable: %s", exc)
            return {}, "The operators file cannot be read; nobody can sign in until it is fixed."

    async def connection(self) -> AbstractRobustConnection | None:
        """One broker connection per api process, opened on first use; after a failure, tried again
        only every few seconds so a down broker does not slow every page."""
        async with self.broker_lock:
            if self.broker is not None and not self.broker.is_closed:
                return self.broker
            if time.monotonic() - self.broker_failed_at < BROKER_RETRY_SECONDS and self.broker_failed_at:
                return None
            try:
                self.broker = await status.broker_connection(self.settings)
            except Exception as exc:  # any failure to connect: the page says the broker is unreachable
                log.warning("console: broker unreachable: %s", exc)
                self.broker_failed_at = time.monotonic()
                self.broker = None
            return self.broker

    def broker_reads(self) -> status.BrokerReads:
        if self.reads is None:
            self.reads = status.BrokerReads(self.settings)
        return self.reads

    async def close(self) -> None:
        if self.reads is not None:
            await self.reads.close()
        if self.gate is not None:
            self.gate.close()
        if self.broker is not None:
            await self.broker.close()
            self.broker = None


STATE: Final = web.AppKey("ops_state", ConsoleState)
