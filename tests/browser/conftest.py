"""Browser tests of the operators' console: one running installation per module (the real api and
worker processes, the partner simulators, a webhook case system, an operator and an auditor account),
Debian's chromium through Playwright, and screenshots of every test, passed or failed, under
``test-artifacts/screenshots/``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, SCREENSHOTS, VIEWPORT, ConsoleWorld, Shots, console_world

_written: list[Path] = []
_cleared = False


def _clear_old_screenshots() -> None:
    """Screenshots of an earlier run would pass for this run's: start from an empty folder."""
    global _cleared
    if not _cleared:
        _cleared = True
        for old in SCREENSHOTS.glob("*.png"):
            old.unlink(missing_ok=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    console = getattr(item, "funcargs", {}).get("console")
    if report.failed and isinstance(console, ConsoleWorld):
        report.sections.append(("gateway api and worker logs (tail)", console.logs()))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _written:
        terminalreporter.write_sep("-", "browser test screenshots")
        terminalreporter.write_line(f"{len(_written)} screenshots in {SCREENSHOTS}")
    elif not CHROMIUM.exists():
        message = f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing (run `make browser` as root)"
        terminalreporter.write_sep("!", message, red=True, bold=True)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    with console_world(tmp_path_factory.mktemp("console")) as started:
        yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium from the distribution. Module scope on purpose: Playwright's sync API marks an event loop
    as running in this thread for as long as it is started, which the asyncio tests elsewhere must not
    inherit."""
    if not CHROMIUM.exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; `make browser` installs it (as root)")
    from playwright.sync_api import sync_playwright

    _clear_old_screenshots()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        shots = getattr(request.node, "shots", None)
        failed = getattr(getattr(request.node, "report_call", None), "failed", True)
        if shots is not None:
            try:
                shots("failed" if failed else "end")
            except Exception as exc:  # a crashed page: keep the test's own outcome
                print(f"no final screenshot of {request.node.name}: {exc}", file=sys.stderr)
            _written.extend(shots.taken)
        context.close()


@pytest.fixture
def shots(page: Any, request: pytest.FixtureRequest) -> Shots:
    """``shots("step")`` saves ``test-artifacts/screenshots/<test>-<nn>-<step>.png``; a last one is
    taken when the test ends, whatever its outcome."""
    taker = Shots(page, request.node.name)
    request.node.shots = taker
    return taker
