"""The console's lists in Debian's chromium, against the real api and worker processes: an auditor exports
the message list as CSV and finds every personal ID masked; the audit-log page finds an operator's
sign-in and verifies the chain; the clients page; and an axe-core scan of every page with no serious or
critical finding (axe.min.js from the axe-playwright-python package, injected from disk)."""

from __future__ import annotations

import csv
import importlib.resources
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from gateway.storage.tables import messages
from tests.browser.test_console import sign_in, sign_out
from tests.support.browser import (
    AUDITOR,
    BROWSER_MARKS,
    OPERATOR,
    VIEWPORT,
    ConsoleWorld,
    Shots,
    wait_for,
)

pytestmark = BROWSER_MARKS

RAW_ID = "001185012345"
AXE_JS = Path(str(importlib.resources.files("axe_playwright_python") / "axe.min.js"))


def write(console: ConsoleWorld, statement: Any) -> None:
    from gateway.storage.database import Database

    async def run() -> None:
        db = Database(console.world.settings.resolved_database_url)
        try:
            async with db.transaction() as conn:
                await conn.execute(statement)
        finally:
            await db.dispose()

    console.bg.run(run())


@pytest.fixture(scope="module")
def judgment(console: ConsoleWorld) -> dict[str, Any]:
    """One delivered judgment whose status reason names a person by ID (as a partner's error might)."""
    doc = console.push_judgment()
    message_id = doc["message_id"]
    wait_for(lambda: console.case_system.seen[message_id] >= 1, 30, "the judgment reaching the case system")
    write(
        console,
        update(messages)
        .where(messages.c.message_id == message_id)
        .values(status_reason=f"case system noted debtor {RAW_ID}"),
    )
    return doc


def test_auditor_exports_the_filtered_list_as_csv_with_ids_masked(
    console: ConsoleWorld, page: Page, shots: Shots, judgment: dict[str, Any]
) -> None:
    sign_in(page, console, AUDITOR)
    page.goto(console.url + "/ops/messages")
    search = page.locator("form#search")
    search.locator("[name=case_ref]").fill(judgment["case_ref"])
    search.locator("[type=submit]").click()
    expect(page).to_have_url(re.compile(r"case_ref="))  # the filter is in the URL: a bookmark keeps it
    expect(page.locator(f'tr[data-message-id="{judgment["message_id"]}"]')).to_be_visible()
    shots("filtered-list")

    with page.expect_download() as download_info:
        page.locator("a#export").click()
    download = download_info.value
    text = Path(download.path()).read_text("utf-8-sig")
    assert RAW_ID not in text, "the auditor's export shows a personal ID in clear"
    table = list(csv.reader(io.StringIO(text)))
    header, rows = table[0], table[1:]
    assert [r[header.index("message_id")] for r in rows] == [judgment["message_id"]]
    assert "001*******45" in rows[0][header.index("status_reason")]

    page.goto(console.url + "/ops/audit?action=ops.messages.export&actor=" + AUDITOR[0])
    row = page.locator('table#audit tr[data-action="ops.messages.export"]').first
    expect(row).to_be_visible()
    row.locator("details summary").click()
    expect(row.locator("details pre")).to_contain_text(judgment["case_ref"])  # the filter used
    shots("export-audited")


def test_audit_page_finds_a_sign_in_and_verifies_the_chain(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    sign_in(page, console, OPERATOR)
    page.locator("#nav a", has_text="Audit log").click()
    form = page.locator("form#audit-search")
    form.locator("[name=actor]").fill(OPERATOR[0])
    form.locator("[name=action]").fill("ops.signin")
    form.locator("[type=submit]").click()
    expect(page).to_have_url(re.compile(r"action=ops.signin"))
    signins = page.locator('table#audit tr[data-action="ops.signin"]')
    expect(signins.first).to_be_visible()
    expect(signins.first.locator("td.actor")).to_have_text(OPERATOR[0])
    expect(signins.first.locator("td.time time")).to_be_visible()
    expect(page.locator('table#audit tr[data-action="ops.audit.read"]')).to_have_count(0)
    shots("sign-ins-found")

    page.locator("#verify-button").click()
    result = page.locator("#verify-result")
    expect(result).to_have_attribute("data-outcome", "intact", timeout=60_000)
    expect(result).to_contain_text(re.compile(r"\d+ record\(s\)"))
    expect(page.locator("form#audit-search [name=actor]")).to_have_value(OPERATOR[0])  # filter kept
    shots("chain-verified")


def test_clients_page_shows_each_client_its_delivery_and_last_seen(
    console: ConsoleWorld, page: Page, shots: Shots, judgment: dict[str, Any]
) -> None:
    sign_in(page, console, AUDITOR)
    page.goto(console.url + "/ops/clients")
    court = page.locator(f'table#clients tr[data-client="{console.world.court.id}"]')
    expect(court.locator("td.grants")).to_contain_text("judgments.push")
    expect(court.locator("td.last-seen time")).to_be_visible()  # it pushed the judgment
    case = page.locator(f'table#clients tr[data-client="{console.world.case_system.id}"]')
    expect(case.locator(".delivery-kind")).to_have_text("webhook")
    expect(case.locator("td.key-age time")).to_be_visible()
    shots("clients")


# --- accessibility --------------------------------------------------------------------------------------

SERIOUS = ("serious", "critical")


@pytest.fixture
def axe_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Page, Shots]]:
    """A page whose context lets Playwright add axe-core as an inline script despite the console's CSP
    (``script-src 'self'``): the scanner only, the pages are unchanged."""
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN", bypass_csp=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    shots = Shots(page, request.node.name)
    try:
        yield page, shots
    finally:
        try:
            shots("end")
        finally:
            context.close()


def scan(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in result["violations"]
        if v["impact"] in SERIOUS
    ]


def test_every_console_page_passes_axe_and_is_keyboard_reachable(
    console: ConsoleWorld, axe_page: tuple[Page, Shots], judgment: dict[str, Any]
) -> None:
    page, shots = axe_page
    found: dict[str, list[str]] = {}
    page.goto(console.url + "/ops/login")
    found["login"] = scan(page)
    shots("login")

    sign_in(page, console, OPERATOR)
    # The first Tab reaches the skip link, which is visible when focused and leads to the content.
    page.keyboard.press("Tab")
    skip = page.locator("a.skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#content$"))

    message_id = judgment["message_id"]
    pages = {
        "overview": "/ops/",
        "messages": "/ops/messages",
        "message": f"/ops/messages/{message_id}",
        "parking": "/ops/parking",
        "parked": f"/ops/parking/{console.case_delivery_queue}",
        "partners": "/ops/partners",
        "stuck": "/ops/stuck",
        "audit": "/ops/audit",
        "clients": "/ops/clients",
    }
    for name, path in pages.items():
        page.goto(console.url + path)
        expect(page.locator("main h1").first).to_be_visible()
        found[name] = scan(page)
        shots(name)
    sign_out(page)
    problems = {name: lines for name, lines in found.items() if lines}
    assert not problems, "axe-core: serious or critical violations\n" + "\n".join(
        f"{name}: {line}" for name, lines in problems.items() for line in lines
    )
