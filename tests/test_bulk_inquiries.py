"""Bulk lookups: many debtors in one request, validated as a whole, accepted at once, expanded by the
workers into ordinary inquiries a chunk at a time — resumed after a crash without a duplicate — and read
back page by page, each debtor's lookup and each read audited on its own."""

from __future__ import annotations

import asyncio
import copy
import json
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.partners import load_partners
from gateway.reference_data import load_calendar, load_legal_bases
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.services.bulk import inquiry_id_of
from gateway.services.bulk_expansion import BulkExpander
from gateway.services.inquiries import InquiryService
from gateway.services.inquiry_results import apply_answer
from gateway.storage.database import Database
from gateway.storage.inquiries import Answer
from gateway.storage.tables import audit_log, bulk_items, inquiries, inquiry_sources, outbox
from gateway.storage.timestamps import now
from gateway.validation import catalog
from gateway.web.app import create_app
from tests.conftest import EXAMPLES, Party, World, make_world
from tests.support.lookup_world import write_partners

PATH = "/v1/bulk-asset-inquiries"
EXAMPLE: dict[str, Any] = json.loads(
    (EXAMPLES / "asset-inquiry-bulk" / "valid-three-debtors-banks-and-tax.json").read_text("utf-8")
)
#: Banks and tax of the simulators' configuration (tests/support/lookup_world.py): six sources a debtor.
SOURCES_PER_DEBTOR = 6
OTHER_CLIENT = "THADS-HCM"


def bulk(n: int) -> dict[str, Any]:
    """A bulk of ``n`` debtors: the example's three, then further people of their own cases."""
    body = copy.deepcopy(EXAMPLE)
    debtors = body["debtors"]
    title = debtors[0]["title"]
    for i in range(len(debtors), n):
        debtors.append(
            {
                "id_number": f"0010{i:08d}",
                "full_name": f"Người thứ {i}",
                "case_ref": f"THA-HN-2026-{i:06d}",
                "title": title,
            }
        )
    body["debtors"] = debtors[:n]
    return body


@dataclass
class Bulks:
    world: World
    api: TestClient[Any, Any]
    other: Party
    db: Database

    def headers(self, **extra: str) -> dict[str, str]:
        return self.world.case_headers() | extra

    def expander(self, clock: Callable[[], datetime] = now, owner: str | None = None) -> BulkExpander:
        config = self.world.settings.config_dir
        partners = load_partners(config)
        service = InquiryService(
            self.db, catalog(), partners, load_legal_bases(config), load_calendar(config), pepper=b"p" * 32
        )
        return BulkExpander(self.db, service, partners, self.world.settings.bulk, owner=owner, clock=clock)

    async def count(self, table: Any, *where: Any) -> int:
        async with self.db.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()
            )

    async def audited(self, action: str) -> int:
        return await self.count(audit_log, audit_log.c.action == action)


@pytest.fixture
async def bulks(
    tmp_path: Path, database_url: str, aiohttp_client: Callable[..., Any]
) -> AsyncIterator[Bulks]:
    """The api (it publishes nothing: no broker needed) over a database on each backend, with the
    simulators' partners configured (never called here), and a second client granted lookups too."""
    world = make_world(
        tmp_path,
        database_url,
        relay={"publish_from_api": False},
        bulk={"max_debtors": 200, "chunk_debtors": 2, "max_page": 3},
        limits={"max_errors": 10},
    )
    store = ClientStore(world.settings.clients_dir)
    case = world.case_system
    store.add(case.id, public_pem(case.key.public_key()), ["messages.read", "assets.inquire"])
    other = Party(OTHER_CLIENT, generate_keypair("p256"))
    store.add(other.id, public_pem(other.key.public_key()), ["assets.inquire"])
    urls = {code: f"http://127.0.0.1:9/{code.lower()}" for code in _codes()}
    write_partners(world.settings.config_dir, urls)
    api: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    db = Database(world.settings.resolved_database_url)
    try:
        yield Bulks(world, api, other, db)
    finally:
        await db.dispose()


def _codes() -> list[str]:
    from tests.support.lookup_world import PARTNER_CODES

    return list(PARTNER_CODES)


