"""Pull mode: a partner that will not be called fetches its lookups and documents (GET /v1/partner-inbox),
each leased to the fetch, and acknowledges them (POST /v1/partner-inbox/acknowledgement).

What the worker does for a pull partner is its connector's ``lookup``/``deliver`` (gateway/connectors/
pull.py): these tests call the connector as the worker would, against the api's database, and drive the
rest over HTTP. The storage tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from gateway.connectors.pull import HeldForPull, PullConnector, PullGuard, guard
from gateway.connectors.resilience import GuardedConnector
from gateway.domain.lookup import LookupRequest, Subject, Title
from gateway.partners import Partner, load_partners
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.services import pulls as service
from gateway.simulators.partners.pull import PullBankDesk, PullPartner, bank_answer
from gateway.storage import pulls
from gateway.storage.database import Database
from gateway.storage.tables import audit_log, evidences, inquiry_sources, messages, partner_pulls
from gateway.storage.timestamps import now
from gateway.web.app import create_app
from tests.conftest import CASE_SYSTEM, EXAMPLES, ROOT, Party, World, make_world
from tests.support import orders

PULL = "BANK-VPB"
OTHER_PULL = "BANK-PULL2"
PUSH = "BANK-VCB"
INBOX = "/v1/partner-inbox"
ACK = "/v1/partner-inbox/acknowledgement"
PULL_GRANTS = ["partner.pull", "assets.answer", "documents.send", "messages.read"]


def pull_partner(code: str = PULL, lease: float = 60) -> Partner:
    return Partner(code=code, kind="bank", protocol="rest", delivery="pull", lease_seconds=lease)


# -- configuration ------------------------------------------------------------------------------------


def test_a_pull_partner_needs_no_endpoint_and_a_push_partner_does(tmp_path: Path) -> None:
    assert pull_partner().pulls and pull_partner().endpoint == ""
    with pytest.raises(ValueError, match="endpoint is required"):
        Partner(code="BANK-X", kind="bank", protocol="rest")
    shipped = {p.code: p for p in load_partners(ROOT / "config")}
    assert shipped[PULL].pulls and shipped[PULL].lease_seconds == 60
    assert not shipped[PUSH].pulls  # push stays the default


# -- storage (SQLite and PostgreSQL) ------------------------------------------------------------------------


@pytest.mark.postgres
async def test_storing_is_idempotent_on_the_item_id(db: Database) -> None:
    async def put(conn: Any) -> bool:
        return await pulls.store(conn, item_id="ref-1", partner=PULL, kind=pulls.LOOKUP, payload="{}")

    assert await db.write(put) is True
    assert await db.write(put) is False  # a redelivered queue message: no second item
    async with db.read() as conn:
        assert await pulls.counts(conn, PULL) == {"pending": 1}


@pytest.mark.postgres
async def test_a_lease_hides_an_item_until_it_runs_out_and_only_its_holder_acknowledges(db: Database) -> None:
    at = now()

    async def put(conn: Any) -> None:
        for n in range(3):
            await pulls.store(
                conn, item_id=f"i{n}", partner=PULL, kind=pulls.DOCUMENT, payload="{}", priority=n % 2, at=at
            )

    await db.write(put)

    async def lease(token: str, when: Any) -> list[str]:
        async def body(conn: Any) -> list[str]:
            found = await pulls.candidates(conn, PULL, 10, when)
            return await pulls.take(conn, [i.item_id for i in found], token, 30, when)

        return await db.write(body)

    first = await lease("lease-a", at)
    assert sorted(first) == ["i0", "i1", "i2"]
    assert await lease("lease-b", at + timedelta(seconds=29)) == []  # leased: handed to nobody else
    async with db.read() as conn:
        assert not await pulls.available(conn, PULL, at + timedelta(seconds=29))
        assert await pulls.available(conn, PULL, at + timedelta(seconds=31))
        urgent_first = await pulls.candidates(conn, PULL, 1, at + timedelta(seconds=31))
    assert urgent_first[0].item_id == "i1" and urgent_first[0].fetches == 1
    again = await lease("lease-c", at + timedelta(seconds=31))  # the lease ran out: back it comes
    assert sorted(again) == ["i0", "i1", "i2"]

    async def ack(token: str, partner: str = PULL) -> tuple[list[str], list[str]]:
        async def body(conn: Any) -> tuple[list[str], list[str]]:
            done, repeated = await pulls.acknowledge(conn, partner, token, ["i0", "i1"], at)
            return [i.item_id for i in done], [i.item_id for i in repeated]

        return await db.write(body)

    assert await ack("lease-a") == ([], [])  # the old holder lost them to the later fetch
    assert await ack("lease-c", partner=OTHER_PULL) == ([], [])  # never another partner's
    assert sorted((await ack("lease-c"))[0]) == ["i0", "i1"]
    assert sorted((await ack("lease-c"))[1]) == ["i0", "i1"]  # repeating it is harmless
    async with db.read() as conn:
        assert await pulls.counts(conn, PULL) == {"acknowledged": 2, "pending": 1}
        gone = await pulls.get(conn, "i0")
    assert gone is not None and gone.payload is None  # the payload goes with the acknowledgement


# -- the api ------------------------------------------------------------------------------------------------


class Pull:
    """An installation with a pull bank (and a second one), a push bank, the case system allowed to send
    orders and look up, and the connector the worker would use for the pull bank."""

    def __init__(self, world: World, api: TestClient[Any, Any], db: Database) -> None:
        self.world = world
        self.api = api
        self.db = db
        self.bank = Party(PULL, generate_keypair("ed25519"))
        self.other = Party(OTHER_PULL, generate_keypair("ed25519"))
        self.push_bank = Party(PUSH, generate_keypair("ed25519"))
        self.nobody = Party("THADS-HCM", generate_keypair("ed25519"))
        self.connector = PullConnector(pull_partner(), db)
        self._decisions = itertools.count(1)

    def headers(self, party: Party) -> dict[str, str]:
        return party.headers(self.world.settings)

    async def fetch(self, party: Party | None = None, **params: Any) -> tuple[int, dict[str, Any]]:
        resp = await self.api.get(INBOX, params=params, headers=self.headers(party or self.bank))
        return resp.status, await resp.json()

    async def ack(self, lease: str, ids: list[str], party: Party | None = None) -> tuple[int, dict[str, Any]]:
        body = {"lease": lease, "items": ids}
        resp = await self.api.post(ACK, json=body, headers=self.headers(party or self.bank))
        return resp.status, await resp.json()

    async def order(self, amount: int = 5_000_000) -> dict[str, Any]:
        """An order sent by the case system to the pull bank, then handed to its connector (the worker)."""
        document = orders.blocking(PULL, amount)
        # A decision of its own: the same decision to the same bank is the same document.
        document["body"]["decision"] = orders.DECISION | {
            "number": f"{uuid.uuid4().int % 999_999 + 1}/QĐ-CCTHADS"
        }
        resp = await self.api.post("/v1/documents", json=document, headers=self.world.case_headers())
        assert resp.status == 202, await resp.text()
        receipt = await self.connector.deliver(document)
        assert isinstance(receipt, HeldForPull) and receipt.accepted_later
        return document

    async def lookup(self) -> LookupRequest:
        """An inquiry of the pull bank by the case system, its request handed to the connector."""
        body = json.loads((EXAMPLES / "asset-inquiry" / "valid-all-registers.json").read_text("utf-8"))
        body["sources"] = [{"bank": [PULL]}]
        resp = await self.api.post("/v1/asset-inquiries", json=body, headers=self.world.case_headers())
        assert resp.status == 202, await resp.text()
        inquiry = await resp.json()
        async with self.db.read() as conn:
            source = (
                await conn.execute(
                    select(inquiry_sources).where(inquiry_sources.c.inquiry_id == inquiry["inquiry_id"])
                )
            ).one()
        request = LookupRequest(
            request_ref=source.request_ref,
            inquiry_id=inquiry["inquiry_id"],
            source_id=f"bank:{PULL}",
            partner_code=PULL,
            kind="bank",
            subject=Subject(**body["debtor"]),
            case_ref=body["case_ref"],
            purpose=body["purpose"],
            officer_id=body["officer_id"],
            legal_basis=body["legal_basis"],
            title=Title.from_dict(body["title"]),
            due_at=inquiry["sources"][0]["due_at"],
        )
        answer = await self.connector.lookup(request)
        assert answer.accepted_later
        return request

    async def expire_leases(self) -> None:
        """As if every lease had run out (the clock moved past them)."""
        past = now() - timedelta(seconds=1)
        async with self.db.transaction() as conn:
            await conn.execute(
                update(partner_pulls)
                .where(partner_pulls.c.state == pulls.PENDING)
                .values(available_at=past, leased_until=past)
            )

    async def audit(self, action: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(audit_log).where(audit_log.c.action == action))
            return [{"actor": r.actor, "data": json.loads(r.data or "null"), "raw": r.data} for r in rows]

    async def status(self, message_id: str) -> str:
        async with self.db.read() as conn:
            return str(
                (
                    await conn.execute(select(messages.c.status).where(messages.c.message_id == message_id))
                ).scalar_one()
            )

    async def evidence(self, message_id: str, event: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(evidences).where(evidences.c.message_id == message_id, evidences.c.event == event)
            )
            return [json.loads(r.detail or "{}") for r in rows]


@pytest.fixture
async def pull(tmp_path: Path, fresh_database_url: str, aiohttp_client: Callable[..., Any]) -> Any:
    world = make_world(tmp_path, fresh_database_url, relay={"publish_from_api": False})
    config = world.settings.config_dir
    shutil.copy(ROOT / "config" / "holidays.toml", config / "holidays.toml")
    blocks = [
        {
            "code": PULL,
            "kind": "bank",
            "protocol": "rest",
            "delivery": "pull",
            "lease_seconds": 60,
            "deadline": "3wd",
        },
        {"code": OTHER_PULL, "kind": "bank", "protocol": "rest", "delivery": "pull", "deadline": "3wd"},
        {"code": PUSH, "kind": "bank", "protocol": "rest", "endpoint": "http://127.0.0.1:9/vcb"},
    ]
    (config / "partners.toml").write_text(tomli_w.dumps({"partner": blocks}), "utf-8")
    api = await aiohttp_client(create_app(world.settings))
    db = Database(world.settings.resolved_database_url)
    setup = Pull(world, api, db)
    store = ClientStore(world.settings.clients_dir)
    store.add(
        CASE_SYSTEM,
        public_pem(world.case_system.key.public_key()),
        ["messages.read", "messages.confirm", "documents.send", "assets.inquire"],
        deliver_to=f"amqp:{world.case_queue}",
    )
    for party, grants in (
        (setup.bank, PULL_GRANTS),
        (setup.other, PULL_GRANTS),
        (setup.push_bank, PULL_GRANTS),
        (setup.nobody, ["messages.read"]),
    ):
        store.add(
            party.id,
            public_pem(party.key.public_key()),
            grants,
            role="bank" if party.id.startswith("BANK") else None,
        )
    yield setup
    await db.dispose()


async def test_fetch_leases_lookups_and_documents_and_acknowledging_delivers_the_document(pull: Pull) -> None:
    document = await pull.order()
    request = await pull.lookup()
    status, inbox = await pull.fetch(limit=10)
    assert status == 200
    items = {item["item_id"]: item for item in inbox["items"]}
    assert set(items) == {document["message_id"], request.request_ref}
    assert items[document["message_id"]]["kind"] == "document"
    assert items[document["message_id"]]["body"]["body"]["amount"] == 5_000_000
    lookup = items[request.request_ref]
    assert lookup["kind"] == "lookup" and lookup["body"]["request_ref"] == request.request_ref
    assert lookup["body"]["legal_basis"] and lookup["body"]["due_at"]  # what the law wants stated
    assert all(item["fetches"] == 1 for item in items.values()) and inbox["lease"] and inbox["leased_until"]

    # Leased: nobody (not even the partner itself) gets them again while the lease runs.
    assert (await pull.fetch())[1]["items"] == []
    assert await pull.status(document["message_id"]) in ("received", "queued")  # not delivered yet

    status, done = await pull.ack(inbox["lease"], [document["message_id"], request.request_ref])
    assert status == 200 and done["not_acknowledged"] == []
    assert sorted(done["acknowledged"]) == sorted([document["message_id"], request.request_ref])
    assert await pull.status(document["message_id"]) == "delivered"
    delivered = await pull.evidence(document["message_id"], "delivered")
    assert [(d["channel"], d["answer"], d["fetches"]) for d in delivered] == [("pull", "later", 1)]

    # Acknowledged: never handed out again; acknowledging again changes nothing.
    await pull.expire_leases()
    assert (await pull.fetch())[1]["items"] == []
    assert (await pull.ack(inbox["lease"], [document["message_id"]]))[1]["acknowledged"] == [
        document["message_id"]
    ]
    assert len(await pull.evidence(document["message_id"], "delivered")) == 1


async def test_an_unacknowledged_item_comes_back_after_its_lease_and_the_old_lease_cannot_acknowledge_it(
    pull: Pull,
) -> None:
    document = await pull.order()
    first = (await pull.fetch())[1]
    await pull.expire_leases()
    second = (await pull.fetch())[1]
    assert [i["item_id"] for i in second["items"]] == [document["message_id"]]
    assert second["items"][0]["fetches"] == 2 and second["lease"] != first["lease"]
    late = (await pull.ack(first["lease"], [document["message_id"]]))[1]
    assert late == {"acknowledged": [], "not_acknowledged": [document["message_id"]]}
    assert await pull.status(document["message_id"]) != "delivered"
    assert (await pull.ack(second["lease"], [document["message_id"]]))[1]["acknowledged"] == [
        document["message_id"]
    ]
    assert [d["fetches"] for d in await pull.evidence(document["message_id"], "delivered")] == [2]


async def test_every_fetch_that_hands_items_out_is_audited_without_personal_data(pull: Pull) -> None:
    document = await pull.order()
    request = await pull.lookup()
    assert len((await pull.fetch())[1]["items"]) == 2
    await pull.expire_leases()
    inbox = (await pull.fetch())[1]
    assert (await pull.fetch())[1]["items"] == []  # an empty fetch hands nothing out: nothing to audit
    records = await pull.audit("partner.pull")
    assert len(records) == 2 and all(r["actor"] == PULL for r in records)
    assert sorted(records[-1]["data"]["items"]) == sorted([document["message_id"], request.request_ref])
    assert sorted(records[-1]["data"]["again"]) == sorted([document["message_id"], request.request_ref])
    assert all("001085012345" not in r["raw"] and "Nguyễn" not in r["raw"] for r in records)
    await pull.ack(inbox["lease"], [document["message_id"]])
    acks = await pull.audit("partner.acknowledge")
    assert [r["data"]["items"] for r in acks] == [[document["message_id"]]]


async def test_deny_by_default_a_client_sees_and_acknowledges_only_its_own_partners_items(pull: Pull) -> None:
    document = await pull.order()
    status, problem = await pull.fetch(pull.nobody)
    assert status == 403 and problem["status"] == 403  # not granted partner.pull
    assert (await pull.fetch(pull.push_bank))[0] == 404  # granted, but a partner that is called
    assert (await pull.ack("x", [document["message_id"]], pull.push_bank))[0] == 404
    assert (await pull.fetch(pull.other))[1]["items"] == []  # another pull partner: its own inbox only
    inbox = (await pull.fetch())[1]
    status, refused = await pull.ack(inbox["lease"], [document["message_id"]], pull.other)
    assert status == 200 and refused == {"acknowledged": [], "not_acknowledged": [document["message_id"]]}
    assert await pull.status(document["message_id"]) != "delivered"


async def test_limit_and_wait_are_capped_and_bad_values_are_422(pull: Pull) -> None:
    sent = [await pull.order() for _ in range(service.MAX_ITEMS + 1)]
    status, inbox = await pull.fetch(limit=10_000)
    assert status == 200 and len(inbox["items"]) == service.MAX_ITEMS
    rest = (await pull.fetch(limit=10_000))[1]["items"]
    assert {i["item_id"] for i in inbox["items"] + rest} == {d["message_id"] for d in sent}
    for params in ({"limit": "-1"}, {"limit": "many"}, {"wait": "-2"}, {"wait": "soon"}):
        resp = await pull.api.get(INBOX, params=params, headers=pull.headers(pull.bank))
        status, problem = resp.status, await resp.json()
        assert status == 422 and problem["errors"][0]["path"] in params, params
    status, problem = await pull.ack("lease", [f"id-{n}" for n in range(service.MAX_ITEMS + 1)])
    assert status == 422  # an acknowledgement names at most 100 items


async def test_a_waiting_fetch_takes_an_item_stored_while_it_waits_and_its_wait_is_capped(pull: Pull) -> None:
    fetching = asyncio.create_task(pull.fetch(wait=10_000))
    await _until(lambda: _waiting(pull) == 1)
    document = await pull.order()
    status, inbox = await asyncio.wait_for(fetching, 30)
    assert status == 200 and [i["item_id"] for i in inbox["items"]] == [document["message_id"]]
    assert inbox["waited_up_to"] == service.MAX_WAIT_SECONDS


async def test_a_client_has_at_most_four_fetches_waiting(pull: Pull) -> None:
    waiting = [asyncio.create_task(pull.fetch(wait=30, limit=1)) for _ in range(service.MAX_WAITERS)]
    await _until(lambda: _waiting(pull) == service.MAX_WAITERS)
    status, problem = await pull.fetch(wait=30)
    assert status == 429 and problem["type"].endswith("/too-many-waiting")
    for _ in range(service.MAX_WAITERS):
        await pull.order()
    answers = await asyncio.wait_for(asyncio.gather(*waiting), 30)
    assert sorted(len(inbox["items"]) for _, inbox in answers) == [1] * service.MAX_WAITERS
    assert _waiting(pull) == 0


async def test_a_document_revoked_before_it_is_fetched_is_withdrawn(pull: Pull) -> None:
    document = await pull.order()
    resp = await pull.api.post(
        f"/v1/messages/{document['message_id']}/revocation",
        json={"reason": "sent to the wrong bank"},
        headers=pull.world.case_headers(),
    )
    assert resp.status == 200, await resp.text()
    assert (await pull.fetch())[1]["items"] == []
    assert await pull.evidence(document["message_id"], "not_delivered_revoked")
    async with pull.db.read() as conn:
        item = await pulls.get(conn, document["message_id"])
    assert item is not None and item.state == pulls.WITHDRAWN and item.payload is None


async def test_a_lookup_answered_or_timed_out_before_it_is_fetched_is_withdrawn(pull: Pull) -> None:
    request = await pull.lookup()
    async with pull.db.transaction() as conn:
        await conn.execute(
            update(inquiry_sources)
            .where(inquiry_sources.c.request_ref == request.request_ref)
            .values(status="timeout")
        )
    assert (await pull.fetch())[1]["items"] == []


async def test_the_simulated_pull_bank_executes_once_answers_and_acknowledges(pull: Pull) -> None:
    document = await pull.order()
    request = await pull.lookup()
    bank = PullPartner(
        PULL,
        str(pull.api.make_url("")),
        pull.bank.key,
        pull.world.settings.auth.audience,
        desk=PullBankDesk(PULL),
        answer_lookup=bank_answer(PULL),
        wait=0,
        pause=0.05,
    )
    async with aiohttp.ClientSession() as session:
        assert await bank.round(session) == 2
        assert bank.executions == {document["message_id"]: 1, request.request_ref: 1}
        assert bank.acknowledged == 2
        async with pull.db.read() as conn:
            source = (
                await conn.execute(
                    select(inquiry_sources).where(inquiry_sources.c.request_ref == request.request_ref)
                )
            ).one()
        assert source.status in ("found", "not_found")
        assert await pull.status(document["message_id"]) in ("answered", "delivered")
        replies = await pull.api.get(
            f"/v1/messages/{document['message_id']}", headers=pull.world.case_headers()
        )
        view = await replies.json()
        assert [r["message_type"] for r in view["replies"]] == ["report.account_blocking"]
        # Handed out again (a lost acknowledgement): answered again, never executed twice.
        async with pull.db.transaction() as conn:
            await conn.execute(
                update(partner_pulls).values(state=pulls.PENDING, available_at=now(), lease=None)
            )
            await conn.execute(
                update(partner_pulls)
                .where(partner_pulls.c.kind == pulls.DOCUMENT)
                .values(payload=json.dumps(document))
            )
        await bank.round(session)
        assert bank.executions == {document["message_id"]: 1, request.request_ref: 1}


# -- the worker's side --------------------------------------------------------------------------------------


async def test_the_pull_guard_never_retries_nor_breaks_and_lets_a_database_failure_through(
    tmp_path: Path,
) -> None:
    partner = pull_partner()
    broken = Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/gateway.db")
    guarded = guard(partner, PullConnector(partner, broken))
    assert isinstance(guarded, PullGuard)
    push = Partner(code=PUSH, kind="bank", protocol="rest", endpoint="http://127.0.0.1:9/")
    assert type(guard(push, PullConnector(push, broken))) is GuardedConnector
    document = orders.blocking(PULL, 1_000_000)
    for _ in range(10):  # well past the breaker's threshold: it never opens, nothing is retried
        with pytest.raises(Exception) as raised:
            await guarded.deliver(document)
        assert not isinstance(raised.value, AssertionError)
    assert guarded.breaker_state() == "closed"
    await broken.dispose()


@pytest.mark.postgres
async def test_the_connector_stores_each_lookup_and_document_once(db: Database) -> None:
    connector = PullConnector(pull_partner(), db)
    document = orders.blocking(PULL, 1_000_000) | {"priority": "urgent"}
    request = LookupRequest(
        request_ref=str(uuid.uuid4()),
        inquiry_id=str(uuid.uuid4()),
        source_id=f"bank:{PULL}",
        partner_code=PULL,
        kind="bank",
        subject=Subject(id_number="001085012345"),
        case_ref="THA-HN-2026-000123",
        purpose="p",
    )
    for _ in range(2):  # the queue message delivered twice
        await connector.deliver(document)
        await connector.lookup(request)
    async with db.read() as conn:
        assert await pulls.counts(conn, PULL) == {"pending": 2}
        item = await pulls.get(conn, document["message_id"])
    assert item is not None and item.priority == 1 and item.kind == pulls.DOCUMENT


def _waiting(pull: Pull) -> int:
    from gateway.web.routes_pulls import _STATE

    return sum(pull.api.app[_STATE].waiters.counts.values())


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_document_revoked_after_a_fetch_is_handed_out_until_acknowledged_and_then_revoked(
    pull: Pull,
) -> None:
    document = await pull.order()
    first = (await pull.fetch())[1]
    resp = await pull.api.post(
        f"/v1/messages/{document['message_id']}/revocation",
        json={"reason": "paid in full"},
        headers=pull.world.case_headers(),
    )
    assert resp.status == 200, await resp.text()
    await pull.expire_leases()
    again = (await pull.fetch())[1]  # the bank may hold it: it is not silently withdrawn
    assert [i["item_id"] for i in again["items"]] == [document["message_id"]]
    assert first["lease"] != again["lease"]
    assert (await pull.ack(again["lease"], [document["message_id"]]))[1]["acknowledged"]
    assert await pull.status(document["message_id"]) == "revoked"
    assert await pull.evidence(document["message_id"], "delivered")  # it reached the bank: evidence kept
    async with pull.db.read() as conn:
        rows = await conn.execute(
            select(messages.c.recipient).where(messages.c.message_type == "document.revocation")
        )
        issued = list(rows.scalars())
    assert issued == [PULL]  # the bank hears of the revocation


async def test_a_head_request_leases_nothing(pull: Pull) -> None:
    document = await pull.order()
    resp = await pull.api.head(INBOX, headers=pull.headers(pull.bank))
    assert resp.status == 200
    assert [i["item_id"] for i in (await pull.fetch())[1]["items"]] == [document["message_id"]]
