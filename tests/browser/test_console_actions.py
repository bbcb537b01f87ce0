"""Acting from where the operator looks, in Debian's chromium against the real api and worker: a retry
scheduled ten minutes out is pulled forward and the case system, back up, gets the judgment at once and
once; two judgments parked in two queues are replayed together by a filter and each arrives once; an
auditor sees no action button and a POST from the auditor is refused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import aiohttp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_console import sign_in
from tests.support.browser import (
    AUDITOR,
    BROWSER_MARKS,
    OPERATOR,
    ConsoleWorld,
    Shots,
    console_world,
    reload_until,
    wait_for,
)

pytestmark = BROWSER_MARKS

#: A failed delivery waits ten minutes for its next attempt (longer than any test here), and the
#: second attempt is the last: what fails twice is parked.
RETRY_DELAYS_SECONDS = [600.0]
MAX_ATTEMPTS = 2


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    with console_world(
        tmp_path_factory.mktemp("console-actions"),
        retry_delays_seconds=RETRY_DELAYS_SECONDS,
        max_attempts=MAX_ATTEMPTS,
    ) as started:
        yield started


def first_attempt_failed(console: ConsoleWorld, message_id: str) -> bool:
    async def failed(conn: Any) -> bool:
        from sqlalchemy import select

        from gateway.storage.tables import evidences

        rows = await conn.execute(
            select(evidences.c.event).where(
                evidences.c.message_id == message_id, evidences.c.event == "delivery_failed"
            )
        )
        return rows.first() is not None

    return console.query(failed)


def seen(console: ConsoleWorld, message_id: str) -> bool:
    return console.case_system.seen[message_id] >= 1


def has_status(console: ConsoleWorld, message_id: str, status: str) -> bool:
    return console.message_status(message_id) == status


def pull_forward(page: Page, console: ConsoleWorld, message_id: str, reason: str) -> None:
    page.goto(f"{console.url}/ops/messages/{message_id}")
    expect(page.locator("#attempt-count")).to_have_text("1")
    expect(page.locator("#last-error")).to_contain_text("HTTP 503")
    expect(page.locator("#next-attempt")).to_contain_text("attempt 2")
    page.locator("#action-reason").fill(reason)
    page.locator("#retry-now").click()
    expect(page.locator(".flash-ok")).to_be_visible()


def delivered_once(console: ConsoleWorld, *message_ids: str) -> None:
    for message_id in message_ids:
        wait_for(partial(seen, console, message_id), 30, f"{message_id} delivered")
    quiet_until = time.monotonic() + 3  # a duplicate, if there were one, would come within this
    while time.monotonic() < quiet_until:
        for message_id in message_ids:
            assert console.case_system.seen[message_id] == 1, dict(console.case_system.seen)
        time.sleep(0.1)


def test_retry_now_delivers_a_scheduled_retry_at_once(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    case_system = console.case_system
    case_system.accepting = False  # the case system is down: the first attempt fails
    try:
        doc = console.push_judgment()
        message_id = doc["message_id"]
        wait_for(lambda: first_attempt_failed(console, message_id), 30, "the first attempt failing")
    finally:
        case_system.accepting = True  # back up; the next attempt is ten minutes away
    assert case_system.seen[message_id] == 0

    sign_in(page, console, OPERATOR)
    page.goto(f"{console.url}/ops/messages/{message_id}")
    expect(page.locator("#status")).to_have_text("queued")
    expect(page.locator("#timeline")).to_contain_text("Attempt 1 to")
    expect(page.locator("#next-attempt")).to_contain_text("in 10 min")
    shots("waiting-for-retry")

    pull_forward(page, console, message_id, "case system back up after maintenance")
    shots("pulled-forward")
    delivered_once(console, message_id)

    reload_until(
        page,
        lambda: expect(page.locator("#status")).to_have_text("delivered", timeout=1_000),
        what="the message shown delivered",
    )
    expect(page.locator("#timeline")).to_contain_text("after 2 attempts")
    expect(page.locator("#timeline")).to_contain_text("pulled forward by lan")
    expect(page.locator("#retry-now")).to_have_count(0)
    page.locator('#timeline li[data-status="retry_now"] summary').click()  # the raw detail, unfolded
    expect(page.locator('#timeline li[data-status="retry_now"] table.detail')).to_contain_text("retry_id")
    # Long identifiers stay on one line at 1366 px.
    heights = page.locator("h1 .ident").evaluate("e => [e.scrollHeight, e.clientHeight]")
    assert heights[0] <= heights[1] + 1, heights
    shots("delivered")


def test_bulk_replay_across_two_queues_delivers_each_once(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    case_system = console.case_system
    recipient = console.world.case_system.id
    sign_in(page, console, OPERATOR)
    case_system.accepting = False
    try:
        normal = console.push_judgment()["message_id"]
        urgent = console.push_judgment(priority="urgent")["message_id"]
        for message_id in (normal, urgent):
            wait_for(partial(first_attempt_failed, console, message_id), 30, "first attempts failing")
            # The second attempt, pulled forward while the case system is still down, is the last.
            pull_forward(page, console, message_id, "check whether it is back")
        for message_id in (normal, urgent):
            wait_for(partial(has_status, console, message_id, "failed"), 30, "both parked")
    finally:
        case_system.accepting = True

    queues = [console.names.deliver(recipient), console.names.deliver_urgent(recipient)]
    page.goto(f"{console.url}/ops/parking")
    expect(page.locator("#parked-total")).to_be_visible()
    expect(page.locator("#empty-queues summary")).to_contain_text("empty parking queue")
    shots("parking-overview")

    filters = page.locator("form#bulk-filter")
    filters.locator("[name=recipient]").fill(recipient)
    filters.locator("[name=reason_filter]").fill("rejected")
    filters.locator("button[type=submit]").click()
    expect(page.locator("#bulk-count")).to_contain_text("2 parked messages match in 2 queues")
    for queue in queues:
        expect(page.locator(f'#bulk-queues li[data-queue="{queue}"]')).to_contain_text(": 1")
    shots("bulk-confirmation")

    actions = page.locator("form#bulk-actions")
    actions.locator("[name=reason]").fill("case system inbox fixed")
    page.once("dialog", lambda dialog: dialog.accept())
    actions.locator("#bulk-replay").click()
    expect(page.locator(".flash-ok")).to_contain_text("replayed 2 message(s) from 2 queue(s)")
    shots("bulk-replayed")

    delivered_once(console, normal, urgent)
    for message_id in (normal, urgent):
        assert console.message_status(message_id) == "delivered"

    # The audit page finds the replay: one record per message, with the operator's reason.
    search = page.locator("form#audit-search")
    page.goto(f"{console.url}/ops/audit")
    search.locator("[name=action]").fill("ops.parking.replay")
    search.locator("button[type=submit]").click()
    rows = page.locator('#audit tbody tr[data-action="ops.parking.replay"]')
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("case system inbox fixed")
    shots("audit-finds-the-replay")


def test_the_auditor_sees_no_action_and_a_post_is_refused(
    console: ConsoleWorld, page: Page, shots: Shots
) -> None:
    doc = console.push_judgment()
    message_id = doc["message_id"]
    wait_for(lambda: console.case_system.seen[message_id] >= 1, 30, "the judgment delivered")
    sign_in(page, console, AUDITOR)
    page.goto(f"{console.url}/ops/messages/{message_id}")
    expect(page.locator("#read-only")).to_be_visible()
    expect(page.locator("button[name=action]")).to_have_count(0)
    shots("auditor-message")
    page.goto(f"{console.url}/ops/parking?type=judgment.delivery")
    expect(page.locator("button[name=action]")).to_have_count(0)
    shots("auditor-parking")

    # The auditor's own session and CSRF token, posting as a forged form would.
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    csrf = page.locator("form.who input[name=csrf]").get_attribute("value") or ""

    async def post(path: str, form: dict[str, str]) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(console.url + path, data={"csrf": csrf, **form}, headers={"Cookie": cookie}) as resp,
        ):
            return resp.status

    reason = {"reason": "auditor tries", "action": "revoke"}
    assert console.bg.run(post(f"/ops/messages/{message_id}", reason)) == 403
    bulk = {"reason": "auditor tries", "action": "discard", "type": "judgment.delivery", "expected": "1"}
    assert console.bg.run(post("/ops/parking", bulk)) == 403
    assert console.message_status(message_id) == "delivered"
    assert re.search(r"auditor", page.locator("#whoami").inner_text())
