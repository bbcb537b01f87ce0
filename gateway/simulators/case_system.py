"""The enforcement case system's side: consumes its queue, opens a case, confirms processing.

It de-duplicates on ``message_id`` like any real consumer must, and counts what it saw twice.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from gateway.security.keys import load_private_key
from gateway.security.tokens import issue_token

log = logging.getLogger(__name__)


class CaseSystemSimulator:
    def __init__(
        self, gateway_url: str, client_id: str, queue: str, key_file: Path, audience: str, broker_url: str
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.client_id = client_id
        self.queue = queue
        self._key = load_private_key(key_file.read_bytes())
        self._audience = audience
        self._broker_url = broker_url
        self.received: dict[str, int] = {}
        self._next_case = 1

    async def run(self) -> None:
        connection = await aio_pika.connect_robust(self._broker_url)
        async with connection, aiohttp.ClientSession() as http:
            queue = await self._wait_for_queue(connection)

            async def on_message(message: AbstractIncomingMessage) -> None:
                async with message.process(requeue=True):
                    await self._handle(http, message)

            await queue.consume(on_message)
            await asyncio.Future()  # until cancelled

    async def _wait_for_queue(self, connection: aio_pika.abc.AbstractRobustConnection) -> AbstractQueue:
        """Wait until the gateway has declared the queue (a failed passive declare closes the channel)."""
        while True:
            channel = await connection.channel()
            try:
                await channel.set_qos(prefetch_count=20)
                return await channel.declare_queue(self.queue, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                await asyncio.sleep(1)

    async def _handle(self, http: aiohttp.ClientSession, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        self.received[message_id] = self.received.get(message_id, 0) + 1
        if self.received[message_id] > 1:
            log.info("case system: %s seen again, ignored", message_id)
            return
        kind = message.type or ""
        if kind.startswith("event."):
            log.info("case system: %s %s noted", kind, message_id)  # events are not confirmed
            return
        if kind == "judgment.delivery":
            confirmation = {"case_ref": f"THA-HN-2026-{self._next_case:06d}", "note": "Đã thụ lý"}
            self._next_case += 1
        else:
            confirmation = {"note": "Đã nhận báo cáo"}  # a report: filed with its case
        token = issue_token(self.client_id, self._key, self._audience, ttl=300)
        async with http.post(
            f"{self.gateway_url}/v1/messages/{message_id}/confirmation",
            json=confirmation,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            log.info("case system: %s %s confirmed (HTTP %s)", kind, message_id, resp.status)
