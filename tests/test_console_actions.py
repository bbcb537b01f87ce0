"""Acting from a message's page and across parking queues: pulling a scheduled retry forward (once,
whoever presses, never when it is due; the copy still waiting in its tier is dropped by the worker),
revoking for the sender, bulk replay and discard by filter; each with a reason, audited, refused to
auditors and to forms without their CSRF token."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, insert, select, update

from gateway.amqp import topology
from gateway.amqp.names import Names
from gateway.settings import DeliverySettings, Settings
from gateway.storage import messages as store
from gateway.storage import retries
from gateway.storage.database import Database
from gateway.storage.tables import audit_log, evidences, messages, outbox
from gateway.storage.timestamps import now
from gateway.worker.delivery import Deliverer, Recipient
from tests.conftest import ROOT, World
from tests.support.console import (
    BROKER,
    add_operator,
    depth_of,
    operator_client,
    park,
    push_judgment,
    queue_ids,
    read,
    sign_in,
    write,
)
from tests.test_storage_outbox import accepted_message

# --- the storage operation, on SQLite and PostgreSQL ---------------------------------------------------


async def failed_once(db: Database, retry_in_ms: int = 600_000) -> str:
    """An accepted document whose first delivery attempt failed, its retry waiting ``retry_in_ms``."""
    row, item = accepted_message(1)
    async with db.transaction() as conn:
        await store.insert_accepted(conn, row, item, "TAND-HN", {"receipt_id": "r"})
        await conn.execute(delete(outbox))  # published: the relay removed its row
        await conn.execute(
            update(messages).where(messages.c.message_id == row["message_id"]).values(status="queued")
        )
        detail = {"attempt": 1, "error": "HTTP 503", "retry_in_ms": retry_in_ms, "retry_id": "r1"}
        await store.add_evidence(conn, row["message_id"], "delivery_failed", "gateway.delivery", detail)
    return str(row["message_id"])


async def pull(db: Database, message_id: str, actor: str) -> Any:
    async with db.transaction() as conn:
        return await retries.retry_now(conn, message_id, actor, "partner back")


@pytest.mark.postgres
async def test_retry_now_pulls_the_waiting_attempt_forward_once(db: Database) -> None:
    message_id = await failed_once(db)
    async with db.read() as conn:
        state = await retries.attempts(conn, message_id, "queued")
    assert (state.failures, state.last_error, state.next_attempt) == (1, "HTTP 503", 2)

    # Two operators at once: one pulls the attempt forward, the other finds it pulled.
    results = await asyncio.gather(
        pull(db, message_id, "olga"), pull(db, message_id, "lan"), return_exceptions=True
    )
    pulled = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, retries.NotPullable)]
    assert len(pulled) == 1 and len(refused) == 1, results
    async with db.read() as conn:
        rows = list(await conn.execute(select(outbox)))
        events = [r.event for r in await conn.execute(select(evidences.c.event))]
        after = await retries.attempts(conn, message_id, "queued")
    assert len(rows) == 1 and rows[0].message_id == message_id and rows[0].exchange == "documents"
    headers = json.loads(rows[0].headers)
    assert headers[retries.ATTEMPT_HEADER] == headers[retries.RETRY_NOW_HEADER] == 2
    assert headers["recipient"] == rows[0].routing_key == "THADS-HN"
    assert events.count(retries.RETRY_NOW_EVENT) == 1
    assert after.next_attempt is None  # nothing waits any more: the pulled copy is on its way

    async with db.read() as conn:
        waiting_copy = {retries.ATTEMPT_HEADER: 2, retries.RETRY_ID_HEADER: "r1"}
        assert await retries.superseded(conn, message_id, waiting_copy)
        assert not await retries.superseded(conn, message_id, headers)  # the pulled copy itself
        # Another scheduled retry (the same attempt number again, after a replay from parking).
        other = {retries.ATTEMPT_HEADER: 2, retries.RETRY_ID_HEADER: "r2"}
        assert not await retries.superseded(conn, message_id, other)
        assert not await retries.superseded(conn, message_id, {})  # first attempts are never pulled


@pytest.mark.postgres
async def test_retry_now_refuses_a_retry_that_is_due_or_absent(db: Database) -> None:
    due = await failed_once(db, retry_in_ms=500)  # comes out of its tier within the margin
    with pytest.raises(retries.NotPullable, match="due now"):
        await pull(db, due, "olga")
    async with db.transaction() as conn:
        await conn.execute(update(messages).where(messages.c.message_id == due).values(status="delivered"))
    with pytest.raises(retries.NotPullable, match="no retry is waiting"):
        await pull(db, due, "olga")
    with pytest.raises(retries.NotPullable, match="no such message"):
        await pull(db, str(uuid.uuid4()), "olga")
    async with db.read() as conn:
        assert list(await conn.execute(select(outbox))) == []
        events = [r.event for r in await conn.execute(select(evidences.c.event))]
    assert retries.RETRY_NOW_EVENT not in events


class Incoming(SimpleNamespace):
    """What the worker's handler reads of a broker message."""


