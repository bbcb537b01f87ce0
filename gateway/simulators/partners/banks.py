"""Banks on one server: the five of the shipped configuration each under its own path (``POST
/<bank>/api/v1/account-inquiries``, REST JSON), and any other bank under ``/banks/<CODE>``
(``POST /banks/BANK-ACB/api/v1/account-inquiries``), answering at once with accounts drawn for that bank
and debtor (:func:`accounts`): a configuration of a hundred banks needs no code here.

Synchronous banks answer at once. An asynchronous bank (BANK-TCB by default) answers ``202 processing``,
then ``callback_delay`` seconds later POSTs the answer to the request's ``callback_url``, authenticated as
the gateway's client of that bank (a JWT it signs with its own key), retrying while the gateway does not
take it (:mod:`.callbacks`).

Batches (docs/partners.md): ``POST /<bank>/api/v1/account-inquiries/batch`` takes ``{"requests": [...]}``,
up to :data:`MAX_BATCH` inquiries each as the single endpoint takes them, and answers ``200 {"answers":
[...]}``, one per request by its ``request_ref``: the single endpoint's body, ``{"status": "processing"}``
from the asynchronous bank (its answer follows by callback), or ``{"error", "message"}`` for a request it
refuses. The sizes of the batches received are kept under :data:`BATCHES` (tests count the calls).

Orders (docs/orders.md): ``POST /<bank>/api/v1/orders``, taken by each bank's :class:`BankDesk` (see
:mod:`.desk`: idempotency on the message_id, answer modes, test switches under ``/<bank>/_sim/``) and
executed against the bank's :class:`.ledger.Ledger`. A synchronous bank answers ``200`` with the report
body; the asynchronous bank answers ``202`` and pushes the report document to ``POST
{gateway_url}/v1/documents``; a silent bank (``silent_banks`` at start-up, or ``POST
/<bank>/_sim/orders/silent {"silent": true}``) takes orders with ``202`` and never answers them. A
blocking order that ``replaces`` an earlier one frees what the earlier one holds before it blocks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from cryptography import x509

from gateway.domain import orders
from gateway.domain.identifiers import AGENCY_CODE
from gateway.domain.issued import REVOCATION
from gateway.simulators.partners import (
    Answerer,
    Inquiry,
    Refused,
    answer,
    as_of,
    check_bearer,
    dumps,
    reference,
    rest_app,
    seed,
    stated_reasons,
)
from gateway.simulators.partners.behaviour import Behaviour
from gateway.simulators.partners.callbacks import DEFAULT_GATEWAY_URL, Callbacks, signing_key
from gateway.simulators.partners.desk import Desk, Document
from gateway.simulators.partners.ledger import Ledger

log = logging.getLogger(__name__)

PATHS = {"BANK-VCB": "/vcb", "BANK-BIDV": "/bidv", "BANK-CTG": "/ctg", "BANK-AGR": "/agr", "BANK-TCB": "/tcb"}
ASYNC_BANKS = frozenset({"BANK-TCB"})
#: Where any bank is served, by its code (the five above are served here too).
ANY_BANK_PATH = "/banks/{code}"
INQUIRY_PATH = "/api/v1/account-inquiries"
BATCH_PATH = INQUIRY_PATH + "/batch"
#: Inquiries one batch may carry; more is refused whole (413).
MAX_BATCH = 500
ORDERS_PATH = "/api/v1/orders"
BLOCKING: Final = orders.ACCOUNT_BLOCKING
TRANSFER: Final = orders.FUNDS_TRANSFER
RELEASE: Final = orders.ACCOUNT_RELEASE

CALLBACKS = web.AppKey("callbacks", Callbacks)
#: The size of every batch received, in order.
BATCHES = web.AppKey("batches", list[int])


def bank_path(code: str) -> str:
    """Where bank ``code`` is served: its own path for the five shipped banks, else under ``/banks/``."""
    return PATHS.get(code) or ANY_BANK_PATH.format(code=code)


#: Branches of the banks beyond the seeded five (fake data: every bank has these three).
_BRANCHES = ("Chi nhánh Hà Nội", "Chi nhánh Đà Nẵng", "Chi nhánh Thành phố Hồ Chí Minh")


def accounts(bank: str, identifier: str) -> tuple[str, list[seed.Row]]:
    """What ``bank`` holds for ``identifier``: the seeded data for the five shipped banks, and for any
    other bank fake accounts drawn from a stream of that bank and debtor, so the same question always
    gets the same answer. Whoever holds nothing anywhere (:mod:`.seed`) holds nothing here either; the
    rich debtor holds accounts at some of them, as at the seeded banks."""
    if bank in seed.BANKS:
        return seed.bank_accounts(bank, identifier)
    if identifier != seed.RICH and not seed._holds(identifier):  # the seed's own rule
        return "not_found", []
    rng = seed._rng(identifier, bank)
    digest = hashlib.sha256(bank.encode()).digest()
    prefix, digits = f"{digest[0] % 90 + 10}", 12 + digest[1] % 3  # the bank's own number format
    rows = []
    for _ in range(rng.choice((0, 0, 0, 1, 2))):
        number = prefix + "".join(str(rng.randint(0, 9)) for _ in range(digits - len(prefix)))
        currency = "USD" if rng.random() < 0.1 else "VND"
        kind = rng.choice(("current", "current", "savings", "term"))
        opened = seed._day(rng, date(2010, 1, 1))
        rows.append(
            {"account_number": number, "branch": rng.choice(_BRANCHES), "currency": currency}
            | {"type": kind, "opened_on": opened}
        )
    return ("found" if rows else "not_found"), rows


def _inquiry_handler(bank: str | None, asynchronous: bool) -> Answerer:
    """``bank`` None: the bank is the one the path names (:data:`ANY_BANK_PATH`)."""

    async def inquire(request: web.Request, inquiry: Inquiry) -> web.Response:
        code = bank or request.match_info["code"]
        if not AGENCY_CODE.fullmatch(code):
            raise Refused(404, "unknown_bank", "no bank is served under this path")
        status, found = accounts(code, inquiry.identifier)
        if bank is None or not asynchronous:
            return answer(code, inquiry, status, accounts=found)
        url = inquiry.body.get("callback_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise Refused(400, "invalid_request", "callback_url (http or https) is required by this bank")
        ref = reference(code, inquiry.request_ref)
        payload: dict[str, Any] = {"request_ref": inquiry.request_ref, "reference": ref}
        payload |= {"match_status": status, "accounts": found}
        request.app[CALLBACKS].schedule(code, url, inquiry.request_ref, lambda: payload | {"as_of": as_of()})
        return web.json_response({"reference": ref, "status": "processing"}, status=202)

    return inquire


def _batch_handler(bank: str, asynchronous: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def batch(request: web.Request) -> web.Response:
        try:
            check_bearer(request.headers.get("Authorization"))
            try:
                body = await request.json()
            except ValueError:
                raise Refused(400, "invalid_json", "the body is not JSON") from None
            items = body.get("requests") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                raise Refused(400, "invalid_request", "requests (a non-empty list) is required")
            if len(items) > MAX_BATCH:
                raise Refused(413, "batch_too_large", f"at most {MAX_BATCH} requests per batch")
        except Refused as exc:
            return exc.response
        request.app[BATCHES].append(len(items))
        answers = [await _batch_answer(request, bank, asynchronous, item) for item in items]
        return web.json_response({"answers": [a for a in answers if a is not None]}, dumps=dumps)

    return batch


async def _batch_answer(
    request: web.Request, bank: str, asynchronous: bool, item: object
) -> dict[str, Any] | None:
    """One request of a batch answered as the single endpoint would, as a member of the answer list; None
    for an item without a request_ref (nothing to answer it by)."""
    ref = item.get("request_ref") if isinstance(item, dict) else None
    if not isinstance(ref, str) or not ref.strip():
        return None
    assert isinstance(item, dict)
    try:
        inquiry = Inquiry(request_ref=ref, identifier=_identifier(item), body=item)
        stated_reasons(item)
        response = await _inquiry_handler(bank, asynchronous)(request, inquiry)
    except Refused as exc:
        response = exc.response
    assert isinstance(response, web.Response) and response.text is not None
    data: dict[str, Any] = json.loads(response.text)
    return {"request_ref": ref} | data


def _identifier(body: dict[str, Any]) -> str:
    subject = body.get("subject")
    keys = (
        [subject[k] for k in ("id_number", "enterprise_code") if subject.get(k) is not None]
        if isinstance(subject, dict)
        else []
    )
    if len(keys) != 1 or not isinstance(keys[0], str) or not seed.is_well_formed(keys[0]):
        raise Refused(400, "invalid_subject", "subject needs exactly one of id_number or enterprise_code")
    return keys[0]


# -- orders ---------------------------------------------------------------------------------------


class BankDesk(Desk):
    """One bank's order desk: what a bank checks in an order, and how it executes it on its ledger."""

    takes = frozenset({BLOCKING, TRANSFER, RELEASE, REVOCATION})

    def __init__(self, bank: str, **options: Any) -> None:
        super().__init__(bank, PATHS[bank], **options)
        self.ledger = Ledger(bank)

    def check(self, document: Document) -> None:
        if document["message_type"] == REVOCATION:
            return
        for name in ("sender", "case_ref"):
            if not _text(document.get(name)):
                raise _invalid(f"{name} is required")
        body = document["body"]
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
        _check_amounts(document["message_type"], body)

    def execute(self, document: Document, reference: str) -> dict[str, Any]:
        body = document["body"]
        executed_at = as_of()
        message_type = document["message_type"]
        if message_type == BLOCKING:
            if isinstance(document.get("replaces"), str):
                # A replacing order blocks afresh: what the replaced one holds is freed first.
                self.ledger.release(document["replaces"], "full", None, None, executed_at)
            wanted = None if body.get("all_accounts") is True else list(body["accounts"])
            debtor = seed.subject_key(body["debtor"])
            return self.ledger.block(document["message_id"], debtor, body["amount"], wanted, executed_at)
        if message_type == TRANSFER:
            return self.ledger.transfer(
                body["blocking_order"], body["amount"], body["to_account"], _numbers(body), executed_at
            )
        return self.ledger.release(
            body["blocking_order"], body["scope"], body.get("amount"), _numbers(body), executed_at
        )


