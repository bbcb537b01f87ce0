"""The console's lists: the message list paged by keyset (stable while messages arrive), sorted and
filtered from the URL, page size capped; its CSV export (masked, capped, audited); the audit-log page
(search, pages, its own reads audited, the chain verified); the clients page."""

from __future__ import annotations

import csv
import html as htmllib
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select, update

from gateway.ops import audit_log as audit_model
from gateway.ops import message_list
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.storage.audit import AuditEntry, append
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import audit_log, messages
from tests.conftest import World
from tests.support.console import add_operator, operator_client, sign_in, write

RAW_ID = "001185012345"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def row(n: int, **changes: Any) -> dict[str, Any]:
    """A message row received ``n`` minutes after T0."""
    at = T0 + timedelta(minutes=n)
    values: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "message_type": "judgment.delivery",
        "schema_version": "1.0",
        "sender": "TAND-HN",
        "recipient": "THADS-HN",
        "priority": "normal",
        "sha256": "0" * 64,
        "receipt": "{}",
        "status": "received",
        "status_reason": None,
        "case_ref": None,
        "received_at": at,
        "updated_at": at,
    }
    return values | changes


async def insert_rows(world: World, rows: list[dict[str, Any]]) -> None:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.transaction() as conn:
            await conn.execute(insert(messages), rows)
    finally:
        await db.dispose()


async def audit_rows(world: World, action: str) -> list[Any]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            query = select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
            return list((await conn.execute(query)).all())
    finally:
        await db.dispose()


def ids_in(page: str) -> list[str]:
    section = page.split('id="messages"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'data-message-id="([^"]+)"', section)


def link(page: str, anchor: str) -> str | None:
    found = re.search(rf'id="{anchor}" href="([^"]+)"', page)
    return htmllib.unescape(found.group(1)) if found else None


async def get(api: TestClient[Any, Any], url: str, **params: str) -> str:
    resp = await api.get(url, params=params or None)
    assert resp.status == 200, (await resp.text())[:2000]
    return await resp.text()


async def test_pages_hold_still_while_messages_arrive(world: World, api: TestClient[Any, Any]) -> None:
    rows = [row(n) for n in range(7)]
    await insert_rows(world, rows)
    newest_first = [r["message_id"] for r in reversed(rows)]
    await operator_client(api, world.settings)

    first = await get(api, "/ops/messages", size="3")
    assert ids_in(first) == newest_first[:3]
    assert link(first, "prev-page") is None
    next_url = link(first, "next-page")
    assert next_url and "size=3" in next_url and "offset" not in next_url

    # Newer messages arrive while the operator reads the first page: the next page is unmoved.
    arrived = [row(100), row(101)]
    await insert_rows(world, arrived)
    second = await get(api, next_url)
    assert ids_in(second) == newest_first[3:6]
    third_url = link(second, "next-page")
    assert third_url
    third = await get(api, third_url)
    assert ids_in(third) == newest_first[6:]
    assert link(third, "next-page") is None

    # Back from the second page: the rows before it, then the new ones on the first page.
    prev_url = link(second, "prev-page")
    assert prev_url
    assert ids_in(await get(api, prev_url)) == newest_first[:3]
    assert ids_in(await get(api, "/ops/messages", size="3"))[:2] == [
        arrived[1]["message_id"],
        arrived[0]["message_id"],
    ]
    # A cursor that was tampered with or made for another sort starts again at the first page.
    assert (
        ids_in(await get(api, "/ops/messages", size="3", after="not-a-cursor"))[0] == arrived[1]["message_id"]
    )


