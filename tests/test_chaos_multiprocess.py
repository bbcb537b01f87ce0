"""Promise: several api and worker processes against one broker and one database do no work twice and
lose nothing, while any one of them is SIGKILLed now and then and started again.

Two ``run.py api`` processes (one database, one broker namespace, one config dir) take a mixed load
spread over both: judgments a court pushes for the case system, blocking orders the case system sends
to the banks, and asset lookups. Three ``run.py worker`` processes share the queues, and the singletons
among their tasks (outbox relay, deadline watcher, event relay) coordinate through the database. A
seeded random process (api or worker) is SIGKILLed several times during the load and restarted; the
clients resend the same message (same message_id or Idempotency-Key) when a connection breaks, and
move to the other api.

Then the books: every accepted judgment reaches the case system's queue (a copy seen twice only where
the gateway recorded and marked the repeat), every order is executed exactly once by its bank and
answered by exactly one report, every lookup is complete with one recorded answer per source, both
outboxes are empty, and no document waits in a status the gateway still owes work on."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import func, select

from gateway.amqp.names import Names
from gateway.storage.database import Database
from gateway.storage.tables import (
    audit_log,
    event_outbox,
    evidences,
    inquiries,
    inquiry_sources,
    messages,
    outbox,
)
from tests.conftest import fresh_judgment
from tests.support import orders
from tests.support.databases import scratch_database
from tests.support.gateway_procs import BROKER, GatewayProcesses
from tests.support.lookup_world import LookupWorld, delete_lookup_topology, make_lookup_world
from tests.test_asset_inquiry_flow import inquiry
from tests.test_chaos_orders import CaseSystem, PurgeWatch, executions

pytestmark = [pytest.mark.rabbitmq, pytest.mark.chaos]

N_JUDGMENTS = 150
N_ORDERS = 60
N_LOOKUPS = 30
KILLS = 4
LOAD_SECONDS = 20.0  # the load is spread over this long, the kills fall inside it
SETTLE_SECONDS = 180
BANKS = ("BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-AGR", "BANK-TCB")
LOOKUP_IDS = ["001085012345", "001090000000", "001079000001"]
# Statuses in which the gateway itself still owes work (a delivery, a retry): none may be left.
STUCK = {"received", "queued", "overdue", "failed"}
# What each kind of document settles in: judgments wait for the case system's confirmation, orders
# were answered by the bank, reports were handed to the case system.
SETTLED = {"judgment": "delivered", "order": "answered", "report": "delivered"}


def kind_of(message_type: str) -> str:
    return message_type.split(".")[0]


class Fleet:
    """Two api processes and three workers of one installation, each restartable by name."""

    def __init__(self, lw: LookupWorld, logs: Path) -> None:
        world = lw.world
        self.members: dict[str, tuple[str, GatewayProcesses]] = {
            "api-1": ("api", GatewayProcesses(world, logs / "api-1", port=lw.api_port)),
            "api-2": ("api", GatewayProcesses(world, logs / "api-2")),
        }
        for i in (1, 2, 3):
            # A worker's api settings are unused; public_url stays the first api's.
            procs = GatewayProcesses(world, logs / f"worker-{i}", port=lw.api_port)
            self.members[f"worker-{i}"] = ("worker", procs)

    @property
    def api_urls(self) -> list[str]:
        return [procs.url for role, procs in self.members.values() if role == "api"]

    async def start(self) -> None:
        # The first api migrates the empty database alone; the others find it migrated.
        await self._start("api-1")
        for name in self.members:
            if name != "api-1":
                self.members[name][1].start(self.members[name][0])
        await self.members["api-2"][1].wait_api(60)

    async def _start(self, name: str) -> None:
        role, procs = self.members[name]
        procs.start(role)
        if role == "api":
            await procs.wait_api(60)

    async def kill_and_restart(self, name: str) -> None:
        role, procs = self.members[name]
        procs.kill(role)
        await self._start(name)

    def stop_all(self) -> None:
        for _role, procs in self.members.values():
            procs.stop_all()


class CaseQueue(CaseSystem):
    """The case system's queue, also counting the copies that say they may be a repeat."""

    def __init__(self, queue: str) -> None:
        super().__init__(queue)
        self.marked: collections.Counter[str] = collections.Counter()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if (message.headers or {}).get("redelivered"):
            self.marked[message.message_id or ""] += 1
        await super()._on_message(message)

    def ids_of(self, kind: str) -> set[str]:
        return {m for m, d in self.documents.items() if kind_of(d["message_type"]) == kind}


