"""GET /docs: Swagger UI over /openapi.json, every file it loads served by the gateway from the
swagger-ui-bundle package; nothing from the internet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from gateway.web import routes_docs, routes_openapi

REFERENCE = re.compile(r"""(?:src|href)="([^"]+)\"""")


async def test_the_page_loads_only_files_the_gateway_serves(api: TestClient[Any, Any]) -> None:
    resp = await api.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "<script>" not in html  # no inline script: only files the gateway serves
    references = REFERENCE.findall(html)
    assert {"docs/static/swagger-ui-bundle.js", "docs/static/swagger-ui.css", "docs/static/docs.js"} <= set(
        references
    )
    for reference in references:
        assert "//" not in reference, reference  # relative: same origin, no internet asset
        # Relative to the page at /docs.
        served = await api.get("/" + reference)
        assert served.status == 200, reference
        name = reference.rsplit("/", 1)[-1]
        if reference.startswith("docs/static/"):
            assert served.content_type == routes_docs.ASSETS[name]
            if name != routes_docs.START:
                assert await served.read() == (Path(swagger_ui_path) / name).read_bytes()


async def test_the_start_script_renders_the_openapi_document_offline(api: TestClient[Any, Any]) -> None:
    assert routes_docs.DOCUMENT == routes_openapi.PATH
    script = await (await api.get("/docs/static/docs.js")).text()
    assert 'url: "openapi.json"' in script
    assert "validatorUrl: null" in script  # the badge would call validator.swagger.io
    assert "http" not in script
    document = await api.get("/openapi.json")
    assert document.status == 200
    assert "/docs" in (await document.json())["paths"]


async def test_only_the_listed_files_are_served(api: TestClient[Any, Any]) -> None:
    for path in (
        "/docs/static/index.html",
        "/docs/static/swagger-ui.js.map",
        "/docs/static/..%2F..%2F..%2Fpyproject.toml",
        "/docs/static/%2E%2E",
    ):
        resp = await api.get(path)
        assert resp.status == 404, path
        assert resp.content_type == "application/problem+json", path
