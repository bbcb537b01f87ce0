"""The operators' console in Debian's chromium, against the real api and worker processes: an operator
signs in, finds a judgment, replays a parked one that then reaches the case system once (and the audit
log says who replayed it and why), and sees a partner whose simulator stopped turn red."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import select

from gateway.partners import load_partners
from gateway.storage.tables import audit_log
from tests.support.browser import (
    AUDITOR,
    BROWSER_MARKS,
    OPERATOR,
    ConsoleWorld,
    Shots,
    reload_until,
    wait_for,
)
from tests.test_asset_inquiry_flow import inquiry

pytestmark = BROWSER_MARKS

PERSONAL_IDS = ("001185012345", "001079004321")  # the two parties of the example judgment


def sign_in(page: Page, console: ConsoleWorld, account: tuple[str, str, str]) -> None:
    username, password, _role = account
    page.goto(console.url + "/ops/login")
    form = page.locator("form#login")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()
    expect(page.locator("#logout")).to_be_visible()


def sign_out(page: Page) -> None:
    page.locator("#logout").click()
    expect(page).to_have_url(re.compile(r"/ops/login"))


def test_sign_in_shows_real_queues_and_sign_out_ends_the_session(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    page.goto(console.url + "/ops/")
    expect(page).to_have_url(re.compile(r"/ops/login"))  # nothing under /ops without signing in
    shots("login-page")

    username, password, _ = OPERATOR
    form = page.locator("form#login")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password + "-wrong")
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash-error")).to_be_visible()
    expect(page.locator("#logout")).to_have_count(0)
    shots("bad-password")

    sign_in(page, console, OPERATOR)
    expect(page).to_have_url(re.compile(r"/ops/?$"))
    expect(page.locator("#source")).not_to_be_empty()
    # The worker consumes the case system's delivery queue: a real row, with its real consumer.
    row = page.locator(f'table#queues tr[data-queue="{console.case_delivery_queue}"]')

    def worker_consumes() -> None:
        expect(row).to_be_visible(timeout=2_000)
        expect(row.locator("td.consumers")).to_have_text(re.compile(r"^\s*[1-9]\d*\s*$"), timeout=1_000)
        for cell in ("depth", "ready", "parked"):
            expect(row.locator(f"td.{cell}")).to_have_text(re.compile(r"\d"), timeout=1_000)

    reload_until(page, worker_consumes, what="the worker consuming the case system's delivery queue")
    for section in ("#outbox", "#partners-summary", "#overdue-count", "#stuck-count"):
        expect(page.locator(section)).to_be_visible()
    shots("overview")

    page.goto(console.url + "/ops/stuck")
    for section in ("#overdue", "#pending-inquiries", "#retrying", "#stuck"):
        expect(page.locator(section)).to_be_visible()
    shots("overdue-and-stuck")

    sign_out(page)
    page.goto(console.url + "/ops/messages")
    expect(page).to_have_url(re.compile(r"/ops/login"))
    shots("signed-out")


def test_find_a_judgment_by_id_and_case_reference_auditor_sees_it_masked(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    doc = console.push_judgment()
    message_id, case_ref = doc["message_id"], doc["case_ref"]
    wait_for(lambda: console.case_system.seen[message_id] >= 1, 30, "the judgment reaching the case system")

    sign_in(page, console, OPERATOR)
    page.goto(console.url + "/ops/messages")
    search = page.locator("form#search")
    search.locator("[name=q]").fill(message_id)
    search.locator("[type=submit]").first.click()
    row = page.locator(f'table#messages tr[data-message-id="{message_id}"]')
    expect(row).to_be_visible()
    expect(row.locator("td.status")).to_have_text(re.compile("delivered"))
    expect(page.locator("table#messages tbody tr[data-message-id]")).to_have_count(1)
    shots("found-by-message-id")

    page.goto(console.url + "/ops/messages")
    search.locator("[name=case_ref]").fill(case_ref)
    search.locator("[type=submit]").first.click()
    expect(row).to_be_visible()
    expect(page.locator("table#messages tbody tr[data-message-id]")).to_have_count(1)
    shots("found-by-case-reference")

    row.locator("a.message-link").click()
    expect(page).to_have_url(re.compile(rf"/ops/messages/{message_id}$"))
    expect(page.locator("#envelope")).to_contain_text(message_id)
    expect(page.locator("#envelope")).to_contain_text(case_ref)
    for status in ("queued", "delivered"):
        expect(page.locator(f'#timeline li[data-status="{status}"]').first).to_be_visible()
    expect(page.locator("#deliveries")).to_be_visible()
    expect(page.locator("#replies")).to_be_attached()
    expect(page.locator("#payload")).to_be_visible()
    expect(page.locator("#payload-hidden")).to_have_count(0)
    shots("message-as-operator")

    sign_out(page)
    sign_in(page, console, AUDITOR)
    page.goto(f"{console.url}/ops/messages/{message_id}")
    expect(page.locator("#envelope")).to_contain_text(message_id)
    expect(page.locator('#timeline li[data-status="delivered"]').first).to_be_visible()
    expect(page.locator("#payload-hidden")).to_be_visible()
    expect(page.locator("#payload")).to_have_count(0)
    html = page.content()
    for personal_id in PERSONAL_IDS:
        assert personal_id not in html, f"an auditor sees {personal_id} unmasked"
    shots("message-as-auditor")

    page.goto(f"{console.url}/ops/parking/{console.case_delivery_queue}")  # an auditor reads, never acts
    for action in ("replay", "replay_all", "discard"):
        expect(page.locator(f"button[name=action][value={action}]:enabled")).to_have_count(0)
    shots("parking-as-auditor")


def test_replay_a_parked_judgment_reaches_the_case_system_once_and_is_audited(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    case_system = console.case_system
    case_system.accepting = False  # the case system's inbox answers 503: retried, then parked
    try:
        doc = console.push_judgment()
        message_id = doc["message_id"]
        wait_for(lambda: console.message_status(message_id) == "failed", 30, "the judgment being parked")
    finally:
        case_system.accepting = True  # the cause is fixed before anyone replays
    assert case_system.refused[message_id] >= 1 and case_system.seen[message_id] == 0

    delivery_queue = console.case_delivery_queue
    parking_queue = console.names.parking(delivery_queue)
    sign_in(page, console, OPERATOR)
    page.goto(console.url + "/ops/parking")
    row = page.locator(f'table#parking tr[data-queue="{parking_queue}"]')
    reload_until(
        page,
        lambda: expect(row.locator("td.parked")).to_have_text(re.compile(r"^\s*1\s*$"), timeout=1_000),
        what="the parked judgment counted on /ops/parking",
    )
    shots("parking-overview")

    row.locator("a.parking-link").click()
    expect(page).to_have_url(re.compile(rf"/ops/parking/{re.escape(delivery_queue)}$"))
    parked = page.locator(f'table#parked tr[data-message-id="{message_id}"]')
    expect(parked).to_be_visible()
    expect(parked.locator("td.type")).to_have_text(re.compile("judgment.delivery"))
    expect(parked.locator("td.reason")).to_have_text(re.compile("rejected"))  # by the worker, out of attempts
    shots("parked-judgment")

    reason = f"case system inbox back after incident {message_id[:8]}"
    parked.locator("input[type=checkbox][name=message_id]").check()
    actions = page.locator("form#parking-actions")
    actions.locator("[name=reason]").fill(reason)
    actions.locator("button[name=action][value=replay]").click()
    expect(page.locator(".flash-ok")).to_be_visible()
    expect(page.locator(".flash-error")).to_have_count(0)
    shots("replayed")

    wait_for(lambda: case_system.seen[message_id] >= 1, 30, "the replayed judgment reaching the case system")
    quiet_until = time.monotonic() + 3  # a duplicate, if the replay made one, would come within this
    while time.monotonic() < quiet_until:
        assert case_system.seen[message_id] == 1, f"delivered {case_system.seen[message_id]} times"
        time.sleep(0.1)
    assert console.message_status(message_id) == "delivered"

    page.goto(f"{console.url}/ops/messages/{message_id}")
    expect(page.locator('#timeline li[data-status="failed"]').first).to_be_visible()
    expect(page.locator('#timeline li[data-status="delivered"]').first).to_be_visible()
    expect(page.locator("#timeline")).to_contain_text(reason)  # who replayed it and why, on its page
    shots("delivered-after-replay")

    page.goto(f"{console.url}/ops/parking/{delivery_queue}")
    expect(page.locator(f'table#parked tr[data-message-id="{message_id}"]')).to_have_count(0)
    shots("parking-empty")

    async def replay_records(conn: Any) -> list[dict[str, Any]]:
        rows = await conn.execute(select(audit_log).where(audit_log.c.reason.contains(reason)))
        return [dict(r._mapping) for r in rows]

    records = console.query(replay_records)
    assert records, f"no audit record with the reason {reason!r}"
    (record,) = [r for r in records if "replay" in r["action"]]
    assert record["outcome"] == "done", record
    assert OPERATOR[0] in (record["actor"], record["subject"]), record
    assert message_id in json.dumps(
        [record["message_id"], record["object_ref"], record["data"]], default=str
    ), record


def test_a_stopped_partner_turns_red_within_its_breaker_threshold(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    (tax,) = [p for p in load_partners(console.world.settings.config_dir) if p.code == "TAX"]
    before = console.lookup_assets(inquiry(sources=["tax"]))
    assert [s["status"] for s in before["sources"]] == ["found"], before

    sign_in(page, console, OPERATOR)
    page.goto(console.url + "/ops/partners")
    row = page.locator('table#partners tr[data-partner="TAX"]')
    reload_until(
        page,
        lambda: expect(row.locator("td.breaker")).to_have_text(re.compile(r"closed"), timeout=1_000),
        what="TAX shown healthy after a lookup it answered",
    )
    expect(row.locator("button.test-connection")).to_be_visible()
    assert "state-down" not in _classes(row)
    shots("tax-healthy")

    console.set_partner_mode("tax", "down")  # the tax simulator stops listening: connections refused
    try:
        # Each lookup makes `retry.attempts` calls; just enough lookups to reach the breaker's threshold.
        lookups = math.ceil(tax.breaker.failures / tax.retry.attempts)
        for _ in range(lookups):
            view = console.lookup_assets(inquiry(sources=["tax"]))
            assert [s["status"] for s in view["sources"]] == ["unavailable"], view

        def red() -> None:
            expect(row.locator("td.breaker")).to_have_text(re.compile(r"open"), timeout=1_000)
            expect(row.locator("td.breaker")).not_to_have_text(re.compile(r"half"), timeout=1_000)
            assert "state-down" in _classes(row), _classes(row)

        reload_until(page, red, timeout=15, what="TAX shown open (red)")
        shots("tax-open")

        row.locator("button.test-connection").click()  # the operator checks for himself
        expect(row.locator(".test-result")).to_contain_text("error")
        shots("tax-test-connection-fails")
    finally:
        console.set_partner_mode("tax", "normal")
    row.locator("button.test-connection").click()
    expect(row.locator(".test-result")).to_contain_text("ok")
    shots("tax-test-connection-back")


def _classes(row: Any) -> str:
    """The row's classes and its breaker cell's: the state colour may be on either."""
    return f"{row.get_attribute('class') or ''} {row.locator('td.breaker').get_attribute('class') or ''}"
