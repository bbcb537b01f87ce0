"""Orders end to end: the case system sends an order through POST /v1/documents, the worker hands it to
the bank (REST) or the land registry (SOAP) through its connector, the partner's report comes back as a
reply, reaches the case system once, and the case system's confirmation closes the exchange."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import orders
from tests.support.lookup_world import LookupWorld, running_gateway
from tests.support.order_flow import Client, fresh, received, sim_counts, view, wait_for

pytestmark = pytest.mark.rabbitmq


async def send(api: Client, lw: LookupWorld, document: dict[str, Any], expect: int = 202) -> dict[str, Any]:
    resp = await api.post("/v1/documents", json=document, headers=lw.world.case_headers())
    body: dict[str, Any] = await resp.json()
    assert resp.status == expect, body
    return body


async def last_request(lw: LookupWorld, code: str) -> dict[str, Any]:
    """What the partner was told last (personal IDs masked by the simulator)."""
    url = f"{lw.partners.urls[code]}/_sim/last-request"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        told: dict[str, Any] = await resp.json()
        return told


@pytest.fixture(params=["direct", "platforms"])
async def gateway(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[LookupWorld, Client]]:
    """Once with the banks and the land registry called directly, once through the simulated platforms
    (banks through an LGSP, the land registry through X-Road): the same assertions hold."""
    async with running_gateway(
        tmp_path, silent_banks=frozenset({"BANK-AGR"}), slow_delay=1.0, transport=request.param
    ) as (lw, api):
        yield lw, api


async def confirm(api: Client, lw: LookupWorld, message_id: str) -> dict[str, Any]:
    resp = await api.post(
        f"/v1/messages/{message_id}/confirmation",
        json={"note": "report filed"},
        headers=lw.world.case_headers(),
    )
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def confirm_all(
    api: Client, lw: LookupWorld, reports: list[dict[str, Any]], sent: list[dict[str, Any]]
) -> None:
    """The case system confirms each report it received; each order is then confirmed, with every step
    an evidence in its timeline."""
    for report in reports:
        await wait_for(api, lw, report["message_id"], "delivered")
        await confirm(api, lw, report["message_id"])
    for order in sent:
        done = await wait_for(api, lw, order["message_id"], "confirmed")
        assert {"accepted", "queued", "delivered", "answered", "confirmed"} <= set(events(done))
        assert len(done["replies"]) == 1


def events(status_view: dict[str, Any]) -> list[str]:
    return [e["event"] for e in status_view["timeline"]]


async def test_blocking_order_is_executed_reported_once_and_confirmed(
    gateway: tuple[LookupWorld, Client],
) -> None:
    lw, api = gateway
    order = fresh(orders.blocking("BANK-VCB", 500_000_000))
    await send(api, lw, order)

    answered = await wait_for(api, lw, order["message_id"], "answered")
    [reply] = answered["replies"]
    assert reply["message_type"] == "report.account_blocking" and reply["sender"] == "BANK-VCB"
    # The bank's at-once answer is stored in one transaction with the delivery it answers: never seen
    # without it, and after it.
    timeline = events(answered)
    assert timeline.index("delivered") < timeline.index("answered"), timeline
    delivery = next(e for e in answered["timeline"] if e["event"] == "delivered")
    assert delivery["detail"]["answer"] == "at_once"
    if lw.platforms.any:  # handed over through the LGSP: its transaction is the evidence
        assert delivery["detail"]["platform"]["platform"] == "lgsp"
        assert delivery["detail"]["platform"]["transaction_id"]
    else:
        assert "platform" not in delivery["detail"]

    [report] = await received(lw.world.case_queue, expect=1)
    assert report["message_id"] == reply["message_id"]
    assert reply["href"] == f"/v1/messages/{reply['message_id']}"
    assert report["in_reply_to"] == order["message_id"] and report["case_ref"] == order["case_ref"]
    assert report["body"]["total_blocked"] == 500_000_000

    told = await last_request(lw, "BANK-VCB")
    assert {"case_ref", "officer_id", "legal_basis", "purpose", "due_at"} <= set(told)
    assert {"decision", "title", "debtor"} <= set(told["body"])
    # The gateway's deadline, in the partner's local time.
    assert datetime.fromisoformat(told["due_at"]) == datetime.fromisoformat(answered["due_at"]).replace(
        microsecond=0
    )
    assert told["due_at"].endswith("+07:00")

    await wait_for(api, lw, reply["message_id"], "delivered")
    await confirm(api, lw, reply["message_id"])
    done = await wait_for(api, lw, order["message_id"], "confirmed")
    assert {"accepted", "queued", "delivered", "answered", "confirmed"} <= set(events(done))
    assert (await sim_counts(lw, "BANK-VCB")) == {order["message_id"]: 1}


async def test_async_bank_pushes_its_report_later_through_the_documents_endpoint(
    gateway: tuple[LookupWorld, Client],
) -> None:
    lw, api = gateway
    order = fresh(orders.blocking("BANK-TCB", 10_000_000))
    await send(api, lw, order)
    delivered = await wait_for(api, lw, order["message_id"], "delivered", "answered")
    answered = await wait_for(api, lw, order["message_id"], "answered")
    assert answered["replies"][0]["sender"] == "BANK-TCB"
    delivery = next(e for e in delivered["timeline"] if e["event"] == "delivered")
    assert delivery["detail"]["answer"] == "later"
    [report] = await received(lw.world.case_queue, expect=1)
    assert report["in_reply_to"] == order["message_id"]


async def test_an_unusable_at_once_report_leaves_the_delivery_recorded_and_the_violations_kept(
    gateway: tuple[LookupWorld, Client],
) -> None:
    """The bank executed the order but its report breaks the schema: nothing the bank said is dropped —
    the order is delivered (once), the rejection and its violations are in the timeline, no report reaches
    the case system, and the order waits for its deadline."""
    lw, api = gateway
    switch = f"{lw.partners.urls['BANK-CTG']}/_sim/orders/garbled"
    async with aiohttp.ClientSession() as http, http.post(switch, json={"garbled": True}) as resp:
        assert resp.status == 200
    order = fresh(orders.blocking("BANK-CTG", 1_000_000))
    await send(api, lw, order)

    delivered = await wait_for(api, lw, order["message_id"], "delivered", event="answer_rejected")
    assert delivered["replies"] == []
    [rejected] = [e for e in delivered["timeline"] if e["event"] == "answer_rejected"]
    assert rejected["detail"]["answer_type"] == "report.account_blocking"
    assert any("outcome" in error for error in rejected["detail"]["errors"]), rejected
    assert [e["event"] for e in delivered["timeline"]].count("delivered") == 1
    assert (await sim_counts(lw, "BANK-CTG")) == {order["message_id"]: 1}
    assert await received(lw.world.case_queue, expect=0) == []


async def test_transfer_and_release_follow_the_blocking_order(gateway: tuple[LookupWorld, Client]) -> None:
    lw, api = gateway
    block = fresh(orders.blocking("BANK-BIDV", 100_000_000))
    await send(api, lw, block)
    await wait_for(api, lw, block["message_id"], "answered")

    transfer = fresh(orders.transfer("BANK-BIDV", block["message_id"], 40_000_000))
    await send(api, lw, transfer)
    done = await wait_for(api, lw, transfer["message_id"], "answered")
    assert done["replies"][0]["message_type"] == "report.funds_transfer"

    release = fresh(orders.release("BANK-BIDV", block["message_id"], "full"))
    await send(api, lw, release)
    released = await wait_for(api, lw, release["message_id"], "answered")
    assert released["replies"][0]["message_type"] == "report.account_release"
    reports = await received(lw.world.case_queue, expect=3)
    assert sorted(r["message_type"] for r in reports) == [
        "report.account_blocking",
        "report.account_release",
        "report.funds_transfer",
    ]
    await confirm_all(api, lw, reports, [block, transfer, release])


async def test_a_transfer_must_follow_a_blocking_order_of_the_same_bank(
    gateway: tuple[LookupWorld, Client],
) -> None:
    lw, api = gateway
    block = fresh(orders.blocking("BANK-CTG", 1_000_000))
    await send(api, lw, block)
    problem = await send(api, lw, fresh(orders.transfer("BANK-VCB", block["message_id"], 1_000)), expect=422)
    assert [e["path"] for e in problem["errors"]] == ["$.body.blocking_order"]
    unknown = await send(api, lw, fresh(orders.transfer("BANK-VCB", str(uuid.uuid4()), 1_000)), expect=422)
    assert [e["path"] for e in unknown["errors"]] == ["$.body.blocking_order"]


async def test_land_suspension_and_lifting_go_over_soap(gateway: tuple[LookupWorld, Client]) -> None:
    lw, api = gateway
    suspension = fresh(orders.suspension(orders.RICH_PARCELS))
    await send(api, lw, suspension)
    answered = await wait_for(api, lw, suspension["message_id"], "answered")
    assert answered["replies"][0]["message_type"] == "report.land_transfer_suspension"
    if lw.platforms.any:  # through X-Road: the security server's hash of the SOAP request sent
        delivery = next(e for e in answered["timeline"] if e["event"] == "delivered")
        proof = delivery["detail"]["platform"]
        assert proof["platform"] == "xroad" and proof["verified"] is True and proof["request_hash"]

    lifting = fresh(orders.lifting(suspension["message_id"]))
    await send(api, lw, lifting)
    lifted = await wait_for(api, lw, lifting["message_id"], "answered")
    assert lifted["replies"][0]["message_type"] == "report.land_suspension_lifting"
    reports = await received(lw.world.case_queue, expect=2)
    assert {r["body"]["outcome"] for r in reports} == {"executed"}
    await confirm_all(api, lw, reports, [suspension, lifting])


async def test_an_order_to_an_unknown_or_wrong_partner_is_refused(
    gateway: tuple[LookupWorld, Client],
) -> None:
    lw, api = gateway
    to_land = fresh(orders.blocking("LAND-REG", 1_000))
    problem = await send(api, lw, to_land, expect=422)
    assert [e["path"] for e in problem["errors"]] == ["$.recipient"]


async def test_an_order_revoked_before_delivery_never_reaches_the_bank(
    gateway: tuple[LookupWorld, Client],
) -> None:
    lw, api = gateway
    await lw.partners.set_mode("bank", "down")
    order = fresh(orders.blocking("BANK-CTG", 1_000_000))
    await send(api, lw, order)
    # Two failed attempts: the order now waits in the 5 s retry tier, not in a hand-over.
    deadline = asyncio.get_running_loop().time() + 20
    while events(current := await view(api, lw, order["message_id"])).count("delivery_failed") < 2:
        assert asyncio.get_running_loop().time() < deadline, current["timeline"]
        await asyncio.sleep(0.05)
    await revoke(api, lw, order["message_id"], "Quyết định bị hủy")
    await lw.partners.set_mode("bank", "normal")
    deadline = asyncio.get_running_loop().time() + 20
    while "not_delivered_revoked" not in events(await view(api, lw, order["message_id"])):
        assert asyncio.get_running_loop().time() < deadline, "the retry never came back"
        await asyncio.sleep(0.2)
    assert (await view(api, lw, order["message_id"]))["status"] == "revoked"
    assert order["message_id"] not in await sim_counts(lw, "BANK-CTG")


async def revoke(api: Client, lw: LookupWorld, message_id: str, reason: str) -> dict[str, Any]:
    resp = await api.post(
        f"/v1/messages/{message_id}/revocation", json={"reason": reason}, headers=lw.world.case_headers()
    )
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "revoked"
    return body


async def wait_event(api: Client, lw: LookupWorld, message_id: str, event: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        current = await view(api, lw, message_id)
        if event in events(current):
            return current
        assert asyncio.get_running_loop().time() < deadline, f"no {event}: {events(current)}"
        await asyncio.sleep(0.1)


async def test_an_order_revoked_after_delivery_gets_a_revocation(gateway: tuple[LookupWorld, Client]) -> None:
    lw, api = gateway
    order = fresh(orders.blocking("BANK-AGR", 1_000_000))  # a bank that never answers
    await send(api, lw, order)
    await wait_for(api, lw, order["message_id"], "delivered")
    await revoke(api, lw, order["message_id"], "Đương sự đã tự nguyện thi hành")
    revoked = await wait_event(api, lw, order["message_id"], "revocation_delivered")
    assert revoked["status"] == "revoked"
    # A silent bank executes nothing; it took the revocation once.
    revocation = next(e for e in revoked["timeline"] if e["event"] == "revocation_delivered")["detail"]["by"]
    assert await sim_counts(lw, "BANK-AGR") == {revocation: 1}


async def test_an_order_revoked_while_it_is_handed_over_still_gets_its_revocation(
    gateway: tuple[LookupWorld, Client],
) -> None:
    """The revocation lands between the check and the hand-over: the bank has the order, so the
    worker sends the revocation when it records the delivery."""
    lw, api = gateway
    await lw.partners.set_mode("bank", "slow")  # the hand-over takes ~1 s
    order = fresh(orders.blocking("BANK-VCB", 1_000_000))
    await send(api, lw, order)
    await wait_for(api, lw, order["message_id"], "queued")
    await asyncio.sleep(0.3)  # inside the slow hand-over
    await revoke(api, lw, order["message_id"], "Quyết định bị hủy")
    await lw.partners.set_mode("bank", "normal")
    revoked = await wait_event(api, lw, order["message_id"], "revocation_delivered")
    assert revoked["status"] == "revoked"


async def test_a_replacement_is_a_new_document_and_the_replaced_one_shows_it(
    gateway: tuple[LookupWorld, Client],
) -> None:
    lw, api = gateway
    first = fresh(orders.blocking("BANK-CTG", 1_000_000))
    await send(api, lw, first)
    # The same decision, corrected: not a resend of the first (that would be a duplicate).
    second = orders.blocking("BANK-CTG", 2_000_000)
    second["replaces"] = first["message_id"]
    second["body"]["decision"] = first["body"]["decision"]
    receipt = await send(api, lw, second)
    assert receipt["message_id"] == second["message_id"]
    replaced = await view(api, lw, first["message_id"])
    [evidence] = [e for e in replaced["timeline"] if e["event"] == "replaced"]
    assert evidence["detail"] == {"replaced_by": second["message_id"]}
    assert (await view(api, lw, second["message_id"]))["replaces"] == first["message_id"]