async def test_sorting_by_columns_and_paging_in_that_order(world: World, api: TestClient[Any, Any]) -> None:
    senders = ["TAND-HN", "TAND-HCM", "TAND-DN", "TAND-HP"]
    rows = [
        row(n, sender=s, status=st)
        for n, (s, st) in enumerate(zip(senders, ["queued", "failed"] * 2, strict=True))
    ]
    await insert_rows(world, rows)
    await operator_client(api, world.settings)

    def order(key: str, reverse: bool = False) -> list[str]:
        ranked = sorted(rows, key=lambda r: (r[key], r["message_id"]), reverse=reverse)
        return [r["message_id"] for r in ranked]

    assert ids_in(await get(api, "/ops/messages", sort="sender", dir="asc")) == order("sender")
    assert ids_in(await get(api, "/ops/messages", sort="sender", dir="desc")) == order("sender", True)
    assert ids_in(await get(api, "/ops/messages", sort="received", dir="asc")) == order("received_at")
    by_status = order("status")
    page = await get(api, "/ops/messages", sort="status", dir="asc", size="3")
    assert ids_in(page) == by_status[:3]
    assert 'aria-sort="ascending"' in page
    next_url = link(page, "next-page")
    assert next_url and "sort=status" in next_url and "dir=asc" in next_url
    assert ids_in(await get(api, next_url)) == by_status[3:]
    # An unknown sort column is the default order, never an error.
    assert ids_in(await get(api, "/ops/messages", sort="payload")) == order("received_at", True)


async def test_filters_are_in_the_url_and_travel_with_the_pages(
    world: World, api: TestClient[Any, Any]
) -> None:
    wanted = [row(n, status="failed", recipient="THADS-HCM") for n in range(3)]
    others = [
        row(10, status="failed"),
        row(11, recipient="THADS-HCM"),
        row(12, status="failed", recipient="THADS-HCM", message_type="asset.order"),
        row(-60 * 24 * 3, status="failed", recipient="THADS-HCM"),  # three days earlier
    ]
    await insert_rows(world, wanted + others)
    await operator_client(api, world.settings)
    day = T0.date().isoformat()
    params = {
        "status": "failed",
        "recipient": "THADS-HCM",
        "type": "judgment.delivery",
        "sender": "TAND-HN",
        "from": day,
        "to": day,
        "size": "2",
    }
    first = await get(api, "/ops/messages", **params)
    expected = [r["message_id"] for r in reversed(wanted)]
    assert ids_in(first) == expected[:2]
    next_url = link(first, "next-page")
    assert next_url
    for name, value in params.items():
        assert f"{name}={value}" in next_url, name
    assert ids_in(await get(api, next_url)) == expected[2:]
    export = link(first, "export")
    assert export and export.startswith("/ops/messages.csv?") and "status=failed" in export


async def test_page_size_is_capped(world: World, api: TestClient[Any, Any]) -> None:
    rows = [row(n) for n in range(message_list.MAX_PAGE_SIZE + 5)]
    await insert_rows(world, rows)
    await operator_client(api, world.settings)
    page = await get(api, "/ops/messages", size="100000")
    assert len(ids_in(page)) == message_list.MAX_PAGE_SIZE
    assert link(page, "next-page")
    assert len(ids_in(await get(api, "/ops/messages", size="-3"))) == 1
    assert len(ids_in(await get(api, "/ops/messages", size="many"))) == message_list.PAGE_SIZE


