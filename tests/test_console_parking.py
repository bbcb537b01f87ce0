"""Parked messages in the console, on the real broker: browsing returns every message, replay moves
the selected ones (or all matching a filter) back with their id, discard drops them and marks the
document failed; each needs a reason, which is audited; auditors and forged forms change nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.storage.database import Database
from gateway.storage.tables import audit_log, evidences, messages
from tests.conftest import World, fresh_judgment
from tests.support.console import (
    add_operator,
    depth_of,
    operator_client,
    park,
    queue_ids,
    recipient_parking,
    sign_in,
)

pytestmark = pytest.mark.rabbitmq


async def pushed(api: TestClient[Any, Any], world: World, n: int) -> list[dict[str, Any]]:
    docs = []
    for _ in range(n):
        doc = fresh_judgment()
        resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
        assert resp.status == 202
        docs.append(doc)
    return docs


async def read(world: World, statement: Any) -> list[Any]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            return list(await conn.execute(statement))
    finally:
        await db.dispose()


def parked_ids(html: str) -> list[str]:
    section = html.split('id="parked"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-message-id="([^"]+)"', section)


async def test_browse_replay_discard_with_reasons(world: World, api: TestClient[Any, Any]) -> None:
    docs = await pushed(api, world, 4)
    a, b, c, d = (doc["message_id"] for doc in docs)
    async with recipient_parking(world.settings) as (queue, parking):
        for doc, why in zip(docs, ["rejected", "rejected", "delivery_limit", "rejected"], strict=True):
            await park(parking, doc, why)
        csrf = await operator_client(api, world.settings)

        listing = await (await api.get("/ops/parking")).text()
        row = listing.split(f'data-queue="{parking}"', 1)[1].split("</tr>", 1)[0]
        assert '<td class="n parked">4</td>' in row
        assert f'class="parking-link" href="/ops/parking/{queue}"' in row

        page = await (await api.get(f"/ops/parking/{queue}")).text()
        assert sorted(parked_ids(page)) == sorted([a, b, c, d])
        assert (
            '<td class="type">judgment.delivery</td>' in page
            and '<td class="reason">delivery_limit</td>' in page
        )
        for action in ("replay", "replay_all", "discard"):
            assert f'name="action" value="{action}"' in page
        assert await depth_of(parking) == 4  # browsing put every message back

        filtered = await (
            await api.get(f"/ops/parking/{queue}", params={"reason_filter": "delivery_limit"})
        ).text()
        assert parked_ids(filtered) == [c]

        no_reason = await api.post(
            f"/ops/parking/{queue}", data={"csrf": csrf, "action": "replay", "message_id": a}
        )
        assert no_reason.status == 400 and "flash-error" in await no_reason.text()
        assert await depth_of(parking) == 4

        replayed = await api.post(
            f"/ops/parking/{queue}",
            data={"csrf": csrf, "action": "replay", "message_id": a, "reason": "case system fixed its inbox"},
        )
        html = await replayed.text()
        assert replayed.status == 200 and '<p class="flash flash-ok" role="status">replayed 1</p>' in html
        assert await queue_ids(queue) == [a]

        discarded = await api.post(
            f"/ops/parking/{queue}",
            data=[("csrf", csrf), ("action", "discard"), ("message_id", b), ("message_id", d),
                  ("reason", "duplicate of a judgment sent by post")],
        )  # fmt: skip
        assert "discarded 2" in await discarded.text()

        replay_all = await api.post(
            f"/ops/parking/{queue}",
            data={
                "csrf": csrf,
                "action": "replay_all",
                "reason_filter": "delivery_limit",
                "reason": "limit raised",
            },
        )
        assert "replayed 1" in await replay_all.text()
        assert await queue_ids(queue) == [c]
        assert await depth_of(parking) == 0

    rows = await read(
        world, select(audit_log).where(audit_log.c.action.like("ops.parking.%")).order_by(audit_log.c.id)
    )
    assert [(r.actor, r.action, r.message_id, r.object_ref, r.reason) for r in rows] == [
        ("olga", "ops.parking.replay", a, queue, "case system fixed its inbox"),
        ("olga", "ops.parking.discard", b, queue, "duplicate of a judgment sent by post"),
        ("olga", "ops.parking.discard", d, queue, "duplicate of a judgment sent by post"),
        ("olga", "ops.parking.replay", c, queue, "limit raised"),
    ]
    statuses = dict(await read(world, select(messages.c.message_id, messages.c.status)))
    assert statuses[b] == statuses[d] == "failed" and statuses[a] == statuses[c] == "received"
    [reason] = await read(world, select(messages.c.status_reason).where(messages.c.message_id == b))
    assert reason[0] == "discarded from parking by olga: duplicate of a judgment sent by post"
    events = await read(world, select(evidences.c.message_id, evidences.c.event))
    assert (a, "replayed_from_parking") in events and (b, "discarded_from_parking") in events


async def test_auditors_and_forged_forms_cannot_act(
    world: World, api: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    [doc] = await pushed(api, world, 1)
    async with recipient_parking(world.settings) as (queue, parking):
        await park(parking, doc)
        add_operator(world.settings, "ann", "auditor")
        csrf = await sign_in(api, "ann")
        page = await (await api.get(f"/ops/parking/{queue}")).text()
        assert parked_ids(page) == [doc["message_id"]]
        assert 'name="action"' not in page and 'id="read-only"' in page
        form = {"csrf": csrf, "action": "replay", "message_id": doc["message_id"], "reason": "try"}
        assert (await api.post(f"/ops/parking/{queue}", data=form)).status == 403

        operator: TestClient[Any, Any] = await aiohttp_client(api.server)
        await operator_client(operator, world.settings)
        forged = await operator.post(f"/ops/parking/{queue}", data=form)  # the auditor's token
        assert forged.status == 403
        missing = await operator.post(
            f"/ops/parking/{queue}", data={k: v for k, v in form.items() if k != "csrf"}
        )
        assert missing.status == 403
        assert await depth_of(parking) == 1

        shown = await operator.get(f"/ops/parking/{queue}/{doc['message_id']}")
        html = await shown.text()
        assert shown.status == 200 and 'id="payload"' in html and "001185012345" not in html
        assert (await operator.get("/ops/parking/not-a-gateway-queue")).status == 404