async def accept(b: Bulks, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    resp = await b.api.post(PATH, json=body, headers=b.headers(**headers))
    assert resp.status == 202, await resp.text()
    view: dict[str, Any] = await resp.json()
    assert resp.headers["Location"] == f"{PATH}/{view['bulk_id']}"
    return view


async def read(b: Bulks, bulk_id: str, **query: str) -> dict[str, Any]:
    resp = await b.api.get(f"{PATH}/{bulk_id}", params=query, headers=b.headers())
    assert resp.status == 200, await resp.text()
    view: dict[str, Any] = await resp.json()
    return view


# -- validation, cap, grants, idempotency ------------------------------------------------------------


async def test_every_violation_is_listed_with_its_path_and_nothing_is_stored(bulks: Bulks) -> None:
    body = bulk(20)
    body["debtors"][17]["id_number"] = "12345"
    del body["debtors"][2]["case_ref"]
    body["legal_basis"] = "NOT-A-BASIS"
    resp = await bulks.api.post(PATH, json=body, headers=bulks.headers())
    assert resp.status == 422
    problem = await resp.json()
    paths = [e["path"] for e in problem["errors"]]
    assert "$.debtors[17].id_number" in paths and "$.debtors[2].case_ref" in paths
    # The inquiry rules apply once the schema holds: a legal basis outside the code list.
    body = bulk(3) | {"legal_basis": "NOT-A-BASIS"}
    body["preconditions"]["data_necessary"] = False
    problem = await (await bulks.api.post(PATH, json=body, headers=bulks.headers())).json()
    assert {e["path"] for e in problem["errors"]} >= {"$.preconditions.data_necessary"}
    body = bulk(3) | {"legal_basis": "NOT-A-BASIS"}
    problem = await (await bulks.api.post(PATH, json=body, headers=bulks.headers())).json()
    assert [e["path"] for e in problem["errors"]] == ["$.legal_basis"]
    assert await bulks.count(inquiries) == 0
    assert await bulks.audited("assets.bulk") == 0


async def test_the_violation_list_is_capped_and_the_rest_counted(bulks: Bulks) -> None:
    body = bulk(30)
    for debtor in body["debtors"]:
        debtor.pop("enterprise_code", None)
        debtor["id_number"] = "1"
    problem = await (await bulks.api.post(PATH, json=body, headers=bulks.headers())).json()
    assert len(problem["errors"]) == 10  # limits.max_errors of this installation
    assert problem["errors_omitted"] == 20


async def test_more_debtors_than_configured_is_413_before_validation(bulks: Bulks) -> None:
    body = bulk(201)
    body["debtors"][0]["id_number"] = "bad"  # never reported: the count is refused first
    resp = await bulks.api.post(PATH, json=body, headers=bulks.headers())
    assert resp.status == 413
    problem = await resp.json()
    assert problem["type"].endswith("too-complex")
    assert problem["limit"] == "bulk.max_debtors" and "201 debtors" in problem["detail"]
    assert await bulks.audited("assets.bulk") == 0


async def test_the_bulk_needs_the_grants_of_the_inquiries_it_makes(bulks: Bulks) -> None:
    store = ClientStore(bulks.world.settings.clients_dir)
    store.add(OTHER_CLIENT, public_pem(bulks.other.key.public_key()), ["assets.inquire:tax"])
    headers = bulks.other.headers(bulks.world.settings)
    resp = await bulks.api.post(PATH, json=bulk(2), headers=headers)  # banks and tax
    assert resp.status == 403
    assert "assets.inquire:bank" in (await resp.json())["detail"]
    ok = await bulks.api.post(
        PATH, json=bulk(2) | {"sources": ["tax"]}, headers=bulks.other.headers(bulks.world.settings)
    )
    assert ok.status == 202


async def test_the_same_idempotency_key_returns_the_same_bulk(bulks: Bulks) -> None:
    first = await accept(bulks, bulk(3), **{"Idempotency-Key": "campaign-2026-01"})
    again = await accept(bulks, bulk(3), **{"Idempotency-Key": "campaign-2026-01"})
    assert again["bulk_id"] == first["bulk_id"]
    other = await bulks.api.post(
        PATH, json=bulk(4), headers=bulks.headers(**{"Idempotency-Key": "campaign-2026-01"})
    )
    assert other.status == 409
    assert await bulks.audited("assets.bulk") == 1


async def test_another_client_never_sees_the_bulk(bulks: Bulks) -> None:
    view = await accept(bulks, bulk(3))
    resp = await bulks.api.get(f"{PATH}/{view['bulk_id']}", headers=bulks.other.headers(bulks.world.settings))
    assert resp.status == 404
    missing = await bulks.api.get(f"{PATH}/{inquiry_id_of(view['bulk_id'], 0)}", headers=bulks.headers())
    assert missing.status == 404


# -- expansion --------------------------------------------------------------------------------------


async def test_the_bulk_is_expanded_a_chunk_at_a_time_into_ordinary_inquiries(bulks: Bulks) -> None:
    view = await accept(bulks, bulk(5))
    assert view["status"] == "expanding" and view["progress"]["expanded"] == 0
    assert await bulks.count(inquiries) == 0  # accepting stored the bulk alone
    expander = bulks.expander()
    assert await expander.expand_next(max_chunks=1)
    mid = await read(bulks, view["bulk_id"], limit="0")
    assert mid["status"] == "expanding" and mid["progress"]["expanded"] == 2
    assert await bulks.count(inquiries) == 2
    assert await bulks.count(outbox) == 2 * SOURCES_PER_DEBTOR  # one partner request per source
    assert await expander.expand_next()
    assert not await expander.expand_next()  # nothing left
    done = await read(bulks, view["bulk_id"], limit="0")
    assert done["status"] == "in_progress" and done["progress"]["expanded"] == 5 and "expanded_at" in done
    assert done["progress"]["inquiries"] == {"pending": 5, "partial": 0, "complete": 0, "expired": 0}
    assert done["progress"]["sources"] == {"total": 5 * SOURCES_PER_DEBTOR, "answered": 0, "pending": 30}
    # Each debtor is an ordinary inquiry of the client: GET of the single inquiry works as for any other.
    single = await bulks.api.get(
        f"/v1/asset-inquiries/{inquiry_id_of(view['bulk_id'], 4)}", headers=bulks.headers()
    )
    assert single.status == 200
    assert (await single.json())["case_ref"] == "THA-HN-2026-000004"
    # One lookup audited per debtor, as for single inquiries; the bulk's acceptance once.
    assert await bulks.audited("assets.inquire") == 5
    assert await bulks.audited("assets.bulk") == 1


async def test_a_crash_mid_expansion_resumes_where_it_stopped_without_duplicates(bulks: Bulks) -> None:
    view = await accept(bulks, bulk(7))
    crashed = bulks.expander(owner="worker-that-dies")
    assert await crashed.expand_next(max_chunks=2)  # four debtors stored, then the process is gone
    assert await bulks.count(inquiries) == 4
    # A restarted worker waits for the dead one's lease to run out (the clock moved past it)...
    assert not await bulks.expander(owner="restarted").expand_next()
    later = bulks.expander(clock=lambda: now() + timedelta(hours=1), owner="restarted")
    assert await later.expand_next()
    # ...and the one that was thought dead, writing again, finds the bulk moved on: nothing is written.
    await crashed.expand(view["bulk_id"])
    assert await bulks.count(inquiries) == 7
    assert await bulks.count(bulk_items) == 7
    assert await bulks.count(inquiry_sources) == 7 * SOURCES_PER_DEBTOR
    assert await bulks.count(outbox) == 7 * SOURCES_PER_DEBTOR
    assert await bulks.audited("assets.inquire") == 7
    async with bulks.db.read() as conn:
        ids = set((await conn.execute(select(bulk_items.c.inquiry_id))).scalars())
    assert ids == {inquiry_id_of(view["bulk_id"], p) for p in range(7)}
    assert (await read(bulks, view["bulk_id"], limit="0"))["progress"]["expanded"] == 7


async def test_two_workers_at_once_expand_each_debtor_once(bulks: Bulks) -> None:
    await accept(bulks, bulk(9))
    await accept(bulks, bulk(4))
    first, second = bulks.expander(owner="w1"), bulks.expander(owner="w2")
    # Both look for work at once, again and again, until neither finds any.
    while any(await asyncio.gather(first.expand_next(), second.expand_next())):
        pass
    assert await bulks.count(inquiries) == 13
    assert await bulks.audited("assets.inquire") == 13


async def test_a_bulk_whose_source_left_the_configuration_is_stopped_not_expanded_with_less(
    bulks: Bulks,
) -> None:
    view = await accept(bulks, bulk(3) | {"sources": [{"bank": ["BANK-CTG"]}]})
    # The bank is taken out of the configuration before the workers get to the bulk.
    path = bulks.world.settings.config_dir / "partners.toml"
    blocks = tomllib.loads(path.read_text("utf-8"))["partner"]
    path.write_text(tomli_w.dumps({"partner": [b for b in blocks if b["code"] != "BANK-CTG"]}), "utf-8")
    expander = bulks.expander()
    assert await expander.expand_next()
    assert not await expander.expand_next()  # never taken again
    assert (await read(bulks, view["bulk_id"], limit="0"))["status"] == "stopped"
    assert await bulks.count(inquiries) == 0


# -- results ----------------------------------------------------------------------------------------


async def test_results_per_debtor_are_paged_and_every_read_is_audited(bulks: Bulks) -> None:
    view = await accept(bulks, bulk(5))
    await bulks.expander().expand_next()
    # Every source of the first debtor answers; the second debtor's tax only.
    async with bulks.db.read() as conn:
        rows = (await conn.execute(select(inquiry_sources).order_by(inquiry_sources.c.id))).all()
    first, second = inquiry_id_of(view["bulk_id"], 0), inquiry_id_of(view["bulk_id"], 1)
    account = {"account_number": "0011001234567", "currency": "VND"}
    for row in rows:
        if row.inquiry_id == first or (row.inquiry_id == second and row.source_id == "tax"):
            found = row.kind == "bank"
            answer = Answer(
                status="found" if found else "not_found",
                match_status="found" if found else "not_found",
                rows=[account] if found else [],
            )
            assert await apply_answer(bulks.db, row.request_ref, answer, row.partner_code)

    page1 = await read(bulks, view["bulk_id"], limit="2")
    assert page1["progress"]["inquiries"]["complete"] == 1 and page1["progress"]["inquiries"]["partial"] == 1
    assert page1["progress"]["sources"]["answered"] == SOURCES_PER_DEBTOR + 1
    assert [r["position"] for r in page1["results"]] == [0, 1]
    assert page1["results"][0]["status"] == "complete"
    assert page1["results"][0]["sources"][0]["rows"] == [account]
    assert page1["results"][1]["status"] == "partial"
    page2 = await read(bulks, view["bulk_id"], limit="2", cursor=page1["next_cursor"])
    assert [r["position"] for r in page2["results"]] == [2, 3]
    page3 = await read(bulks, view["bulk_id"], limit="50", cursor=page2["next_cursor"])  # capped at 3
    assert [r["position"] for r in page3["results"]] == [4] and "next_cursor" not in page3
    # One read per inquiry shown; limit=0 shows (and audits) none.
    await read(bulks, view["bulk_id"], limit="0")
    assert await bulks.audited("assets.read") == 5
    async with bulks.db.read() as conn:
        data = [
            json.loads(d)
            for d in (await conn.execute(select(audit_log.c.data).where(audit_log.c.action == "assets.read")))
            .scalars()
            .all()
        ]
    assert {d["bulk_id"] for d in data} == {view["bulk_id"]}


async def test_a_bad_cursor_or_limit_is_422(bulks: Bulks) -> None:
    view = await accept(bulks, bulk(2))
    for query in ({"cursor": "abc"}, {"limit": "-1"}, {"limit": "many"}):
        resp = await bulks.api.get(f"{PATH}/{view['bulk_id']}", params=query, headers=bulks.headers())
        assert resp.status == 422, query


# -- end to end -------------------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_a_bulk_end_to_end_answers_every_debtor_from_the_partners(tmp_path: Path) -> None:
    """The api and a worker with the simulators over the real broker: the worker expands the bulk, the
    partners answer each debtor, and the results match what the simulators hold for each."""
    from gateway.simulators.partners import seed
    from tests.support.lookup_world import running_gateway

    async with running_gateway(tmp_path) as (lw, api):
        body = bulk(4)
        resp = await api.post(PATH, json=body, headers=lw.world.case_headers())
        assert resp.status == 202, await resp.text()
        location = resp.headers["Location"]
        for _ in range(300):
            view = await (
                await api.get(location, headers=lw.world.case_headers(), params={"limit": "0"})
            ).json()
            if view["status"] == "complete":
                break
            await asyncio.sleep(0.1)
        assert view["status"] == "complete", view["progress"]
        assert view["progress"]["sources"]["pending"] == 0
        page = await (await api.get(location, headers=lw.world.case_headers(), params={"limit": "10"})).json()
        assert [r["position"] for r in page["results"]] == [0, 1, 2, 3]
        for result, debtor in zip(page["results"], body["debtors"], strict=True):
            assert result["case_ref"] == debtor["case_ref"]
            subject = {k: debtor[k] for k in ("id_number", "enterprise_code") if k in debtor}
            vcb = next(s for s in result["sources"] if s["source"] == "bank:BANK-VCB")
            expected = seed.expected("bank", "BANK-VCB", subject)["accounts"]
            assert [r["account_number"] for r in vcb.get("rows", [])] == [
                a["account_number"] for a in expected
            ]