async def test_the_auditors_csv_masks_ids_is_capped_and_audited(
    world: World, api: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        row(n, case_ref=f"THA-{RAW_ID}", status="failed", status_reason=f"refused {RAW_ID}") for n in range(5)
    ]
    rows.append(row(9, case_ref="=HYPERLINK(1)", status="failed"))
    rows.append(row(8, status="queued"))
    await insert_rows(world, rows)
    add_operator(world.settings, "ann", "auditor")
    await sign_in(api, "ann")

    resp = await api.get("/ops/messages.csv", params={"status": "failed", "sort": "received", "dir": "asc"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    body = (await resp.read()).decode("utf-8-sig")
    assert RAW_ID not in body and "001*******45" in body
    table = list(csv.reader(io.StringIO(body)))
    assert table[0] == list(message_list.CSV_COLUMNS)
    assert [r[0] for r in table[1:]] == [r["message_id"] for r in rows[:5]] + [rows[5]["message_id"]]
    assert table[-1][6] == "'=HYPERLINK(1)"  # a formula for a spreadsheet is text

    [recorded] = await audit_rows(world, "ops.messages.export")
    assert (recorded.actor, recorded.outcome) == ("ann", "read")
    data = json.loads(recorded.data)
    assert data["filter"] == {"status": "failed", "sort": "received", "dir": "asc"}
    assert data["role"] == "auditor" and data["max_rows"] == message_list.EXPORT_MAX_ROWS

    # Past the cap the file says it was cut; fetched in batches, nothing repeats or goes missing.
    monkeypatch.setattr(message_list, "EXPORT_MAX_ROWS", 4)
    monkeypatch.setattr(message_list, "EXPORT_BATCH", 3)
    body = (await (await api.get("/ops/messages.csv")).read()).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(body)))
    assert len(table) == 1 + 4 + 1 and table[-1][0].startswith("# cut at 4 rows")
    assert len({r[0] for r in table[1:5]}) == 4
    monkeypatch.setattr(message_list, "EXPORT_MAX_ROWS", 7)
    table = list(
        csv.reader(io.StringIO((await (await api.get("/ops/messages.csv")).read()).decode("utf-8-sig")))
    )
    assert sorted(r[0] for r in table[1:]) == sorted(r["message_id"] for r in rows)
    assert len(await audit_rows(world, "ops.messages.export")) == 3


async def write_audit(world: World, entries: list[AuditEntry]) -> None:
    db = Database(world.settings.resolved_database_url)
    try:
        for entry in entries:
            async with db.transaction() as conn:
                await append(conn, entry)
    finally:
        await db.dispose()


def audit_ids(page: str) -> list[int]:
    section = page.split('id="audit"', 1)[1].split("</table>", 1)[0]
    return [int(i) for i in re.findall(r'data-audit-id="(\d+)"', section)]


