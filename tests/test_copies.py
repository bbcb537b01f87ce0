"""Copies by routing table: every enforcement decision reaches the procuracy of the same level, once, as
a document of its own stored in the same transaction as the original (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.domain.errors import Refused
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.security.signing import public_key_from_jwk, verify
from gateway.security.tokens import Principal
from gateway.storage import messages as store
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import messages, outbox
from gateway.web.app import build_services
from gateway.web.context import Services
from tests.conftest import example, make_world

ROUTING = """
[procuracy]
"THADS-HN" = "VKS-HN"
"THADS-DN" = "VKS-DN"
"THADS-HCM" = "VKS-HCM"
"""


def register(store_: ClientStore, client_id: str, grants: list[str], deliver_to: str | None) -> None:
    store_.add(client_id, public_pem(generate_keypair("ed25519").public_key()), grants, deliver_to=deliver_to)


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    world = make_world(tmp_path, database_url)
    (world.settings.config_dir / "routing.toml").write_text(ROUTING, "utf-8")
    clients = ClientStore(world.settings.clients_dir)
    sends = ["documents.send", "messages.read"]
    register(clients, "TAND-HN", ["judgments.push", "messages.read"], "http://127.0.0.1:9/court")
    register(clients, "THADS-HN", sends, "amqp:thads-hn.inbox")
    register(clients, "THADS-HCM", sends, "amqp:thads-hcm.inbox")  # its procuracy is not registered
    register(clients, "THADS-QN", sends, "amqp:thads-qn.inbox")  # not in routing.toml
    register(clients, "THADS-DN", sends, "amqp:thads-dn.inbox")  # its procuracy is the recipient
    register(clients, "VKS-HN", ["documents.send", "messages.read"], "http://127.0.0.1:9/vks-hn")
    register(clients, "VKS-DN", ["documents.send", "messages.read"], "http://127.0.0.1:9/vks-dn")
    await upgrade(database_url)
    db = Database(database_url)
    yield build_services(world.settings, db)
    await db.dispose()


def principal(services: Services, client_id: str) -> Principal:
    client = services.clients.get(client_id)
    assert client is not None
    return Principal(client=client, subject="officer", token_id="x")


def decision(sender: str = "THADS-HN", recipient: str = "TAND-HN") -> dict[str, Any]:
    doc = example("decision.enforcement", "valid-decision-two-payments.json")
    doc["message_id"] = str(uuid.uuid4())
    doc["sender"], doc["recipient"] = sender, recipient
    doc["body"]["decision"]["issuing_office"] = sender
    doc["body"]["decision"]["number"] = f"{uuid.uuid4().int % 99999}/QĐ-CTHADS"
    return doc


async def rows(services: Services) -> list[Any]:
    async with services.db.read() as conn:
        return list((await conn.execute(select(messages).order_by(messages.c.recipient))).all())


async def outbox_count(services: Services) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())


async def refused(services: Services, client_id: str, doc: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(Refused) as caught:
        await services.documents.submit(principal(services, client_id), doc)
    assert await rows(services) == [] and await outbox_count(services) == 0  # nothing half-stored
    return [v.as_dict() for v in caught.value.violations]


async def test_a_decision_is_copied_to_the_procuracy_of_the_same_level_with_its_own_receipt(
    services: Services,
) -> None:
    doc = decision()
    result = await services.documents.submit(principal(services, "THADS-HN"), copy.deepcopy(doc))

    original, duplicate = await rows(services)  # TAND-HN, VKS-HN
    assert (original.message_id, original.recipient) == (doc["message_id"], "TAND-HN")
    assert duplicate.recipient == "VKS-HN" and duplicate.sender == "THADS-HN"
    assert duplicate.message_id == services.documents.copy_id(doc["message_id"], "procuracy")
    assert duplicate.message_type == "decision.enforcement" and duplicate.status == "received"
    assert duplicate.correlation_id == doc["message_id"]
    copied = json.loads(duplicate.payload)
    assert copied["copy_of"] == doc["message_id"] and copied["body"] == doc["body"]
    receipt = json.loads(duplicate.receipt)
    assert receipt["message_id"] == duplicate.message_id and receipt["recipient"] == "VKS-HN"
    assert (
        receipt["receipt_id"] != result.receipt["receipt_id"]
        and receipt["sha256"] != result.receipt["sha256"]
    )
    signed = {name: receipt[name] for name in receipt["signed_fields"]}
    assert verify(public_key_from_jwk(services.signer.jwk), signed, receipt["signature"])
    assert await outbox_count(services) == 2

    async with services.db.read() as conn:
        original_events = await store.timeline(conn, doc["message_id"])
        copy_events = await store.timeline(conn, duplicate.message_id)
    assert [e["event"] for e in original_events] == ["accepted", "copied"]
    assert original_events[1]["detail"] == {"copy": duplicate.message_id, "to": "VKS-HN"}
    assert copy_events[0]["event"] == "accepted" and copy_events[0]["detail"]["copy_of"] == doc["message_id"]


async def test_every_decision_reaches_its_procuracy_once_however_often_and_however_it_is_resent(
    services: Services,
) -> None:
    doc = decision()
    office = principal(services, "THADS-HN")
    same_id = [copy.deepcopy(doc) for _ in range(10)]
    new_ids = [copy.deepcopy(doc) | {"message_id": str(uuid.uuid4())} for _ in range(10)]

    results = await asyncio.gather(*(services.documents.submit(office, d) for d in same_id + new_ids))

    assert sum(not r.duplicate for r in results) == 1
    assert [r.recipient for r in await rows(services)] == ["TAND-HN", "VKS-HN"]
    assert await outbox_count(services) == 2


async def test_an_office_without_a_procuracy_in_routing_toml_is_refused(services: Services) -> None:
    [violation] = await refused(services, "THADS-QN", decision("THADS-QN"))
    assert violation["path"] == "$.sender" and violation["rule"] == "routing"
    assert "config/routing.toml" in violation["message"]


async def test_an_unregistered_procuracy_refuses_the_decision_rather_than_losing_the_copy(
    services: Services,
) -> None:
    [violation] = await refused(services, "THADS-HCM", decision("THADS-HCM"))
    assert violation["path"] == "$.sender" and "VKS-HCM" in violation["message"]


async def test_a_client_cannot_make_a_copy_itself(services: Services) -> None:
    doc = decision() | {"copy_of": str(uuid.uuid4())}
    violations = await refused(services, "THADS-HN", doc)
    assert {
        "path": "$.copy_of",
        "message": "is set by the gateway on the copies it makes",
        "rule": "copy",
    } in (violations)


async def test_a_decision_addressed_to_the_procuracy_itself_is_not_copied_again(services: Services) -> None:
    doc = decision("THADS-DN", "VKS-DN")
    await services.documents.submit(principal(services, "THADS-DN"), doc)
    assert [r.recipient for r in await rows(services)] == ["VKS-DN"]
    assert await outbox_count(services) == 1


async def test_a_replacing_decision_replaces_the_earlier_copy_at_the_procuracy(services: Services) -> None:
    office = principal(services, "THADS-HN")
    first = decision()
    await services.documents.submit(office, copy.deepcopy(first))
    second = copy.deepcopy(first) | {"message_id": str(uuid.uuid4()), "replaces": first["message_id"]}
    await services.documents.submit(office, second)

    first_copy, second_copy = (
        services.documents.copy_id(first["message_id"], "procuracy"),
        services.documents.copy_id(second["message_id"], "procuracy"),
    )
    async with services.db.read() as conn:
        row = await store.get(conn, second_copy)
        replaced = [e for e in await store.timeline(conn, first_copy) if e["event"] == "replaced"]
    assert row is not None and row.replaces == first_copy
    assert json.loads(row.payload)["replaces"] == first_copy
    assert [e["detail"] for e in replaced] == [{"replaced_by": second_copy}]
