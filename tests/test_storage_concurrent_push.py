"""Many pushes at once: the same judgment is stored once and every sender gets the same receipt."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.security.tokens import Principal
from gateway.storage.audit import verify_chain
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import audit_log, evidences, messages, outbox
from gateway.web.app import build_services
from gateway.web.context import Services
from tests.conftest import COURT, fresh_judgment, make_world

PUSHES = 50


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    world = make_world(tmp_path, database_url)
    await upgrade(database_url)
    db = Database(database_url)
    yield build_services(world.settings, db)
    await db.dispose()


@pytest.fixture
def court(services: Services) -> Principal:
    client = services.clients.get(COURT)
    assert client is not None
    return Principal(client=client, subject="test", token_id="x")


async def counts(services: Services) -> dict[str, int]:
    async with services.db.read() as conn:
        return {
            t.name: int((await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for t in (messages, outbox, audit_log)
        }


async def chain_breaks_at(services: Services) -> int | None:
    async with services.db.read() as conn:
        return await verify_chain(conn)


async def test_the_same_judgment_pushed_at_once_is_stored_once(services: Services, court: Principal) -> None:
    doc = fresh_judgment()

    results = await asyncio.gather(
        *(services.documents.submit(court, copy.deepcopy(doc)) for _ in range(PUSHES))
    )

    [original] = [r for r in results if not r.duplicate]
    duplicates = [r for r in results if r.duplicate]
    assert len(duplicates) == PUSHES - 1
    assert all(r.receipt == original.receipt for r in duplicates)
    assert original.receipt["message_id"] == doc["message_id"]
    assert await counts(services) == {"messages": 1, "outbox": 1, "audit_log": PUSHES}
    async with services.db.read() as conn:
        events = (await conn.execute(select(evidences.c.event))).scalars().all()
    assert sorted(events) == ["accepted"] + ["duplicate_push"] * (PUSHES - 1)
    assert await chain_breaks_at(services) is None


async def test_the_same_judgment_resent_under_new_message_ids_is_stored_once(
    services: Services, court: Principal
) -> None:
    doc = fresh_judgment()

    def resent(n: int) -> dict[str, Any]:
        copy_ = copy.deepcopy(doc)
        copy_["message_id"] = f"{doc['message_id'][:-4]}{n:04d}"
        return copy_

    results = await asyncio.gather(*(services.documents.submit(court, resent(n)) for n in range(PUSHES)))

    [original] = [r for r in results if not r.duplicate]
    assert all(r.receipt == original.receipt for r in results)
    assert await counts(services) == {"messages": 1, "outbox": 1, "audit_log": PUSHES}
    assert await chain_breaks_at(services) is None


async def test_distinct_judgments_pushed_at_once_are_all_accepted(
    services: Services, court: Principal
) -> None:
    docs = [fresh_judgment() for _ in range(PUSHES)]

    results = await asyncio.gather(*(services.documents.submit(court, doc) for doc in docs))

    assert not any(r.duplicate for r in results)
    assert {r.receipt["message_id"] for r in results} == {d["message_id"] for d in docs}
    assert len({r.receipt["receipt_id"] for r in results}) == PUSHES
    assert await counts(services) == {"messages": PUSHES, "outbox": PUSHES, "audit_log": PUSHES}
    assert await chain_breaks_at(services) is None
