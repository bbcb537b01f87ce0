"""A court's system pushing judgments to the gateway over REST, with retries like a real client."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import aiohttp

from gateway.security.keys import load_private_key
from gateway.security.tokens import issue_token
from gateway.simulators.fake_data import judgment

log = logging.getLogger(__name__)


class CourtSimulator:
    def __init__(
        self, gateway_url: str, court_id: str, recipient: str, key_file: Path, audience: str, seed: int = 7
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.court_id = court_id
        self.recipient = recipient
        self._key = load_private_key(key_file.read_bytes())
        self._audience = audience
        self._rng = random.Random(seed)  # noqa: S311 - fake data, not security
        self.pushed: list[str] = []

    async def push_one(self, session: aiohttp.ClientSession) -> dict[str, object]:
        doc = judgment(self._rng, self.court_id, self.recipient, "Tòa án nhân dân thành phố Hà Nội")
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

    async def run(self, interval: float, count: int = 0) -> None:
        async with aiohttp.ClientSession() as session:
            n = 0
            while count == 0 or n < count:
                await self.push_one(session)
                n += 1
                await asyncio.sleep(interval)
