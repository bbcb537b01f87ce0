"""``GET /docs``: the API documentation for people, Swagger UI rendering ``GET /openapi.json``.

The document is OpenAPI 3.1, which Swagger UI reads from version 5 on (version 4 shows "Unable to render
this definition"). Its files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5; import name
``swagger_ui_bundle``) and are served by the gateway itself under ``/docs/static/``: the page loads
nothing from the internet (its validator badge, which would call validator.swagger.io, is switched off).
Every URL in the page is relative, so it also works behind a reverse proxy that puts the gateway under a
path.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Final

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from gateway.problems import not_found
from gateway.web.operation import Operation, Response

__all__ = ["ASSETS", "DOCUMENT", "OPERATIONS", "PATH", "STATIC", "swagger_ui_version"]

PATH: Final = "/docs"
STATIC: Final = f"{PATH}/static"
HTML: Final = "text/html"
JAVASCRIPT: Final = "text/javascript"
CSS: Final = "text/css"
PNG: Final = "image/png"

#: What the page renders: ``GET /openapi.json`` (:mod:`gateway.web.routes_openapi`, which imports the
#: document's builder, which names :data:`ASSETS`: hence spelled out here, and compared by a test).
DOCUMENT: Final = "/openapi.json"

#: Our own start-up script, served beside the package's files (no inline script in the page).
START: Final = "docs.js"

#: Every file under ``/docs/static/``: the package's, by name, and :data:`START`.
ASSETS: Final = {
    "swagger-ui.css": CSS,
    "swagger-ui-bundle.js": JAVASCRIPT,
    "favicon-32x32.png": PNG,
    "favicon-16x16.png": PNG,
    START: JAVASCRIPT,
}

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Civil judgment enforcement data-exchange gateway: API</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css">
<link rel="icon" type="image/png" sizes="32x32" href="docs/static/favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="docs/static/favicon-16x16.png">
</head>
<body>
<noscript>This page needs JavaScript; it renders <a href="openapi.json">openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script src="docs/static/docs.js"></script>
</body>
</html>
"""

# Relative to the page (/docs), "openapi.json" is the document beside it.
_START_SCRIPT: Final = f"""window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: "{DOCUMENT.lstrip("/")}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}});
"""

_CACHED: Final = "public, max-age=3600"

_VERSIONED = re.compile(r"swagger-ui-(\d+)\.(\d+)\.(\d+)$")


def swagger_ui_version() -> tuple[int, int, int]:
    """The bundled Swagger UI's version, from the package's folder name (``vendor/swagger-ui-5.31.0``);
    (0, 0, 0) when it does not say (the old ``swagger-ui-bundle`` package, Swagger UI 4)."""
    found = _VERSIONED.search(Path(swagger_ui_path).name)
    if found is None:
        return (0, 0, 0)
    major, minor, patch = (int(part) for part in found.groups())
    return (major, minor, patch)


@functools.cache
def _asset(name: str) -> bytes:
    if name == START:
        return _START_SCRIPT.encode("utf-8")
    return (Path(swagger_ui_path) / name).read_bytes()


async def page(_request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type=HTML, charset="utf-8", headers={"Cache-Control": _CACHED})


async def asset(request: web.Request) -> web.Response:
    """One of :data:`ASSETS`, by name; any other name (a path included) is 404."""
    name = request.match_info["asset"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise not_found(f"no file {name!r} in {STATIC}")
    charset = None if media_type == PNG else "utf-8"
    return web.Response(
        body=_asset(name), content_type=media_type, charset=charset, headers={"Cache-Control": _CACHED}
    )


OPERATIONS: Final = (
    Operation(
        "GET",
        PATH,
        page,
        name="docs",
        operation_id="docs",
        tag="Operations",
        summary="This document for people (Swagger UI)",
        description=f"Renders `GET {DOCUMENT}`; its files are served from `{STATIC}/`.",
        responses={200: Response("An HTML page.", media_type=HTML, headers=("Cache-Control",))},
    ),
    Operation(
        "GET",
        STATIC + "/{asset}",
        asset,
        name="docs.static",
        operation_id="docsAsset",
        tag="Operations",
        summary="A file of the documentation page",
        responses={
            200: Response(
                "The file: a style sheet, a script or an icon.",
                media_type=CSS,
                other_media_types=(JAVASCRIPT, PNG),
                headers=("Cache-Control",),
            )
        },
        problems=(404,),
    ),
)
