"""Promise: blocking orders sent through the real api and worker processes reach every bank and are
executed exactly once, and every order's one report reaches the case system, although the worker is
SIGKILLed twice while it delivers — with the banks called directly, and again with every bank behind a
simulated LGSP. The asynchronous bank (BANK-TCB) answers later by pushing its report to POST
/v1/documents; no bank is silent here.

Copies of one report the broker hands out again (same message_id) are counted; like the other chaos
tests, a copy seen twice is acceptable only where the gateway recorded the repeat (``redelivered``). A
second report *document* for an order is never acceptable."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import func, select

from gateway.amqp.parking import depth
from gateway.storage.database import Database
from gateway.storage.tables import evidences, messages, outbox
from tests.support import orders
from tests.support.gateway_procs import BROKER, CaseSystemQueue, GatewayProcesses
from tests.support.lookup_world import LookupWorld, lookup_processes

pytestmark = [pytest.mark.rabbitmq, pytest.mark.chaos]

N = 300
BANKS = ("BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-AGR", "BANK-TCB")
KILLS_AT = (N // 5, N // 2)  # bank executions after which the worker is SIGKILLed
SETTLE_SECONDS = 150


class CaseSystem(CaseSystemQueue):
    """The case system's queue, recording what each copy is besides counting it."""

    def __init__(self, queue: str) -> None:
        super().__init__(queue)
        self.documents: dict[str, dict[str, Any]] = {}

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.documents.setdefault(message.message_id or "", json.loads(message.body))
        await super()._on_message(message)

    def reports_for(self) -> dict[str, set[str]]:
        """Order message_id -> the report message_ids that answered it."""
        out: dict[str, set[str]] = collections.defaultdict(set)
        for message_id, doc in self.documents.items():
            if doc["message_type"].startswith("report."):
                out[doc["in_reply_to"]].add(message_id)
        return out


@pytest.fixture(params=["direct", "platforms"])
async def gateway(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[LookupWorld, GatewayProcesses]]:
    """The banks called directly, then through a simulated LGSP (OAuth2 token, lgspaccesstoken): the
    worker killed mid-flight must lose nothing and execute nothing twice either way."""
    async with lookup_processes(tmp_path, transport=request.param) as started:
        yield started


@pytest.fixture
async def watch(gateway: tuple[LookupWorld, GatewayProcesses]) -> AsyncIterator[PurgeWatch]:
    async with PurgeWatch(gateway[0]) as watching:
        yield watching


def order_plan() -> list[dict[str, Any]]:
    """N blocking orders, the banks taking turns; each on a decision of its own."""
    plan = []
    for i in range(N):
        document = orders.blocking(BANKS[i % len(BANKS)], 1_000_000 * (i + 1))
        decision = document["body"]["decision"]
        document["body"]["decision"] = dict(decision, number=f"{i + 1}/QĐ-CCTHADS-CHAOS")
        plan.append(document)
    return plan


class CaseSystemClient:
    """The case system's HTTP side: waits out 429s as a real client does, and counts them."""

    def __init__(self, lw: LookupWorld, procs: GatewayProcesses, http: aiohttp.ClientSession) -> None:
        self.headers = lw.world.case_headers  # a fresh token for every request: tokens are single-use
        self.url = procs.url
        self.http = http
        self.throttled = 0

    async def call(self, send: Callable[[], Any], ok: int) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            async with send() as resp:
                body: dict[str, Any] = await resp.json()
                if resp.status != 429:
                    assert resp.status == ok, (resp.status, body)
                    return body
                self.throttled += 1
                wait = float(resp.headers.get("Retry-After", "1"))
            assert asyncio.get_running_loop().time() < deadline, "throttled for a minute"
            await asyncio.sleep(min(max(wait, 0.1), 2.0))

    async def send(self, document: dict[str, Any]) -> None:
        url = f"{self.url}/v1/documents"
        await self.call(lambda: self.http.post(url, json=document, headers=self.headers()), 202)

    async def view(self, message_id: str) -> dict[str, Any]:
        url = f"{self.url}/v1/messages/{message_id}"
        return await self.call(lambda: self.http.get(url, headers=self.headers()), 200)


