"""A partner in pull mode (``delivery = "pull"``, docs/partners.md): it is never called; it fetches its
work from the gateway with its own token, executes each item once, answers through the gateway's usual
endpoints and acknowledges what it handled.

One round (:meth:`PullPartner.round`): ``GET /v1/partner-inbox?wait=…&limit=…`` (a long poll), then per
item

- a lookup (``kind: lookup``): the answer from the seeded data, ``POST /v1/partner-answers``;
- a document: executed at the partner's :class:`~.desk.Desk` (each ``message_id`` once, as every simulated
  partner does), its answer document pushed to ``POST /v1/documents``; a revocation is noted;

then ``POST /v1/partner-inbox/acknowledgement`` with the items whose answer the gateway took. An item whose
answer could not be handed over is not acknowledged: it comes back after its lease, and its remembered
answer is sent again (never a second execution).

``journal``: a file where each execution is appended (and flushed) before its answer leaves, read again at
start: a partner killed mid-batch and started again executes nothing twice, as a real bank's ledger
would ensure. Each line is one execution, so counting lines per ``item_id`` proves "executed once".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from gateway.domain.issued import REVOCATION
from gateway.security.keys import PrivateKey, load_private_key
from gateway.security.tokens import issue_token
from gateway.simulators.partners import Refused, as_of, reference, seed
from gateway.simulators.partners.banks import BankDesk
from gateway.simulators.partners.behaviour import ADMIN_PREFIX
from gateway.simulators.partners.desk import Answer, Conflict, Desk, Document, fingerprint
from gateway.simulators.partners.ledger import Ledger

log = logging.getLogger(__name__)

INBOX: Final = "/v1/partner-inbox"
ACKNOWLEDGEMENT: Final = "/v1/partner-inbox/acknowledgement"
#: Transient refusals worth another try now (the gateway busy or throttling); the rest are final.
TRANSIENT: Final = frozenset({408, 429, 500, 502, 503, 504})

LookupAnswerer = Callable[[Mapping[str, Any]], dict[str, Any]]


class PullBankDesk(BankDesk):
    """A bank's order desk without a server: the same checks and ledger as a called bank's, its answers
    always pushed (a pull partner has no answer to give at once)."""

    def __init__(self, bank: str) -> None:
        Desk.__init__(self, bank, "/" + bank.lower())
        self.ledger = Ledger(bank)
        self.mode = "late"  # its answers are documents it pushes: never an answer at once


def bank_answer(bank: str) -> LookupAnswerer:
    """A bank's late answer to an account inquiry, from the seeded data (what ``POST /v1/partner-answers``
    takes from an asynchronous bank)."""

    def answer(request: Mapping[str, Any]) -> dict[str, Any]:
        subject = request.get("subject") or {}
        status, accounts = seed.bank_accounts(bank, seed.subject_key(subject))
        ref = str(request["request_ref"])
        return {
            "request_ref": ref,
            "reference": reference(bank, ref),
            "match_status": status,
            "accounts": accounts,
            "as_of": as_of(),
        }

    return answer


class PullPartner:
    def __init__(
        self,
        code: str,
        gateway_url: str,
        key: PrivateKey,
        audience: str,
        *,
        desk: Desk,
        answer_lookup: LookupAnswerer,
        wait: float = 20.0,
        limit: int = 20,
        journal: Path | None = None,
        pause: float = 1.0,
    ) -> None:
        self.code = code
        self.gateway_url = gateway_url.rstrip("/")
        self._key = key
        self._audience = audience
        self.desk = desk
        self._answer_lookup = answer_lookup
        self.wait = wait
        self.limit = limit
        self._journal = journal
        self._pause = pause
        #: Lookups answered, by request_ref: the answer sent (again, should the item come back).
        self.lookups: dict[str, dict[str, Any]] = {}
        #: Executions by this process, per item id (lookups and documents alike).
        self.executions: dict[str, int] = {}
        self.acknowledged = 0
        self.fetched = 0
        #: While set, it fetches nothing (a test switch: ``POST <prefix>/_sim/pull {"paused": true}``).
        self.paused = False
        if journal is not None and journal.exists():
            self._replay(journal)

    # -- the loop -----------------------------------------------------------------------------------

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event | None = None) -> None:
        """Fetch, execute, answer, acknowledge, until ``stop`` is set (or cancelled)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            if self.paused:
                await asyncio.sleep(0.2)
                continue
            try:
                await self.round(session)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("%s: fetching from the gateway failed (%s); trying again", self.code, exc)
                await asyncio.sleep(self._pause)
            except Exception:
                log.exception("%s: a pull round failed; trying again", self.code)
                await asyncio.sleep(self._pause)

    async def round(self, session: aiohttp.ClientSession, wait: float | None = None) -> int:
        """One fetch and what follows; how many items it fetched."""
        params = {"wait": f"{self.wait if wait is None else wait:g}", "limit": str(self.limit)}
        timeout = aiohttp.ClientTimeout(total=(self.wait if wait is None else wait) + 30)
        async with session.get(
            self.gateway_url + INBOX, params=params, headers=self._headers(), timeout=timeout
        ) as resp:
            if resp.status != 200:
                log.warning("%s: fetch answered HTTP %s", self.code, resp.status)
                await asyncio.sleep(self._pause)
                return 0
            inbox = await resp.json()
        items = inbox.get("items") or []
        self.fetched += len(items)
        done = [item["item_id"] for item in items if await self._handle(session, item)]
        if done:
            await self._acknowledge(session, str(inbox["lease"]), done)
        return len(items)

    # -- one item -------------------------------------------------------------------------------------

    async def _handle(self, session: aiohttp.ClientSession, item: Mapping[str, Any]) -> bool:
        """Execute the item once and hand its answer over; whether it may be acknowledged."""
        body = item.get("body")
        if not isinstance(body, dict):
            return True  # nothing anyone could execute: acknowledged, the deadline speaks for it
        if item.get("kind") == "lookup":
            ref = str(item["item_id"])
            answer = self.lookups.get(ref)
            if answer is None:
                answer = self._answer_lookup(body)
                self._executed(ref, {"lookup": answer})
                self.lookups[ref] = answer
            return await self._post(session, "/v1/partner-answers", answer, ref)
        try:
            late = self._execute_document(body)
        except Refused as refused:
            log.error("%s refused document %s: %s", self.code, item.get("item_id"), refused)
            return True
        except Conflict:
            log.error("%s: message_id %s was executed with another document", self.code, item.get("item_id"))
            return True
        for document in late:
            if not await self._post(session, "/v1/documents", document, str(document["message_id"])):
                return False
        return True

    def _execute_document(self, document: Document) -> tuple[Document, ...]:
        """The desk's execute-once, without HTTP: the answers to push (the remembered ones on a repeat)."""
        desk = self.desk
        message_id = str(document.get("message_id"))
        if document.get("recipient") != desk.code or document.get("message_type") not in desk.takes:
            raise Refused(400, "unsupported_document", f"{desk.code} does not take this document")
        mark = fingerprint(document)
        known = desk.once.seen(message_id, mark)
        if known is None:
            desk.check(document)
            ref = reference(desk.code, message_id)
            if document["message_type"] == REVOCATION:
                desk.revoked[str(document["body"]["revokes"])] = message_id
                answer = Answer(200, {"status": "acknowledged", "reference": ref}, ref)
            else:
                report = desk.execute(document, ref)
                late = tuple(desk.late_answers(document, report))
                answer = Answer(202, {"status": "processing", "reference": ref}, ref, late=late)
            self._executed(message_id, {"document": mark, "late": list(answer.late)})
            known = desk.once.remember(message_id, mark, answer)
        return known.late

    def _executed(self, item_id: str, record: dict[str, Any]) -> None:
        self.executions[item_id] = self.executions.get(item_id, 0) + 1
        if self._journal is not None:
            with self._journal.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"item_id": item_id, **record}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def _replay(self, journal: Path) -> None:
        for line in journal.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            item_id = str(entry["item_id"])
            if "lookup" in entry:
                self.lookups[item_id] = entry["lookup"]
            else:
                ref = reference(self.desk.code, item_id)
                late = tuple(entry.get("late") or ())
                status = 202 if late else 200
                self.desk.once.remember(item_id, str(entry["document"]), Answer(status, {}, ref, late=late))

    # -- talking to the gateway ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = issue_token(self.code, self._key, self._audience, ttl=300)
        return {"Authorization": f"Bearer {token}"}

    async def _post(
        self, session: aiohttp.ClientSession, path: str, body: Mapping[str, Any], ref: str, attempts: int = 3
    ) -> bool:
        """POST an answer; True once the gateway took it or refused it for good (a repeat, a late answer:
        nothing to gain by sending it again), False while it could not be handed over."""
        for attempt in range(1, attempts + 1):
            try:
                async with session.post(
                    self.gateway_url + path,
                    data=json.dumps(body, ensure_ascii=False),
                    headers=self._headers() | {"Content-Type": "application/json", "X-Request-Ref": ref},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    if resp.status not in TRANSIENT:
                        if resp.status >= 300 and resp.status != 404:
                            log.error(
                                "%s: %s refused the answer to %s: HTTP %s", self.code, path, ref, resp.status
                            )
                        return True
                    log.warning("%s: %s answered HTTP %s (attempt %d)", self.code, path, resp.status, attempt)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s: %s failed (%s, attempt %d)", self.code, path, type(exc).__name__, attempt)
            await asyncio.sleep(self._pause * attempt)
        return False

    async def _acknowledge(self, session: aiohttp.ClientSession, lease: str, ids: list[str]) -> None:
        body = {"lease": lease, "items": ids}
        for attempt in range(1, 4):
            try:
                async with session.post(
                    self.gateway_url + ACKNOWLEDGEMENT,
                    json=body,
                    headers=self._headers(),
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    if resp.status == 200:
                        result = await resp.json()
                        self.acknowledged += len(result.get("acknowledged") or [])
                        return
                    if resp.status not in TRANSIENT:
                        log.error("%s: acknowledgement refused: HTTP %s", self.code, resp.status)
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "%s: acknowledgement failed (%s, attempt %d)", self.code, type(exc).__name__, attempt
                )
            await asyncio.sleep(self._pause * attempt)
        # Not acknowledged: the items come back after their lease and are answered again, not executed.


class PullLoops:
    """The pull partners' loops of one simulator process (:func:`start_pull_partners`), and their test
    switches, installed on the banks' server (:meth:`install`): ``GET <prefix>/_sim/pull`` (paused, items
    fetched and acknowledged, executions per item) and ``POST <prefix>/_sim/pull {"paused": bool}``, where
    the prefix is ``/vpb`` for BANK-VPB. Paused, it fetches nothing from its next round on (a round waits
    at most its ``wait``)."""

    def __init__(self, partners: list[PullPartner], session: aiohttp.ClientSession) -> None:
        self.partners = partners
        self._session = session
        self._tasks = [asyncio.create_task(p.run(session), name=f"pull-{p.code}") for p in partners]

    def install(self, app: web.Application) -> None:
        for partner in self.partners:
            prefix = "/" + partner.code.removeprefix("BANK-").lower() + ADMIN_PREFIX + "pull"
            app.router.add_get(prefix, _show(partner))
            app.router.add_post(prefix, _pause(partner))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()


def _show(partner: PullPartner) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def show(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "paused": partner.paused,
                "fetched": partner.fetched,
                "acknowledged": partner.acknowledged,
                "executions": partner.executions,
            }
        )

    return show


def _pause(partner: PullPartner) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def pause(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("paused"), bool):
            return web.json_response({"error": 'the body must be {"paused": true|false}'}, status=400)
        partner.paused = body["paused"]
        return web.json_response({"paused": partner.paused})

    return pause


def start_pull_partners(
    codes: list[str], gateway_url: str, keys: Path, audience: str, wait: float = 20.0
) -> PullLoops:
    """A pull loop for each bank of ``codes`` (``delivery = "pull"`` partners of the configuration), signed
    with ``<keys>/<code>.key``; banks without a key file are left out, with a warning (the gateway would
    refuse them)."""
    partners = []
    for code in codes:
        key_file = keys / f"{code}.key"
        if not key_file.exists():
            log.warning("no key for pull partner %s in %s: it does not fetch", code, keys)
            continue
        partners.append(
            PullPartner(
                code,
                gateway_url,
                load_private_key(key_file.read_bytes()),
                audience,
                desk=PullBankDesk(code),
                answer_lookup=bank_answer(code),
                wait=wait,
            )
        )
    if partners:
        log.info("pull partners fetching from %s: %s", gateway_url, ", ".join(p.code for p in partners))
    return PullLoops(partners, aiohttp.ClientSession())
