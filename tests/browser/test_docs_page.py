"""``GET /docs`` in Debian's chromium: the bundled Swagger UI renders the gateway's OpenAPI 3.1 document
(Swagger UI 4 showed "Unable to render this definition") with every file from the gateway itself: a
request for anything on another origin fails the test."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.web import routes_docs
from tests.support.browser import CHROMIUM, VIEWPORT, shot_name

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; `make browser` installs it (as root)",
    ),
]


def test_the_bundled_swagger_ui_reads_openapi_3_1() -> None:
    assert routes_docs.swagger_ui_version() >= (5, 0, 0)


async def test_the_docs_page_lists_the_operations_in_a_real_browser(api: TestClient[Any, Any]) -> None:
    # The async API on the test's own loop: the api under test answers on that loop too.
    from playwright.async_api import async_playwright, expect

    base = str(api.make_url("/")).rstrip("/")
    elsewhere: list[str] = []
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            async def only_the_gateway(route: Any) -> None:
                if route.request.url.startswith(base):
                    await route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_the_gateway)
            await page.goto(base + "/docs")
            operations = page.locator(".opblock")
            await expect(operations.first).to_be_visible()
            judgments = page.locator(".opblock-summary-path", has_text="/v1/judgments")
            await expect(judgments.first).to_be_visible()
            await expect(page.locator(".information-container .title")).to_contain_text("OAS 3.1")
            shot = shot_name("docs", "swagger-ui")
            shot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shot), full_page=False)
            text = await page.locator("#swagger-ui").inner_text()
            count = await operations.count()
        finally:
            await browser.close()
    assert "Unable to render" not in text
    assert count >= 20, count
    assert elsewhere == [] and errors == []
