"""The operators' console at ``/ops``: server-rendered pages over :mod:`gateway.ops`.

Mounted as a sub-application (:func:`mount`), with its own sign-in, sessions and CSRF checks
(:mod:`.session`), templates in ``gateway/web/templates/ops`` and assets in ``gateway/web/static/ops``
(no asset from the internet). See ``docs/console.md``.
"""

from __future__ import annotations

from aiohttp import web

from gateway.settings import Settings

PREFIX = "/ops"


def mount(app: web.Application, settings: Settings) -> None:
    from gateway.web.console.routes import build

    app.add_subapp(PREFIX, build(settings))
