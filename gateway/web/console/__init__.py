"""The operators' console at ``/ops``: server-rendered pages over :mod:`gateway.ops`.

Mounted as a sub-application (:func:`.app.mount`, built in :mod:`.app`), with its own sign-in (:mod:`.login`,
throttled by :mod:`.signin`), sessions (:mod:`.session`) and CSRF checks (:mod:`.guard`), templates in
``gateway/web/templates/ops`` and assets in ``gateway/web/static/ops`` (no asset from the internet). One
module per page family: :mod:`.overview`, :mod:`.messages`, :mod:`.parking`, :mod:`.partners`; what they
share is in :mod:`.pages` and :mod:`.state`. See ``docs/console.md``.
"""

from __future__ import annotations

from typing import Final

#: Where the console is mounted; every page and cookie path is under it.
PREFIX: Final = "/ops"
