"""Five banks on one server, each under its own path: ``POST /<bank>/api/v1/account-inquiries`` (REST JSON).

Synchronous banks answer at once. An asynchronous bank (BANK-TCB by default) answers ``202 processing``,
then ``callback_delay`` seconds later POSTs the answer to the request's ``callback_url``, authenticated as
the gateway's client of that bank (a JWT it signs with its own key), retrying with back-off (honouring
``Retry-After``) for up to five minutes while the gateway does not take it.

Orders (docs/orders.md): ``POST /<bank>/api/v1/orders`` with the whole order document, a bearer token and
``Idempotency-Key: <message_id>`` (it must equal the document's). Each message_id is executed once against
the bank's :class:`.ledger.Ledger`; a repeat gets the first answer again (409 if its document differs).
A synchronous bank answers ``200`` with the report body (its reference in ``X-Reference``); the
asynchronous bank answers ``202 {"status": "processing", "reference"}`` and pushes the report document to
``POST {gateway_url}/v1/documents`` (message_id: uuid5 of the order's, so a repeated push is a duplicate).
A ``document.revocation`` (body ``revokes``, ``reason``) is acknowledged with ``200``. A blocking order that
``replaces`` an earlier one frees what the earlier one holds before it blocks.

Test switches: ``GET /<bank>/_sim/orders`` -> ``{message_id: times executed}``;
``POST /<bank>/_sim/orders/silent {"silent": true}`` makes the bank take orders with ``202`` and never
answer them (nothing executed; ``silent_banks`` at start-up does the same);
``POST /<bank>/_sim/orders/garbled {"garbled": true}`` makes a synchronous bank execute orders and answer
with a report that breaks its schema (no ``outcome``): what the gateway does with an unusable answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from gateway.domain.issued import REVOCATION
from gateway.security.keys import PrivateKey, generate_keypair, load_private_key
from gateway.security.tokens import issue_token
from gateway.simulators.partners import (
    LAST_REQUESTS,
    Answerer,
    Inquiry,
    Refused,
    answer,
    as_of,
    check_bearer,
    dumps,
    masked,
    reference,
    rest_app,
    seed,
)
from gateway.simulators.partners.behaviour import ADMIN_PREFIX, Behaviour
from gateway.simulators.partners.ledger import Ledger

log = logging.getLogger(__name__)

PATHS = {"BANK-VCB": "/vcb", "BANK-BIDV": "/bidv", "BANK-CTG": "/ctg", "BANK-AGR": "/agr", "BANK-TCB": "/tcb"}
ASYNC_BANKS = frozenset({"BANK-TCB"})
INQUIRY_PATH = "/api/v1/account-inquiries"
ORDERS_PATH = "/api/v1/orders"
# Callbacks and pushed reports are retried like a real bank's outbound queue would: with back-off
# (doubling from FIRST_RETRY up to MAX_RETRY, or the gateway's Retry-After) for up to GIVE_UP_AFTER
# seconds. A gateway that is throttling or briefly busy is a reason to wait, not to drop an answer.
FIRST_RETRY = 0.5
MAX_RETRY = 5.0
GIVE_UP_AFTER = 300.0
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"
ORDER_TYPES: Final = frozenset({"order.account_blocking", "order.funds_transfer", "order.account_release"})
# A report's message_id is uuid5(REPORT_IDS, <the order's message_id>): the same report every time.
REPORT_IDS: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:thads:simulators:bank-report")


class Callbacks:
    """Late answers in flight: one task each, cancelled if the server stops before they are delivered."""

    def __init__(self, key: PrivateKey, audience: str, delay: float) -> None:
        self._key = key
        self._audience = audience
        self._delay = delay
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0

    def schedule(
        self, bank: str, url: str, ref: str, body: Callable[[], dict[str, Any]]
    ) -> asyncio.Task[None]:
        """POST ``body()`` (built afresh per attempt) to ``url`` after the delay; retry transient refusals."""
        task = asyncio.get_running_loop().create_task(self._deliver(bank, url, ref, body))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, bank: str, url: str, ref: str, make_body: Callable[[], dict[str, Any]]) -> None:
        await asyncio.sleep(self._delay)
        session = self._session
        if session is None:
            return
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + GIVE_UP_AFTER
        pause = FIRST_RETRY
        attempt = 0
        while True:
            attempt += 1
            token = issue_token(bank, self._key, self._audience, ttl=300)
            headers = {"Authorization": f"Bearer {token}", "X-Request-Ref": ref}
            body = make_body()
            wait = pause
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
                    wait = _retry_after(resp.headers.get("Retry-After"), pause)
                    log.warning("%s callback attempt %d: HTTP %s", bank, attempt, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s callback attempt %d failed: %s", bank, attempt, exc or type(exc).__name__)
            if loop.time() + wait > give_up_at:
                log.error("%s gave up calling back %s for %s after %d attempts", bank, url, ref, attempt)
                return
            await asyncio.sleep(wait)
            pause = min(pause * 2, MAX_RETRY)

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


def _retry_after(value: str | None, default: float) -> float:
    """The gateway's ``Retry-After`` in seconds (bounded), else ``default``."""
    try:
        seconds = float(value) if value else default
    except ValueError:
        return default
    return min(max(seconds, 0.1), 30.0)


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
        payload: dict[str, Any] = {"request_ref": inquiry.request_ref, "reference": ref}
        payload |= {"match_status": status, "accounts": accounts}
        request.app[CALLBACKS].schedule(bank, url, inquiry.request_ref, lambda: payload | {"as_of": as_of()})
        return web.json_response({"reference": ref, "status": "processing"}, status=202)

    return inquire


