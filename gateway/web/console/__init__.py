"""The operators' console at ``/ops``: server-rendered pages over :mod:`gateway.ops`.

Mounted as a sub-application (:func:`mount`, built in :mod:`.app`), with its own sign-in (:mod:`.login`,
throttled by :mod:`.signin`), sessions (:mod:`.session`) and CSRF checks (:mod:`.guard`), templates in
``gateway/web/templates/ops`` and assets in ``gateway/web/static/ops`` (no asset from the internet). One
module per page family: :mod:`.overview`, :mod:`.messages`, :mod:`.parking`, :mod:`.partners`; what they
share is in :mod:`.pages` and :mod:`.state`. See ``docs/console.md``.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.settings import Settings

#: Where the console is mounted; every page and cookie path is under it.
PREFIX: Final = "/ops"


def mount(app: web.Application, settings: Settings) -> None:
    from gateway.web.console.app import build

    app.add_subapp(PREFIX, build(settings))
