"""Court events and clarification end to end: the simulated court pushes a judgment, then an event on it
(by its message_id, or by court code + number + date); the gateway notes the event in the judgment's
timeline and delivers it to the enforcement office as urgent. The office asks the court to clarify the
judgment; the court answers on its own; the office's confirmation of the answer closes the request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.simulators.gateway_client import local_now
from tests.conftest import example
from tests.support.flows_world import FlowsWorld, events, flows_world
from tests.support.order_flow import received

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def flows(tmp_path: Path) -> AsyncIterator[FlowsWorld]:
    async with flows_world(tmp_path, recommend_every=0) as world:
        yield world


async def judgment_received(flows: FlowsWorld, http: aiohttp.ClientSession) -> dict[str, Any]:
    """The court pushes a judgment; the office receives it and opens a case for it."""
    await flows.court.push_one(http)
    assert flows.court.last_pushed is not None
    [delivered] = await received(flows.world.case_queue, expect=1)
    assert delivered["message_id"] == flows.court.last_pushed["message_id"]
    resp = await flows.api.post(
        f"/v1/messages/{delivered['message_id']}/confirmation",
        json={"case_ref": f"THA-HN-2026-{uuid.uuid4().int % 999999:06d}"},
        headers=flows.headers(),
    )
    assert resp.status == 200, await resp.text()
    return delivered


async def confirm(flows: FlowsWorld, message_id: str) -> None:
    resp = await flows.api.post(
        f"/v1/messages/{message_id}/confirmation", json={"note": "đã xử lý"}, headers=flows.headers()
    )
    assert resp.status == 200, await resp.text()


async def test_a_court_event_is_urgent_reaches_the_office_and_shows_in_the_judgments_timeline(
    flows: FlowsWorld,
) -> None:
    async with aiohttp.ClientSession() as http:
        ruling = await judgment_received(flows, http)
        suspension = await flows.court.push_event(http, ruling, "enforcement_suspended")
        protest = await flows.court.push_event(http, ruling, "cassation_protest")

    delivered = await received(flows.world.case_queue, expect=2)
    assert {d["message_id"] for d in delivered} == {suspension["message_id"], protest["message_id"]}
    for event in delivered:
        view = await flows.wait_for(event["message_id"], "delivered")
        assert view["priority"] == "urgent"
        await confirm(flows, event["message_id"])
        done = await flows.wait_for(event["message_id"], "confirmed")
        assert {"accepted", "delivered", "confirmed"} <= set(events(done))

    timeline = (await flows.view(ruling["message_id"]))["timeline"]
    noted = [e for e in timeline if e["event"] == "court_event"]
    assert [e["detail"]["by"] for e in noted] == [suspension["message_id"], protest["message_id"]]
    assert all(e["detail"]["message_type"] == "court.event" and e["actor"] == "TAND-HN" for e in noted)


async def test_an_event_found_by_court_code_number_and_date_and_refusals_for_unknown_judgments(
    flows: FlowsWorld,
) -> None:
    async with aiohttp.ClientSession() as http:
        ruling = await judgment_received(flows, http)
    event = example("court.event", "valid-cassation-protest-by-natural-key.json")
    event["message_id"] = str(uuid.uuid4())
    event["body"]["judgment"] = {
        "court_code": "TAND-HN",
        "number": ruling["body"]["judgment"]["number"],
        "date": ruling["body"]["judgment"]["date"],
    }
    event["body"]["decision"] |= {
        "number": f"{uuid.uuid4().int % 99999}/2026/KN-GĐT",
        "date": local_now().date().isoformat(),
    }
    await flows.send(event, client="TAND-HN")
    [delivered] = await received(flows.world.case_queue, expect=1)
    assert delivered["message_id"] == event["message_id"]
    timeline = (await flows.view(ruling["message_id"]))["timeline"]
    assert [e["detail"]["by"] for e in timeline if e["event"] == "court_event"] == [event["message_id"]]

    unknown = event | {"message_id": str(uuid.uuid4())}
    unknown["body"] = event["body"] | {"judgment": event["body"]["judgment"] | {"number": "999/2026/DS-ST"}}
    problem = await flows.send(unknown, client="TAND-HN", expect=422)
    assert problem["errors"] == [
        {
            "path": "$.body.judgment",
            "message": "names no judgment.delivery known to the gateway",
            "rule": "reference",
        }
    ]
    mismatch = event | {"message_id": str(uuid.uuid4())}
    mismatch["body"] = event["body"] | {
        "judgment": unknown["body"]["judgment"] | {"message_id": ruling["message_id"]}
    }
    problem = await flows.send(mismatch, client="TAND-HN", expect=422)
    assert [e["path"] for e in problem["errors"]] == ["$.body.judgment.message_id"]


async def test_the_office_asks_the_court_to_clarify_a_judgment_and_the_answer_closes_the_request(
    flows: FlowsWorld,
) -> None:
    async with aiohttp.ClientSession() as http:
        ruling = await judgment_received(flows, http)
    request = example("court.clarification_request", "valid-interest-question.json")
    request["message_id"] = str(uuid.uuid4())
    request["body"]["number"] = f"{uuid.uuid4().int % 99999}/CV-CTHADS"
    request["body"]["date"] = local_now().date().isoformat()
    request["body"]["judgment"] = {
        "court_code": "TAND-HN",
        "number": ruling["body"]["judgment"]["number"],
        "date": ruling["body"]["judgment"]["date"],
        "message_id": ruling["message_id"],
    }
    await flows.send(request)

    [answer] = await received(flows.world.case_queue, expect=1)
    assert answer["message_type"] == "court.clarification_answer"
    assert answer["in_reply_to"] == request["message_id"] and len(answer["body"]["answers"]) == 1
    assert flows.court.clarifications == {request["message_id"]: answer["message_id"]}
    answered = await flows.wait_for(request["message_id"], "answered")
    assert answered["due_at"] and [r["message_id"] for r in answered["replies"]] == [answer["message_id"]]

    await flows.wait_for(answer["message_id"], "delivered")
    await confirm(flows, answer["message_id"])
    closed = await flows.wait_for(request["message_id"], "confirmed")
    assert {"accepted", "delivered", "answered", "confirmed"} <= set(events(closed))
    timeline = (await flows.view(ruling["message_id"]))["timeline"]
    assert [e["detail"]["by"] for e in timeline if e["event"] == "clarification_requested"] == [
        request["message_id"]
    ]
