"""The overview in Debian's chromium with 60 banks configured (as ``make demo BANKS=60`` configures
them): all of them on one 1366×768 screen, and each fault in the headline or the banner within one
refresh of the page — a bank answering garbage (its breaker stays closed), a partner down (its breaker
opens), and an api process that cannot reach the broker (answering from the database, the parked count
the last known one, with its age)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from gateway.demo import bank_directory
from gateway.partners import load_partners
from tests.browser.test_console import sign_in
from tests.support.browser import (
    BROWSER_MARKS,
    OPERATOR,
    SCREENSHOTS,
    VIEWPORT,
    ConsoleWorld,
    Shots,
    console_world,
    reload_until,
)
from tests.support.gateway_procs import free_port
from tests.test_asset_inquiry_flow import inquiry

pytestmark = BROWSER_MARKS

BANKS = 60
#: The last bank of the 60: served by a partner that answers every call with a truncated JSON body.
GARBAGE = bank_directory(BANKS)[-1][0]
#: One poll of the page (5 s), the overview's cache (2 s) and a worker's partner-health write (2 s), with
#: room for a busy machine: what "within one refresh" may take.
ONE_REFRESH_MS = 15_000


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    with console_world(tmp_path_factory.mktemp("console60"), banks=BANKS, garbage_banks=[GARBAGE]) as started:
        yield started


def chip(page: Page, code: str) -> Any:
    return page.locator(f'#partners-summary li.chip[data-partner="{code}"]')


def test_sixty_banks_on_one_screen_and_partner_faults_within_one_refresh(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    sign_in(page, console, OPERATOR)
    page.goto(console.url + "/ops/")
    banner = page.locator("#broker-banner")
    reload_until(
        page,
        lambda: expect(banner).to_have_attribute("data-state", re.compile("ok|alarm"), timeout=2_000),
        what="the broker banner saying the broker answers",
    )
    banks = page.locator('#partners-summary [data-kind="bank"] li.chip')
    expect(banks).to_have_count(BANKS)
    # Every bank is on the first screen, and the queues (grouped, the empty ones folded) start on it.
    for i in range(BANKS):
        box = banks.nth(i).bounding_box()
        assert box is not None and box["y"] + box["height"] <= VIEWPORT["height"], (i, box)
    queues = page.locator("#queues").bounding_box()
    assert queues is not None and queues["y"] < VIEWPORT["height"], queues
    expect(page.locator("#queues details").first).to_be_attached()  # a hundred-odd empty queues folded
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "test_console_overview-60-banks-1366x768.png"))
    shots("sixty-banks")

    # A bank answering garbage: up (its breaker stays closed), yet every call fails.
    view = console.lookup_assets(inquiry(sources=["bank"]))
    assert view["sources"], view
    assert console.garbage[GARBAGE].calls >= 1
    expect(chip(page, GARBAGE)).to_have_attribute("data-state", "failing", timeout=ONE_REFRESH_MS)
    expect(chip(page, GARBAGE)).to_have_class(re.compile("state-down"))
    expect(chip(page, GARBAGE).locator(".breaker")).to_have_text("closed")
    expect(page.locator("#alerts-link")).not_to_have_text(re.compile(r"^0 "))
    shots("garbage-bank-failing")

    # A partner down: its breaker opens.
    (tax,) = [p for p in load_partners(console.world.settings.config_dir) if p.code == "TAX"]
    console.set_partner_mode("tax", "down")
    try:
        for _ in range(math.ceil(tax.breaker.failures / tax.retry.attempts)):
            console.lookup_assets(inquiry(sources=["tax"]))
        expect(chip(page, "TAX")).to_have_attribute("data-state", "down", timeout=ONE_REFRESH_MS)
        expect(chip(page, "TAX").locator(".breaker")).to_have_text("open")
        shots("tax-down")

        page.goto(console.url + "/ops/alerts")
        for key in (f"partner:{GARBAGE}", "partner:TAX"):
            expect(page.locator(f'#alerts tr[data-alert="{key}"]')).to_be_visible()
        shots("alerts")
    finally:
        console.set_partner_mode("tax", "normal")

    page.goto(console.url + "/ops/partners")
    page.locator(f'table#partners tr[data-partner="{GARBAGE}"] a.partner-link').click()
    expect(page).to_have_url(re.compile(rf"/ops/partners/{GARBAGE}$"))
    expect(page.locator("#partner-state")).to_have_attribute("data-state", "failing")
    expect(page.locator("#partner-health .breaker")).to_have_text("closed")
    expect(page.locator("#partner-calls svg[role=img]")).to_be_visible()
    for table in ("#workers", "#waiting", "#failed"):
        expect(page.locator(table)).to_be_visible()
    shots("garbage-bank-page")


def test_an_api_without_the_broker_answers_from_the_database(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    closed = free_port()
    env = {
        "GATEWAY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{closed}/",
        "GATEWAY_OPS__MANAGEMENT_URL": f"http://127.0.0.1:{closed}",
    }
    with console.another_api("api-without-broker", **env) as blind:
        username, password, _ = OPERATOR
        page.goto(blind.url + "/ops/login")
        form = page.locator("form#login")
        form.locator("input[name=username]").fill(username)
        form.locator("input[name=password]").fill(password)
        form.locator("button[type=submit]").click()
        expect(page.locator("#logout")).to_be_visible()
        page.goto(blind.url + "/ops/")
        banner = page.locator("#broker-banner")
        expect(banner).to_have_attribute("data-state", "down", timeout=ONE_REFRESH_MS)
        expect(page.locator("#broker-unavailable")).to_be_visible()
        expect(page.locator("#source")).to_contain_text("unavailable")
        # The worker sampled the parked count when it last read the queues: shown, with its age.
        reload_until(
            page,
            lambda: expect(page.locator("#parked-age")).to_contain_text("last known", timeout=1_000),
            what="the last known parked count",
        )
        expect(page.locator("#parked-count")).to_have_text(re.compile(r"^\s*\d+\s*$"))
        expect(chip(page, GARBAGE)).to_have_attribute("data-state", re.compile("failing|degraded|idle"))
        shots("broker-unreachable")

        page.goto(blind.url + "/ops/history?range=1h")
        expect(page.locator("#ranges a.active")).to_have_text("1h")
        expect(page.locator("#total-queues svg[role=img]")).to_be_visible()
        shots("history")