@pytest.mark.postgres
async def test_the_worker_drops_the_copy_that_was_pulled_forward(db: Database) -> None:
    message_id = await failed_once(db)
    await pull(db, message_id, "olga")
    forwarded: list[int] = []

    class Deliver(Deliverer):
        async def _forward(self, client: Any, message: Any, attempt: int, repeat: bool) -> str:
            forwarded.append(attempt)
            return "webhook"

    async def issue(doc: Any) -> None:
        raise AssertionError("nothing to issue")

    documents = SimpleNamespace(registry={}, issue=issue)
    worker = Deliver(db, None, Names("gw"), None, None, DeliverySettings(), documents)  # type: ignore[arg-type]
    recipient = Recipient("THADS-HN", client=SimpleNamespace(deliver_to=None))  # type: ignore[arg-type]
    body = json.dumps({"message_id": message_id, "body": {}}).encode()

    def copy(**headers: Any) -> Any:
        return Incoming(message_id=message_id, headers=headers, redelivered=False, body=body, type="t")

    # The copy that waited in its tier comes out late: dropped, recorded, never forwarded.
    await worker.deliver(recipient, copy(**{retries.ATTEMPT_HEADER: 2, retries.RETRY_ID_HEADER: "r1"}))
    assert forwarded == []
    # The pulled copy is delivered.
    await worker.deliver(recipient, copy(**{retries.ATTEMPT_HEADER: 2, retries.RETRY_NOW_HEADER: 2}))
    assert forwarded == [2]
    async with db.read() as conn:
        events = [e["event"] for e in await store.timeline(conn, message_id)]
    assert events.count(retries.SUPERSEDED_EVENT) == 1 and events[-1] == "delivered"


# --- the message page and its actions --------------------------------------------------------------------


async def fail_first_attempt(world: World, message_id: str) -> None:
    detail = {"attempt": 1, "error": "HTTP 503", "retry_in_ms": 600_000, "retry_id": "r1"}
    await write(
        world,
        update(messages).where(messages.c.message_id == message_id).values(status="queued"),
        insert(evidences).values(
            message_id=message_id,
            event="delivery_failed",
            at=now(),
            actor="gateway.delivery",
            detail=json.dumps(detail),
        ),
    )


async def ops_audit(world: World) -> list[Any]:
    return await read(
        world,
        select(audit_log)
        .where(audit_log.c.action.startswith("ops.message."), audit_log.c.action != "ops.message.payload")
        .order_by(audit_log.c.id),
    )