def _check_amounts(message_type: str, body: Mapping[str, Any]) -> None:
    amount = body.get("amount")
    if message_type == BLOCKING:
        if not _positive(amount):
            raise _invalid("body.amount must be a positive integer (VND)")
        if (body.get("accounts") is None) == (body.get("all_accounts") is not True):
            raise _invalid("body needs either accounts or all_accounts: true")
        return
    if not _text(body.get("blocking_order")):
        raise _invalid("body.blocking_order is required")
    if message_type == TRANSFER:
        if not _positive(amount):
            raise _invalid("body.amount must be a positive integer (VND)")
        if not isinstance(body.get("to_account"), dict):
            raise _invalid("body.to_account is required")
        return
    scope = body.get("scope")
    if scope not in ("full", "partial"):
        raise _invalid("body.scope must be full or partial")
    if scope == "partial" and not _positive(amount):
        raise _invalid("body.amount must be a positive integer (VND) for a partial release")
    if scope == "full" and amount is not None and not _positive(amount):
        raise _invalid("body.amount must be a positive integer (VND)")


def _numbers(body: Mapping[str, Any]) -> list[str] | None:
    accounts = body.get("accounts")
    if not isinstance(accounts, list):
        return None
    return [str(a.get("account_number")) for a in accounts if isinstance(a, dict)]


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _invalid(message: str) -> Refused:
    # Messages name fields only: nothing of the debtor goes back.
    return Refused(400, "invalid_order", message)


