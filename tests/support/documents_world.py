"""An installation for tests of who may send which document: the document service over a real database
(SQLite or PostgreSQL), a bank partner, and clients of every role registered as operators register them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import select

from gateway.domain.errors import DomainError
from gateway.problems import Problem, problem_for
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.security.tokens import Principal
from gateway.storage import messages as store
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import evidences
from gateway.web.app import build_services
from gateway.web.context import Services
from tests.conftest import make_world
from tests.support import orders

BANK = "BANK-VCB"
#: Who is registered, with which grants; the role comes from the id's prefix or the partner kind.
CLIENTS: dict[str, list[str]] = {
    "THADS-HN": ["documents.send", "messages.read"],
    "THADS-HCM": ["documents.send", "messages.read"],
    "TAND-HN": ["judgments.push", "documents.send", "messages.read"],
    "VKS-HN": ["documents.send", "messages.read"],
    BANK: ["documents.send", "messages.read"],  # a configured partner of kind bank
    "DVCQG": ["documents.send", "messages.read"],  # nothing says what it is
}


@asynccontextmanager
async def documents_world(home: Path, database_url: str) -> AsyncIterator[Services]:
    """The services of an api process, with :data:`CLIENTS` registered."""
    world = make_world(home, database_url)
    partner = {"code": BANK, "kind": "bank", "protocol": "rest", "endpoint": "http://127.0.0.1:9/vcb"}
    (world.settings.config_dir / "partners.toml").write_text(tomli_w.dumps({"partner": [partner]}), "utf-8")
    (world.settings.config_dir / "routing.toml").write_text('[procuracy]\n"THADS-HN" = "VKS-HN"\n', "utf-8")
    clients = ClientStore(world.settings.clients_dir)
    for client_id, grants in CLIENTS.items():
        deliver_to = f"amqp:{client_id.lower()}.inbox" if client_id != "DVCQG" else None
        register(clients, client_id, grants, deliver_to)
    await upgrade(database_url)
    db = Database(database_url)
    try:
        yield build_services(world.settings, db)
    finally:
        await db.dispose()


def register(
    clients: ClientStore, client_id: str, grants: list[str], deliver_to: str | None, role: str | None = None
) -> None:
    key = public_pem(generate_keypair("ed25519").public_key())
    if role is None:
        clients.add(client_id, key, grants, deliver_to=deliver_to)
    else:
        clients.add(client_id, key, grants, deliver_to=deliver_to, role=role)


def principal(services: Services, client_id: str) -> Principal:
    client = services.clients.get(client_id)
    assert client is not None
    return Principal(client=client, subject="officer", token_id=str(uuid.uuid4()))


def blocking_order(sender: str = "THADS-HN", **envelope: Any) -> dict[str, Any]:
    """A blocking order of ``sender`` to the bank, with a decision of its own."""
    doc = orders.blocking(BANK, 1_000_000)
    number = f"{uuid.uuid4().int % 99999}/QĐ-CCTHADS"
    doc["body"]["decision"] = dict(doc["body"]["decision"], number=number, issuing_office=sender)
    doc["sender"] = sender
    return doc | envelope


async def submit(services: Services, client_id: str, doc: dict[str, Any]) -> Any:
    return await services.documents.submit(principal(services, client_id), doc)


async def refusal(services: Services, client_id: str, doc: dict[str, Any], status: int) -> Problem:
    """The problem ``client_id`` is answered with for ``doc`` (the service's refusal as the API says it),
    which must have ``status``."""
    with pytest.raises(DomainError) as caught:
        await submit(services, client_id, doc)
    problem = problem_for(caught.value)
    assert problem.status == status, caught.value
    return problem


async def stored(services: Services, message_id: str) -> Any:
    async with services.db.read() as conn:
        return await store.get(conn, message_id)


async def events_of(services: Services, message_id: str) -> list[str]:
    async with services.db.read() as conn:
        rows = await conn.execute(select(evidences.c.event).where(evidences.c.message_id == message_id))
        return [r.event for r in rows]
