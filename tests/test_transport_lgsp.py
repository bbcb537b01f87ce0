"""Partners reached through an LGSP: the simulated platform (gateway/simulators/lgsp.py) in front of the
real partner simulators, called through the real connectors and guard (breaker, retries, timeouts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from tenacity import AsyncRetrying, RetryCallState, wait_random_exponential

from gateway.connectors.bank import BankConnector
from gateway.connectors.base import LookupRequest, Subject
from gateway.connectors.registry import build_connectors
from gateway.connectors.resilience import (
    RETRY_AFTER_CAP_SECONDS,
    GuardedConnector,
    _honouring_retry_after,
)
from gateway.partners import LgspPlatform, Partner, Platforms, load_platforms
from gateway.simulators.lgsp import LgspSim
from gateway.simulators.partners import seed
from gateway.simulators.partners.servers import Partners, start_partners
from gateway.transports.base import Call, PlatformError, Reply
from gateway.transports.lgsp import LgspTransport, TokenSource, parse_retry_after, platform_error
from gateway.transports.registry import TransportCache, build_transport
from tests.support.lookup_requests import STATED

ROOT = Path(__file__).resolve().parent.parent
SECRET_ENV = "TEST_LGSP_HN_CLIENT_SECRET"
ACCESS_ENV = "TEST_LGSP_HN_ACCESS_TOKEN"


@dataclass
class World:
    sim: LgspSim
    partners: Partners
    platforms: Platforms
    session: aiohttp.ClientSession

    @property
    def platform(self) -> LgspPlatform:
        return self.platforms.lgsp["HN"]


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    partners = await start_partners(error_rate=0.0, latency=(0.0, 0.0))
    bank = partners.base_urls["bank"]
    sim = LgspSim({"/nhnn/vcb": bank + "/vcb", "/nhnn/bidv": bank + "/bidv"}, name="HN", retry_after="0")
    url = await sim.start()
    monkeypatch.setenv(SECRET_ENV, sim.client_secret)
    monkeypatch.setenv(ACCESS_ENV, sim.access_token)
    platform = LgspPlatform(
        base_url=url,
        token_url=url + "/oauth2/token",
        client_id=sim.client_id,
        client_secret_env=SECRET_ENV,
        access_token_env=ACCESS_ENV,
        scope="tra-cuu-tai-khoan",
    )
    try:
        async with aiohttp.ClientSession() as session:
            yield World(sim, partners, Platforms(lgsp={"HN": platform}), session)
    finally:
        await sim.close()
        await partners.close()


def bank(code: str = "BANK-VCB", path: str = "/nhnn/vcb", **overrides: Any) -> Partner:
    values: dict[str, Any] = {
        "code": code,
        "kind": "bank",
        "protocol": "rest",
        "transport": "lgsp",
        "lgsp": {"platform": "HN", "path": path},
        "timeout_seconds": 2,
        "concurrency": 50,
        "retry": {"attempts": 3, "min_seconds": 0.001, "max_seconds": 0.002},
        "breaker": {"failures": 5, "recovery_seconds": 60},
    }
    return Partner(**(values | overrides))


async def guarded(world: World, *partners: Partner) -> list[GuardedConnector]:
    connectors = await build_connectors(list(partners), world.session, platforms=world.platforms)
    return [GuardedConnector(p, connectors[p.code]) for p in partners]


def lookup(n: int = 1, partner: str = "BANK-VCB") -> LookupRequest:
    return LookupRequest(
        request_ref=f"req-lgsp-{n}",
        inquiry_id="inq-lgsp",
        source_id=f"bank:{partner}",
        partner_code=partner,
        kind="bank",
        subject=Subject(id_number=seed.RICH),
        case_ref="THA-2026-001",
        purpose="civil_judgment_enforcement",
        **STATED,
    )


async def test_a_bank_lookup_travels_through_the_lgsp(world: World) -> None:
    (vcb,) = await guarded(world, bank())

    first = await vcb.call(lookup(1))
    second = await vcb.call(lookup(2))

    assert (first.status, first.attempts, first.reason) == ("found", 1, None)
    assert first.answer is not None and first.answer.rows
    assert second.status == "found"
    # The platform carried it and said so: its transaction id is the evidence.
    assert second.evidence == {
        "platform": "lgsp",
        "name": "HN",
        "transaction_id": world.sim.last_transaction_id,
        "path": "/nhnn/vcb",
        "status": 200,
    }
    assert world.sim.forwarded == 2
    assert world.sim.token_requests == 1  # cached for the second call
    assert vcb.breaker_state() == "closed"


async def test_partners_on_one_platform_share_its_token(world: World) -> None:
    vcb, bidv = await guarded(world, bank(), bank("BANK-BIDV", "/nhnn/bidv"))

    outcomes = [await vcb.call(lookup(1)), await bidv.call(lookup(2, "BANK-BIDV"))]

    assert [o.status for o in outcomes] == ["found", "found"]
    assert world.sim.token_requests == 1


async def test_an_expired_token_is_fetched_once_for_fifty_concurrent_calls(world: World) -> None:
    now = [1000.0]
    partner = bank()
    tokens = TokenSource("HN", world.platform, world.session, clock=lambda: now[0])
    transport = LgspTransport(partner, world.platform, tokens, world.session)
    vcb = GuardedConnector(partner, BankConnector(partner, world.session, transport))
    assert (await vcb.call(lookup(0))).status == "found"
    assert world.sim.token_requests == 1

    now[0] += world.sim.token_lifetime  # past its expiry, as the gateway counts
    outcomes = await asyncio.gather(*(vcb.call(lookup(n)) for n in range(1, 51)))

    assert [o.status for o in outcomes] == ["found"] * 50
    assert world.sim.token_requests == 2
    assert tokens.requests == 2


async def test_a_token_the_platform_drops_is_replaced_once_for_fifty_concurrent_calls(world: World) -> None:
    (vcb,) = await guarded(world, bank())
    assert (await vcb.call(lookup(0))).status == "found"

    world.sim.expire_tokens()  # the platform restarted: every token it issued is refused
    outcomes = await asyncio.gather(*(vcb.call(lookup(n)) for n in range(1, 51)))

    assert [(o.status, o.attempts) for o in outcomes] == [("found", 1)] * 50  # retried in the transport
    assert world.sim.token_requests == 2
    assert 1 <= world.sim.refusals["invalid_token"] <= 50


async def test_a_rate_limit_storm_never_opens_the_breaker(world: World) -> None:
    # Two failures would open this breaker; the storm answers 429 to many more calls than that.
    (vcb,) = await guarded(
        world,
        bank(
            retry={"attempts": 8, "min_seconds": 0.001, "max_seconds": 0.002},
            breaker={"failures": 2, "recovery_seconds": 60},
        ),
    )

    world.sim.storm()
    during = [await vcb.call(lookup(n)) for n in range(3)]
    world.sim.storm(calls=5)  # the storm ends after five more calls
    after = await vcb.call(lookup(3))

    assert [(o.status, o.attempts, o.reason) for o in during] == [
        ("unavailable", 8, "LGSP HN: rate limited (429)")
    ] * 3
    assert world.sim.refusals["rate_limited"] == 3 * 8 + 5
    assert (after.status, after.attempts) == ("found", 6)
    assert vcb.breaker_state() == "closed"
    assert vcb.health().breaker == "closed"


def failed_state(exc: BaseException) -> RetryCallState:
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    state.set_exception((type(exc), exc, None))
    return state


async def test_retry_after_is_read_and_the_guard_waits_at_least_that(world: World) -> None:
    transport = build_transport(bank(), world.session, world.platforms)
    call = Call("POST", "/api/v1/account-inquiries", b"{}", {"Content-Type": "application/json"})
    backoff = _honouring_retry_after(wait_random_exponential(multiplier=0.001, max=0.002))

    world.sim.storm()
    world.sim.retry_after = "7"
    with pytest.raises(PlatformError) as seconds:
        await transport.send(call, 2)
    world.sim.retry_after = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    with pytest.raises(PlatformError) as date:
        await transport.send(call, 2)

    limited = seconds.value
    assert (limited.reason, limited.retryable, limited.counts_for_breaker) == (
        "LGSP HN: rate limited (429)",
        True,
        False,
    )
    assert limited.retry_after == 7.0
    assert backoff(failed_state(limited)) >= 7.0
    assert date.value.retry_after is not None and date.value.retry_after > 3000
    assert backoff(failed_state(date.value)) == RETRY_AFTER_CAP_SECONDS  # capped; the queue takes over


def test_retry_after_forms() -> None:
    now = datetime(2026, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now) == 0.0  # already past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_a_wrong_client_secret_is_a_clear_platform_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    (vcb,) = await guarded(world, bank())

    outcome = await vcb.call(lookup())

    assert (outcome.status, outcome.attempts) == ("error", 1)  # retrying would not help
    assert outcome.reason == "LGSP HN: token refused (invalid_client)"
    assert world.sim.forwarded == 0
    assert vcb.breaker_state() == "closed"


async def test_a_missing_access_token_secret_stops_start_up(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ACCESS_ENV)

    with pytest.raises(ValueError, match=rf"partner BANK-VCB: LGSP HN: no lgspaccesstoken .*{ACCESS_ENV}"):
        await guarded(world, bank())


async def test_an_access_token_secret_gone_after_start_up_fails_the_call_clearly(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    (vcb,) = await guarded(world, bank())
    monkeypatch.delenv(ACCESS_ENV)

    outcome = await vcb.call(lookup())

    assert (outcome.status, outcome.attempts) == ("error", 1)
    assert outcome.reason is not None and outcome.reason.startswith("LGSP HN: no lgspaccesstoken")
    assert world.sim.token_requests == 0


async def test_a_wrong_access_token_is_refused_by_the_platform(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    (vcb,) = await guarded(world, bank())
    monkeypatch.setenv(ACCESS_ENV, "revoked")  # read per call: a rotation needs no restart

    outcome = await vcb.call(lookup())

    assert (outcome.status, outcome.attempts, outcome.reason) == (
        "error",
        1,
        "LGSP HN: access refused (403)",
    )
    assert world.sim.refusals["access_denied"] == 1


async def test_a_missing_client_secret_stops_start_up(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV)

    with pytest.raises(ValueError, match=rf"partner BANK-VCB: LGSP HN: no client secret .*{SECRET_ENV}"):
        await guarded(world, bank())


async def test_a_token_endpoint_down_is_unavailable_and_retried(world: World) -> None:
    (vcb,) = await guarded(world, bank())
    world.sim.token_endpoint_down = True

    outcome = await vcb.call(lookup())

    assert (outcome.status, outcome.attempts) == ("unavailable", 3)
    assert outcome.reason == "LGSP HN: token endpoint unavailable (503)"
    assert world.sim.forwarded == 0


async def test_a_token_endpoint_not_listening_is_unavailable(world: World, unused_tcp_port: int) -> None:
    platform = world.platform.model_copy(update={"token_url": f"http://127.0.0.1:{unused_tcp_port}/token"})
    connectors = await build_connectors([bank()], world.session, platforms=Platforms(lgsp={"HN": platform}))
    vcb = GuardedConnector(bank(), connectors["BANK-VCB"])

    outcome = await vcb.call(lookup())

    assert outcome.status == "unavailable"
    assert outcome.reason is not None
    assert outcome.reason.startswith("LGSP HN: token endpoint unavailable (Client")


async def test_a_partner_the_platform_cannot_reach_is_a_retryable_platform_error(
    world: World, unused_tcp_port: int
) -> None:
    world.sim.routes["/nhnn/gone"] = f"http://127.0.0.1:{unused_tcp_port}"
    (gone,) = await guarded(world, bank(path="/nhnn/gone"))

    outcome = await gone.call(lookup())

    assert (outcome.status, outcome.attempts, outcome.reason) == (
        "unavailable",
        3,
        "LGSP HN: platform error (502)",
    )


async def test_the_partners_own_statuses_pass_through_unmarked(
    world: World, aiohttp_server: Callable[..., Any]
) -> None:
    answers = iter([(401, {}), (429, {"Retry-After": "9"})])

    async def partner(_: web.Request) -> web.Response:
        status, headers = next(answers)
        return web.json_response({"error": "partner"}, status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/api/v1/account-inquiries", partner)
    server = await aiohttp_server(app)
    world.sim.routes["/nhnn/own"] = str(server.make_url("")).rstrip("/")
    (own,) = await guarded(
        world, bank(path="/nhnn/own", retry={"attempts": 1, "min_seconds": 0.001, "max_seconds": 0.002})
    )

    refused = await own.call(lookup(1))
    limited = await own.call(lookup(2))

    # As from a direct call: the partner's 401 is not a platform token to refresh, its 429 not the
    # platform's rate limit.
    assert (refused.status, refused.reason) == ("error", "partner answered HTTP 401")
    assert (limited.status, limited.reason) == ("unavailable", "partner answered HTTP 429")
    assert world.sim.token_requests == 1


def reply(status: int, body: bytes, content_type: str, **headers: str) -> Reply:
    return Reply(status, CIMultiDict(headers), body, content_type)


def test_what_counts_as_the_platforms_own_answer() -> None:
    assert platform_error(reply(429, b"", "", **{"X-LGSP-Error": "rate_limited"})) == "rate_limited"
    assert platform_error(reply(403, b"", "", **{"X-LGSP-Error": "<script>"})) == "error"
    wso2 = b'{"fault":{"code":900901,"message":"Invalid Credentials","description":"..."}}'
    assert platform_error(reply(401, wso2, "application/json")) == "fault 900901"
    throttled = b'{"fault":{"code":"900800","message":"Message throttled out"}}'
    assert platform_error(reply(429, throttled, "application/json")) == "fault 900800"
    assert platform_error(reply(401, b'{"error":"unauthorized"}', "application/json")) is None
    assert platform_error(reply(429, b"", "")) is None
    assert platform_error(reply(500, wso2, "application/json")) is None


async def test_soap_goes_to_the_partners_path(world: World) -> None:
    world.sim.routes["/btnmt/land"] = world.partners.urls["LAND-REG"]
    land = Partner(
        code="LAND-REG",
        kind="land",
        protocol="soap",
        wsdl=str(ROOT / "config" / "wsdl" / "land-registry.wsdl"),
        transport="lgsp",
        lgsp={"platform": "HN", "path": "/btnmt/land"},
        timeout_seconds=2,
        retry={"attempts": 1},
    )
    (registry,) = await guarded(world, land)

    outcome = await registry.call(replace(lookup(), partner_code="LAND-REG", kind="land", source_id="land"))

    assert outcome.status == "found", outcome.reason
    assert outcome.evidence is not None and outcome.evidence["path"] == "/btnmt/land"
    assert outcome.evidence["transaction_id"] == world.sim.last_transaction_id


async def test_one_build_shares_a_token_source_per_platform(world: World) -> None:
    cache = TransportCache()
    build_transport(bank(), world.session, world.platforms, cache)
    build_transport(bank("BANK-BIDV", "/nhnn/bidv"), world.session, world.platforms, cache)

    assert list(cache.lgsp_tokens) == ["HN"]


def test_secret_files_are_read_beside_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "partners.toml").write_text(
        "[platforms.lgsp.HN]\n"
        'base_url = "https://lgsp.example"\n'
        'token_url = "https://lgsp.example/oauth2/token"\n'
        'client_id = "thads"\n'
        'client_secret_file = "secrets/lgsp-hn-client"\n'
        'access_token_file = "/run/secrets/lgsp-hn-access"\n',
        "utf-8",
    )

    platform = load_platforms(tmp_path).lgsp["HN"]

    assert platform.client_secret_file == str(tmp_path / "secrets" / "lgsp-hn-client")
    assert platform.access_token_file == "/run/secrets/lgsp-hn-access"