class EventTap:
    """A queue of its own bound to every status event, counting each event_id's copies."""

    def __init__(self, lw: LookupWorld) -> None:
        names = Names(lw.settings.broker_namespace)
        self.exchange = names.events
        self.queue = f"{lw.settings.broker_namespace}.chaos-event-tap"
        self.seen: collections.Counter[str] = collections.Counter()
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._conn = await aio_pika.connect_robust(BROKER)
        channel = await self._conn.channel()
        exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(self.queue, durable=False)
        await queue.bind(exchange, "#")
        await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.seen[message.message_id or ""] += 1
        await message.ack()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


@dataclass
class Client:
    """A client over both apis: waits out 429/503, and on a broken connection resends the same
    request to the other api."""

    http: aiohttp.ClientSession
    urls: list[str]
    resends: int = 0
    throttled: int = 0

    async def post(
        self, start: int, path: str, body: dict[str, Any], headers: Any, ok: set[int]
    ) -> tuple[int, dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + 150
        turn = start
        while True:
            url = self.urls[turn % len(self.urls)]
            try:
                async with self.http.post(url + path, json=body, headers=headers()) as resp:
                    answer: dict[str, Any] = await resp.json(content_type=None)
                    if resp.status not in (429, 503):
                        assert resp.status in ok, (path, resp.status, answer)
                        return resp.status, answer
                    self.throttled += 1
                    wait = min(max(float(resp.headers.get("Retry-After", "1")), 0.1), 2.0)
            except (aiohttp.ClientError, TimeoutError):
                self.resends += 1
                turn += 1
                wait = 0.2
            assert asyncio.get_running_loop().time() < deadline, f"{path}: no answer for 150s"
            await asyncio.sleep(wait)


@dataclass
class Load:
    judgments: dict[str, int] = field(default_factory=dict)  # message_id -> final HTTP status
    orders: dict[str, str] = field(default_factory=dict)  # message_id -> bank
    order_statuses: dict[str, int] = field(default_factory=dict)
    lookups: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))


def order_document(i: int) -> dict[str, Any]:
    document = orders.blocking(BANKS[i % len(BANKS)], 1_000_000 * (i + 1))
    decision = document["body"]["decision"]
    document["body"]["decision"] = dict(decision, number=f"{i + 1}/QĐ-CCTHADS-MP{uuid.uuid4().hex[:6]}")
    return document


async def run_load(lw: LookupWorld, client: Client, rng: random.Random) -> Load:
    load = Load()
    items = (
        [("judgment", i) for i in range(N_JUDGMENTS)]
        + [("order", i) for i in range(N_ORDERS)]
        + [("lookup", i) for i in range(N_LOOKUPS)]
    )
    rng.shuffle(items)
    world = lw.world

    async def one(position: int, kind: str, i: int) -> None:
        await asyncio.sleep(position * LOAD_SECONDS / len(items))
        if kind == "judgment":
            doc = fresh_judgment()
            status, _ = await client.post(position, "/v1/judgments", doc, world.court_headers, {200, 202})
            load.judgments[doc["message_id"]] = status
        elif kind == "order":
            doc = order_document(i)
            status, _ = await client.post(position, "/v1/documents", doc, world.case_headers, {200, 202})
            load.orders[doc["message_id"]] = doc["recipient"]
            load.order_statuses[doc["message_id"]] = status
        else:
            key = f"chaos-mp-{i}-{uuid.uuid4().hex[:12]}"
            body = inquiry(LOOKUP_IDS[i % len(LOOKUP_IDS)])

            def headers() -> dict[str, str]:
                return {**world.case_headers(), "Idempotency-Key": key}

            _, view = await client.post(position, "/v1/asset-inquiries", body, headers, {202})
            load.lookups[key].add(view["inquiry_id"])

    await asyncio.gather(*(one(p, kind, i) for p, (kind, i) in enumerate(items)))
    return load


async def chaos(fleet: Fleet, rng: random.Random, started: float) -> list[tuple[float, str]]:
    """SIGKILL a random member a few seconds apart during the load; start it again each time."""
    kills = []
    names = sorted(fleet.members)
    for k in range(KILLS):
        at = 2.5 + k * (LOAD_SECONDS - 4) / KILLS + rng.uniform(0, 1.5)
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        victim = rng.choice(names)
        kills.append((time.monotonic() - started, victim))
        await fleet.kill_and_restart(victim)
    return kills


@dataclass
class Books:
    statuses: collections.Counter[tuple[str, str]]  # (kind, status) -> documents
    outbox: int
    event_outbox: int
    redelivered: set[str]
    suppressed: int
    pushes_again: int
    inquiries: collections.Counter[str]
    sources: collections.Counter[str]
    answers_per_source: collections.Counter[tuple[str, str]]

    def count(self, kind: str, status: str | None = None) -> int:
        return sum(n for (k, s), n in self.statuses.items() if k == kind and status in (None, s))


