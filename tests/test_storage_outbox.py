"""Outbox relays claim rows under a lease: one owner at a time, taken again once given back or expired."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.amqp.names import Names
from gateway.amqp.relay import Published, Relay, Route
from gateway.amqp.routing import DocumentRouter
from gateway.domain.registry import REGISTRY
from gateway.domain.status import Status
from gateway.services.deliveries import RelayRecorder
from gateway.settings import RelaySettings
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


async def relayed(db: Database, taken: list[Pending], delivers: bool, actor: str = "relay-a") -> None:
    """What the relay writes once the broker confirmed ``taken``: rows deleted, statuses recorded."""
    recorder = RelayRecorder(REGISTRY, db.read, issue=_no_issue)
    route = Route("", "inbox", delivers=True) if delivers else Route("gw.documents", "THADS-HN")
    recorder.actor = actor
    async with db.transaction() as conn:
        await outbox.remove(conn, [p.id for p in taken])
        await recorder.record(conn, [Published(p, route, now()) for p in taken], [])


async def _no_issue(document: dict[str, Any]) -> None:
    raise AssertionError("nothing to revoke here")


async def test_rows_published_to_a_delivery_queue_are_deleted_and_their_messages_queued(
    db: Database,
) -> None:
    message_ids = await accept(db, 3)
    taken = await claim(db, "relay-a")

    await relayed(db, taken, delivers=False)

    async with db.read() as conn:
        assert await outbox.backlog(conn) == 0
        timeline = await store.timeline(conn, message_ids[0])
    for message_id in message_ids:
        assert await status_of(db, message_id) == Status.QUEUED
    assert [e["event"] for e in timeline] == ["accepted", "queued"]
    assert timeline[-1]["actor"] == "relay-a"
    assert timeline[-1]["detail"] == {"attempts": 1}


async def test_a_publish_to_the_recipients_own_queue_is_its_delivery_recorded_once(db: Database) -> None:
    [message_id] = await accept(db, 1)
    taken = await claim(db, "relay-a")

    await relayed(db, taken, delivers=True)

    assert await status_of(db, message_id) == Status.DELIVERED
    assert await events_of(db, message_id) == ["accepted", "delivered"]
    async with db.read() as conn:
        row = await store.get(conn, message_id)
        timeline = await store.timeline(conn, message_id)
    assert row is not None and row.delivery_count == 1
    assert timeline[-1]["detail"] == {"channel": "amqp", "attempt": 1}


async def test_completing_an_already_delivered_message_keeps_it_delivered(db: Database) -> None:
    [message_id] = await accept(db, 1)
    taken = await claim(db, "relay-a")
    async with db.transaction() as conn:
        assert await store.transition(conn, message_id, Status.DELIVERED, "worker")

    await relayed(db, taken, delivers=False)

    assert await status_of(db, message_id) == Status.DELIVERED
    assert await events_of(db, message_id) == ["accepted", "delivered", "queued"]
    async with db.read() as conn:
        assert await outbox.backlog(conn) == 0


async def test_a_document_row_holds_no_body_and_a_claim_reads_it_from_the_message(db: Database) -> None:
    [message_id] = await accept(db, 1)
    async with db.read() as conn:
        stored = (await conn.execute(select(outbox_table.c.body))).scalar_one()
        assert await outbox.claimable(conn)
    assert stored is None

    [taken] = await claim(db, "relay-a")

    assert json.loads(taken.body)["message_id"] == message_id
    assert taken.status == Status.RECEIVED
    async with db.read() as conn:
        assert not await outbox.claimable(conn)  # held by relay-a now


async def test_a_row_held_by_its_writer_is_not_claimed_until_its_lease_ends(db: Database) -> None:
    row, item = accepted_message(1)
    async with db.transaction() as conn:
        held = await store.insert_accepted(
            conn, row, item, "TAND-HN", {}, outbox.Claim("api-1", now() + timedelta(seconds=0.2))
        )

    assert held.attempts == 1 and held.body == item.body  # published from memory: nothing to read
    assert await claim(db, "relay-b") == []
    await asyncio.sleep(0.25)
    [retaken] = await claim(db, "relay-b")
    assert retaken.id == held.id and retaken.attempts == 2  # a possible repeat: said so downstream


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


async def test_a_relay_publishes_only_rows_it_holds(db: Database) -> None:
    """A row written while its process had no broker connection is nobody's: only a fallback pass that
    claims it may publish it (handed over too, it went out twice, the second copy unflagged)."""
    relay = Relay(db, lambda: None, DocumentRouter(Names("t"), lambda _: None), _Unused(), RelaySettings())
    assert relay.claim() is None
    row, item = accepted_message(1)
    async with db.transaction() as conn:
        unheld = await store.insert_accepted(conn, row, item, "TAND-HN", {}, relay.claim())

    relay.hand_over([unheld])

    assert unheld.owner is None and relay.pending_hand_overs() == 0
    [claimed] = await claim(db, "relay-b")
    assert claimed.id == unheld.id and claimed.attempts == 1


class _Unused:
    async def record(self, conn: Any, published: Any, withheld: Any) -> None:
        raise AssertionError("nothing is published")

    async def after(self, recorded: Any) -> None:
        raise AssertionError("nothing is published")
