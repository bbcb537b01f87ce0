"""Calling a partner without letting it hurt the gateway: bounded concurrency, a timeout per attempt,
a few jittered retries on transient failures, and a circuit breaker that stops calling a partner that
keeps failing until it has had time to recover.

:meth:`GuardedConnector.call` (lookups) and :meth:`GuardedConnector.deliver` (documents) never raise for
partner trouble; they return an :class:`Outcome` / a :class:`DeliveryOutcome`. Both go through one policy
(:meth:`GuardedConnector._guarded`): the same slots, timeout, retries and breaker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Generic, Literal, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from gateway.connectors.base import Connector, ConnectorError, LookupAnswer, LookupRequest, PartnerReceipt
from gateway.connectors.rest import PartnerTimeout
from gateway.domain.identifiers import scrub
from gateway.partners import Partner
from gateway.transports.base import PlatformError
from gateway.transports.context import CallContext, calling
from gateway.transports.context import current as current_call

log = logging.getLogger(__name__)

OutcomeStatus = Literal["found", "not_found", "pending", "unavailable", "timeout", "error"]
DeliveryStatus = Literal["delivered", "unavailable", "timeout", "error"]
FailureStatus = Literal["unavailable", "timeout", "error"]
BreakerState = Literal["closed", "open", "half-open"]
T = TypeVar("T")

CALLS = Counter("gateway_partner_calls_total", "Partner lookups by outcome", ["partner", "outcome"])
CALL_SECONDS = Histogram(
    "gateway_partner_call_seconds",
    "Time for one partner lookup, retries and back-off included",
    ["partner"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)
DELIVERIES = Counter(
    "gateway_partner_deliveries_total", "Documents handed to partners by outcome", ["partner", "outcome"]
)
DELIVERY_SECONDS = Histogram(
    "gateway_partner_delivery_seconds",
    "Time to hand one document to a partner, retries and back-off included",
    ["partner"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
)

BREAKER_STATE = Gauge(
    "gateway_partner_breaker_state",
    "Circuit breaker of a partner: 0 closed, 1 half-open, 2 open",
    ["partner"],
)
IN_FLIGHT = Gauge("gateway_partner_in_flight", "Partner calls and deliveries under way now", ["partner"])

_STATES: Final[dict[str, BreakerState]] = {"closed": "closed", "opened": "open", "half-opened": "half-open"}
_STATE_VALUES: Final[dict[BreakerState, int]] = {"closed": 0, "half-open": 1, "open": 2}
#: How far back :class:`PartnerStats` looks (calls, failures, latency percentiles).
WINDOW_SECONDS: Final = 300.0
#: Most calls kept per partner in that window (latencies beyond it are dropped oldest first).
WINDOW_CALLS: Final = 5000


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
    #: What the exchange platform proved about the last attempt (X-Road's request hash…); None: direct.
    evidence: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of handing one document to a partner.

    ``delivered``: the partner took it; ``receipt`` says whether it answered with its report at once or
    will push it later (``receipt.accepted_later``). ``unavailable``, ``timeout`` and ``error`` as for
    :class:`Outcome`; an ``error`` will not go better by sending the same document again.
    """

    status: DeliveryStatus
    receipt: PartnerReceipt | None = None
    reason: str | None = None
    attempts: int = 0
    evidence: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Result(Generic[T]):
    """One guarded operation: its value, or why there is none (``failure`` and ``reason``)."""

    value: T | None
    attempts: int
    failure: FailureStatus | None = None
    reason: str | None = None
    evidence: Mapping[str, Any] | None = None


class BreakerOpen(Exception):
    pass