def make_app(
    behaviour: Behaviour | None = None,
    *,
    callback_key: Path | None = None,
    audience: str = "thads-gateway",
    callback_delay: float = 3.0,
    async_banks: frozenset[str] = ASYNC_BANKS,
    gateway_url: str = DEFAULT_GATEWAY_URL,
    silent_banks: Iterable[str] = (),
    order_signature_anchors: Sequence[x509.Certificate] | None = None,
) -> web.Application:
    """``callback_key``: PEM private key the asynchronous bank signs its callbacks and pushed reports with
    (the public half registered at the gateway for that bank's client). Without one, an ephemeral key is
    used: callbacks are still sent, but a gateway that checks tokens refuses them. ``gateway_url``: where
    the asynchronous bank pushes report documents. ``silent_banks``: banks that take orders and never
    answer them. ``order_signature_anchors``: when given, every bank takes only orders carrying an
    office's signature that chains to one of these roots (``400 signature_required`` /
    ``invalid_signature`` otherwise); None (the default) leaves signatures unchecked."""
    silent = frozenset(silent_banks)
    if silent - PATHS.keys():
        raise ValueError(f"unknown banks: {', '.join(sorted(silent - PATHS.keys()))}")
    key = signing_key(callback_key, ", ".join(sorted(async_banks)) or "the banks")
    routes = {
        path + INQUIRY_PATH: _inquiry_handler(bank, bank in async_banks) for bank, path in PATHS.items()
    }
    # Any other bank, by the code in its path; it answers at once.
    routes[ANY_BANK_PATH + INQUIRY_PATH] = _inquiry_handler(None, asynchronous=False)
    app = rest_app(behaviour, routes)
    app[BATCHES] = []
    for bank, path in PATHS.items():
        app.router.add_post(path + BATCH_PATH, _batch_handler(bank, bank in async_banks))
    callbacks = Callbacks(key, audience, callback_delay)
    app[CALLBACKS] = callbacks
    app.cleanup_ctx.append(callbacks.context)
    for bank in PATHS:
        desk = BankDesk(
            bank,
            mode="late" if bank in async_banks else "at_once",
            silent=bank in silent,
            callbacks=callbacks,
            gateway_url=gateway_url,
            signature_anchors=order_signature_anchors,
        )
        desk.install(app, ORDERS_PATH)
    return app