async def test_message_page_shows_the_waiting_retry_and_pulls_it_forward(
    world: World, api: TestClient[Any, Any]
) -> None:
    doc = await push_judgment(api, world)
    message_id = doc["message_id"]
    await fail_first_attempt(world, message_id)
    csrf = await operator_client(api, world.settings)
    html = await (await api.get(f"/ops/messages/{message_id}")).text()
    assert 'id="attempt-count">1<' in html and "HTTP 503" in html and 'id="next-attempt"' in html
    assert "Attempt 1 to THADS-HN failed: HTTP 503; next attempt in 10 min" in html
    assert 'id="retry-now"' in html and 'id="revoke"' in html and 'id="replay"' not in html
    assert f'href="/ops/partners/{doc["recipient"]}"' in html
    assert 'id="deliveries"' in html and html.count("<details>") >= 2  # raw detail folded

    url = f"/ops/messages/{message_id}"
    no_reason = await api.post(url, data={"csrf": csrf, "action": "retry_now"})
    assert no_reason.status == 400 and "Give a reason" in await no_reason.text()
    no_csrf = await api.post(url, data={"action": "retry_now", "reason": "partner back"})
    assert no_csrf.status == 403

    done = await api.post(url, data={"csrf": csrf, "action": "retry_now", "reason": "partner back"})
    page = await done.text()
    assert done.status == 200 and "flash-ok" in page, page
    assert "pulled forward by olga: partner back" in page and 'id="retry-now"' not in page
    again = await api.post(url, data={"csrf": csrf, "action": "retry_now", "reason": "twice"})
    assert again.status == 409 and "no retry is waiting" in await again.text()

    rows = await read(world, select(outbox.c.headers).where(outbox.c.message_id == message_id))
    pulled = [json.loads(r.headers) for r in rows if retries.RETRY_NOW_HEADER in json.loads(r.headers)]
    assert len(pulled) == 1 and pulled[0][retries.ATTEMPT_HEADER] == 2
    assert [(r.actor, r.action, r.outcome, r.reason) for r in await ops_audit(world)][-2:] == [
        ("olga", "ops.message.retry_now", "done", "partner back"),
        ("olga", "ops.message.retry_now", "refused", "twice"),
    ]


async def test_an_operator_revokes_for_the_sender_by_its_rules(
    world: World, api: TestClient[Any, Any]
) -> None:
    doc = await push_judgment(api, world)
    message_id = doc["message_id"]
    csrf = await operator_client(api, world.settings)
    url = f"/ops/messages/{message_id}"
    resp = await api.post(url, data={"csrf": csrf, "action": "revoke", "reason": "sent to the wrong office"})
    html = await resp.text()
    assert resp.status == 200 and "Revoked." in html and 'id="revoke"' not in html
    [row] = await read(
        world, select(messages.c.status, messages.c.status_reason).where(messages.c.message_id == message_id)
    )
    assert (row.status, row.status_reason) == ("revoked", "sent to the wrong office")
    again = await api.post(url, data={"csrf": csrf, "action": "revoke", "reason": "again"})
    assert again.status == 409 and "revoked already" in await again.text()

    confirmed = await push_judgment(api, world)
    await write(
        world,
        update(messages).where(messages.c.message_id == confirmed["message_id"]).values(status="confirmed"),
    )
    page = await (await api.get(f"/ops/messages/{confirmed['message_id']}")).text()
    assert 'id="revoke"' not in page
    refused = await api.post(
        f"/ops/messages/{confirmed['message_id']}", data={"csrf": csrf, "action": "revoke", "reason": "x"}
    )
    assert refused.status == 409 and "cannot be revoked" in await refused.text()
    assert [(r.action, r.outcome, r.message_id) for r in await ops_audit(world)][-3:] == [
        ("ops.message.revoke", "revoked", message_id),
        ("ops.message.revoke", "refused", message_id),
        ("ops.message.revoke", "refused", confirmed["message_id"]),
    ]


async def test_auditors_see_no_action_and_their_posts_are_refused(
    world: World, api: TestClient[Any, Any]
) -> None:
    doc = await push_judgment(api, world)
    await fail_first_attempt(world, doc["message_id"])
    add_operator(world.settings, "ann", "auditor")
    csrf = await sign_in(api, "ann")
    html = await (await api.get(f"/ops/messages/{doc['message_id']}")).text()
    assert 'name="action"' not in html and 'id="read-only"' in html and 'id="next-attempt"' in html
    for action in ("retry_now", "revoke", "replay"):
        form = {"csrf": csrf, "action": action, "reason": "try"}
        assert (await api.post(f"/ops/messages/{doc['message_id']}", data=form)).status == 403
    bulk = {"csrf": csrf, "action": "replay", "type": "judgment.delivery", "expected": "1", "reason": "try"}
    assert (await api.post("/ops/parking", data=bulk)).status == 403
    [row] = await read(world, select(messages.c.status).where(messages.c.message_id == doc["message_id"]))
    assert row.status == "queued"
    assert await ops_audit(world) == []