# -- orders ---------------------------------------------------------------------------------------


@dataclass
class Executed:
    """An order (or revocation) executed once, and what the bank answers every time it is sent again."""

    fingerprint: str
    reference: str
    report: dict[str, Any] | None  # the full report document; None for a revocation


@dataclass
class OrderDesk:
    """One bank's order desk: executes each message_id once and remembers its answer."""

    bank: str
    asynchronous: bool
    silent: bool = False
    garbled: bool = False  # answers at once with a report missing its outcome
    ledger: Ledger = field(init=False)
    done: dict[str, Executed] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # message_id -> times executed
    revoked: dict[str, str] = field(default_factory=dict)  # revoked order -> the revocation's message_id
    pushes: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # message_id -> report push

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.bank)

    def execute(self, document: Mapping[str, Any]) -> Executed:
        """Execute a checked document (see :func:`_check_order`) and remember the answer."""
        message_id = str(document["message_id"])
        body = document["body"]
        executed_at = as_of()
        report_body: dict[str, Any] | None = None
        message_type = document["message_type"]
        if message_type == REVOCATION:
            self.revoked[str(body["revokes"])] = message_id
        elif message_type == "order.account_blocking":
            if isinstance(document.get("replaces"), str):
                # A replacing order blocks afresh: what the replaced one holds is freed first.
                self.ledger.release(document["replaces"], "full", None, None, executed_at)
            wanted = None if body.get("all_accounts") is True else list(body["accounts"])
            debtor = seed.subject_key(body["debtor"])
            report_body = self.ledger.block(message_id, debtor, body["amount"], wanted, executed_at)
        elif message_type == "order.funds_transfer":
            report_body = self.ledger.transfer(
                body["blocking_order"], body["amount"], body["to_account"], _numbers(body), executed_at
            )
        else:
            report_body = self.ledger.release(
                body["blocking_order"], body["scope"], body.get("amount"), _numbers(body), executed_at
            )
        report = None
        if report_body is not None:
            report = {
                "message_id": str(uuid.uuid5(REPORT_IDS, message_id)),
                "message_type": "report." + message_type.removeprefix("order."),
                "schema_version": "1",
                "created_at": executed_at,
                "sender": self.bank,
                "recipient": document["sender"],
                "in_reply_to": message_id,
                "case_ref": document["case_ref"],
                "body": report_body,
            }
        executed = Executed(_fingerprint(document), reference(self.bank, message_id), report)
        self.done[message_id] = executed
        self.counts[message_id] = self.counts.get(message_id, 0) + 1
        return executed


DESKS = web.AppKey("order_desks", dict[str, OrderDesk])