async def executions(lw: LookupWorld, http: aiohttp.ClientSession) -> dict[str, dict[str, int]]:
    """Per bank: message_id -> times the bank executed it."""
    out = {}
    for bank in BANKS:
        async with http.get(f"{lw.partners.urls[bank]}/_sim/orders") as resp:
            assert resp.status == 200
            out[bank] = await resp.json()
    return out


async def kill_after(
    procs: GatewayProcesses, executed: Callable[[], Awaitable[int]], threshold: int, timeout: float = 60
) -> int:
    """SIGKILL the worker once the banks executed ``threshold`` orders, start it again; the count then."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (done := await executed()) < threshold:
        assert asyncio.get_running_loop().time() < deadline, f"only {done} orders executed"
        await asyncio.sleep(0.02)
    procs.kill("worker")
    at_kill = await executed()
    procs.start("worker")
    return at_kill


@dataclass
class Books:
    statuses: collections.Counter[str]
    outbox: int
    reports_stored: int  # report documents in the gateway, one per order
    reports_delivered: int  # of them, handed to the case system's queue
    redelivered: set[str]  # message_ids with a ``redelivered`` evidence
    suppressed: int  # ``duplicate_suppressed`` evidences: copies not passed on again
    pushes_again: int  # ``duplicate_push`` evidences: a report pushed or rebuilt again


async def read_books(lw: LookupWorld) -> Books:
    db = Database(lw.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            orders_ = select(messages.c.status).where(messages.c.message_type.like("order.%"))
            statuses = collections.Counter((await conn.execute(orders_)).scalars())
            left = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
            reports = select(messages.c.status).where(messages.c.message_type.like("report.%"))
            report_statuses = collections.Counter((await conn.execute(reports)).scalars())
            events = await conn.execute(
                select(evidences.c.event, evidences.c.message_id).where(
                    evidences.c.event.in_(["redelivered", "duplicate_suppressed", "duplicate_push"])
                )
            )
            by_event: dict[str, list[str]] = collections.defaultdict(list)
            for event, message_id in events:
                by_event[event].append(message_id)
    finally:
        await db.dispose()
    return Books(
        statuses=statuses,
        outbox=int(left),
        reports_stored=sum(report_statuses.values()),
        reports_delivered=report_statuses["delivered"],
        redelivered=set(by_event["redelivered"]),
        suppressed=len(by_event["duplicate_suppressed"]),
        pushes_again=len(by_event["duplicate_push"]),
    )


async def settle(lw: LookupWorld, case_system: CaseSystem, order_ids: set[str], watch: PurgeWatch) -> Books:
    """Until every order is answered, its report is on the case system's queue and recorded as
    delivered there, and the outbox is empty."""
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        books = await read_books(lw)
        done = (
            books.statuses == {"answered": N}
            and books.outbox == 0
            and books.reports_delivered == books.reports_stored
            and order_ids <= set(case_system.reports_for())
        )
        if done:
            await asyncio.sleep(1.5)  # stray copies, if any, arrive before counting
            return await read_books(lw)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"not settled after {SETTLE_SECONDS}s: orders {dict(books.statuses)}, outbox {books.outbox}, "
                f"reports {books.reports_delivered}/{books.reports_stored} delivered, "
                f"{len(order_ids - set(case_system.reports_for()))} orders without a report on the queue"
                + await watch.explain()
            )
        await asyncio.sleep(0.5)


class PurgeWatch:
    """An idle queue in this installation's namespace: if it disappears, something deleted this test's
    queues under it (e.g. a clean-up of idle test queues started by another test session while the
    worker was down), and messages in them are gone with them."""

    def __init__(self, lw: LookupWorld) -> None:
        self.queue = f"{lw.settings.broker_namespace}.purge-watch"

    async def __aenter__(self) -> PurgeWatch:
        connection = await aio_pika.connect(BROKER)
        async with connection:
            await (await connection.channel()).declare_queue(self.queue, durable=False)
        return self

    async def __aexit__(self, *_: object) -> None:
        connection = await aio_pika.connect(BROKER)
        async with connection:
            await (await connection.channel()).queue_delete(self.queue)

    async def explain(self) -> str:
        connection = await aio_pika.connect_robust(BROKER)
        async with connection:
            gone = await depth(connection, self.queue) is None
        return "; this test's queues were deleted under it by someone else" if gone else ""


@pytest.mark.timeout(280)
async def test_orders_to_every_bank_survive_two_worker_kills(
    gateway: tuple[LookupWorld, GatewayProcesses], watch: PurgeWatch
) -> None:
    lw, procs = gateway
    plan = order_plan()
    order_ids = {d["message_id"] for d in plan}
    by_bank = {bank: {d["message_id"] for d in plan if d["recipient"] == bank} for bank in BANKS}
    case_system = CaseSystem(lw.world.case_queue)
    await case_system.start()
    started = asyncio.get_running_loop().time()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as http:
        client = CaseSystemClient(lw, procs, http)

        async def executed() -> int:
            return sum(len(counts) for counts in (await executions(lw, http)).values())

        sending = asyncio.gather(*(client.send(d) for d in plan))
        try:
            kills = [await kill_after(procs, executed, KILLS_AT[0])]
            kills.append(await kill_after(procs, executed, max(KILLS_AT[1], kills[0] + 1)))
            await asyncio.wait_for(sending, 120)
            books = await settle(lw, case_system, order_ids, watch)
            views = await asyncio.gather(*(client.view(m) for m in order_ids))
            executed_by_bank = await executions(lw, http)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            await case_system.close()

    reports = case_system.reports_for()
    report_ids = {r for ids in reports.values() for r in ids}
    copies_seen_twice = {m for m, n in case_system.seen.items() if n > 1}
    print(
        f"\nbooks after {asyncio.get_running_loop().time() - started:.1f}s:"
        f"\n  orders sent            {len(plan)} (HTTP 429 waited out: {client.throttled})"
        f"\n  worker SIGKILLed after {kills[0]} and {kills[1]} bank executions"
        + "".join(
            f"\n  executed by {bank:<10} {len(executed_by_bank[bank])} orders,"
            f" {sum(executed_by_bank[bank].values())} executions"
            for bank in BANKS
        )
        + f"\n  orders                 {dict(books.statuses)}"
        f"\n  reports received       {len(report_ids)} documents for {len(reports)} orders,"
        f" {sum(case_system.seen[r] for r in report_ids)} AMQP copies"
        f"\n  reports seen twice     {len(copies_seen_twice)} (redelivered copies, same message_id)"
        f"\n  redelivered evidences  {len(books.redelivered & order_ids)} orders,"
        f" {len(books.redelivered & report_ids)} reports"
        f"\n  duplicates suppressed  {books.suppressed}; reports pushed/rebuilt again {books.pushes_again}"
        f"\n  outbox left            {books.outbox}"
    )

    assert all(k < N for k in kills), f"a kill came after every order was executed: {kills}"
    assert {v["message_id"]: v["status"] for v in views} == dict.fromkeys(order_ids, "answered")
    assert all(len(v["replies"]) == 1 for v in views), [v for v in views if len(v["replies"]) != 1]
    # Every bank executed each of its orders exactly once, and nothing else.
    for bank in BANKS:
        assert executed_by_bank[bank] == dict.fromkeys(by_bank[bank], 1), bank
    # One report document per order, none for anything else, and no second report for any order.
    assert set(reports) == order_ids
    assert {o: len(ids) for o, ids in reports.items() if len(ids) != 1} == {}
    assert books.reports_stored == N
    replies = {v["replies"][0]["message_id"] for v in views}
    assert report_ids == replies
    assert {case_system.documents[r]["sender"] for r in report_ids} == set(BANKS)
    others = [d["message_type"] for m, d in case_system.documents.items() if m not in report_ids]
    assert others == [], collections.Counter(others)
    # A copy of one report seen twice only where the gateway counted the repeat.
    assert copies_seen_twice <= books.redelivered, copies_seen_twice - books.redelivered
    assert len(copies_seen_twice) <= lw.settings.delivery.prefetch * len(kills)
    assert books.outbox == 0
