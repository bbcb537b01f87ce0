"""GuardedConnector: retries, per-attempt timeouts, the circuit breaker and concurrency, against a real
loopback partner whose behaviour each test scripts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from gateway.connectors.base import LookupRequest, Subject
from gateway.connectors.registry import build_connectors
from gateway.connectors.resilience import GuardedConnector
from gateway.partners import Partner, RetryPolicy, load_partners
from gateway.simulators.partners import seed
from gateway.simulators.partners.servers import start_partners
from tests.support.lookup_requests import STATED

ROOT = Path(__file__).resolve().parent.parent

AS_OF = "2026-03-01T08:30:00Z"
VEHICLES = [{"plate": "30A-123.45", "class": "car", "make": "Toyota", "registered_on": "2021-05-10"}]
FOUND = {"reference": "REF-1", "match_status": "found", "as_of": AS_OF, "vehicles": VEHICLES}

# What the scripted partner does on a hit: an HTTP status with the FOUND body, "slow", or a JSON body.
Step = int | str | dict[str, Any]


@dataclass
class ScriptedPartner:
    """Plays ``script`` one step per hit, the last step repeating; counts hits and concurrency."""

    script: list[Step] = field(default_factory=lambda: [200])
    hits: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        step = self.script[min(self.hits, len(self.script) - 1)]
        self.hits += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if step == "slow":
                await self.release.wait()  # set when the server shuts down
                return web.json_response(FOUND)
            if step == "busy":
                await asyncio.sleep(0.05)
                return web.json_response(FOUND)
            if isinstance(step, dict):
                return web.json_response(step)
            assert isinstance(step, int)
            return web.json_response(FOUND if step == 200 else {"error": "x"}, status=step)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def scripted(aiohttp_server: Callable[..., Any]) -> AsyncIterator[tuple[ScriptedPartner, str]]:
    partner = ScriptedPartner()
    app = web.Application()
    app.router.add_post("/vehicles/api/v1/registrations/search", partner.handle)

    async def let_slow_handlers_finish(_: web.Application) -> None:
        partner.release.set()

    app.on_shutdown.append(let_slow_handlers_finish)
    server = await aiohttp_server(app)
    yield partner, str(server.make_url("/vehicles"))


def make_partner(endpoint: str, **overrides: Any) -> Partner:
    values: dict[str, Any] = {
        "code": "TEST-VEH",
        "kind": "vehicle",
        "protocol": "rest",
        "endpoint": endpoint,
        "timeout_seconds": 1,
        "concurrency": 8,
        "retry": {"attempts": 3, "min_seconds": 0.01, "max_seconds": 0.02},
        "breaker": {"failures": 5, "recovery_seconds": 0.3},
    }
    values.update(overrides)
    return Partner(**values)


async def guarded(partner: Partner, session: aiohttp.ClientSession) -> GuardedConnector:
    connectors = await build_connectors([partner], session)
    return GuardedConnector(partner, connectors[partner.code])


def lookup_request(n: int = 1) -> LookupRequest:
    return LookupRequest(
        request_ref=f"req-veh-{n}",
        inquiry_id="inq-1",
        source_id="vehicle",
        partner_code="TEST-VEH",
        kind="vehicle",
        subject=Subject(id_number="001085012345"),
        case_ref="THA-2026-001",
        purpose="civil_judgment_enforcement",
        **STATED,
    )


async def test_found(scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession) -> None:
    _, url = scripted
    connector = await guarded(make_partner(url), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts, outcome.reason) == ("found", 1, None)
    assert outcome.answer is not None and outcome.answer.rows == VEHICLES
    assert connector.breaker_state() == "closed"


@pytest.mark.parametrize("match_status", ["not_found", "ambiguous_identity", "not_competent"])
async def test_no_match_is_not_found_keeping_the_match_status(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession, match_status: str
) -> None:
    partner, url = scripted
    partner.script = [{"reference": "REF-2", "match_status": match_status, "as_of": AS_OF}]
    connector = await guarded(make_partner(url), session)

    outcome = await connector.call(lookup_request())

    assert outcome.status == "not_found"
    assert outcome.answer is not None and outcome.answer.match_status == match_status


async def test_transient_failures_are_retried(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [503, 503, 200]
    connector = await guarded(make_partner(url), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts, partner.hits) == ("found", 3, 3)


async def test_retries_exhausted_is_unavailable(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [503]
    connector = await guarded(make_partner(url), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts, partner.hits) == ("unavailable", 3, 3)
    assert outcome.answer is None
    assert outcome.reason == "partner answered HTTP 503"


async def test_malformed_answer_is_an_error_without_retry(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [
        {
            "reference": "REF-1",
            "match_status": "found",
            "as_of": AS_OF,
            "vehicles": [{**VEHICLES[0], "plate": 7}],
        }
    ]
    connector = await guarded(make_partner(url), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts, partner.hits) == ("error", 1, 1)
    assert outcome.reason is not None and "$.rows[0].plate (type)" in outcome.reason


async def test_client_error_is_not_retried(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [400]
    connector = await guarded(make_partner(url), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts, partner.hits) == ("error", 1, 1)


async def test_slow_partner_times_out_per_attempt(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = ["slow"]
    connector = await guarded(
        make_partner(
            url, timeout_seconds=0.2, retry={"attempts": 2, "min_seconds": 0.01, "max_seconds": 0.02}
        ),
        session,
    )

    started = asyncio.get_running_loop().time()
    outcome = await connector.call(lookup_request())
    elapsed = asyncio.get_running_loop().time() - started

    assert (outcome.status, outcome.attempts, partner.hits) == ("timeout", 2, 2)
    assert outcome.reason == "no answer within 0.2 s"
    assert 0.4 <= elapsed < 1.0


async def test_timeout_then_answer_is_found(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = ["slow", 200]
    connector = await guarded(make_partner(url, timeout_seconds=0.2), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts) == ("found", 2)


async def test_port_closed_is_unavailable(session: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    connector = await guarded(make_partner(f"http://127.0.0.1:{unused_tcp_port}/vehicles"), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts) == ("unavailable", 3)
    assert outcome.reason is not None and outcome.reason.startswith("connection failed")


async def test_breaker_opens_refuses_without_calling_then_recovers(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [503]
    connector = await guarded(
        make_partner(
            url,
            retry={"attempts": 1, "min_seconds": 0.01, "max_seconds": 0.02},
            breaker={"failures": 3, "recovery_seconds": 0.3},
        ),
        session,
    )

    for n in range(3):
        assert (await connector.call(lookup_request(n))).status == "unavailable"
    assert (connector.breaker_state(), partner.hits) == ("open", 3)

    refused = await connector.call(lookup_request(9))
    assert (refused.status, refused.attempts, refused.reason) == (
        "unavailable",
        0,
        "circuit open for TEST-VEH",
    )
    assert partner.hits == 3  # the partner was not called

    await asyncio.sleep(0.35)
    partner.script = [200]
    probe = await connector.call(lookup_request(10))
    assert (probe.status, probe.attempts, partner.hits) == ("found", 1, 4)
    assert connector.breaker_state() == "closed"


async def test_failed_probe_reopens_the_breaker(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [503]
    connector = await guarded(
        make_partner(
            url,
            retry={"attempts": 1, "min_seconds": 0.01, "max_seconds": 0.02},
            breaker={"failures": 1, "recovery_seconds": 0.3},
        ),
        session,
    )
    await connector.call(lookup_request(1))
    assert connector.breaker_state() == "open"

    await asyncio.sleep(0.35)
    assert (await connector.call(lookup_request(2))).status == "unavailable"
    assert (connector.breaker_state(), partner.hits) == ("open", 2)
    assert (await connector.call(lookup_request(3))).attempts == 0
    assert partner.hits == 2


async def test_breaker_opening_mid_retries_stops_them(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [503]
    connector = await guarded(make_partner(url, breaker={"failures": 2, "recovery_seconds": 5}), session)

    outcome = await connector.call(lookup_request())

    assert (outcome.status, outcome.attempts, partner.hits) == ("unavailable", 2, 2)
    assert outcome.reason == "circuit open for TEST-VEH"


async def test_malformed_answers_do_not_open_the_breaker(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = [{"match_status": "found"}]
    connector = await guarded(make_partner(url, breaker={"failures": 2, "recovery_seconds": 5}), session)

    for n in range(4):
        assert (await connector.call(lookup_request(n))).status == "error"
    assert (connector.breaker_state(), partner.hits) == ("closed", 4)


async def test_concurrency_is_bounded(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    partner.script = ["busy"]
    connector = await guarded(make_partner(url, concurrency=2), session)

    outcomes = await asyncio.gather(*(connector.call(lookup_request(n)) for n in range(6)))

    assert [o.status for o in outcomes] == ["found"] * 6
    assert partner.max_in_flight == 2


async def test_pending_when_the_bank_answers_later(
    aiohttp_server: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    async def accept(_: web.Request) -> web.Response:
        return web.json_response({"reference": "TCB-1", "status": "processing"}, status=202)

    app = web.Application()
    app.router.add_post("/tcb/api/v1/account-inquiries", accept)
    server = await aiohttp_server(app)
    partner = Partner(code="BANK-TEST", kind="bank", protocol="rest", endpoint=str(server.make_url("/tcb")))
    connector = await guarded(partner, session)

    outcome = await connector.call(lookup_request())

    assert outcome.status == "pending"
    assert outcome.answer is not None and outcome.answer.accepted_later
    assert outcome.answer.reference == "TCB-1"


async def test_metrics_count_outcomes(
    scripted: tuple[ScriptedPartner, str], session: aiohttp.ClientSession
) -> None:
    partner, url = scripted
    code = "TEST-METRICS"
    connector = await guarded(make_partner(url, code=code), session)

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"partner": code, **labels}) or 0.0

    before = sample("gateway_partner_calls_total", outcome="found")
    await connector.call(lookup_request())
    partner.script = [400]
    await connector.call(lookup_request(2))

    assert sample("gateway_partner_calls_total", outcome="found") == before + 1
    assert sample("gateway_partner_calls_total", outcome="error") >= 1
    assert sample("gateway_partner_call_seconds_count") >= 2


@pytest.mark.parametrize(
    ("mode", "status"), [("slow", "timeout"), ("down", "unavailable"), ("normal", "found")]
)
async def test_simulator_modes(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, mode: str, status: str
) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_POLICE_VEH", "test-token")
    sims = await start_partners(error_rate=0.0, latency=(0.0, 0.0), slow_delay=2.0)
    try:
        await sims.set_mode("vehicle", mode)
        configured = next(p for p in load_partners(ROOT / "config") if p.code == "POLICE-VEH")
        partner = configured.model_copy(
            update={
                "endpoint": sims.urls["POLICE-VEH"],
                "timeout_seconds": 0.2,
                "retry": RetryPolicy(attempts=2, min_seconds=0.01, max_seconds=0.02),
            }
        )
        connector = await guarded(partner, session)

        outcome = await connector.call(replace(lookup_request(), subject=Subject(id_number=seed.RICH)))

        assert (outcome.status, outcome.attempts) == (status, 1 if status == "found" else 2)
    finally:
        await sims.close()
