"""The enforcement case system's side: consumes its queue, opens a case, confirms processing, and
answers the procuracy's papers (recommendation, protest, file request) with a ``procuracy.answer``.

It de-duplicates on ``message_id`` like any real consumer must, and counts what it saw twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from gateway.amqp.broker import connect
from gateway.amqp.consume import callback
from gateway.simulators.gateway_client import GatewayClient, local_now

log = logging.getLogger(__name__)

#: Papers the office answers with a ``procuracy.answer`` (not a confirmation), and how.
PROCURACY_PAPERS = {
    "procuracy.recommendation": ("accepted", "Tiếp thu kiến nghị; đã xác minh lại điều kiện thi hành án"),
    "procuracy.protest": ("accepted", "Đã xem xét kháng nghị; thu hồi quyết định bị kháng nghị"),
    "procuracy.file_request": ("files_sent", "Gửi kèm hồ sơ thi hành án theo yêu cầu"),
}


class CaseSystemSimulator:
    def __init__(
        self, gateway_url: str, client_id: str, queue: str, key_file: Path, audience: str, broker_url: str
    ) -> None:
        self.gateway = GatewayClient(gateway_url, client_id, key_file, audience)
        self.queue = queue
        self._broker_url = broker_url
        self.received: dict[str, int] = {}
        self._next_case = 1

    async def run(self) -> None:
        # The gateway's own connect: a cluster's node list (broker_url) fails over like the worker.
        connection = await connect(self._broker_url, "case-system-simulator")
        async with connection, aiohttp.ClientSession() as http:
            queue = await self._wait_for_queue(connection)

            async def on_message(message: AbstractIncomingMessage) -> None:
                await self._handle(http, message)

            # Like the gateway's consumers: acked once handled, handed back after a back-off if not.
            await queue.consume(callback(on_message, queue=self.queue))
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
        if kind in PROCURACY_PAPERS:
            status = await self.gateway.send(
                http, self._answer(json.loads(message.body), *PROCURACY_PAPERS[kind])
            )
            log.info("case system: %s %s answered (HTTP %s)", kind, message_id, status)
            return
        if kind == "judgment.delivery":
            case_ref: str | None = f"THA-HN-2026-{self._next_case:06d}"
            note = "Đã thụ lý"
            self._next_case += 1
        else:
            case_ref, note = None, "Đã nhận báo cáo"  # a report or an answer: filed with its case
        # The gateway may not have recorded the delivery yet (409): confirm() tries again for a while.
        status = await self.gateway.confirm(http, message_id, note, case_ref=case_ref)
        log.info("case system: %s %s confirmed (HTTP %s)", kind, message_id, status)

    def _answer(self, paper: dict[str, Any], outcome: str, content: str) -> dict[str, Any]:
        today = local_now()
        answer: dict[str, Any] = {
            # Derived from the paper: a redelivered paper gets the same answer, which the gateway dedupes.
            "message_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"procuracy.answer:{paper['message_id']}")),
            "message_type": "procuracy.answer",
            "schema_version": "1",
            "created_at": today.isoformat(),
            "sender": self.gateway.client_id,
            "recipient": paper["sender"],
            "in_reply_to": paper["message_id"],
            "case_ref": paper["case_ref"],
            "correlation_id": paper.get("correlation_id") or paper["message_id"],
            "body": {
                "number": f"{uuid.uuid4().int % 99999 + 1}/CV-CTHADS",
                "date": today.date().isoformat(),
                "outcome": outcome,
                "content": content,
            },
        }
        return answer