def _numbers(body: Mapping[str, Any]) -> list[str] | None:
    accounts = body.get("accounts")
    if not isinstance(accounts, list):
        return None
    return [str(a.get("account_number")) for a in accounts if isinstance(a, dict)]


def _fingerprint(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _invalid(message: str) -> Refused:
    # Messages name fields only: nothing of the debtor goes back.
    return Refused(400, "invalid_order", message)


def _check_order(bank: str, document: object, idempotency_key: str | None) -> dict[str, Any]:
    """What the bank insists on before it executes anything; raises :class:`Refused`."""
    if not isinstance(document, dict):
        raise _invalid("the body must be a JSON object (the order document)")
    message_id = document.get("message_id")
    if not _text(message_id):
        raise _invalid("message_id is required")
    if idempotency_key is None:
        raise Refused(400, "invalid_request", "the Idempotency-Key header is required")
    if idempotency_key != message_id:
        raise Refused(400, "invalid_request", "Idempotency-Key must equal the document's message_id")
    message_type = document.get("message_type")
    if message_type not in ORDER_TYPES and message_type != REVOCATION:
        raise Refused(400, "unsupported_document", "this endpoint takes bank orders and revocations only")
    if document.get("recipient") != bank:
        raise Refused(400, "wrong_recipient", f"this is {bank}; the document is addressed elsewhere")
    body = document.get("body")
    if not isinstance(body, dict):
        raise _invalid("body must be an object")
    if message_type == REVOCATION:
        if not _text(body.get("revokes")):
            raise _invalid("body.revokes (the revoked order's message_id) is required")
        return document
    for name in ("sender", "case_ref"):
        if not _text(document.get(name)):
            raise _invalid(f"{name} is required")
    debtor = body.get("debtor")
    if not isinstance(debtor, dict):
        raise _invalid("body.debtor is required")
    try:
        key = seed.subject_key(debtor)
    except ValueError:
        raise _invalid("body.debtor needs an id_number or an enterprise_code") from None
    if not seed.is_well_formed(key):
        raise _invalid("body.debtor: id_number (12 digits) or enterprise_code (10 digits[-3 digits])")
    accounts = body.get("accounts")
    if accounts is not None and (
        not isinstance(accounts, list)
        or not all(isinstance(a, dict) and _text(a.get("account_number")) for a in accounts)
    ):
        raise _invalid("body.accounts must be a list of {account_number, currency?}")
    amount = body.get("amount")
    if message_type == "order.account_blocking":
        if not _positive(amount):
            raise _invalid("body.amount must be a positive integer (VND)")
        if (accounts is None) == (body.get("all_accounts") is not True):
            raise _invalid("body needs either accounts or all_accounts: true")
        return document
    if not _text(body.get("blocking_order")):
        raise _invalid("body.blocking_order is required")
    if message_type == "order.funds_transfer":
        if not _positive(amount):
            raise _invalid("body.amount must be a positive integer (VND)")
        if not isinstance(body.get("to_account"), dict):
            raise _invalid("body.to_account is required")
        return document
    scope = body.get("scope")
    if scope not in ("full", "partial"):
        raise _invalid("body.scope must be full or partial")
    if scope == "partial" and not _positive(amount):
        raise _invalid("body.amount must be a positive integer (VND) for a partial release")
    if scope == "full" and amount is not None and not _positive(amount):
        raise _invalid("body.amount must be a positive integer (VND)")
    return document


def _order_handler(bank: str, gateway_url: str) -> Callable[[web.Request], Any]:
    documents_url = gateway_url.rstrip("/") + "/v1/documents"

    async def take(request: web.Request) -> web.Response:
        desk = request.app[DESKS][bank]
        try:
            check_bearer(request.headers.get("Authorization"))
            try:
                raw = await request.json()
            except ValueError as exc:
                raise Refused(400, "invalid_json", f"the body is not JSON: {exc}") from exc
            if isinstance(raw, dict):
                request.app[LAST_REQUESTS][PATHS[bank]] = masked(raw)  # what the bank was told
            document = _check_order(bank, raw, request.headers.get("Idempotency-Key"))
        except Refused as exc:
            return exc.response
        message_id = str(document["message_id"])
        executed = desk.done.get(message_id)
        if executed is not None and executed.fingerprint != _fingerprint(document):
            return json_conflict()
        if executed is None:
            if desk.silent and document["message_type"] != REVOCATION:
                # Taken, never executed, never answered: what the gateway sees of a bank that lost it.
                body = {"status": "processing", "reference": reference(bank, message_id)}
                return web.json_response(body, status=202)
            executed = desk.execute(document)
        headers = {"X-Reference": executed.reference}
        report = executed.report
        if report is None:  # a revocation
            return web.json_response(
                {"status": "acknowledged", "reference": executed.reference}, headers=headers
            )
        if not desk.asynchronous:
            body = report["body"]
            if desk.garbled:
                body = {k: v for k, v in body.items() if k != "outcome"}
            return web.json_response(body, headers=headers, dumps=dumps)
        push = desk.pushes.get(message_id)
        if push is None or push.done():
            # The first time, or the gateway asks again: (re)send the one report, a duplicate if it has it.
            desk.pushes[message_id] = request.app[CALLBACKS].schedule(
                bank, documents_url, report["message_id"], lambda: report
            )
        body = {"status": "processing", "reference": executed.reference}
        return web.json_response(body, status=202, headers=headers)

    return take


def json_conflict() -> web.Response:
    return web.json_response(
        {"error": "idempotency_conflict", "message": "this message_id was executed with another document"},
        status=409,
    )


def _counts_handler(bank: str) -> Callable[[web.Request], Any]:
    async def counts(request: web.Request) -> web.Response:
        return web.json_response(request.app[DESKS][bank].counts)

    return counts


def _switch_handler(bank: str, switch: str) -> Callable[[web.Request], Any]:
    """``POST {"<switch>": true|false}`` sets the desk's test switch of that name."""

    async def set_switch(request: web.Request) -> web.Response:
        desk = request.app[DESKS][bank]
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get(switch), bool):
            return web.json_response({"error": f'the body must be {{"{switch}": true|false}}'}, status=400)
        setattr(desk, switch, body[switch])
        return web.json_response({switch: getattr(desk, switch)})

    return set_switch


