"""The ``worker`` process: outbox relay + delivery consumers (stateless; run as many as you like)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from gateway.amqp import topology
from gateway.amqp.broker import Publisher, connect
from gateway.amqp.names import Names
from gateway.security.clients import Client, ClientStore
from gateway.security.signing import Signer
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.worker.delivery import Deliverer
from gateway.worker.relay import Relay

log = logging.getLogger(__name__)
RESCAN_SECONDS = 5.0


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = Names(settings.broker_namespace)
        self._consuming: dict[str, str] = {}  # client id -> delivery target it is consumed for

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        db = Database(settings.resolved_database_url)
        await upgrade(db.url)
        clients = ClientStore(settings.clients_dir)
        signer = Signer.from_file(settings.path(settings.signing.private_key_file))
        # The relay must keep accepting work while the broker is down, so it starts before we connect.
        publish_conn = await connect(settings.broker_url, "gateway-worker-publish")
        consume_conn = await connect(settings.broker_url, "gateway-worker-consume")
        publisher = Publisher(publish_conn)
        async with aiohttp.ClientSession() as http:
            deliverer = Deliverer(db, publisher, self.names, signer, http, settings.delivery)
            relay = Relay(db, publisher, self.names, settings.relay)
            channel = await consume_conn.channel()
            await channel.set_qos(prefetch_count=settings.delivery.prefetch)
            await topology.declare_exchanges(channel, self.names)
            tasks = [asyncio.create_task(relay.run(), name="relay")]
            tasks.append(asyncio.create_task(self._rescan(channel, clients, deliverer), name="rescan"))
            log.info("worker running")
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await consume_conn.close()
                await publish_conn.close()
                await db.dispose()

    async def _rescan(self, channel: AbstractChannel, clients: ClientStore, deliverer: Deliverer) -> None:
        """Start consuming for every recipient, including ones added while we run."""
        while True:
            try:
                for client in clients.all():
                    await self._ensure_consumer(channel, clients, client, deliverer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recipient scan failed; retrying")
            await asyncio.sleep(RESCAN_SECONDS)

    async def _ensure_consumer(
        self, channel: AbstractChannel, clients: ClientStore, client: Client, deliverer: Deliverer
    ) -> None:
        if client.deliver_to is None or client.revoked:
            return
        target = str(client.deliver_to)
        if self._consuming.get(client.id) == target:
            return
        d = self.settings.delivery
        queue = await topology.declare_recipient(
            channel,
            self.names,
            client.id,
            d.delivery_limit,
            [int(s * 1000) for s in d.retry_delays_seconds],
            client.deliver_to.target if client.deliver_to.kind == "amqp" else None,
        )
        if client.id not in self._consuming:

            async def on_message(message: AbstractIncomingMessage, client_id: str = client.id) -> None:
                # Looked up per message: a changed delivery target applies at once.
                current = clients.get(client_id)
                if current is None or current.deliver_to is None:
                    await message.nack(requeue=True)
                    await asyncio.sleep(1)
                    return
                await deliverer.handle(current, message)

            await queue.consume(on_message)
        self._consuming[client.id] = target
        log.info("delivering to %s via %s", client.id, target)


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await Worker(settings).run(stop)
