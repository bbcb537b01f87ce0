"""Run the gateway's real processes (``run.py api`` / ``run.py worker``) for outage and load tests,
and a case system that consumes its queue the way a real one would (de-duplicating, counting)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage

from tests.conftest import ROOT, World

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


#: Ports handed out for servers a test starts later. Below the kernel's ephemeral range (32768-60999 on
#: Linux): a port from ``bind(0)`` comes from that range, and between picking it and the server binding it
#: an outgoing connection (to the broker, a simulator) may be given it — a rare "address in use".
#: Handed out in turn from a random start, so two calls never give the same port until the whole range
#: has gone round.
_PORTS = range(20000, 32000)
_RESERVED = {25672}  # RabbitMQ's inter-node port
_start = random.choice(_PORTS)
_next_port = itertools.cycle(itertools.chain(range(_start, _PORTS.stop), range(_PORTS.start, _start)))


def free_port() -> int:
    """A loopback port nothing listens on now, outside the range outgoing connections are given."""
    for _ in range(200):
        port = next(_next_port)
        if port in _RESERVED:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS}")


@dataclass
class GatewayProcesses:
    world: World
    logs: Path
    broker_url: str = BROKER
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        s = self.world.settings
        return {
            **os.environ,
            "GATEWAY_CONFIG_DIR": str(s.config_dir),
            "GATEWAY_DATABASE_URL": s.database_url,
            "GATEWAY_BROKER_URL": self.broker_url,
            "GATEWAY_BROKER_NAMESPACE": s.broker_namespace,
            "GATEWAY_API__PORT": str(self.port),
            "GATEWAY_WORKER__METRICS_PORT": "0",
            "GATEWAY_API__PUBLIC_URL": self.url,
            "GATEWAY_LOG_LEVEL": "WARNING",
        }

    def start(self, role: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{role}.log").open("ab") as out:
            self.procs[role] = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), role], env=self.env(), cwd=ROOT, stdout=out, stderr=out
            )

    def kill(self, role: str) -> None:
        """SIGKILL: no cleanup, no acks, no goodbye to the broker."""
        proc = self.procs.pop(role)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs.clear()

    async def wait_api(self, timeout: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                assert self.procs["api"].poll() is None, (self.logs / "api.log").read_text()
                try:
                    async with http.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError("api did not start")


class CaseSystemQueue:
    """Consumes the case system's queue; acks after recording; counts every copy it sees."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.seen: collections.Counter[str] = collections.Counter()
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None

    async def connect(self) -> aio_pika.abc.AbstractRobustConnection:
        return await aio_pika.connect_robust(BROKER)

    async def start(self, timeout: float = 30) -> None:
        self._conn = await self.connect()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            channel = await self._conn.channel()
            try:
                await channel.set_qos(prefetch_count=200)
                queue = await channel.declare_queue(self.queue, passive=True)
                break
            except aio_pika.exceptions.ChannelClosed:
                assert asyncio.get_running_loop().time() < deadline, "case queue never declared"
                await asyncio.sleep(0.2)
        await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.seen[message.message_id or ""] += 1
        await message.ack()

    async def wait_for(self, ids: set[str], timeout: float = 120) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not ids <= set(self.seen):
            missing = len(ids - set(self.seen))
            assert asyncio.get_running_loop().time() < deadline, f"{missing} documents never arrived"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let stray duplicates, if any, arrive before counting

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


async def queue_exists(name: str) -> bool:
    """Whether the broker has a queue of that name (a passive declaration)."""
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True


async def take_messages(
    queue_name: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
) -> list[dict[str, Any]]:
    """The JSON messages of a queue, taken and acked until ``done`` says enough; then nothing more may
    come for half a second."""
    got: list[dict[str, Any]] = []
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while not done(got):
            message = await queue.get(fail=False)
            if message is None:
                assert asyncio.get_running_loop().time() < deadline, got
                await asyncio.sleep(0.1)
                continue
            got.append(json.loads(message.body))
            await message.ack()
        await asyncio.sleep(0.5)  # nothing more may come
        assert await queue.get(fail=False) is None
    return got


async def delete_topology(world: World, extra_queues: list[str] | None = None) -> None:
    from gateway.amqp.names import Names
    from gateway.domain.registry import partner_kinds_receiving_documents
    from gateway.partners import load_partners

    names = Names(world.settings.broker_namespace)
    delays = [int(s * 1000) for s in world.settings.delivery.retry_delays_seconds]
    kinds = partner_kinds_receiving_documents()
    partners = load_partners(world.settings.config_dir)
    # Every partner with work has a work queue and urgent lane: lookup sources and document recipients.
    recipients = ["THADS-HN"] + [p.code for p in partners if p.kind in kinds or p.is_lookup_source]
    conn = await aio_pika.connect(BROKER)
    async with conn:
        ch = await conn.channel()
        every_worker = [names.callbacks_queue]  # declared even with no partners
        queues = [world.case_queue, *every_worker, *(extra_queues or [])]
        queues += [names.parking(q) for q in every_worker]
        queues += [q for r in recipients for q in names.recipient_queues(r)]
        queues += [names.retry(d) for d in delays]
        queues += [names.parking(world.case_queue)]
        for q in queues:
            await ch.queue_delete(q)
        retry_exchanges = [names.retry(d) for d in delays]
        for exchange in (*names.exchanges, *retry_exchanges):
            await ch.exchange_delete(exchange)