# --- parking across queues, on the real broker -------------------------------------------------------------


@asynccontextmanager
async def two_parking_queues(settings: Settings, recipient: str = "THADS-HN") -> AsyncIterator[list[str]]:
    """The recipient's normal and urgent delivery queues with their parking queues, deleted after."""
    names = Names(settings.broker_namespace)
    queues = [names.deliver(recipient), names.deliver_urgent(recipient)]
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        await topology.declare_exchanges(channel, names)
        for queue in queues:
            await topology.declare_queue_with_parking(channel, names, queue, delivery_limit=3)
        try:
            yield queues
        finally:
            ch = await connection.channel()
            for queue in queues:
                await ch.queue_delete(queue)
                await ch.queue_delete(names.parking(queue))
            for exchange in names.exchanges:
                await ch.exchange_delete(exchange)


@pytest.mark.rabbitmq
async def test_bulk_replay_and_discard_across_queues_by_filter(
    world: World, api: TestClient[Any, Any]
) -> None:
    names = Names(world.settings.broker_namespace)
    docs = [await push_judgment(api, world) for _ in range(4)]
    a, b, c, d = (doc["message_id"] for doc in docs)
    async with two_parking_queues(world.settings) as (normal, urgent):
        await park(names.parking(normal), docs[0], "rejected")
        await park(names.parking(urgent), docs[1], "rejected")
        await park(names.parking(urgent), docs[2], "delivery_limit")
        other = dict(docs[3], message_type="document.other")
        await park(names.parking(normal), other, "rejected")
        csrf = await operator_client(api, world.settings)

        listing = await (await api.get("/ops/parking")).text()
        assert 'id="parked-total"' in listing and 'id="empty-queues"' in listing
        counted = await (
            await api.get("/ops/parking", params={"type": "judgment.delivery", "reason_filter": "rejected"})
        ).text()
        assert 'id="bulk-count"><b>2</b>' in counted and "Replay 2" in counted
        assert "At most 500 messages per action" in counted
        assert await depth_of(names.parking(normal)) == 2  # counting took nothing

        form = {"csrf": csrf, "type": "judgment.delivery", "reason_filter": "rejected", "action": "replay"}
        unconfirmed = await api.post("/ops/parking", data={**form, "reason": "inbox fixed"})
        assert unconfirmed.status == 400 and "Confirm the count" in await unconfirmed.text()
        no_filter = await api.post(
            "/ops/parking", data={"csrf": csrf, "action": "replay", "expected": "9", "reason": "r"}
        )
        assert no_filter.status == 400

        done = await api.post("/ops/parking", data={**form, "expected": "2", "reason": "inbox fixed"})
        html = await done.text()
        assert done.status == 200 and "replayed 2 message(s) from 2 queue(s)" in html, html
        assert await queue_ids(normal) == [a] and await queue_ids(urgent) == [b]  # each once
        assert await depth_of(names.parking(normal)) == 1 and await depth_of(names.parking(urgent)) == 1

        # Capped by the confirmed count: one of the two remaining, then the other.
        discard = {
            "csrf": csrf,
            "reason_filter": "",
            "type": "",
            "action": "discard",
            "reason": "sent by post",
        }
        discard["recipient"] = "THADS-HN"
        first = await api.post("/ops/parking", data={**discard, "expected": "1"})
        assert "discarded 1 message(s)" in await first.text()
        second = await api.post("/ops/parking", data={**discard, "expected": "5"})
        assert "discarded 1 message(s)" in await second.text()
        assert await depth_of(names.parking(normal)) == 0 and await depth_of(names.parking(urgent)) == 0

    rows = await read(
        world, select(audit_log).where(audit_log.c.action.like("ops.parking.%")).order_by(audit_log.c.id)
    )
    assert [(r.action, r.message_id, r.reason) for r in rows][:2] == [
        ("ops.parking.replay", a, "inbox fixed"),
        ("ops.parking.replay", b, "inbox fixed"),
    ]
    assert sorted(r.message_id for r in rows[2:]) == sorted([c, d])
    assert all(r.actor == "olga" and r.outcome == "done" for r in rows)
    statuses = dict(await read(world, select(messages.c.message_id, messages.c.status)))
    assert statuses[c] == statuses[d] == "failed"


