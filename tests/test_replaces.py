"""``replaces`` resolves like ``in_reply_to``: it names an earlier document of the same type from the
same sender, or the document is refused with 422 at ``$.replaces`` — never a 5xx, and never a
``replaced`` entry in another party's timeline (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem
from gateway.web.context import Services
from tests.conftest import World
from tests.support.documents_world import (
    blocking_order,
    documents_world,
    events_of,
    refusal,
    stored,
    submit,
)


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    async with documents_world(tmp_path, database_url) as services:
        yield services


def replacing(earlier: str, sender: str = "THADS-HN") -> dict[str, Any]:
    return blocking_order(sender) | {"replaces": earlier}


async def test_a_document_replaces_its_senders_own_document_of_its_type(services: Services) -> None:
    first = blocking_order()
    await submit(services, "THADS-HN", first)
    second = replacing(first["message_id"])
    await submit(services, "THADS-HN", second)
    assert "replaced" in await events_of(services, first["message_id"])


async def test_another_senders_document_cannot_be_replaced(services: Services) -> None:
    theirs = blocking_order("THADS-HCM")
    await submit(services, "THADS-HCM", theirs)
    problem = await refusal(services, "THADS-HN", replacing(theirs["message_id"]), 422)
    [violation] = [v.as_dict() for v in problem.violations]
    assert violation["path"] == "$.replaces"
    assert "names no earlier order.account_blocking of THADS-HN" in violation["message"]
    assert "replaced" not in await events_of(services, theirs["message_id"])


async def test_an_unknown_replaces_is_422_at_its_path_and_tells_nothing_more(services: Services) -> None:
    theirs = blocking_order("THADS-HCM")
    await submit(services, "THADS-HCM", theirs)
    unknown = await refusal(services, "THADS-HN", replacing("0b7ad8a2-54a4-4c21-9a43-6a1bd2a6f0aa"), 422)
    foreign = await refusal(services, "THADS-HN", replacing(theirs["message_id"]), 422)
    # An unknown id and another party's document are refused in the same words.
    assert [v.as_dict() for v in unknown.violations] == [v.as_dict() for v in foreign.violations]


async def test_a_document_of_another_type_cannot_be_replaced(services: Services) -> None:
    mine = blocking_order()
    await submit(services, "THADS-HN", mine)
    release = blocking_order() | {"message_type": "order.account_release", "replaces": mine["message_id"]}
    release["body"] = {k: v for k, v in release["body"].items() if k not in ("amount", "all_accounts")}
    release["body"] |= {"blocking_order": mine["message_id"], "scope": "full"}
    problem = await refusal(services, "THADS-HN", release, 422)
    assert [v.path for v in problem.violations] == ["$.replaces"]
    assert await stored(services, release["message_id"]) is None


async def test_an_unknown_replaces_is_refused_through_the_api_with_422(
    world: World, api: TestClient[Any, Any]
) -> None:
    ClientStore(world.settings.clients_dir).add(
        "THADS-HN",
        public_pem(world.case_system.key.public_key()),
        ["documents.send", "messages.read"],
        deliver_to=f"amqp:{world.case_queue}",
    )
    doc = replacing("0b7ad8a2-54a4-4c21-9a43-6a1bd2a6f0aa")
    resp = await api.post("/v1/documents", json=doc, headers=world.case_headers())
    assert resp.status == 422, await resp.text()
    # (The api's installation has no bank: the recipient is refused too.)
    assert "$.replaces" in [e["path"] for e in (await resp.json())["errors"]]