class CircuitBreaker:
    """A consecutive-failure breaker for one partner (purgatory, in memory: per process on purpose,
    each worker judges the partner by what it sees itself)."""

    def __init__(
        self,
        name: str,
        failures: int,
        recovery_seconds: float,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._name = name
        self._state: BreakerState = "closed"
        self._on_change = on_change
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failures,
            default_ttl=recovery_seconds,
            # Only transient failures say the partner is unwell. An unusable answer still proves it is
            # up, and a cancelled call (shutdown) says nothing about it.
            # A platform's rate limit (an LGSP's 429) says nothing about the partner behind it either.
            # purgatory applies the first entry whose class matches: the subclass goes first.
            exclude=[
                (PlatformError, lambda e: not e.retryable or not e.counts_for_breaker),
                (ConnectorError, lambda e: not e.retryable),
                asyncio.CancelledError,
            ],
        )
        self._factory.add_listener(self._on_event)

    def _on_event(self, name: str, event_type: str, event: object) -> None:
        if event_type == "state_changed":
            state = _STATES.get(str(getattr(event, "state", "")), "closed")
            changed = state != self._state
            self._state = state
            if changed and self._on_change is not None:
                self._on_change(state)

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


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """One partner as this process sees it now: what the operators' console shows."""

    partner: str
    breaker: BreakerState
    calls: int
    failures: int
    p50_ms: int | None
    p95_ms: int | None
    in_flight: int
    last_error: str | None
    last_error_at: datetime | None


class PartnerStats:
    """A rolling window of one partner's guarded operations (lookups and deliveries alike)."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._window = window_seconds
        self._clock = clock
        # (finished at, milliseconds, failed); milliseconds None when the partner was not reached
        self._calls: collections.deque[tuple[float, float | None, bool]] = collections.deque(
            maxlen=WINDOW_CALLS
        )
        self.in_flight = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    def record(self, seconds: float | None, failure: str | None) -> None:
        """One finished operation; ``seconds`` None if it never reached the partner (breaker open)."""
        self._calls.append((self._clock(), None if seconds is None else seconds * 1000, failure is not None))
        if failure is not None and seconds is not None:  # a refusal by the open breaker is no news
            # Partner and library messages may quote what was sent: never a personal ID in clear.
            self.last_error = scrub(failure)[:500]
            self.last_error_at = datetime.now(UTC)

    def snapshot(self, partner: str, breaker: BreakerState) -> HealthSnapshot:
        horizon = self._clock() - self._window
        while self._calls and self._calls[0][0] < horizon:
            self._calls.popleft()
        latencies = sorted(ms for _, ms, _ in self._calls if ms is not None)
        return HealthSnapshot(
            partner=partner,
            breaker=breaker,
            calls=len(self._calls),
            failures=sum(1 for _, _, failed in self._calls if failed),
            p50_ms=_percentile(latencies, 0.50),
            p95_ms=_percentile(latencies, 0.95),
            in_flight=self.in_flight,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
        )


def _percentile(ordered: list[float], q: float) -> int | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least the first
    return round(ordered[int(rank) - 1])


def _batch_outcome(item: LookupAnswer | ConnectorError | None, attempts: int) -> Outcome:
    """A request's outcome from its part of a batch answer (as :meth:`GuardedConnector._call` maps one)."""
    if item is None:
        return Outcome(
            "error", reason="the partner's batch answer has none for this request", attempts=attempts
        )
    if isinstance(item, ConnectorError):
        return Outcome("unavailable" if item.retryable else "error", reason=item.reason, attempts=attempts)
    if item.accepted_later:
        return Outcome("pending", item, attempts=attempts)
    return Outcome("found" if item.match_status == "found" else "not_found", item, attempts=attempts)


#: The longest a platform's Retry-After is waited for within one delivery of a message; a longer one
#: ends the attempts here and the message's own retry (its queue's delay tiers) takes over.
RETRY_AFTER_CAP_SECONDS: Final = 30.0


def _honouring_retry_after(base: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """The back-off, but never shorter than what a platform asked for (``PlatformError.retry_after``)."""

    def wait(state: RetryCallState) -> float:
        seconds = base(state)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        after = getattr(exc, "retry_after", None)
        if isinstance(after, int | float) and after > 0:
            seconds = max(seconds, min(float(after), RETRY_AFTER_CAP_SECONDS))
        return seconds

    return wait


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectorError) and exc.retryable