@pytest.mark.rabbitmq
async def test_the_parked_copy_is_replayed_from_the_message_page(
    world: World, api: TestClient[Any, Any]
) -> None:
    doc = await push_judgment(api, world)
    message_id = doc["message_id"]
    detail = {"attempts": 2, "error": "HTTP 503"}
    await write(
        world,
        update(messages).where(messages.c.message_id == message_id).values(status="failed"),
        insert(evidences).values(
            message_id=message_id,
            event="failed",
            at=now(),
            actor="gateway.delivery",
            detail=json.dumps(detail),
        ),
    )
    names = Names(world.settings.broker_namespace)
    async with two_parking_queues(world.settings) as (normal, _urgent):
        await park(names.parking(normal), doc)
        csrf = await operator_client(api, world.settings)
        page = await (await api.get(f"/ops/messages/{message_id}")).text()
        assert 'id="replay"' in page and f'href="/ops/parking/{normal}/{message_id}"' in page
        assert "Gave up delivering to THADS-HN after 2 attempts: HTTP 503; parked" in page
        form = {"csrf": csrf, "action": "replay", "reason": "inbox fixed"}
        done = await api.post(f"/ops/messages/{message_id}", data=form)
        html = await done.text()
        assert done.status == 200 and f"Replayed to {normal}." in html, html
        assert 'id="replay"' not in html  # replayed: no parked copy any more
        assert await queue_ids(normal) == [message_id]
        again = await api.post(f"/ops/messages/{message_id}", data=form)
        assert again.status == 409
    rows = await read(world, select(audit_log).where(audit_log.c.action == "ops.parking.replay"))
    assert [(r.actor, r.message_id, r.outcome, r.reason) for r in rows] == [
        ("olga", message_id, "done", "inbox fixed"),
        ("olga", message_id, "not_found", "inbox fixed"),  # the second press found nothing parked
    ]


async def test_the_partner_page_pulls_every_waiting_retry_forward(
    world: World, api: TestClient[Any, Any]
) -> None:
    """The partner is back: one press on its page delivers what waits for it, each document audited."""
    shutil.copy(ROOT / "config" / "partners.toml", world.settings.config_dir / "partners.toml")
    docs = [await push_judgment(api, world) for _ in range(3)]
    ids = [d["message_id"] for d in docs]
    await write(world, update(messages).where(messages.c.message_id.in_(ids)).values(recipient="BANK-VCB"))
    for message_id in ids[:2]:
        await fail_first_attempt(world, message_id)  # the third waits without a retry scheduled
    csrf = await operator_client(api, world.settings)
    page = await (await api.get("/ops/partners/BANK-VCB")).text()
    assert 'id="retry-waiting-now"' in page

    url = "/ops/partners/BANK-VCB/retry-now"
    assert (await api.post(url, data={"csrf": csrf})).status == 400  # no reason
    assert (await api.post(url, data={"reason": "bank back"})).status == 403  # no CSRF
    done = await api.post(url, data={"csrf": csrf, "reason": "bank back"}, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"].endswith("/ops/partners/BANK-VCB?done=retry_now")
    rows = await read(world, select(outbox.c.message_id, outbox.c.headers))
    pulled = sorted(r.message_id for r in rows if retries.RETRY_NOW_HEADER in json.loads(r.headers))
    assert pulled == sorted(ids[:2])
    audited = [(r.action, r.message_id, r.reason) for r in await ops_audit(world)]
    assert sorted(audited) == sorted(("ops.message.retry_now", m, "bank back") for m in ids[:2])

    again = await api.post(url, data={"csrf": csrf, "reason": "twice"})
    assert again.status == 409 and "No retry was waiting" in await again.text()

    add_operator(world.settings, "ann", "auditor")
    auditor_csrf = await sign_in(api, "ann")
    assert 'id="retry-waiting-now"' not in await (await api.get("/ops/partners/BANK-VCB")).text()
    refused = await api.post(url, data={"csrf": auditor_csrf, "reason": "x"})
    assert refused.status == 403