async def test_audit_search_pages_and_its_reads_are_audited(
    world: World, api: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = "gw.deliver.THADS-HN"
    entries = [
        AuditEntry(
            actor="vy", action="ops.parking.replay", outcome="done", object_ref=queue, reason=f"fixed {n}"
        )
        for n in range(5)
    ] + [
        AuditEntry(actor="TAND-HN", action="documents.send", outcome="accepted", subject=RAW_ID),
        AuditEntry(actor="vy", action="ops.partner.test", outcome="ok", object_ref="BANK-1", data={"ms": 3}),
    ]
    await write_audit(world, entries)
    await operator_client(api, world.settings)

    replays = await get(api, "/ops/audit", actor="vy", action="ops.parking.replay", size="2")
    shown = audit_ids(replays)
    assert len(shown) == 2 and shown == sorted(shown, reverse=True)
    assert "fixed 4" in replays and "fixed 3" in replays
    older = link(replays, "next-page")
    assert older and "actor=vy" in older and "before=" in older
    rest = audit_ids(await get(api, older))
    assert len(rest) == 2 and max(rest) < min(shown)

    # "ops." finds every console action; the subject matches the object; an ID is searched masked.
    console_actions = await get(api, "/ops/audit", action="ops.", subject="BANK-1")
    assert (
        "ops.partner.test" in console_actions
        and "ops.parking.replay" not in console_actions.split('id="audit"')[1]
    )
    masked = await get(api, "/ops/audit", subject=RAW_ID)
    assert len(audit_ids(masked)) == 1 and RAW_ID not in masked and "001*******45" in masked
    today = datetime.now(UTC).date()
    assert audit_ids(await get(api, "/ops/audit", actor="vy", **{"to": str(today - timedelta(days=1))})) == []
    assert len(audit_ids(await get(api, "/ops/audit", actor="vy", **{"from": str(today)}))) == 6

    reads = await audit_rows(world, "ops.audit.read")
    assert len(reads) == 6 and {r.actor for r in reads} == {"olga"}
    assert json.loads(reads[0].data)["filter"] == {"actor": "vy", "action": "ops.parking.replay", "size": "2"}

    # Each page looks at a bounded stretch of the log; a sparse match offers to search further back.
    monkeypatch.setattr(audit_model, "SCAN_WINDOW", 3)
    narrow = await get(api, "/ops/audit", actor="TAND-HN")
    assert audit_ids(narrow) == []
    further = link(narrow, "next-page")
    assert further and "Search further back" in narrow
    while not audit_ids(page := await get(api, further)):
        further = link(page, "next-page")
        assert further, "the record was never reached"
    assert "documents.send" in page


async def test_verify_the_chain_from_the_audit_page(world: World, api: TestClient[Any, Any]) -> None:
    await write_audit(world, [AuditEntry(actor="vy", action="ops.signin", outcome="ok") for _ in range(3)])
    add_operator(world.settings, "ann", "auditor")
    csrf = await sign_in(api, "ann")  # verifying reads: the auditor may
    assert (await api.post("/ops/audit/verify", data={})).status == 403  # no CSRF token

    page = await (await api.post("/ops/audit/verify", data={"csrf": csrf})).text()
    assert 'data-outcome="intact"' in page
    [verified] = await audit_rows(world, "ops.audit.verify")
    assert (verified.actor, verified.outcome) == ("ann", "intact")

    await write(world, update(audit_log).where(audit_log.c.id == 2).values(reason="edited"))
    page = await (await api.post("/ops/audit/verify", data={"csrf": csrf})).text()
    assert 'data-outcome="broken"' in page and "record 2" in page
    assert [r.outcome for r in await audit_rows(world, "ops.audit.verify")] == ["intact", "broken"]


async def test_clients_page_grants_delivery_key_age_and_last_seen(
    world: World, api: TestClient[Any, Any]
) -> None:
    store = ClientStore(world.settings.clients_dir)
    key = generate_keypair("ed25519")
    store.add(
        "THADS-DN",
        public_pem(key.public_key()),
        ["messages.read"],
        deliver_to="https://user:secret@case.example.gov.vn/inbox?token=abc",
    )
    store.revoke("THADS-DN")
    # A client written before key issue times were recorded: one key -> its creation; none known else.
    path = world.settings.clients_dir / f"{world.case_system.id}.toml"
    text = path.read_text("utf-8")
    path.write_text(re.sub(r"(?ms)^key_issued_at = \[.*?^\]\n", "", text), "utf-8")
    await write_audit(world, [AuditEntry(actor=world.court.id, action="judgments.push", outcome="accepted")])
    await operator_client(api, world.settings)
    page = await get(api, "/ops/clients")

    def cells(client_id: str) -> str:
        return page.split(f'data-client="{client_id}"', 1)[1].split("</tr>", 1)[0]

    court = cells(world.court.id)
    assert "judgments.push" in court and "messages.read" in court
    assert "judgments.push</small>" in court and "<time" in court.split('class="last-seen"')[1]
    assert "<time" in court.split('class="key-age"')[1].split("</td>")[0]
    case = cells(world.case_system.id)
    assert '<span class="delivery-kind">queue</span>' in case and world.case_queue in case
    assert "never" in case.split('class="last-seen"')[1]
    assert "<time" in case.split('class="key-age"')[1].split("</td>")[0]  # one key: issued with the client
    dn = cells("THADS-DN")
    assert "webhook" in dn and "case.example.gov.vn/inbox?…" in dn
    assert "secret" not in dn and "token=abc" not in dn and "revoked" in dn


async def test_verification_is_bounded_in_time_and_runs_one_at_a_time(world: World) -> None:
    await upgrade(world.settings.resolved_database_url)
    await write_audit(world, [AuditEntry(actor="vy", action="ops.signin", outcome="ok")])
    url = world.settings.resolved_database_url
    timed_out = await audit_model.verify(url, {}, limit_seconds=0)
    assert timed_out.outcome == "timeout" and timed_out.report is None
    with audit_model._verifying:  # another request's verification is running
        assert (await audit_model.verify(url, {})).outcome == "busy"
    assert (await audit_model.verify(url, {})).outcome == "intact"