async def read_books(lw: LookupWorld) -> Books:
    db = Database(lw.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(select(messages.c.message_type, messages.c.status))
            statuses = collections.Counter((kind_of(t), s) for t, s in rows)
            left = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
            events_left = (await conn.execute(select(func.count()).select_from(event_outbox))).scalar_one()
            marks = await conn.execute(
                select(evidences.c.event, evidences.c.message_id).where(
                    evidences.c.event.in_(["redelivered", "duplicate_suppressed", "duplicate_push"])
                )
            )
            by_event: dict[str, list[str]] = collections.defaultdict(list)
            for event, message_id in marks:
                by_event[event].append(message_id)
            inquiry_statuses = collections.Counter((await conn.execute(select(inquiries.c.status))).scalars())
            source_statuses = collections.Counter(
                (await conn.execute(select(inquiry_sources.c.status))).scalars()
            )
            results = await conn.execute(
                select(audit_log.c.data).where(audit_log.c.action == "assets.result")
            )
            answers = collections.Counter(
                (json.loads(r)["source"], json.loads(r)["request_sha256"]) for r in results.scalars()
            )
    finally:
        await db.dispose()
    return Books(
        statuses=statuses,
        outbox=int(left),
        event_outbox=int(events_left),
        redelivered=set(by_event["redelivered"]),
        suppressed=len(by_event["duplicate_suppressed"]),
        pushes_again=len(by_event["duplicate_push"]),
        inquiries=inquiry_statuses,
        sources=source_statuses,
        answers_per_source=answers,
    )


async def settle(
    lw: LookupWorld, load: Load, case_queue: CaseQueue, http: aiohttp.ClientSession, watch: PurgeWatch
) -> Books:
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while True:
        books = await read_books(lw)
        executed = sum(len(c) for c in (await executions(lw, http)).values())
        missing_judgments = set(load.judgments) - case_queue.ids_of("judgment")
        unanswered = set(load.orders) - set(case_queue.reports_for())
        open_ = {k: n for k, n in books.statuses.items() if k[1] != SETTLED.get(k[0])}
        done = (
            not missing_judgments
            and not unanswered
            and not open_
            and executed == len(load.orders)
            and books.count("report", "delivered") == len(load.orders)
            and books.outbox == 0
            and books.event_outbox == 0
            and set(books.inquiries) == {"complete"}
        )
        if done:
            await asyncio.sleep(2.0)  # stray copies, if any, arrive before counting
            return await read_books(lw)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"not settled after {SETTLE_SECONDS}s: {len(missing_judgments)} judgments not on the queue, "
                f"{len(unanswered)} orders without a report there, {executed}/{len(load.orders)} executed, "
                f"documents not settled {open_}, outbox {books.outbox}, event outbox {books.event_outbox}, "
                f"inquiries {dict(books.inquiries)}" + await watch.explain()
            )
        await asyncio.sleep(0.5)


@pytest.fixture
async def installation(tmp_path: Path) -> AsyncIterator[tuple[LookupWorld, Fleet]]:
    deadlines = dict.fromkeys(("land", "bank", "tax", "vehicle", "population"), "900s")
    with scratch_database(tmp_path) as database_url:
        lw = await make_lookup_world(tmp_path, database_url, callback_delay=1.0, deadlines=deadlines)
        fleet = Fleet(lw, tmp_path / "logs")
        try:
            await fleet.start()
            yield lw, fleet
        finally:
            fleet.stop_all()
            await lw.partners.close()
            names = Names(lw.settings.broker_namespace)
            await delete_lookup_topology(lw)
            conn = await aio_pika.connect(BROKER)
            async with conn:
                channel = await conn.channel()
                await channel.queue_delete(f"{names.ns}.chaos-event-tap")


