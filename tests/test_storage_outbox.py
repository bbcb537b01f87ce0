"""Outbox relays claim rows under a lease: one owner at a time, taken again once given back or expired."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from sqlalchemy import select

from gateway.domain.status import Status
from gateway.storage import messages as store
from gateway.storage import outbox
from gateway.storage.database import Database
from gateway.storage.messages import OutboxItem
from gateway.storage.outbox import Pending
from gateway.storage.tables import outbox as outbox_table
from gateway.storage.timestamps import now

LEASE = 60.0


def accepted_message(n: int) -> tuple[dict[str, Any], OutboxItem]:
    message_id = str(uuid.uuid4())
    body = json.dumps({"message_id": message_id, "n": n})
    row = {
        "message_id": message_id,
        "message_type": "judgment.delivery",
        "schema_version": "1.0",
        "sender": "TAND-HN",
        "recipient": "THADS-HN",
        "correlation_id": None,
        "priority": "normal",
        "natural_key": f"TAND-HN|{n}/2026/DS-ST|2026-03-01",
        "sha256": f"{n:064x}",
        "payload": body,
        "receipt": json.dumps({"receipt_id": str(uuid.uuid4()), "message_id": message_id}),
        "received_at": now(),
    }
    item = OutboxItem(
        exchange="documents",
        routing_key="THADS-HN",
        headers={"message_type": "judgment.delivery", "sender": "TAND-HN", "recipient": "THADS-HN"},
        body=body,
    )
    return row, item


async def accept(db: Database, count: int) -> list[str]:
    """Store ``count`` accepted messages, each with its outbox row; returns their message ids."""
    ids = []
    async with db.transaction() as conn:
        for n in range(count):
            row, item = accepted_message(n)
            await store.insert_accepted(conn, row, item, "TAND-HN", {"receipt_id": "r"})
            ids.append(row["message_id"])
    return ids


async def claim(db: Database, owner: str, limit: int = 100, lease: float = LEASE) -> list[Pending]:
    async with db.transaction() as conn:
        return await outbox.claim(conn, owner, limit, lease)


async def status_of(db: Database, message_id: str) -> str:
    async with db.read() as conn:
        row = await store.get(conn, message_id)
    assert row is not None
    return str(row.status)


async def events_of(db: Database, message_id: str) -> list[str]:
    async with db.read() as conn:
        return [e["event"] for e in await store.timeline(conn, message_id)]


async def test_a_claim_takes_the_pending_rows_and_leases_them_to_its_owner(db: Database) -> None:
    message_ids = await accept(db, 3)

    taken = await claim(db, "relay-a")

    assert sorted(p.message_id for p in taken) == sorted(message_ids)
    assert all(p.attempts == 1 for p in taken)
    assert taken[0].headers["recipient"] == "THADS-HN"
    assert await claim(db, "relay-b") == []


async def test_released_rows_go_to_the_next_claimer(db: Database) -> None:
    await accept(db, 3)
    taken = await claim(db, "relay-a")

    async with db.transaction() as conn:
        await outbox.release(conn, [p.id for p in taken], "relay-a")
    retaken = await claim(db, "relay-b")

    assert sorted(p.id for p in retaken) == sorted(p.id for p in taken)
    assert all(p.attempts == 2 for p in retaken)


async def test_only_the_owner_can_release_its_lease(db: Database) -> None:
    await accept(db, 2)
    taken = await claim(db, "relay-a")

    async with db.transaction() as conn:
        await outbox.release(conn, [p.id for p in taken], "relay-b")

    assert await claim(db, "relay-b") == []


async def test_an_expired_lease_can_be_claimed_again(db: Database) -> None:
    await accept(db, 2)
    taken = await claim(db, "relay-a", lease=0.01)

    await asyncio.sleep(0.05)
    retaken = await claim(db, "relay-b")

    assert sorted(p.id for p in retaken) == sorted(p.id for p in taken)
    assert [p.attempts for p in retaken] == [2, 2]


async def test_completed_rows_are_deleted_and_their_messages_queued(db: Database) -> None:
    message_ids = await accept(db, 3)
    taken = await claim(db, "relay-a")

    async with db.transaction() as conn:
        await outbox.complete(conn, [(p, now()) for p in taken], "relay-a")

    async with db.read() as conn:
        assert await outbox.backlog(conn) == 0
        timeline = await store.timeline(conn, message_ids[0])
    for message_id in message_ids:
        assert await status_of(db, message_id) == Status.QUEUED
    assert [e["event"] for e in timeline] == ["accepted", "queued"]
    assert timeline[-1]["actor"] == "relay-a"
    assert timeline[-1]["detail"] == {"attempts": 1}


async def test_completing_an_already_delivered_message_keeps_it_delivered(db: Database) -> None:
    [message_id] = await accept(db, 1)
    taken = await claim(db, "relay-a")
    async with db.transaction() as conn:
        assert await store.transition(conn, message_id, Status.DELIVERED, "worker")

    async with db.transaction() as conn:
        await outbox.complete(conn, [(p, now()) for p in taken], "relay-a")

    assert await status_of(db, message_id) == Status.DELIVERED
    assert await events_of(db, message_id) == ["accepted", "delivered", "queued"]
    async with db.read() as conn:
        assert await outbox.backlog(conn) == 0


async def test_concurrent_claimers_never_share_a_row(db: Database) -> None:
    await accept(db, 100)

    async def relay(owner: str) -> list[tuple[int, str]]:
        got: list[tuple[int, str]] = []
        while batch := await claim(db, owner, limit=7):
            got += [(p.id, owner) for p in batch]
        return got

    claimed = [
        pair for pairs in await asyncio.gather(*(relay(f"relay-{i}") for i in range(4))) for pair in pairs
    ]

    assert len(claimed) == len({row_id for row_id, _ in claimed}) == 100
    async with db.read() as conn:
        leases = (await conn.execute(select(outbox_table.c.id, outbox_table.c.claimed_by))).all()
    assert sorted(claimed) == sorted((row_id, owner) for row_id, owner in leases)
