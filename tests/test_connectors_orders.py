"""Delivering orders and revocations through the connectors (and GuardedConnector) to the partner
simulators on loopback: banks over REST, the land registry over SOAP; and every type the registry
delivers to a partner, with its examples."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from gateway.connectors.base import ConnectorError, LookupRequest, Subject
from gateway.connectors.land import LandConnector
from gateway.connectors.registry import build_connectors, close_all
from gateway.connectors.resilience import GuardedConnector
from gateway.domain.answers import answer_document
from gateway.domain.doctypes import RuleContext
from gateway.domain.registry import REGISTRY as DOCUMENT_TYPES
from gateway.partners import BreakerPolicy, Partner, RetryPolicy, load_partners
from gateway.schema_examples import valid_examples
from gateway.security.keys import PrivateKey, generate_keypair, private_pem, public_pem
from gateway.simulators.partners import seed
from gateway.simulators.partners.servers import Partners, start_partners
from tests.support import orders
from tests.support.orders import RICH_PARCELS

ROOT = Path(__file__).resolve().parent.parent
AUDIENCE = "thads-gateway"
FAST_RETRY = RetryPolicy(attempts=3, min_seconds=0.01, max_seconds=0.02)


@dataclass
class FakeGateway:
    """Where the asynchronous bank pushes its reports: records (Authorization, document)."""

    received: asyncio.Queue[tuple[str, dict[str, Any]]]
    url: str

    async def next(self, timeout: float = 5) -> tuple[str, dict[str, Any]]:
        return await asyncio.wait_for(self.received.get(), timeout)


@dataclass
class World:
    sims: Partners
    partners: dict[str, Partner]
    gateway: FakeGateway
    tcb_key: PrivateKey
    session: aiohttp.ClientSession
    built: list[GuardedConnector]

    async def guarded(self, code: str, **policy: Any) -> GuardedConnector:
        partner = self.partners[code].model_copy(update=policy)
        connectors = await build_connectors([partner], self.session)
        guarded = GuardedConnector(partner, connectors[code])
        self.built.append(guarded)
        return guarded

    async def counts(self, code: str) -> dict[str, int]:
        url = self.sims.urls[code].removesuffix("/soap") + "/_sim/orders"
        async with self.session.get(url) as response:
            assert response.status == 200
            data: dict[str, int] = await response.json()
            return data


@pytest.fixture
async def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_server: Callable[..., Any]
) -> AsyncIterator[World]:
    received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def documents(request: web.Request) -> web.Response:
        await received.put((request.headers.get("Authorization", ""), await request.json()))
        return web.json_response({"status": "accepted"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/documents", documents)
    server = await aiohttp_server(app)
    key = generate_keypair()
    (tmp_path / "BANK-TCB.key").write_bytes(private_pem(key))
    sims = await start_partners(
        bank_callback_key=tmp_path / "BANK-TCB.key",
        audience=AUDIENCE,
        callback_delay=0.05,
        error_rate=0.0,
        latency=(0.0, 0.0),
        slow_delay=2.0,
        gateway_url=str(server.make_url("/")),
    )
    partners = {}
    for configured in load_partners(ROOT / "config"):
        if configured.pulls:
            continue  # never called: its inbox is tested in test_pull_mode.py
        update = {"endpoint": sims.urls[configured.code], "retry": FAST_RETRY, "timeout_seconds": 2}
        partners[configured.code] = configured.model_copy(update=update)
        if configured.credentials:
            monkeypatch.setenv(configured.credentials, "test-token")
    built: list[GuardedConnector] = []
    try:
        async with aiohttp.ClientSession() as session:
            yield World(sims, partners, FakeGateway(received, str(server.make_url("/"))), key, session, built)
            await close_all({str(n): g.connector for n, g in enumerate(built)})
    finally:
        await sims.close()


def assert_valid(document: dict[str, Any]) -> None:
    assert orders.violations(document) == []


# ------------------------------------------------------------------------------------------- banks


async def test_blocking_with_a_partial_balance(world: World) -> None:
    bank = await world.guarded("BANK-VCB")
    order = orders.blocking("BANK-VCB", 900_000_000)
    assert_valid(order)

    outcome = await bank.deliver(order)

    assert (outcome.status, outcome.attempts, outcome.reason) == ("delivered", 1, None)
    receipt = outcome.receipt
    assert receipt is not None and not receipt.accepted_later
    assert receipt.reference and receipt.reference.startswith("BANK-VCB-")
    assert receipt.report is not None
    report = receipt.report
    assert (report["outcome"], report["total_blocked"]) == ("partially_executed", 862_500_000)
    assert report["accounts"] == [
        {
            "account_number": "0011004123456",
            "currency": "VND",
            "blocked_amount": 850_000_000,
            "status": "partially_blocked",
            "reason": "insufficient_funds",
        },
        {
            "account_number": "0011038765432",
            "currency": "VND",
            "blocked_amount": 12_500_000,
            "status": "partially_blocked",
            "reason": "insufficient_funds",
        },
    ]
    assert_valid(orders.report_document(order, report))


async def test_a_repeated_message_id_executes_once(world: World) -> None:
    bank = await world.guarded("BANK-BIDV")
    order = orders.blocking("BANK-BIDV", 5_000_000)

    first, again = await bank.deliver(order), await bank.deliver(order)

    assert first.receipt is not None and again.receipt is not None
    assert again.receipt == first.receipt  # the same report, reference and all
    assert await world.counts("BANK-BIDV") == {order["message_id"]: 1}
    report = first.receipt.report
    assert report is not None and report["outcome"] == "not_executed"
    assert report["accounts"] == [
        {
            "account_number": "12510000987654",
            "currency": "VND",
            "blocked_amount": 0,
            "status": "not_blocked",
            "reason": "earlier_seizure",
            "earlier_seizure_rank": 1,
        },
        {
            "account_number": "12510001234567",
            "currency": "VND",
            "blocked_amount": 0,
            "status": "not_blocked",
            "reason": "insufficient_funds",
        },
    ]
    assert_valid(orders.report_document(order, report))


async def test_concurrent_deliveries_of_one_order_execute_once(world: World) -> None:
    bank = await world.guarded("BANK-VCB")
    order = orders.blocking("BANK-VCB", 100_000_000, accounts=["0011004123456"])

    outcomes = await asyncio.gather(*(bank.deliver(order) for _ in range(5)))

    reports = [o.receipt.report for o in outcomes if o.receipt is not None]
    assert len(reports) == 5 and all(r == reports[0] for r in reports)
    assert await world.counts("BANK-VCB") == {order["message_id"]: 1}


async def test_transfer_and_release_follow_the_block(world: World) -> None:
    bank = await world.guarded("BANK-VCB")
    block = orders.blocking("BANK-VCB", 300_000_000, accounts=["0011004123456"])
    blocked = await bank.deliver(block)
    assert blocked.receipt is not None and blocked.receipt.report is not None
    assert blocked.receipt.report["outcome"] == "executed"

    moved = await bank.deliver(orders.transfer("BANK-VCB", block["message_id"], 120_000_000))
    freed = await bank.deliver(orders.release("BANK-VCB", block["message_id"]))

    assert moved.receipt is not None and moved.receipt.report is not None
    transferred = moved.receipt.report
    assert (transferred["outcome"], transferred["transferred_amount"]) == ("executed", 120_000_000)
    assert transferred["transfers"] == [{"account_number": "0011004123456", "amount": 120_000_000}]
    assert transferred["to_account"] == orders.AGENCY_ACCOUNT
    assert freed.receipt is not None and freed.receipt.report is not None
    released = freed.receipt.report
    assert (released["outcome"], released["scope"], released["total_released"]) == (
        "executed",
        "full",
        180_000_000,
    )


async def test_the_asynchronous_bank_accepts_then_pushes_its_report(world: World) -> None:
    bank = await world.guarded("BANK-TCB")
    order = orders.blocking("BANK-TCB", 200_000_000)

    outcome = await bank.deliver(order)

    assert outcome.status == "delivered"
    receipt = outcome.receipt
    assert receipt is not None and receipt.accepted_later and receipt.report is None
    assert receipt.reference and receipt.reference.startswith("BANK-TCB-")

    authorization, pushed = await world.gateway.next()
    scheme, token = authorization.split(" ", 1)
    claims = jwt.decode(
        token,
        public_pem(world.tcb_key.public_key()),
        ["EdDSA"],
        audience=AUDIENCE,
        issuer="BANK-TCB",
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert (scheme, claims["sub"]) == ("Bearer", "BANK-TCB")
    assert_valid(pushed)
    assert (pushed["in_reply_to"], pushed["sender"], pushed["recipient"]) == (
        order["message_id"],
        "BANK-TCB",
        orders.OFFICE,
    )
    body = pushed["body"]
    assert (body["outcome"], body["total_blocked"]) == ("partially_executed", 150_000_000)
    assert [a["status"] for a in body["accounts"]] == ["partially_blocked", "not_blocked"]
    assert body["accounts"][1]["reason"] == "closed"

    # Sent again (say the gateway lost track): the same report comes again, a duplicate by message_id.
    again = await bank.deliver(order)
    assert again.receipt == receipt
    _, repushed = await world.gateway.next()
    assert repushed == pushed
    assert await world.counts("BANK-TCB") == {order["message_id"]: 1}


async def test_a_silent_bank_accepts_and_never_answers(world: World) -> None:
    admin = world.sims.urls["BANK-CTG"] + "/_sim/orders/silent"
    async with world.session.post(admin, json={"silent": True}) as response:
        assert (response.status, await response.json()) == (200, {"silent": True})
    bank = await world.guarded("BANK-CTG")

    outcome = await bank.deliver(orders.blocking("BANK-CTG", 1_000_000))

    assert outcome.status == "delivered"
    assert outcome.receipt is not None and outcome.receipt.accepted_later
    with pytest.raises(TimeoutError):
        await world.gateway.next(timeout=0.5)
    assert await world.counts("BANK-CTG") == {}


async def test_a_silent_bank_from_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_BANK_AGR", "test-token")
    sims = await start_partners(error_rate=0.0, latency=(0.0, 0.0), silent_banks=["BANK-AGR"])
    try:
        configured = next(p for p in load_partners(ROOT / "config") if p.code == "BANK-AGR")
        partner = configured.model_copy(update={"endpoint": sims.urls["BANK-AGR"]})
        async with aiohttp.ClientSession() as session:
            connectors = await build_connectors([partner], session)
            receipt = await connectors["BANK-AGR"].deliver(orders.blocking("BANK-AGR", 1_000_000))
            assert receipt.accepted_later and receipt.report is None
    finally:
        await sims.close()


async def test_a_revocation_is_acknowledged_without_a_report(world: World) -> None:
    bank = await world.guarded("BANK-VCB")
    order = orders.blocking("BANK-VCB", 1_000_000)
    await bank.deliver(order)
    revocation = orders.revocation("BANK-VCB", order["message_id"])
    assert_valid(revocation)

    outcome = await bank.deliver(revocation)

    assert outcome.status == "delivered"
    assert outcome.receipt is not None and outcome.receipt.report is None
    assert not outcome.receipt.accepted_later and outcome.receipt.reference


async def test_503s_are_retried_then_unavailable(world: World) -> None:
    async with world.session.post(
        world.sims.base_urls["bank"] + "/_sim/mode", json={"mode": "normal", "error_rate": 1.0}
    ) as response:
        assert response.status == 200
    bank = await world.guarded("BANK-VCB")
    order = orders.blocking("BANK-VCB", 1_000_000)

    outcome = await bank.deliver(order)

    assert (outcome.status, outcome.attempts, outcome.receipt) == ("unavailable", 3, None)
    assert outcome.reason == "partner answered HTTP 503"
    assert await world.counts("BANK-VCB") == {}  # the switch endpoints are never failed


async def test_a_transient_failure_then_success_executes_once(world: World) -> None:
    await world.sims.set_mode("bank", "failing")  # a 503 (retried), then a malformed 200 (not retried)
    bank = await world.guarded("BANK-VCB")

    outcome = await bank.deliver(orders.blocking("BANK-VCB", 1_000_000))

    assert (outcome.status, outcome.attempts) == ("error", 2)
    assert outcome.reason == "answer is not JSON"


async def test_a_slow_bank_times_out(world: World) -> None:
    await world.sims.set_mode("bank", "slow")
    bank = await world.guarded("BANK-VCB", timeout_seconds=0.2, retry=RetryPolicy(attempts=2))

    outcome = await bank.deliver(orders.blocking("BANK-VCB", 1_000_000))

    assert (outcome.status, outcome.attempts, outcome.reason) == ("timeout", 2, "no answer within 0.2 s")


async def test_a_refused_order_is_not_retried_and_quotes_nothing(world: World) -> None:
    bank = await world.guarded("BANK-VCB")
    misrouted = orders.blocking("BANK-BIDV", 1_000_000)  # addressed to another bank

    outcome = await bank.deliver(misrouted)

    assert (outcome.status, outcome.attempts) == ("error", 1)
    assert outcome.reason == "partner answered HTTP 400"


async def test_a_changed_document_under_a_used_message_id_is_refused(world: World) -> None:
    bank = await world.guarded("BANK-VCB")
    order = orders.blocking("BANK-VCB", 1_000_000)
    await bank.deliver(order)

    outcome = await bank.deliver(order | {"body": order["body"] | {"amount": 2_000_000}})

    assert (outcome.status, outcome.reason) == ("error", "partner answered HTTP 409")
    assert await world.counts("BANK-VCB") == {order["message_id"]: 1}


async def test_the_breaker_opens_on_a_down_bank_for_lookups_too(world: World) -> None:
    await world.sims.set_mode("bank", "down")
    bank = await world.guarded(
        "BANK-VCB",
        retry=RetryPolicy(attempts=1, min_seconds=0.01, max_seconds=0.02),
        breaker=BreakerPolicy(failures=2, recovery_seconds=30),
    )
    order = orders.blocking("BANK-VCB", 1_000_000)

    failed = [await bank.deliver(order) for _ in range(2)]
    refused = await bank.deliver(order)

    assert [(o.status, o.attempts) for o in failed] == [("unavailable", 1)] * 2
    assert failed[0].reason is not None and failed[0].reason.startswith("connection failed")
    assert (refused.status, refused.attempts, refused.reason) == (
        "unavailable",
        0,
        "circuit open for BANK-VCB",
    )
    assert bank.breaker_state() == "open"
    lookup = LookupRequest(
        request_ref="req-1",
        inquiry_id="inq-1",
        source_id="bank:BANK-VCB",
        partner_code="BANK-VCB",
        kind="bank",
        subject=Subject(id_number=seed.RICH),
        case_ref="THA-HN-2026-000456",
        purpose="civil_judgment_enforcement",
    )
    assert (await bank.call(lookup)).attempts == 0  # one breaker per partner


async def test_partners_without_orders_refuse_documents(world: World) -> None:
    tax = await world.guarded("TAX")
    order = orders.blocking("TAX", 1_000_000)

    with pytest.raises(ConnectorError) as caught:
        await tax.connector.deliver(order)
    outcome = await tax.deliver(order)

    assert not caught.value.retryable
    assert caught.value.reason == "tax partner TAX does not take documents"
    assert (outcome.status, outcome.attempts) == ("error", 1)


async def test_a_document_without_message_id_is_refused_before_any_call(world: World) -> None:
    bank = await world.guarded("BANK-VCB")
    order = orders.blocking("BANK-VCB", 1_000_000)
    del order["message_id"]

    outcome = await bank.deliver(order)

    assert (outcome.status, outcome.reason) == ("error", "document without a message_id")


async def test_deliveries_are_counted(world: World) -> None:
    bank = await world.guarded("BANK-CTG")

    def sample(outcome: str) -> float:
        labels = {"partner": "BANK-CTG", "outcome": outcome}
        return REGISTRY.get_sample_value("gateway_partner_deliveries_total", labels) or 0.0

    before = sample("delivered"), sample("error")
    await bank.deliver(orders.blocking("BANK-CTG", 1_000_000))
    await bank.deliver(orders.blocking("BANK-VCB", 1_000_000))  # misrouted: refused

    assert (sample("delivered"), sample("error")) == (before[0] + 1, before[1] + 1)
    seconds = REGISTRY.get_sample_value("gateway_partner_delivery_seconds_count", {"partner": "BANK-CTG"})
    assert seconds is not None and seconds >= 2


@dataclass
class Recorder:
    seen: list[tuple[dict[str, str], Any]]
    status: int = 200
    body: Any = None


async def test_the_bank_request_carries_the_contract(
    aiohttp_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder([], body={"executed_at": "2026-03-09T10:21:00+07:00", "outcome": "executed"})

    async def handle(request: web.Request) -> web.Response:
        recorder.seen.append((dict(request.headers), await request.json()))
        return web.json_response(recorder.body, status=recorder.status, headers={"X-Reference": "R-1"})

    app = web.Application()
    app.router.add_post("/bank/api/v1/orders", handle)
    server = await aiohttp_server(app)
    monkeypatch.setenv("TEST_BANK_TOKEN", "bank-secret")
    partner = Partner(
        code="BANK-VCB",
        kind="bank",
        protocol="rest",
        endpoint=str(server.make_url("/bank")),
        credentials="TEST_BANK_TOKEN",
    )
    order = orders.blocking("BANK-VCB", 1_000_000)
    async with aiohttp.ClientSession() as session:
        connectors = await build_connectors([partner], session)

        receipt = await connectors["BANK-VCB"].deliver(order)

        assert (receipt.report, receipt.reference) == (recorder.body, "R-1")
        headers, body = recorder.seen[0]
        assert body == order
        assert headers["Authorization"] == "Bearer bank-secret"
        assert headers["Idempotency-Key"] == order["message_id"]
        assert headers["X-Request-Ref"] == order["message_id"]

        recorder.status, recorder.body = 202, {"status": "queued"}
        with pytest.raises(ConnectorError) as caught:
            await connectors["BANK-VCB"].deliver(order)
        assert not caught.value.retryable

        recorder.status, recorder.body = 422, {"error": "x", "message": seed.RICH}
        with pytest.raises(ConnectorError) as caught:
            await connectors["BANK-VCB"].deliver(order)
        assert (caught.value.retryable, caught.value.reason) == (False, "partner answered HTTP 422")


# -------------------------------------------------------------------------------------- land registry


async def test_suspension_maps_to_the_canonical_report(world: World) -> None:
    land = await world.guarded("LAND-REG")
    order = orders.suspension([*RICH_PARCELS, orders.NO_PARCEL])
    assert_valid(order)

    outcome = await land.deliver(order)

    assert (outcome.status, outcome.attempts) == ("delivered", 1)
    receipt = outcome.receipt
    assert receipt is not None and receipt.report is not None and not receipt.accepted_later
    assert receipt.reference and receipt.reference.startswith("LAND-REG-")
    report = receipt.report
    assert report["outcome"] == "partially_executed"
    assert [
        (p["map_sheet"], p["parcel_number"], p["status"], p.get("reason")) for p in report["parcels"]
    ] == [
        ("12", "345", "suspended", None),
        ("8", "72", "suspended", None),
        ("99", "9999", "not_suspended", "not_found"),
    ]
    assert all(p["registration_ref"] for p in report["parcels"][:2])
    assert "registration_ref" not in report["parcels"][2]
    assert report["executed_at"].endswith("+07:00")
    assert_valid(orders.report_document(order, report))

    again = await land.deliver(order)
    assert again.receipt == receipt
    assert await world.counts("LAND-REG") == {order["message_id"]: 1}


async def test_another_order_finds_the_parcels_already_suspended(world: World) -> None:
    land = await world.guarded("LAND-REG")
    first = orders.suspension(RICH_PARCELS[:1])
    await land.deliver(first)

    second = await land.deliver(orders.suspension(RICH_PARCELS))
    # Someone else's parcel: known to the registry, not the debtor's.
    elsewhere = orders.suspension(RICH_PARCELS[:1])
    elsewhere["body"]["debtor"] = orders.EMPTY
    third = await land.deliver(elsewhere)

    assert second.receipt is not None and second.receipt.report is not None
    assert [(p["status"], p.get("reason")) for p in second.receipt.report["parcels"]] == [
        ("not_suspended", "already_suspended"),
        ("suspended", None),
    ]
    assert third.receipt is not None and third.receipt.report is not None
    assert third.receipt.report["outcome"] == "not_executed"
    assert third.receipt.report["parcels"][0]["reason"] == "not_owned_by_debtor"
    assert_valid(orders.report_document(elsewhere, third.receipt.report))


async def test_lifting_maps_to_the_canonical_report(world: World) -> None:
    land = await world.guarded("LAND-REG")
    suspension = orders.suspension(RICH_PARCELS)
    await land.deliver(suspension)
    lifting = orders.lifting(suspension["message_id"])
    assert_valid(lifting)

    outcome = await land.deliver(lifting)

    assert outcome.receipt is not None and outcome.receipt.report is not None
    report = outcome.receipt.report
    assert report["outcome"] == "executed"
    assert report["parcels"] == [
        {"map_sheet": "12", "parcel_number": "345", "status": "lifted"},
        {"map_sheet": "8", "parcel_number": "72", "status": "lifted"},
    ]
    assert_valid(orders.report_document(lifting, report))

    # Lifted once: lifting them under a new order finds nothing suspended.
    again = await land.deliver(orders.lifting(suspension["message_id"], RICH_PARCELS[:1]))
    assert again.receipt is not None and again.receipt.report is not None
    assert again.receipt.report["outcome"] == "not_executed"
    assert again.receipt.report["parcels"][0]["reason"] == "not_suspended"


async def test_land_revocation_is_acknowledged(world: World) -> None:
    land = await world.guarded("LAND-REG")
    suspension = orders.suspension(RICH_PARCELS)
    await land.deliver(suspension)

    outcome = await land.deliver(orders.revocation("LAND-REG", suspension["message_id"]))

    assert outcome.status == "delivered"
    assert outcome.receipt is not None and outcome.receipt.report is None and outcome.receipt.reference


async def test_land_refuses_bank_orders_and_faults_are_classified(world: World) -> None:
    land = await world.guarded("LAND-REG")
    with pytest.raises(ConnectorError) as caught:
        await land.connector.deliver(orders.blocking("LAND-REG", 1_000_000))
    assert not caught.value.retryable and "order.account_blocking" in caught.value.reason

    # A lifting of a suspension the registry never made, naming no parcel: a soap:Client fault.
    outcome = await land.deliver(orders.lifting("8b7c2d4e-1f3a-4b5c-9d6e-7f8a9b0c1d2e"))
    assert (outcome.status, outcome.attempts, outcome.reason) == ("error", 1, "SOAP fault Client")

    async with world.session.post(
        world.sims.base_urls["land"] + "/_sim/mode", json={"mode": "normal", "error_rate": 1.0}
    ) as response:
        assert response.status == 200
    outcome = await land.deliver(orders.suspension(RICH_PARCELS))
    assert (outcome.status, outcome.attempts, outcome.reason) == ("unavailable", 3, "SOAP fault Server")


async def test_an_incomplete_land_order_is_not_sent(world: World) -> None:
    connector = await LandConnector.create(world.partners["LAND-REG"], world.session)
    order = orders.suspension(RICH_PARCELS)
    del order["officer_id"]
    try:
        with pytest.raises(ConnectorError) as caught:
            await connector.deliver(order)
    finally:
        await connector.close()

    assert not caught.value.retryable
    assert caught.value.reason.startswith("request or answer does not fit the WSDL")
    assert await world.counts("LAND-REG") == {}


# ----------------------------------------------------- every type a partner receives, as the registry says


def _partner_types() -> list[str]:
    return sorted(t for t, d in DOCUMENT_TYPES.items() if d.recipients == "partner")


@pytest.mark.parametrize("message_type", _partner_types())
async def test_every_type_a_partner_receives_is_taken_by_its_simulator_and_answered_validly(
    world: World, message_type: str
) -> None:
    """Derived from the registry: a new type delivered to a partner is checked here with its examples."""
    doc_type = DOCUMENT_TYPES[message_type]
    codes = [c for c, p in world.partners.items() if p.kind in doc_type.partner_kinds and c != "BANK-TCB"]
    examples = valid_examples(message_type)
    assert codes and examples
    delivered = 0
    for name, example_doc in examples:
        document = example_doc | {
            "message_id": str(uuid.uuid4()),
            "recipient": codes[0],
        }
        outcome = await (await world.guarded(codes[0])).deliver(document)
        if outcome.status != "delivered":
            continue  # e.g. a lifting naming a suspension this registry never made
        delivered += 1
        report = outcome.receipt.report if outcome.receipt else None
        if report is None or doc_type.answer_type is None:
            continue
        created = report.get("executed_at") or datetime.now(UTC).isoformat(timespec="seconds")
        answer = answer_document(document, doc_type.answer_type, report, created)
        assert orders.violations(answer) == [], name
        assert DOCUMENT_TYPES[doc_type.answer_type].violations(answer, RuleContext()) == [], name
    assert delivered, f"no valid example of {message_type} was taken by {codes[0]}"
