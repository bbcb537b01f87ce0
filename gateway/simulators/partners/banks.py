"""Five banks on one server, each under its own path: ``POST /<bank>/api/v1/account-inquiries`` (REST JSON).

Synchronous banks answer at once. An asynchronous bank (BANK-TCB by default) answers ``202 processing``,
then ``callback_delay`` seconds later POSTs the answer to the request's ``callback_url``, authenticated as
the gateway's client of that bank (a JWT it signs with its own key), retrying a few times if the gateway
does not take it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.security.keys import PrivateKey, generate_keypair, load_private_key
from gateway.security.tokens import issue_token
from gateway.simulators.partners import (
    Answerer,
    Inquiry,
    Refused,
    answer,
    as_of,
    dumps,
    reference,
    rest_app,
    seed,
)
from gateway.simulators.partners.behaviour import Behaviour

log = logging.getLogger(__name__)

PATHS = {"BANK-VCB": "/vcb", "BANK-BIDV": "/bidv", "BANK-CTG": "/ctg", "BANK-AGR": "/agr", "BANK-TCB": "/tcb"}
ASYNC_BANKS = frozenset({"BANK-TCB"})
INQUIRY_PATH = "/api/v1/account-inquiries"
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # between callback attempts


class Callbacks:
    """Late answers in flight: one task each, cancelled if the server stops before they are delivered."""

    def __init__(self, key: PrivateKey, audience: str, delay: float) -> None:
        self._key = key
        self._audience = audience
        self._delay = delay
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0

    def schedule(self, bank: str, url: str, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(bank, url, payload))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, bank: str, url: str, payload: dict[str, Any]) -> None:
        await asyncio.sleep(self._delay)
        session = self._session
        if session is None:
            return
        for attempt, pause in enumerate((*RETRY_DELAYS, None), start=1):
            token = issue_token(bank, self._key, self._audience, ttl=300)
            headers = {"Authorization": f"Bearer {token}", "X-Request-Ref": str(payload["request_ref"])}
            body = {**payload, "as_of": as_of()}
            try:
                async with session.post(
                    url, data=dumps(body), headers=headers | {"Content-Type": "application/json"}
                ) as resp:
                    if resp.status < 300:
                        self.delivered += 1
                        return
                    if resp.status < 500 and resp.status not in (408, 429):
                        log.error("%s callback to %s refused: HTTP %s", bank, url, resp.status)
                        return
                    log.warning("%s callback attempt %d: HTTP %s", bank, attempt, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s callback attempt %d failed: %s", bank, attempt, exc)
            if pause is None:
                log.error("%s gave up calling back %s for %s", bank, url, payload["request_ref"])
                return
            await asyncio.sleep(pause)

    async def context(self, _app: web.Application) -> AsyncIterator[None]:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            yield
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            self._session = None


CALLBACKS = web.AppKey("callbacks", Callbacks)


def _inquiry_handler(bank: str, asynchronous: bool) -> Answerer:
    async def inquire(request: web.Request, inquiry: Inquiry) -> web.Response:
        status, accounts = seed.bank_accounts(bank, inquiry.identifier)
        if not asynchronous:
            return answer(bank, inquiry, status, accounts=accounts)
        url = inquiry.body.get("callback_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise Refused(400, "invalid_request", "callback_url (http or https) is required by this bank")
        ref = reference(bank, inquiry.request_ref)
        payload = {"request_ref": inquiry.request_ref, "reference": ref, "match_status": status}
        request.app[CALLBACKS].schedule(bank, url, payload | {"accounts": accounts})
        return web.json_response({"reference": ref, "status": "processing"}, status=202)

    return inquire


def make_app(
    behaviour: Behaviour | None = None,
    *,
    callback_key: Path | None = None,
    audience: str = "thads-gateway",
    callback_delay: float = 3.0,
    async_banks: frozenset[str] = ASYNC_BANKS,
) -> web.Application:
    """``callback_key``: PEM private key the asynchronous bank signs its callbacks with (the public half
    registered at the gateway for that bank's client). Without one, an ephemeral key is used: callbacks are
    still sent, but a gateway that checks tokens refuses them."""
    if callback_key is None:
        key: PrivateKey = generate_keypair()
        log.warning("no callback key for %s: signing callbacks with an ephemeral key", ", ".join(async_banks))
    else:
        key = load_private_key(callback_key.read_bytes())
    routes = {
        path + INQUIRY_PATH: _inquiry_handler(bank, bank in async_banks) for bank, path in PATHS.items()
    }
    app = rest_app(behaviour, routes)
    callbacks = Callbacks(key, audience, callback_delay)
    app[CALLBACKS] = callbacks
    app.cleanup_ctx.append(callbacks.context)
    return app
