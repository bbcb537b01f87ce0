"""Batches to partners that take them: ``GuardedConnector.call_batch`` (one guarded call per batch, each
request its own outcome, never a silent drop) and the ``Batcher`` that gathers lookups arriving together,
against a fake connector and against the simulated banks' batch endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest

from gateway.connectors.bank import BankConnector
from gateway.connectors.base import ConnectorError, LookupAnswer, LookupRequest, PartnerReceipt, Subject
from gateway.connectors.resilience import GuardedConnector, Outcome
from gateway.partners import BreakerPolicy, Partner, RetryPolicy
from gateway.simulators.partners import banks, seed
from gateway.simulators.partners.behaviour import Behaviour
from gateway.worker.batching import Batcher
from tests.support.lookup_requests import STATED

PERSON = "001085012345"  # holds accounts at BANK-VCB in the seeded data
NOBODY = "001090000000"  # holds nothing anywhere


def request(n: int, id_number: str = PERSON, code: str = "BANK-VCB") -> LookupRequest:
    return LookupRequest(
        request_ref=f"req-{n:04d}",
        inquiry_id=f"inq-{n:04d}",
        source_id=f"bank:{code}",
        partner_code=code,
        kind="bank",
        subject=Subject(id_number=id_number, full_name="Nguyễn Văn An"),
        case_ref="THA-HN-2026-000123",
        purpose="civil_judgment_enforcement",
        **STATED,
    )


def bank(code: str = "BANK-VCB", batch_size: int = 3, endpoint: str = "http://127.0.0.1:9/vcb") -> Partner:
    return Partner(
        code=code,
        kind="bank",
        protocol="rest",
        endpoint=endpoint,
        timeout_seconds=1,
        retry=RetryPolicy(attempts=2, min_seconds=0.001, max_seconds=0.002),
        breaker=BreakerPolicy(failures=2, recovery_seconds=60),
        batch_size=batch_size,
        credentials="TEST_PARTNER_TOKEN",
    )


FOUND = LookupAnswer(match_status="found", rows=[{"account_number": "0011001234567"}])
NOT_FOUND = LookupAnswer(match_status="not_found")


@dataclass
class FakeBank:
    """A connector with a batch call: answers each request by a rule, or fails the whole call."""

    answer: Callable[[LookupRequest], LookupAnswer | ConnectorError | None] = lambda r: FOUND
    failure: ConnectorError | None = None
    hang: bool = False
    batches: list[list[str]] = field(default_factory=list)
    singles: list[str] = field(default_factory=list)

    async def lookup_batch(
        self, requests: Sequence[LookupRequest]
    ) -> Mapping[str, LookupAnswer | ConnectorError]:
        self.batches.append([r.request_ref for r in requests])
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure
        out: dict[str, LookupAnswer | ConnectorError] = {}
        for r in requests:
            item = self.answer(r)
            if item is not None:
                out[r.request_ref] = item
        return out

    async def lookup(self, request: LookupRequest) -> LookupAnswer:
        self.singles.append(request.request_ref)
        return FOUND

    async def deliver(self, document: Mapping[str, Any]) -> PartnerReceipt:
        raise ConnectorError("no documents here", retryable=False)

    async def close(self) -> None:
        return None


# -- call_batch, with a fake connector --------------------------------------------------------------


async def test_requests_go_in_batches_of_the_partners_size_each_with_its_own_outcome() -> None:
    fake = FakeBank(answer=lambda r: FOUND if int(r.request_ref[-1]) % 2 else NOT_FOUND)
    outcomes = await GuardedConnector(bank(batch_size=3), fake).call_batch([request(n) for n in range(7)])
    assert [len(b) for b in fake.batches] == [3, 3, 1]
    assert [o.status for o in outcomes] == ["not_found", "found"] * 3 + ["not_found"]
    assert all(o.attempts == 1 for o in outcomes)


async def test_a_batch_failing_as_a_whole_gives_every_request_the_same_failure() -> None:
    fake = FakeBank(failure=ConnectorError("partner answered HTTP 503", retryable=True))
    outcomes = await GuardedConnector(bank(batch_size=10), fake).call_batch([request(n) for n in range(4)])
    assert len(fake.batches) == 2  # the whole batch retried once (retry.attempts = 2), never per request
    assert {(o.status, o.reason, o.attempts) for o in outcomes} == {
        ("unavailable", "partner answered HTTP 503", 2)
    }
    refused = FakeBank(failure=ConnectorError("answer is not JSON", retryable=False))
    outcomes = await GuardedConnector(bank(batch_size=10), refused).call_batch([request(n) for n in range(4)])
    assert len(refused.batches) == 1 and {o.status for o in outcomes} == {"error"}


async def test_a_batch_that_outlasts_the_timeout_times_out_every_request() -> None:
    partner = bank(batch_size=10).model_copy(update={"timeout_seconds": 0.05})
    outcomes = await GuardedConnector(partner, FakeBank(hang=True)).call_batch([request(n) for n in range(3)])
    assert [o.status for o in outcomes] == ["timeout"] * 3


async def test_a_request_the_answer_leaves_out_is_an_error_never_a_silent_drop() -> None:
    fake = FakeBank(answer=lambda r: None if r.request_ref == "req-0001" else FOUND)
    outcomes = await GuardedConnector(bank(), fake).call_batch([request(n) for n in range(3)])
    assert [o.status for o in outcomes] == ["found", "error", "found"]
    assert "none for this request" in (outcomes[1].reason or "")


async def test_refused_and_later_requests_keep_their_own_outcome() -> None:
    later = LookupAnswer(match_status="accepted", reference="TCB-1", accepted_later=True)
    rules: dict[str, LookupAnswer | ConnectorError] = {
        "req-0000": ConnectorError("partner refused this request (invalid_subject)", retryable=False),
        "req-0001": later,
        "req-0002": NOT_FOUND,
    }
    outcomes = await GuardedConnector(bank(), FakeBank(answer=lambda r: rules[r.request_ref])).call_batch(
        [request(n) for n in range(3)]
    )
    assert [o.status for o in outcomes] == ["error", "pending", "not_found"]
    assert outcomes[1].answer is later


async def test_an_open_breaker_refuses_the_batch_without_calling() -> None:
    fake = FakeBank(failure=ConnectorError("connection failed", retryable=True))
    guarded = GuardedConnector(bank(batch_size=10), fake)
    await guarded.call_batch([request(0)])  # two failed attempts open the breaker (failures = 2)
    calls = len(fake.batches)
    outcomes = await guarded.call_batch([request(n) for n in range(5)])
    assert len(fake.batches) == calls
    assert {o.status for o in outcomes} == {"unavailable"}
    assert "circuit open" in (outcomes[0].reason or "")


async def test_a_partner_without_batches_gets_one_call_per_request() -> None:
    fake = FakeBank()
    outcomes = await GuardedConnector(bank(batch_size=1), fake).call_batch([request(n) for n in range(4)])
    assert not fake.batches and sorted(fake.singles) == [f"req-{n:04d}" for n in range(4)]
    assert [o.status for o in outcomes] == ["found"] * 4


# -- the Batcher ------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """A call_batch that answers each request with an outcome naming it."""

    batches: list[list[str]] = field(default_factory=list)
    short_by: int = 0
    fail: Exception | None = None

    async def __call__(self, requests: Sequence[LookupRequest]) -> list[Outcome]:
        self.batches.append([r.request_ref for r in requests])
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        answered = [Outcome("found", reason=r.request_ref) for r in requests]
        return answered[: len(answered) - self.short_by]


async def test_lookups_arriving_together_leave_in_batches_of_at_most_max_size() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=3, linger_seconds=0.01)
    outcomes = await asyncio.gather(*(batcher.call(request(n)) for n in range(7)))
    assert [len(b) for b in recorder.batches] == [3, 3, 1]
    assert [o.reason for o in outcomes] == [f"req-{n:04d}" for n in range(7)]  # each caller its own


async def test_a_lone_lookup_leaves_once_the_linger_passes() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=50, linger_seconds=0.01)
    assert (await batcher.call(request(1))).reason == "req-0001"
    assert recorder.batches == [["req-0001"]]


async def test_a_caller_left_without_an_outcome_gets_an_error() -> None:
    batcher = Batcher(Recorder(short_by=1), max_size=3, linger_seconds=0.01)
    outcomes = await asyncio.gather(*(batcher.call(request(n)) for n in range(3)))
    assert [o.status for o in outcomes] == ["found", "found", "error"]


async def test_a_batch_call_that_raises_reaches_every_caller() -> None:
    batcher = Batcher(Recorder(fail=RuntimeError("bug")), max_size=2, linger_seconds=0.01)
    results = await asyncio.gather(*(batcher.call(request(n)) for n in range(2)), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]


async def test_a_caller_that_gave_up_is_not_sent() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_size=10, linger_seconds=0.01)
    gone = asyncio.create_task(batcher.call(request(0)))
    await asyncio.sleep(0)
    gone.cancel()
    assert (await batcher.call(request(1))).reason == "req-0001"
    assert recorder.batches == [["req-0001"]]


# -- against the simulated banks --------------------------------------------------------------------


@pytest.fixture
async def simulated_banks(
    aiohttp_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, str]]:
    """The bank simulator answering at once (BANK-TCB later), no injected faults."""
    monkeypatch.setenv("TEST_PARTNER_TOKEN", "simulator-token")
    app = banks.make_app(Behaviour(latency=(0.0, 0.0), error_rate=0.0), callback_delay=60)
    server = await aiohttp_server(app)
    yield app, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def accounts(id_number: str, code: str = "BANK-VCB") -> list[str]:
    return [a["account_number"] for a in seed.expected("bank", code, {"id_number": id_number})["accounts"]]


async def test_the_bank_connector_sends_one_call_and_reads_each_answer(
    simulated_banks: tuple[Any, str], session: aiohttp.ClientSession
) -> None:
    app, base = simulated_banks
    connector = BankConnector(bank(endpoint=base + "/vcb"), session)
    bad = replace(request(2), subject=Subject(id_number="12345"))
    answers = await connector.lookup_batch([request(0), request(1, NOBODY), bad])
    assert app[banks.BATCHES] == [3]
    first, second, third = answers["req-0000"], answers["req-0001"], answers["req-0002"]
    assert isinstance(first, LookupAnswer) and [r["account_number"] for r in first.rows] == accounts(PERSON)
    assert isinstance(second, LookupAnswer) and second.match_status == "not_found" and not second.rows
    assert isinstance(third, ConnectorError) and not third.retryable


async def test_an_asynchronous_bank_takes_a_batch_for_later(
    simulated_banks: tuple[Any, str], session: aiohttp.ClientSession
) -> None:
    _, base = simulated_banks
    partner = bank("BANK-TCB", endpoint=base + "/tcb")
    requests = [
        replace(request(n, code="BANK-TCB"), callback_url="http://127.0.0.1:9/v1/partner-answers")
        for n in range(2)
    ]
    outcomes = await GuardedConnector(partner, BankConnector(partner, session)).call_batch(requests)
    assert [o.status for o in outcomes] == ["pending", "pending"]
    assert all(o.answer is not None and o.answer.reference for o in outcomes)


async def test_the_batcher_wired_to_a_bank_sends_sixty_lookups_in_two_calls(
    simulated_banks: tuple[Any, str], session: aiohttp.ClientSession
) -> None:
    """How the worker uses it: each consumed request awaits ``batcher.call`` where it awaited
    ``GuardedConnector.call``; the bank's batch_size bounds each batch."""
    app, base = simulated_banks
    partner = bank(batch_size=50, endpoint=base + "/vcb")
    guarded = GuardedConnector(partner, BankConnector(partner, session))
    batcher = Batcher(guarded.call_batch, max_size=partner.batch_size, linger_seconds=0.05)
    people = [PERSON if n % 3 == 0 else NOBODY for n in range(60)]
    outcomes = await asyncio.gather(*(batcher.call(request(n, who)) for n, who in enumerate(people)))
    assert app[banks.BATCHES] == [50, 10]
    for outcome, who in zip(outcomes, people, strict=True):
        assert outcome.status == ("found" if who == PERSON else "not_found")
        assert outcome.answer is not None
        assert [r["account_number"] for r in outcome.answer.rows] == accounts(who)
