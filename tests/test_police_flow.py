"""The police flows end to end, through the real api and worker processes, the real broker and the police
unit's simulator on loopback: a protection request answered at once (agreed, or refused with a reason),
answered late by a push of the police, or never answered; a call for urgent assistance acknowledged;
a request with less than 10 days' notice refused with a 422 unless urgent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.amqp.names import Names
from tests.support import police
from tests.support.gateway_procs import GatewayProcesses
from tests.support.order_flow import received
from tests.support.police import PoliceWorld, police_world

pytestmark = pytest.mark.rabbitmq


class Gateway:
    def __init__(self, pw: PoliceWorld, procs: GatewayProcesses) -> None:
        self.pw, self.procs = pw, procs
        self.world = pw.world

    async def send(self, document: dict[str, Any], expect: int = 202) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                self.procs.url + "/v1/documents", json=document, headers=self.world.case_headers()
            ) as resp,
        ):
            body: dict[str, Any] = await resp.json(content_type=None)
            assert resp.status == expect, body
            return body

    async def view(self, message_id: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.procs.url}/v1/messages/{message_id}", headers=self.world.case_headers()) as resp,
        ):
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body

    async def wait_for(
        self, message_id: str, *statuses: str, timeout: float = 30, event: str | None = None
    ) -> dict[str, Any]:
        """Until the message is in one of ``statuses`` (and its timeline has ``event``: an answer at once is
        stored before the delivery that brought it is recorded, in the transaction after)."""

        async def reached() -> dict[str, Any] | None:
            current = await self.view(message_id)
            seen = {e["event"] for e in current["timeline"]}
            return current if current["status"] in statuses and (event is None or event in seen) else None

        result: dict[str, Any] = await police.wait_until(reached, timeout, f"{message_id} {statuses}")
        return result

    async def confirm(self, message_id: str) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.procs.url}/v1/messages/{message_id}/confirmation",
                json={"note": "phương án phối hợp đã lưu hồ sơ"},
                headers=self.world.case_headers(),
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()


@pytest.fixture
async def gateway(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    mode = getattr(request, "param", "at_once")
    async with police_world(tmp_path, mode=mode) as pw:
        procs = GatewayProcesses(pw.world, tmp_path / "logs", port=pw.api_port)
        procs.start("api")
        procs.start("worker")
        try:
            await procs.wait_api()
            names = Names(pw.settings.broker_namespace)
            await police.wait_for_queues(pw.world.case_queue, names.deliver_urgent(police.CODE))
            yield Gateway(pw, procs)
        finally:
            procs.stop_all()


def events(view: dict[str, Any]) -> list[str]:
    return [e["event"] for e in view["timeline"]]


async def test_protection_requests_answered_at_once_agreed_or_refused_and_confirmed(gateway: Gateway) -> None:
    agreed = police.protection_request(officers=15)
    refused = police.protection_request(officers=80)  # more than the unit can commit
    for document in (agreed, refused):
        await gateway.send(document)
    queued = await received(gateway.world.case_queue, 2)
    answers = {a["in_reply_to"]: a for a in queued if a.get("in_reply_to")}
    assert {a["message_type"] for a in answers.values()} == {"police.protection_answer"}
    yes, no = answers[agreed["message_id"]], answers[refused["message_id"]]
    assert yes["sender"] == "CA-HN" and yes["recipient"] == "THADS-HN"
    assert yes["body"]["decision"] == "agreed"
    assert yes["body"]["forces"]["officers"] == 15
    assert {"name", "phone"} <= set(yes["body"]["commander"]) and yes["body"]["contact"]["phone"]
    assert no["body"]["decision"] == "refused" and no["body"]["reason"]

    for document, answer in ((agreed, yes), (refused, no)):
        await gateway.wait_for(answer["message_id"], "delivered")
        await gateway.confirm(answer["message_id"])
        done = await gateway.wait_for(document["message_id"], "confirmed")
        assert {"accepted", "queued", "delivered", "answered", "confirmed"} <= set(events(done))
        assert [r["message_id"] for r in done["replies"]] == [answer["message_id"]]
        assert done["due_at"]  # the 3-working-day answer deadline


@pytest.mark.parametrize("gateway", ["late"], indirect=True)
async def test_a_late_answer_is_pushed_by_the_police_and_closes_the_request(gateway: Gateway) -> None:
    request = police.protection_request()
    await gateway.send(request)
    delivered = await gateway.wait_for(request["message_id"], "delivered", "answered")
    delivery = next(e for e in delivered["timeline"] if e["event"] == "delivered")
    assert delivery["detail"]["answer"] == "later"
    (answer,) = [d for d in await received(gateway.world.case_queue, 1) if d.get("in_reply_to")]
    assert answer["in_reply_to"] == request["message_id"]
    assert answer["body"]["decision"] == "agreed"
    answered = await gateway.wait_for(request["message_id"], "answered")
    assert "answered" in events(answered)
    reply = await gateway.view(answer["message_id"])
    accepted = next(e for e in reply["timeline"] if e["event"] == "accepted")
    assert accepted["actor"] == "CA-HN"  # pushed by the police themselves, as a client


@pytest.mark.parametrize("gateway", ["never"], indirect=True)
async def test_a_request_the_police_never_answer_stays_delivered_awaiting_its_deadline(
    gateway: Gateway,
) -> None:
    request = police.protection_request()
    await gateway.send(request)
    view = await gateway.wait_for(request["message_id"], "delivered")
    assert view["replies"] == [] and view["due_at"]
    seen = await gateway.pw.received()
    assert [r["message_id"] for r in seen] == [request["message_id"]]


async def test_urgent_assistance_is_acknowledged_and_the_ack_reaches_the_case_system(
    gateway: Gateway,
) -> None:
    call = police.urgent_assistance()
    receipt = await gateway.send(call)
    # The case queue may also hold the deadline watcher's reminder (a 15-minute deadline is within the
    # reminder lead from the start): the acknowledgement is the reply to the call.
    (ack,) = [d for d in await received(gateway.world.case_queue, 1) if d.get("in_reply_to")]
    assert ack["message_type"] == "police.assistance_ack"
    assert ack["in_reply_to"] == call["message_id"] and ack["priority"] == "urgent"
    assert ack["body"]["dispatched"] is True and ack["body"]["eta_minutes"] >= 0
    view = await gateway.wait_for(call["message_id"], "answered", event="delivered")
    assert {"accepted", "queued", "delivered", "answered"} <= set(events(view))
    assert receipt["message_id"] == call["message_id"]


async def test_a_request_with_less_than_ten_days_notice_is_refused_unless_urgent(gateway: Gateway) -> None:
    late = police.protection_request(coercion_in_days=3)
    problem = await gateway.send(late, expect=422)
    assert problem["status"] == 422
    (error,) = problem["errors"]
    assert error["path"] == "$.body.coercion_plan.coercion_date"
    assert error["rule"] == "notice_period"
    assert "10 days" in error["message"]
    # Urgent (with its reason) the same request goes through.
    urgent = police.protection_request(coercion_in_days=3, priority="urgent")
    await gateway.send(urgent)
    await gateway.wait_for(urgent["message_id"], "answered")
    # The refused one was never stored.
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{gateway.procs.url}/v1/messages/{late['message_id']}", headers=gateway.world.case_headers()
        ) as resp,
    ):
        assert resp.status == 404
    assert json.dumps(problem).count("notice_period") == 1
