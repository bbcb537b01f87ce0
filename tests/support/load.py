"""A court under load: many concurrent pushes, some exact duplicates, some invalid."""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.conftest import World, fresh_judgment


@dataclass
class PushOutcome:
    unique: dict[str, dict[str, Any]] = field(default_factory=dict)  # message_id -> first receipt
    duplicate_answers: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    invalid_answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    other: list[tuple[int, str]] = field(default_factory=list)
    statuses: list[tuple[str, str, int]] = field(default_factory=list)


def plan(n: int, seed: int = 2026) -> list[tuple[str, dict[str, Any]]]:
    """``n`` pushes: 90% new judgments, 5% exact resends of one of them, 5% invalid."""
    rng = random.Random(seed)
    n_dup = n_invalid = n // 20
    originals = [fresh_judgment() for _ in range(n - n_dup - n_invalid)]
    invalid = []
    for i in range(n_invalid):
        doc = fresh_judgment()
        if i % 2:
            doc["body"]["parties"][1]["person"]["id_number"] = "12345"
        else:
            del doc["body"]["items"]
            doc["created_at"] = "not a date"
        invalid.append(("invalid", doc))
    dups = [("duplicate", copy.deepcopy(rng.choice(originals))) for _ in range(n_dup)]
    pushes = [("original", d) for d in originals] + dups + invalid
    rng.shuffle(pushes)
    return pushes


async def push_all(base_url: str, world: World, pushes: list[tuple[str, dict[str, Any]]]) -> PushOutcome:
    """Send every push concurrently (100 connections); originals first-come wins the 202."""
    outcome = PushOutcome()
    first: dict[str, dict[str, Any]] = {}
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(kind: str, doc: dict[str, Any]) -> None:
            for _ in range(20):
                async with http.post(
                    f"{base_url}/v1/judgments", json=doc, headers=world.court_headers()
                ) as resp:
                    body = await resp.json(content_type=None)
                    outcome.statuses.append((kind, doc["message_id"], resp.status))
                    if resp.status in (429, 503):  # a real client waits and resends the same message
                        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                        continue
                    if kind == "invalid":
                        outcome.invalid_answers.append((resp.status, body))
                    elif resp.status == 202:  # the first of identical pushes wins, whichever it is
                        first[doc["message_id"]] = body
                    elif resp.status == 200:
                        outcome.duplicate_answers.append((doc["message_id"], resp.status, body))
                    else:
                        outcome.other.append((resp.status, str(body)))
                    return

        await asyncio.gather(*(one(kind, doc) for kind, doc in pushes))
    outcome.unique = first
    return outcome


async def post_until_taken(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    headers: Callable[[], dict[str, str]],
    expect: int = 202,
    patience: float = 60.0,
) -> dict[str, Any]:
    """POST as a well-behaved client does: a 429 is waited out for its ``Retry-After`` and the same body
    sent again (for up to ``patience`` seconds), with a fresh token each time (``headers()``: tokens are
    single-use); the answer then has to be ``expect``. Its JSON body."""
    deadline = asyncio.get_running_loop().time() + patience
    while True:
        async with http.post(url, json=body, headers=headers()) as resp:
            if resp.status != 429:
                assert resp.status == expect, await resp.text()
                answer: dict[str, Any] = await resp.json()
                return answer
            wait = float(resp.headers.get("Retry-After", "1"))
        assert asyncio.get_running_loop().time() < deadline, f"throttled for {patience} s"
        await asyncio.sleep(wait)
