"""Messages: the status lifecycle, uniqueness of message ids and judgments, and the timeline."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.domain.status import Status
from gateway.storage import messages as store
from gateway.storage.database import Database
from gateway.storage.messages import OutboxItem
from gateway.storage.tables import evidences, messages, outbox
from gateway.storage.timestamps import now


def accepted_message(natural_key: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    message_id = message_id or str(uuid.uuid4())
    return {
        "message_id": message_id,
        "message_type": "judgment.delivery",
        "schema_version": "1.0",
        "sender": "TAND-HN",
        "recipient": "THADS-HN",
        "correlation_id": None,
        "priority": "normal",
        "natural_key": natural_key or f"TAND-HN|{uuid.uuid4().int % 900000}/2026/DS-ST|2026-03-01",
        "sha256": "ab" * 32,
        "payload": json.dumps({"message_id": message_id}),
        "receipt": json.dumps({"message_id": message_id}),
        "received_at": now(),
    }


ITEM = OutboxItem(exchange="documents", routing_key="THADS-HN", headers={"sender": "TAND-HN"}, body="{}")


async def accept(db: Database, row: dict[str, Any]) -> str:
    async with db.transaction() as conn:
        await store.insert_accepted(conn, row, ITEM, "TAND-HN", {"receipt_id": "r"})
    return str(row["message_id"])


async def move(db: Database, message_id: str, target: Status) -> bool:
    async with db.transaction() as conn:
        return await store.transition(conn, message_id, target, "worker")


async def status_and_events(db: Database, message_id: str) -> tuple[str, list[str]]:
    async with db.read() as conn:
        row = await store.get(conn, message_id)
        assert row is not None
        return str(row.status), [e["event"] for e in await store.timeline(conn, message_id)]


async def count(db: Database, table: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_message_goes_from_received_to_confirmed(db: Database) -> None:
    message_id = await accept(db, accepted_message())
    assert await status_and_events(db, message_id) == (Status.RECEIVED, ["accepted"])

    assert await move(db, message_id, Status.QUEUED)
    assert await move(db, message_id, Status.DELIVERED)
    assert await move(db, message_id, Status.CONFIRMED)

    assert await status_and_events(db, message_id) == (
        Status.CONFIRMED,
        ["accepted", "queued", "delivered", "confirmed"],
    )


async def test_a_confirmed_message_cannot_go_back_to_queued(db: Database) -> None:
    message_id = await accept(db, accepted_message())
    for target in (Status.QUEUED, Status.DELIVERED, Status.CONFIRMED):
        assert await move(db, message_id, target)

    assert await move(db, message_id, Status.QUEUED) is False

    assert await status_and_events(db, message_id) == (
        Status.CONFIRMED,
        ["accepted", "queued", "delivered", "confirmed"],
    )


async def test_repeating_a_transition_changes_nothing(db: Database) -> None:
    message_id = await accept(db, accepted_message())
    assert await move(db, message_id, Status.DELIVERED)

    assert await move(db, message_id, Status.DELIVERED) is False

    assert await status_and_events(db, message_id) == (Status.DELIVERED, ["accepted", "delivered"])


async def test_a_failed_message_can_still_be_delivered(db: Database) -> None:
    message_id = await accept(db, accepted_message())

    assert await move(db, message_id, Status.FAILED)
    assert await move(db, message_id, Status.DELIVERED)

    assert await status_and_events(db, message_id) == (Status.DELIVERED, ["accepted", "failed", "delivered"])


async def test_a_transition_of_an_unknown_message_does_nothing(db: Database) -> None:
    assert await move(db, str(uuid.uuid4()), Status.QUEUED) is False
    assert await count(db, evidences) == 0


async def test_a_reused_message_id_rolls_back_the_whole_transaction(db: Database) -> None:
    first = await accept(db, accepted_message())
    other = accepted_message()

    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await store.insert_accepted(conn, other, ITEM, "TAND-HN", {})
            await store.insert_accepted(conn, accepted_message(message_id=first), ITEM, "TAND-HN", {})

    async with db.read() as conn:
        assert await store.get(conn, other["message_id"]) is None
        assert await store.timeline(conn, other["message_id"]) == []
    assert await count(db, messages) == 1
    assert await count(db, outbox) == 1
    assert await status_and_events(db, first) == (Status.RECEIVED, ["accepted"])


async def test_the_same_judgment_under_another_message_id_is_refused(db: Database) -> None:
    first = await accept(db, accepted_message(natural_key="TAND-HN|12/2026/DS-ST|2026-03-01"))

    with pytest.raises(IntegrityError):
        await accept(db, accepted_message(natural_key="TAND-HN|12/2026/DS-ST|2026-03-01"))

    assert await count(db, messages) == 1
    assert await count(db, outbox) == 1
    assert await count(db, evidences) == 1
    async with db.read() as conn:
        row = await store.get_by_natural_key(conn, "judgment.delivery", "TAND-HN|12/2026/DS-ST|2026-03-01")
    assert row is not None
    assert row.message_id == first


async def test_the_timeline_is_in_time_order_whatever_the_insertion_order(db: Database) -> None:
    message_id = await accept(db, accepted_message())
    start = now() + timedelta(seconds=1)

    async with db.transaction() as conn:
        for event, offset in [("confirmed", 3), ("queued", 1), ("delivered", 2)]:
            await store.add_evidence(
                conn, message_id, event, "worker", {"step": offset}, start + timedelta(seconds=offset)
            )
        await store.add_evidence(
            conn, message_id, "duplicate_push", "TAND-HN", None, start + timedelta(seconds=3)
        )

    async with db.read() as conn:
        timeline = await store.timeline(conn, message_id)

    assert [e["event"] for e in timeline] == [
        "accepted",
        "queued",
        "delivered",
        "confirmed",
        "duplicate_push",
    ]
    times = [datetime.fromisoformat(e["at"]) for e in timeline]
    assert times == sorted(times)
    assert times[1:] == [start + timedelta(seconds=s) for s in (1, 2, 3, 3)]
    assert timeline[1]["detail"] == {"step": 1}
    assert "detail" not in timeline[-1]
