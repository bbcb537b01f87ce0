"""A court's system: pushes judgments to the gateway over REST with retries like a real client, now and
then a court event on one of them (a suspension of its enforcement), and, on its webhook, answers the
enforcement office's clarification requests and confirms the enforcement decisions addressed to it."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.security.keys import load_private_key
from gateway.security.tokens import issue_token
from gateway.simulators.fake_data import judgment
from gateway.simulators.gateway_client import GatewayClient, WebhookInbox, local_now

log = logging.getLogger(__name__)


class CourtSimulator:
    def __init__(
        self,
        gateway_url: str,
        court_id: str,
        recipient: str,
        key_file: Path,
        audience: str,
        seed: int = 7,
        event_every: int = 0,
        sign: Callable[[str], Awaitable[bytes]] | None = None,
    ) -> None:
        """``event_every``: a court event on every n-th judgment pushed by :meth:`run` (0: never).
        ``sign``: renders the judgment of that number as a PDF signed by the court (PAdES), attached in
        place of the unsigned one; None: unsigned."""
        self._sign = sign
        self.gateway_url = gateway_url.rstrip("/")
        self.gateway = GatewayClient(gateway_url, court_id, key_file, audience)
        self.event_every = event_every
        self.inbox = WebhookInbox(self._handle)
        self.events: list[dict[str, Any]] = []
        self.clarifications: dict[str, str] = {}  # request message_id -> answer message_id
        self.confirmed: list[str] = []
        self._http: aiohttp.ClientSession | None = None
        self.court_id = court_id
        self.recipient = recipient
        self._key = load_private_key(key_file.read_bytes())
        self._audience = audience
        self._rng = random.Random(seed)  # noqa: S311 - fake data, not security
        self.pushed: list[str] = []
        self.last_pushed: dict[str, Any] | None = None

    async def push_one(self, session: aiohttp.ClientSession) -> dict[str, object]:
        doc = judgment(self._rng, self.court_id, self.recipient, "Tòa án nhân dân thành phố Hà Nội")
        if self._sign is not None:
            signed = await self._sign(doc["body"]["judgment"]["number"])
            doc["body"]["document"]["content_base64"] = base64.b64encode(signed).decode("ascii")
        for attempt in range(1, 6):
            token = issue_token(self.court_id, self._key, self._audience, ttl=300)
            try:
                async with session.post(
                    f"{self.gateway_url}/v1/judgments",
                    json=doc,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    body: dict[str, object] = await resp.json(content_type=None)
                    if resp.status in (200, 202):
                        self.pushed.append(doc["message_id"])
                        self.last_pushed = doc
                        log.info(
                            "court pushed judgment %s: HTTP %s",
                            doc["body"]["judgment"]["number"],
                            resp.status,
                        )
                        return body
                    if resp.status < 500 and resp.status != 429:
                        log.error("court push refused: %s %s", resp.status, body)
                        return body
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("court push attempt %d failed: %s", attempt, exc)
            await asyncio.sleep(min(2**attempt, 30))  # same message_id on every retry: safe to resend
        return {}

    async def push_event(
        self, session: aiohttp.ClientSession, pushed: dict[str, Any], event: str = "enforcement_suspended"
    ) -> dict[str, Any]:
        """A court event on a judgment this court pushed (``pushed``: that judgment message)."""
        now = local_now()
        ruling = pushed["body"]["judgment"]
        document: dict[str, Any] = {
            "message_id": str(uuid.uuid4()),
            "message_type": "court.event",
            "schema_version": "1",
            "created_at": now.isoformat(),
            "sender": self.court_id,
            "recipient": pushed["recipient"],
            "priority": "urgent",
            "body": {
                "event": event,
                "judgment": {
                    "court_code": pushed["body"]["court"]["code"],
                    "number": ruling["number"],
                    "date": ruling["date"],
                    "message_id": pushed["message_id"],
                },
                "decision": {
                    "number": f"{self._rng.randint(1, 99999)}/{now.year}/QĐ-TĐCTHA",
                    "date": now.date().isoformat(),
                },
                "reason": "Tạm đình chỉ thi hành án để xem xét lại bản án theo thủ tục giám đốc thẩm",
            },
        }
        if event in ("enforcement_suspended", "enforcement_resumed"):
            document["body"]["effective_from"] = now.date().isoformat()
        status = await self.gateway.send(session, document)
        if status in (200, 202):
            self.events.append(document)
        log.info("court pushed %s on judgment %s: HTTP %s", event, ruling["number"], status)
        return document

    async def start_inbox(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen for deliveries; returns the webhook URL to register as this court's ``deliver_to``."""
        self._http = aiohttp.ClientSession()
        return await self.inbox.start(host, port)

    async def close(self) -> None:
        await self.inbox.close()
        if self._http is not None:
            await self._http.close()

    async def _handle(self, document: dict[str, Any]) -> None:
        assert self._http is not None
        kind = document.get("message_type")
        if kind == "court.clarification_request":
            await self.clarify(document)
        elif kind == "decision.enforcement":
            status = await self.gateway.confirm(
                self._http, document["message_id"], "Đã nhận quyết định thi hành án"
            )
            if status == 200:
                self.confirmed.append(document["message_id"])
        else:
            log.info("court: %s %s noted", kind, document.get("message_id"))

    async def clarify(self, request: dict[str, Any]) -> dict[str, Any]:
        """The court's answer to a clarification request: one answer per question."""
        assert self._http is not None
        now = local_now()
        answer = {
            "message_id": str(uuid.uuid4()),
            "message_type": "court.clarification_answer",
            "schema_version": "1",
            "created_at": now.isoformat(),
            "sender": self.court_id,
            "recipient": request["sender"],
            "in_reply_to": request["message_id"],
            **({"case_ref": request["case_ref"]} if "case_ref" in request else {}),
            "body": {
                "number": f"{self._rng.randint(1, 99999)}/{now.year}/CV-TA",
                "date": now.date().isoformat(),
                "answers": [f"Trả lời: {question[:200]}" for question in request["body"]["questions"]],
            },
        }
        status = await self.gateway.send(self._http, answer)
        if status in (200, 202):
            self.clarifications[request["message_id"]] = answer["message_id"]
        log.info("court answered clarification request %s: HTTP %s", request["message_id"], status)
        return answer

    async def run(self, interval: float, count: int = 0) -> None:
        async with aiohttp.ClientSession() as session:
            n = 0
            while count == 0 or n < count:
                await self.push_one(session)
                n += 1
                if self.event_every and n % self.event_every == 0 and self.last_pushed is not None:
                    await self.push_event(session, self.last_pushed)
                await asyncio.sleep(interval)