@pytest.mark.timeout(330)
async def test_two_apis_three_workers_random_kills_no_duplicated_work(
    installation: tuple[LookupWorld, Fleet],
) -> None:
    lw, fleet = installation
    seed = int(os.environ.get("CHAOS_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)
    print(f"\nchaos seed {seed} (CHAOS_SEED={seed} repeats this run's choices)")
    rng = random.Random(seed)
    case_queue = CaseQueue(lw.world.case_queue)
    tap = EventTap(lw)
    started = time.monotonic()
    async with (
        PurgeWatch(lw) as watch,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=60), timeout=aiohttp.ClientTimeout(total=30)
        ) as http,
    ):
        await case_queue.start()
        await tap.start()
        client = Client(http, fleet.api_urls)
        loading = asyncio.ensure_future(run_load(lw, client, random.Random(rng.random())))
        try:
            kills = await chaos(fleet, rng, started)
            load = await asyncio.wait_for(loading, 200)
            books = await settle(lw, load, case_queue, http, watch)
            executed = await executions(lw, http)
        finally:
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await case_queue.close()
            await tap.close()

    judgments_seen = case_queue.ids_of("judgment")
    judgment_copies = sum(case_queue.seen[m] for m in judgments_seen)
    reports = case_queue.reports_for()
    report_ids = {r for ids in reports.values() for r in ids}
    twice = {m for m, n in case_queue.seen.items() if n > 1}
    per_order = collections.Counter(n for bank in BANKS for n in executed[bank].values())
    inquiry_ids = {i for ids in load.lookups.values() for i in ids}
    event_copies_twice = {e for e, n in tap.seen.items() if n > 1}
    print(
        f"\nbooks after {time.monotonic() - started:.1f}s (seed {seed}):"
        f"\n  kills                   "
        + ", ".join(f"{name} at {at:.1f}s" for at, name in kills)
        + f"\n  client resends          {client.resends} (broken connections); HTTP 429/503 waited out"
        f" {client.throttled}"
        f"\n  judgments accepted      {len(load.judgments)}"
        f" ({collections.Counter(load.judgments.values())[200]} answered as a duplicate of a resend)"
        f"\n  judgments delivered     {len(judgments_seen)} distinct, {judgment_copies} AMQP copies"
        f"\n  orders accepted         {len(load.orders)}"
        f" ({collections.Counter(load.order_statuses.values())[200]} as a duplicate of a resend)"
        f"\n  executions per order    {dict(sorted(per_order.items()))} (executions: orders)"
        + "".join(
            f"\n    {bank:<22}{len(executed[bank])} orders, {sum(executed[bank].values())} executions"
            for bank in BANKS
        )
        + f"\n  reports delivered       {len(report_ids)} documents for {len(reports)} orders,"
        f" {sum(case_queue.seen[r] for r in report_ids)} AMQP copies"
        f"\n  copies seen twice       {len(twice)} ({sum(case_queue.marked[m] for m in twice)} marked"
        f" redelivered; {len(twice & books.redelivered)} with a redelivered evidence)"
        f"\n  redelivered evidences   {len(books.redelivered)}; duplicates suppressed {books.suppressed};"
        f" pushes/reports again {books.pushes_again}"
        f"\n  lookups                 {len(load.lookups)} keys -> {len(inquiry_ids)} inquiries,"
        f" {dict(books.inquiries)}; sources {dict(books.sources)};"
        f" most answers recorded per source {max(books.answers_per_source.values(), default=0)}"
        f"\n  documents               {dict(sorted(books.statuses.items()))}"
        f"\n  outbox left             {books.outbox}; event outbox left {books.event_outbox}"
        f"\n  status events seen      {len(tap.seen)} distinct, {len(event_copies_twice)} seen twice"
    )

    assert len(kills) == KILLS
    # Judgments: every accepted one on the case system's queue, nothing stored that was not accepted.
    assert len(load.judgments) == N_JUDGMENTS
    assert judgments_seen == set(load.judgments)
    assert books.count("judgment") == N_JUDGMENTS
    # Orders: each executed exactly once by its own bank, answered by exactly one report.
    assert len(load.orders) == N_ORDERS
    for bank in BANKS:
        assert executed[bank] == dict.fromkeys({m for m, b in load.orders.items() if b == bank}, 1), bank
    assert set(reports) == set(load.orders)
    assert {o: ids for o, ids in reports.items() if len(ids) != 1} == {}
    assert books.count("order") == N_ORDERS and books.count("report") == N_ORDERS
    others = [
        d["message_type"] for m, d in case_queue.documents.items() if m not in report_ids | judgments_seen
    ]
    assert others == [], collections.Counter(others)
    # A copy seen twice only where the gateway recorded the repeat and the copy said so.
    assert twice <= books.redelivered, twice - books.redelivered
    unmarked = {m: case_queue.seen[m] for m in twice if case_queue.marked[m] < case_queue.seen[m] - 1}
    assert unmarked == {}, unmarked
    # Lookups: one inquiry per Idempotency-Key, whichever api took the resend; each complete, with one
    # recorded answer per source asked.
    assert all(len(ids) == 1 for ids in load.lookups.values()), load.lookups
    assert len(inquiry_ids) == N_LOOKUPS
    assert books.inquiries == {"complete": N_LOOKUPS}
    assert set(books.sources) <= {"found", "not_found"}
    n_sources = sum(books.sources.values())
    assert len(books.answers_per_source) == n_sources and max(books.answers_per_source.values()) == 1
    # Status events may be published twice only by a relay that died between the broker's confirm and
    # the delete (subscribers de-duplicate on event_id): never when no worker was killed.
    if not any(name.startswith("worker") for _at, name in kills):
        assert event_copies_twice == set()
    # Nothing left to do, nothing stuck.
    assert books.outbox == 0 and books.event_outbox == 0
    assert not {k: n for k, n in books.statuses.items() if k[1] in STUCK}
    assert {k: n for k, n in books.statuses.items() if k[1] != SETTLED.get(k[0])} == {}