class GuardedConnector:
    """One partner's connector behind its breaker, retry policy, timeout and concurrency limit."""

    def __init__(self, partner: Partner, connector: Connector) -> None:
        self.partner = partner
        self.connector = connector
        self._breaker = CircuitBreaker(
            partner.code, partner.breaker.failures, partner.breaker.recovery_seconds, self._breaker_changed
        )
        self._slots = asyncio.Semaphore(partner.concurrency)
        # Urgent documents have slots of their own: a backlog of normal deliveries holding every slot
        # must not make an urgent one wait (the breaker, timeout and retries stay shared).
        self._urgent_slots = asyncio.Semaphore(partner.concurrency)
        self.stats = PartnerStats()
        #: Called (synchronously) with the partner's code whenever its breaker changes state.
        self.on_breaker_change: Callable[[str], None] | None = None
        BREAKER_STATE.labels(partner.code).set(0)
        IN_FLIGHT.labels(partner.code).set(0)

    def breaker_state(self) -> BreakerState:
        """As of the last call: an open breaker past its recovery time reads "open" until a call probes."""
        return self._breaker.state()

    def health(self) -> HealthSnapshot:
        """This process's view of the partner: breaker, recent calls and failures, latency, in flight."""
        return self.stats.snapshot(self.partner.code, self._breaker.state())

    def _breaker_changed(self, state: BreakerState) -> None:
        BREAKER_STATE.labels(self.partner.code).set(_STATE_VALUES[state])
        log.warning("partner %s: circuit breaker %s", self.partner.code, state)
        if self.on_breaker_change is not None:
            self.on_breaker_change(self.partner.code)

    async def call(self, request: LookupRequest) -> Outcome:
        started = time.perf_counter()
        context = CallContext(request.request_ref, request.officer_id, request.case_ref)
        outcome = await self._call(request, context)
        CALLS.labels(self.partner.code, outcome.status).inc()
        CALL_SECONDS.labels(self.partner.code).observe(time.perf_counter() - started)
        return outcome

    # -- batches (partners declaring batch_size; gateway/worker/batching.py gathers the requests) ----------

    async def call_batch(self, requests: Sequence[LookupRequest]) -> list[Outcome]:
        """One outcome per request, in order. A partner with ``batch_size`` > 1 and a batch endpoint gets
        one guarded call per ``batch_size`` requests — breaker, slot, timeout and retries as for one lookup,
        the whole batch retried (partners answer each request_ref once) — and a batch that fails as a whole
        gives each of its requests the same failed outcome; a request the answer leaves out gets an
        ``error``, never nothing. Any other partner: one :meth:`call` per request."""
        batch = getattr(self.connector, "lookup_batch", None)
        size = self.partner.batch_size
        if batch is None or size <= 1:
            return list(await asyncio.gather(*(self.call(request) for request in requests)))
        chunks = [list(requests[i : i + size]) for i in range(0, len(requests), size)]
        done = await asyncio.gather(*(self._call_batch(batch, chunk) for chunk in chunks))
        return [outcome for outcomes in done for outcome in outcomes]

    async def _call_batch(
        self,
        batch: Callable[[Sequence[LookupRequest]], Awaitable[Mapping[str, LookupAnswer | ConnectorError]]],
        requests: list[LookupRequest],
    ) -> list[Outcome]:
        started = time.perf_counter()
        # The batch is one message on the platform: its own id; officers and cases differ per request.
        context = CallContext(str(uuid.uuid4()))
        result = await self._guarded("lookup batch", lambda: batch(requests), context=context)
        if result.failure is not None:
            failed = Outcome(result.failure, reason=result.reason, attempts=result.attempts)
            outcomes = [failed] * len(requests)
        else:
            answers = result.value or {}
            outcomes = [_batch_outcome(answers.get(r.request_ref), result.attempts) for r in requests]
        if result.evidence is not None:
            outcomes = [replace(outcome, evidence=result.evidence) for outcome in outcomes]
        elapsed = time.perf_counter() - started
        for outcome in outcomes:
            CALLS.labels(self.partner.code, outcome.status).inc()
            CALL_SECONDS.labels(self.partner.code).observe(elapsed)
        return outcomes

    async def deliver(self, document: Mapping[str, Any], *, urgent: bool = False) -> DeliveryOutcome:
        """Hand ``document`` to the partner. Retrying is safe: partners execute each message_id once.
        ``urgent``: through the urgent slots, never behind normal deliveries waiting for a slot."""
        started = time.perf_counter()
        slots = self._urgent_slots if urgent else self._slots
        context = CallContext(
            str(document.get("message_id") or ""),
            _text(document.get("officer_id")),
            _text(document.get("case_ref")),
        )
        result = await self._guarded("delivery", lambda: self.connector.deliver(document), slots, context)
        if result.failure is not None:
            outcome = DeliveryOutcome(
                result.failure, reason=result.reason, attempts=result.attempts, evidence=result.evidence
            )
        else:
            outcome = DeliveryOutcome(
                "delivered", result.value, attempts=result.attempts, evidence=result.evidence
            )
        DELIVERIES.labels(self.partner.code, outcome.status).inc()
        DELIVERY_SECONDS.labels(self.partner.code).observe(time.perf_counter() - started)
        return outcome

    async def close(self) -> None:
        await self.connector.close()

    async def _call(self, request: LookupRequest, context: CallContext) -> Outcome:
        result = await self._guarded("lookup", lambda: self.connector.lookup(request), context=context)
        answer = result.value
        evidence = result.evidence
        if result.failure is not None:
            return Outcome(result.failure, reason=result.reason, attempts=result.attempts, evidence=evidence)
        if answer is None:  # a connector that returned nothing: our fault, not the partner's
            return Outcome("error", reason="gateway fault (no answer)", attempts=result.attempts)
        if answer.accepted_later:
            return Outcome("pending", answer, attempts=result.attempts, evidence=evidence)
        status: OutcomeStatus = "found" if answer.match_status == "found" else "not_found"
        return Outcome(status, answer, attempts=result.attempts, evidence=evidence)

    async def _guarded(
        self,
        what: str,
        operation: Callable[[], Awaitable[T]],
        slots: asyncio.Semaphore | None = None,
        context: CallContext | None = None,
    ) -> _Result[T]:
        """Run ``operation`` under the partner's retry policy, breaker, slots and timeout; ``context`` tells
        the transport whom the call is for and collects what the platform proved (the result's evidence)."""
        started = time.perf_counter()
        ctx = context or CallContext()
        with calling(ctx):
            result = await self._retrying(what, operation, slots or self._slots)
        if ctx.evidence is not None:
            result = replace(result, evidence=ctx.evidence)
        reached = result.attempts > 0
        failure = None if result.failure is None else f"{result.failure}: {result.reason or what}"
        self.stats.record(time.perf_counter() - started if reached else None, failure)
        return result

    async def _retrying(
        self, what: str, operation: Callable[[], Awaitable[T]], slots: asyncio.Semaphore
    ) -> _Result[T]:
        retry = self.partner.retry
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(retry.attempts),
                wait=_honouring_retry_after(
                    wait_random_exponential(multiplier=retry.min_seconds, max=retry.max_seconds)
                ),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    value = await self._attempt(operation, slots)
        except BreakerOpen as exc:
            return _Result(None, attempts - 1, "unavailable", str(exc))
        except PartnerTimeout as exc:
            return _Result(None, attempts, "timeout", exc.reason)
        except ConnectorError as exc:
            return _Result(None, attempts, "unavailable" if exc.retryable else "error", exc.reason)
        except Exception as exc:
            # A fault in our own mapping code: the caller gets an error, the log gets the trace.
            log.exception("%s on %s failed unexpectedly", what, self.partner.code)
            return _Result(None, attempts, "error", f"gateway fault ({type(exc).__name__})")
        return _Result(value, attempts)

    async def _attempt(self, operation: Callable[[], Awaitable[T]], slots: asyncio.Semaphore) -> T:
        # Breaker first, so an open circuit answers at once even when every slot is busy; the
        # timeout covers the partner only, not the wait for a slot.
        async with self._breaker.guard(), slots:
            current_call().evidence = None  # evidence is about the attempt that answered
            self.stats.in_flight += 1
            IN_FLIGHT.labels(self.partner.code).inc()
            try:
                async with asyncio.timeout(self.partner.timeout_seconds):
                    return await operation()
            except TimeoutError as exc:
                raise PartnerTimeout(f"no answer within {self.partner.timeout_seconds:g} s") from exc
            finally:
                self.stats.in_flight -= 1
                IN_FLIGHT.labels(self.partner.code).dec()
