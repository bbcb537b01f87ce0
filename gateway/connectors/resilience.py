"""Calling a partner without letting it hurt the gateway: bounded concurrency, a timeout per attempt,
a few jittered retries on transient failures, and a circuit breaker that stops calling a partner that
keeps failing until it has had time to recover.

:meth:`GuardedConnector.call` never raises for partner trouble; it returns an :class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import Counter, Histogram
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from gateway.connectors.base import Connector, ConnectorError, LookupAnswer, LookupRequest
from gateway.connectors.rest import PartnerTimeout
from gateway.partners import Partner

log = logging.getLogger(__name__)

OutcomeStatus = Literal["found", "not_found", "pending", "unavailable", "timeout", "error"]
BreakerState = Literal["closed", "open", "half-open"]

CALLS = Counter("gateway_partner_calls_total", "Partner lookups by outcome", ["partner", "outcome"])
CALL_SECONDS = Histogram(
    "gateway_partner_call_seconds",
    "Time for one partner lookup, retries and back-off included",
    ["partner"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)

_STATES: Final[dict[str, BreakerState]] = {"closed": "closed", "opened": "open", "half-opened": "half-open"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one lookup.

    ``found`` / ``not_found``: the partner answered; ``answer.match_status`` keeps its exact word
    (``ambiguous_identity`` and ``not_competent`` are ``not_found`` here). ``pending``: accepted, the
    answer comes later by callback. ``unavailable``: the breaker is open or transient failures
    outlasted the retries. ``timeout``: the last attempt got no answer in time. ``error``: the partner
    answered something unusable; retrying would not help.
    """

    status: OutcomeStatus
    answer: LookupAnswer | None = None
    reason: str | None = None
    attempts: int = 0


class BreakerOpen(Exception):
    pass


class CircuitBreaker:
    """A consecutive-failure breaker for one partner (purgatory, in memory: per process on purpose,
    each worker judges the partner by what it sees itself)."""

    def __init__(self, name: str, failures: int, recovery_seconds: float) -> None:
        self._name = name
        self._state: BreakerState = "closed"
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failures,
            default_ttl=recovery_seconds,
            # Only transient failures say the partner is unwell. An unusable answer still proves it is
            # up, and a cancelled call (shutdown) says nothing about it.
            exclude=[(ConnectorError, lambda e: not e.retryable), asyncio.CancelledError],
        )
        self._factory.add_listener(self._on_event)

    def _on_event(self, name: str, event_type: str, event: object) -> None:
        if event_type == "state_changed":
            self._state = _STATES.get(str(getattr(event, "state", "")), "closed")

    def state(self) -> BreakerState:
        return self._state

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the block as one call through the breaker; ``BreakerOpen`` without running it when open."""
        breaker = await self._factory.get_breaker(self._name)
        try:
            async with breaker:
                yield
        except OpenedState as exc:
            # purgatory raises one and the same instance on every refused call: drop its traceback so
            # it does not grow for as long as the circuit stays open.
            exc.with_traceback(None)
            raise BreakerOpen(f"circuit open for {self._name}") from None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectorError) and exc.retryable


class GuardedConnector:
    """One partner's connector behind its breaker, retry policy, timeout and concurrency limit."""

    def __init__(self, partner: Partner, connector: Connector) -> None:
        self.partner = partner
        self.connector = connector
        self._breaker = CircuitBreaker(
            partner.code, partner.breaker.failures, partner.breaker.recovery_seconds
        )
        self._slots = asyncio.Semaphore(partner.concurrency)

    def breaker_state(self) -> BreakerState:
        """As of the last call: an open breaker past its recovery time reads "open" until a call probes."""
        return self._breaker.state()

    async def call(self, request: LookupRequest) -> Outcome:
        started = time.perf_counter()
        outcome = await self._call(request)
        CALLS.labels(self.partner.code, outcome.status).inc()
        CALL_SECONDS.labels(self.partner.code).observe(time.perf_counter() - started)
        return outcome

    async def close(self) -> None:
        await self.connector.close()

    async def _call(self, request: LookupRequest) -> Outcome:
        retry = self.partner.retry
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(retry.attempts),
                wait=wait_random_exponential(multiplier=retry.min_seconds, max=retry.max_seconds),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    answer = await self._attempt(request)
        except BreakerOpen as exc:
            return Outcome("unavailable", reason=str(exc), attempts=attempts - 1)
        except PartnerTimeout as exc:
            return Outcome("timeout", reason=exc.reason, attempts=attempts)
        except ConnectorError as exc:
            status: OutcomeStatus = "unavailable" if exc.retryable else "error"
            return Outcome(status, reason=exc.reason, attempts=attempts)
        except Exception as exc:
            # A fault in our own mapping code: the inquiry gets an error, the log gets the trace.
            log.exception("lookup on %s failed unexpectedly", self.partner.code)
            return Outcome("error", reason=f"gateway fault ({type(exc).__name__})", attempts=attempts)
        if answer.accepted_later:
            return Outcome("pending", answer, attempts=attempts)
        status = "found" if answer.match_status == "found" else "not_found"
        return Outcome(status, answer, attempts=attempts)

    async def _attempt(self, request: LookupRequest) -> LookupAnswer:
        # Breaker first, so an open circuit answers at once even when every slot is busy; the
        # timeout covers the partner only, not the wait for a slot.
        async with self._breaker.guard(), self._slots:
            try:
                async with asyncio.timeout(self.partner.timeout_seconds):
                    return await self.connector.lookup(request)
            except TimeoutError as exc:
                raise PartnerTimeout(f"no answer within {self.partner.timeout_seconds:g} s") from exc
