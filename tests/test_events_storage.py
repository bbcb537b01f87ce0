"""Status events are written with the status change they report, on SQLite and PostgreSQL: one per change,
naming the status left; none for a refused change or a rolled-back transaction; claimed in order by one
relay at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from gateway.domain.status import Status
from gateway.storage import events
from gateway.storage import messages as store
from gateway.storage.database import Database
from gateway.storage.tables import event_outbox
from tests.test_storage_messages import accept, accepted_message, move


async def recorded(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(event_outbox).order_by(event_outbox.c.id))).all()
    return [json.loads(r.body) | {"_key": r.routing_key} for r in rows]


async def test_every_status_change_is_an_event_naming_the_status_it_left(db: Database) -> None:
    message_id = await accept(db, accepted_message())
    for target in (Status.QUEUED, Status.DELIVERED, Status.CONFIRMED):
        assert await move(db, message_id, target)

    got = await recorded(db)

    assert [(e["previous_status"], e["status"]) for e in got] == [
        (None, "received"),
        ("received", "queued"),
        ("queued", "delivered"),
        ("delivered", "confirmed"),
    ]
    first = got[0]
    assert first["_key"] == "TAND-HN.THADS-HN.received.judgment.delivery"
    assert set(first) - {"_key"} == {
        "event_id", "message_id", "message_type", "sender", "recipient", "status", "previous_status", "at",
        "reason",
    }  # fmt: skip
    assert len({e["event_id"] for e in got}) == 4


async def test_a_refused_change_is_no_event(db: Database) -> None:
    message_id = await accept(db, accepted_message())

    assert not await move(db, message_id, Status.CONFIRMED)  # not delivered yet

    assert [e["status"] for e in await recorded(db)] == ["received"]


async def test_a_rolled_back_change_leaves_no_event(db: Database) -> None:
    message_id = await accept(db, accepted_message())

    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            assert await store.transition(conn, message_id, Status.QUEUED, "relay")
            raise RuntimeError("crash before commit")

    assert [e["status"] for e in await recorded(db)] == ["received"]


async def test_a_reason_never_carries_a_personal_id(db: Database) -> None:
    message_id = await accept(db, accepted_message())
    async with db.transaction() as conn:
        await store.transition(conn, message_id, Status.FAILED, "worker", reason="refused 001085012345")

    assert (await recorded(db))[-1]["reason"] == "refused 001*******45"


async def test_events_are_claimed_oldest_first_by_one_relay_at_a_time(db: Database) -> None:
    for _ in range(3):
        await accept(db, accepted_message())

    async with db.transaction() as conn:
        first = await events.claim(conn, "relay-a", 2, 30)
    async with db.transaction() as conn:
        other = await events.claim(conn, "relay-b", 10, 30)
    assert [e.id for e in first] == sorted(e.id for e in first) and len(first) == 2
    assert other == []  # relay-a holds a live lease: relay-b would publish out of order

    async with db.transaction() as conn:
        await events.complete(conn, [e.id for e in first])
        rest = await events.claim(conn, "relay-b", 10, 30)
    assert len(rest) == 1 and rest[0].id > first[-1].id

    async with db.transaction() as conn:
        await events.release(conn, [rest[0].id], "relay-b")
        again = await events.claim(conn, "relay-a", 10, 30)
        assert [e.id for e in again] == [rest[0].id] and again[0].attempts == 2
        await events.complete(conn, [rest[0].id])
        assert await events.backlog(conn) == 0
