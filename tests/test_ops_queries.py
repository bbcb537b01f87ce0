"""The operators' queries on both backends (SQLite and PostgreSQL): message search, overdue and stuck
lists and counts, outbox age, partner health aggregated over fresh worker rows only."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import insert, update

from gateway.ops import backlog, partners
from gateway.ops import messages as ops_messages
from gateway.partners import Partner
from gateway.storage import messages as store
from gateway.storage.database import Database
from gateway.storage.messages import OutboxItem
from gateway.storage.tables import evidences, messages, partner_health
from gateway.storage.timestamps import now


def message(**overrides: Any) -> dict[str, Any]:
    message_id = str(uuid.uuid4())
    row = {
        "message_id": message_id,
        "message_type": "judgment.delivery",
        "schema_version": "1",
        "sender": "TAND-HN",
        "recipient": "THADS-HN",
        "correlation_id": None,
        "priority": "normal",
        "natural_key": message_id,
        "sha256": "ab" * 32,
        "payload": json.dumps({"id_number": "001185012345"}),
        "receipt": json.dumps({"receipt_id": message_id}),
        "received_at": now(),
    }
    return row | overrides


async def test_search_and_backlog(db: Database) -> None:
    item = OutboxItem(exchange="documents", routing_key="THADS-HN", headers={}, body="{}")
    old = now() - timedelta(days=3)
    rows = [
        message(received_at=old),
        message(sender="TAND-HCM"),
        message(message_type="order.account_blocking", recipient="BANK-VCB"),
    ]
    async with db.transaction() as conn:
        for row in rows:
            await store.insert_accepted(conn, row, item, "test", {})
        a, b, c = (r["message_id"] for r in rows)
        await conn.execute(
            update(messages).where(messages.c.message_id == a).values(due_at=now() - timedelta(hours=1))
        )
        await conn.execute(
            update(messages)
            .where(messages.c.message_id == b)
            .values(updated_at=now() - timedelta(hours=2), case_ref="THA-1")
        )
        await conn.execute(
            insert(evidences).values(message_id=c, event="delivery_failed", at=now(), actor="t")
        )

    async with db.read() as conn:

        async def ids(**kw: Any) -> list[str]:
            return [m.message_id for m in await ops_messages.search(conn, ops_messages.MessageQuery(**kw))]

        assert set(await ids()) == {a, b, c}
        assert await ids(message_id=a.upper()) == [a]
        assert await ids(message_id=b[:10]) == [b]
        assert await ids(sender="TAND-HCM") == [b]
        assert await ids(case_ref="THA-1") == [b]
        assert await ids(message_type="order.account_blocking", recipient="BANK-VCB") == [c]
        assert await ids(status="received", received_to=old.date()) == [a]
        assert set(await ids(received_from=date.today() - timedelta(days=1))) <= {b, c}

        found = await ops_messages.detail(conn, a)
        assert found is not None and found.payload is not None
        assert "001185012345" not in found.payload and "001*******45" in found.payload
        assert [e["event"] for e in found.timeline] == ["accepted"]

        counts = await backlog.counts(conn, threshold_minutes=60)
        # ``a`` was received three days ago and has not moved since: overdue and stuck both.
        assert counts == {"overdue": 1, "stuck": 2, "retrying": 1, "pending_inquiries": 0}
        listed = await backlog.backlog(conn, threshold_minutes=60)
        assert [m.message_id for m in listed.overdue] == [a]
        assert [m.message_id for m in listed.stuck] == [a, b]
        assert [m.message_id for m in listed.retrying] == [c]
        state = await backlog.outbox_state(conn)
        assert state.backlog == 3 and (state.oldest_age_seconds() or 0) >= 3 * 86400 - 60


async def test_partner_health_aggregates_fresh_rows(db: Database) -> None:
    fresh, stale = now(), now() - timedelta(seconds=45)
    common = {
        "calls": 10,
        "failures": 1,
        "in_flight": 1,
        "p50_ms": None,
        "p95_ms": None,
        "last_error": None,
        "last_error_at": None,
    }
    async with db.transaction() as conn:
        await conn.execute(
            insert(partner_health),
            [
                {"partner": "BANK-VCB", "worker": "w1", "updated_at": fresh, "breaker": "closed",
                 **common, "p50_ms": 10, "p95_ms": 50},
                {"partner": "BANK-VCB", "worker": "w2", "updated_at": fresh, "breaker": "half-open",
                 **common, "p50_ms": 15, "p95_ms": 40, "last_error": "timeout", "last_error_at": fresh},
                {"partner": "BANK-VCB", "worker": "w3", "updated_at": stale, "breaker": "open", **common},
                {"partner": "TAX", "worker": "w1", "updated_at": stale, "breaker": "closed", **common},
            ],
        )  # fmt: skip
    configured = [
        Partner(code="BANK-VCB", kind="bank", protocol="rest", endpoint="http://127.0.0.1:9/vcb"),
        Partner(code="TAX", kind="tax", protocol="rest", endpoint="http://127.0.0.1:9/tax"),
    ]
    async with db.read() as conn:
        vcb, tax = await partners.health(conn, configured)
    assert (vcb.breaker, vcb.workers, vcb.calls, vcb.failures, vcb.in_flight) == ("half-open", 2, 20, 2, 2)
    assert (vcb.p50_ms, vcb.p95_ms, vcb.success_rate, vcb.last_error) == (15, 50, 0.9, "timeout")
    assert vcb.state_class == "state-warn"
    assert (tax.breaker, tax.calls, tax.success_rate, tax.state_class) == (
        "unknown",
        0,
        None,
        "state-unknown",
    )
