"""Citizen notices end to end: the case system sends a notice through POST /v1/documents, the worker hands
it to the national e-ID notification service (VNeID simulator) through its connector, the service pushes
what became of it (delivered, read, failed) as notice.delivery_status documents, the case system receives
them and its confirmation closes the notice's exchange. From the second notice to a person on, the
person's consent must be on record (recorded by the service with POST /v1/consents)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.citizen_world import CitizenWorld, citizen_gateway, notice
from tests.support.order_flow import received

pytestmark = pytest.mark.rabbitmq

PERSON = "001085012345"
NO_ACCOUNT = "001085012349"  # the simulator has no e-ID account for IDs ending in 9


@pytest.fixture
async def cw(tmp_path: Path) -> AsyncIterator[CitizenWorld]:
    async with citizen_gateway(tmp_path) as world:
        yield world


async def send(cw: CitizenWorld, document: dict[str, Any], expect: int = 202) -> dict[str, Any]:
    resp = await cw.api.post("/v1/documents", json=document, headers=cw.case_headers())
    body: dict[str, Any] = await resp.json()
    assert resp.status == expect, body
    return body


async def view(cw: CitizenWorld, message_id: str) -> dict[str, Any]:
    resp = await cw.api.get(f"/v1/messages/{message_id}", headers=cw.case_headers())
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def wait_for(cw: CitizenWorld, message_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await view(cw, message_id)
        if current["status"] in statuses:
            return current
        assert asyncio.get_running_loop().time() < deadline, (
            f"still {current['status']}: {current['timeline']}"
        )
        await asyncio.sleep(0.1)


async def wait_replies(cw: CitizenWorld, message_id: str, count: int, timeout: float = 20) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await view(cw, message_id)
        if len(current["replies"]) >= count:
            return current
        assert asyncio.get_running_loop().time() < deadline, current
        await asyncio.sleep(0.1)


def events(status_view: dict[str, Any]) -> list[str]:
    return [e["event"] for e in status_view["timeline"]]


async def consent(cw: CitizenWorld, person: str, status: str = "granted") -> dict[str, Any]:
    """The person decides in the app; the service records it with the gateway."""
    told: dict[str, Any] = await cw.sim("POST", "/_sim/consents", {"id_number": person, "status": status})
    assert told["gateway_status"] == 201, told
    return told["gateway_answer"]  # type: ignore[no-any-return]


async def test_notice_is_delivered_read_and_confirmed_with_every_step_in_its_timeline(
    cw: CitizenWorld,
) -> None:
    first = notice(PERSON)
    await send(cw, first)

    answered = await wait_replies(cw, first["message_id"], 2)
    assert sorted(r["message_type"] for r in answered["replies"]) == ["notice.delivery_status"] * 2
    statuses = await received(cw.world.case_queue, expect=2)
    assert sorted(s["body"]["status"] for s in statuses) == ["delivered", "read"]
    assert all(s["in_reply_to"] == first["message_id"] and s["sender"] == "VNEID" for s in statuses)
    assert (await cw.sim("GET", "/_sim/notices")) == {first["message_id"]: 1}
    told = await cw.sim("GET", "/_sim/last-request")
    assert told["body"]["person"]["id_number"] == "001*******45"  # the simulator shows it masked

    delivered = next(s for s in statuses if s["body"]["status"] == "delivered")
    await wait_for(cw, delivered["message_id"], "delivered")
    resp = await cw.api.post(
        f"/v1/messages/{delivered['message_id']}/confirmation", json={}, headers=cw.case_headers()
    )
    assert resp.status == 200, await resp.text()
    done = await wait_for(cw, first["message_id"], "confirmed")
    assert {"accepted", "queued", "delivered", "answered", "confirmed"} <= set(events(done))
    assert events(done).count("answered") == 2  # delivered, then read
    delivery = next(e for e in done["timeline"] if e["event"] == "delivered")
    assert delivery["detail"]["answer"] == "later"


async def test_second_notice_needs_consent_and_nothing_is_sent_without_it(cw: CitizenWorld) -> None:
    first = notice(PERSON)
    await send(cw, first)
    await wait_for(cw, first["message_id"], "answered")

    second = notice(PERSON)
    refused = await send(cw, second, expect=422)
    [error] = refused["errors"]
    assert error["path"] == "$.body.person.id_number" and "consent" in error["message"]
    assert PERSON not in str(refused)
    resp = await cw.api.get(f"/v1/messages/{second['message_id']}", headers=cw.case_headers())
    assert resp.status == 404  # nothing stored, nothing queued

    answer = await consent(cw, PERSON)
    assert answer["status"] == answer["current_status"] == "granted"
    await send(cw, second)
    await wait_for(cw, second["message_id"], "answered")

    await consent(cw, PERSON, "withdrawn")
    third = notice(PERSON)
    await send(cw, third, expect=422)
    # Someone else's first notice is not affected by this person's history.
    other = notice("001090000000")
    await send(cw, other)
    await received(cw.world.case_queue, expect=6)  # delivered and read of three notices
    # The service was handed exactly the notices accepted, each once; never the refused ones.
    sent = {first["message_id"]: 1, second["message_id"]: 1, other["message_id"]: 1}
    assert (await cw.sim("GET", "/_sim/notices")) == sent


async def test_a_notice_that_cannot_reach_the_person_is_answered_failed(cw: CitizenWorld) -> None:
    lost = notice(NO_ACCOUNT)
    await send(cw, lost)
    answered = await wait_for(cw, lost["message_id"], "answered")
    [status] = await received(cw.world.case_queue, expect=1)
    assert status["body"] | {"at": None, "reference": None} == {
        "status": "failed",
        "reason": "no_account",
        "at": None,
        "reference": None,
    }
    assert [r["message_id"] for r in answered["replies"]] == [status["message_id"]]
