"""Signing operators in to the console at /ops from tests (aiohttp test client or a browser)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aiohttp.test_utils import TestClient

from gateway.amqp import topology
from gateway.amqp.names import Names
from gateway.ops import operators
from gateway.settings import Settings
from gateway.storage.database import Database
from tests.conftest import World, fresh_judgment

BROKER = "amqp://guest:guest@127.0.0.1:5672/"

#: Test accounts only: the gateway has no default account or password.
TEST_PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def add_operator(
    settings: Settings,
    username: str = "olga",
    role: operators.Role = "operator",
    password: str = TEST_PASSWORD,
) -> tuple[str, str]:
    """Write an account into the installation's operators file; returns (username, password)."""
    operators.add(settings.path(settings.ops.operators_file), username, role, password)
    return username, password


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "no csrf field on the page"
    return match.group(1)


async def sign_in(
    client: TestClient[Any, Any], username: str, password: str = TEST_PASSWORD, expect: int = 200
) -> str:
    """Sign in through the form, as a browser does; returns the session's CSRF token (the page after
    sign-in carries it). ``expect`` is the final status (401 for a refused sign-in)."""
    page = await client.get("/ops/login")
    assert page.status == 200
    resp = await client.post(
        "/ops/login",
        data={
            "csrf": csrf_of(await page.text()),
            "username": username,
            "password": password,
            "next": "/ops/",
        },
    )
    body = await resp.text()
    assert resp.status == expect, body[:2000]
    return csrf_of(body) if resp.status == 200 else ""


async def operator_client(
    client: TestClient[Any, Any],
    settings: Settings,
    username: str = "olga",
    role: operators.Role = "operator",
) -> str:
    """Create the account and sign it in on ``client``; returns the CSRF token for its forms."""
    add_operator(settings, username, role)
    return await sign_in(client, username)


@asynccontextmanager
async def recipient_parking(
    settings: Settings, recipient: str = "THADS-HN"
) -> AsyncIterator[tuple[str, str]]:
    """The recipient's delivery queue and its parking queue on the real broker, as the worker declares
    them; both deleted afterwards. Yields (queue, parking queue)."""
    names = Names(settings.broker_namespace)
    queue = names.deliver(recipient)
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        await topology.declare_exchanges(channel, names)
        await topology.declare_queue_with_parking(channel, names, queue, delivery_limit=3)
        try:
            yield queue, names.parking(queue)
        finally:
            ch = await connection.channel()
            await ch.queue_delete(queue)
            await ch.queue_delete(names.parking(queue))
            for exchange in names.exchanges:
                await ch.exchange_delete(exchange)


async def park(parking_queue: str, document: dict[str, Any], reason: str = "rejected") -> None:
    """Put a copy of ``document`` in a parking queue as the broker dead-letters it."""
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(document).encode(),
                message_id=document["message_id"],
                type=document["message_type"],
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={
                    "sender": document["sender"],
                    "recipient": document["recipient"],
                    "x-delivery-attempt": 7,
                    "x-first-death-reason": reason,
                },
            ),
            routing_key=parking_queue,
        )


async def queue_ids(queue: str) -> list[str]:
    """Message ids waiting in ``queue``, taken off it (for queues a test owns)."""
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        q = await channel.declare_queue(queue, passive=True)
        out = []
        while (message := await q.get(fail=False, no_ack=True)) is not None:
            out.append(message.message_id or "")
        return out


async def depth_of(queue: str) -> int:
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def push_judgment(api: TestClient[Any, Any], world: World, **changes: Any) -> dict[str, Any]:
    """A fresh judgment pushed by the world's court (``changes`` to its envelope); 202 expected."""
    doc = fresh_judgment()
    doc.update(changes)
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    return doc


async def write(world: World, *statements: Any) -> None:
    """``statements`` in one transaction of the world's database (how a test sets a scene)."""
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.transaction() as conn:
            for statement in statements:
                await conn.execute(statement)
    finally:
        await db.dispose()


async def read(world: World, statement: Any) -> list[Any]:
    """The rows ``statement`` selects from the world's database."""
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            return list(await conn.execute(statement))
    finally:
        await db.dispose()