def make_app(
    behaviour: Behaviour | None = None,
    *,
    callback_key: Path | None = None,
    audience: str = "thads-gateway",
    callback_delay: float = 3.0,
    async_banks: frozenset[str] = ASYNC_BANKS,
    gateway_url: str = DEFAULT_GATEWAY_URL,
    silent_banks: Iterable[str] = (),
) -> web.Application:
    """``callback_key``: PEM private key the asynchronous bank signs its callbacks and pushed reports with
    (the public half registered at the gateway for that bank's client). Without one, an ephemeral key is
    used: callbacks are still sent, but a gateway that checks tokens refuses them. ``gateway_url``: where
    the asynchronous bank pushes report documents. ``silent_banks``: banks that take orders and never
    answer them."""
    silent = frozenset(silent_banks)
    if silent - PATHS.keys():
        raise ValueError(f"unknown banks: {', '.join(sorted(silent - PATHS.keys()))}")
    if callback_key is None:
        key: PrivateKey = generate_keypair()
        log.warning("no callback key for %s: signing callbacks with an ephemeral key", ", ".join(async_banks))
    else:
        key = load_private_key(callback_key.read_bytes())
    routes = {
        path + INQUIRY_PATH: _inquiry_handler(bank, bank in async_banks) for bank, path in PATHS.items()
    }
    app = rest_app(behaviour, routes)
    app[DESKS] = {
        bank: OrderDesk(bank, asynchronous=bank in async_banks, silent=bank in silent) for bank in PATHS
    }
    for bank, path in PATHS.items():
        app.router.add_post(path + ORDERS_PATH, _order_handler(bank, gateway_url))
        app.router.add_get(path + ADMIN_PREFIX + "orders", _counts_handler(bank))
        for switch in ("silent", "garbled"):
            app.router.add_post(path + ADMIN_PREFIX + "orders/" + switch, _switch_handler(bank, switch))
    callbacks = Callbacks(key, audience, callback_delay)
    app[CALLBACKS] = callbacks
    app.cleanup_ctx.append(callbacks.context)
    return app
