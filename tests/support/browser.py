"""The operators' console driven by a real browser: Debian's chromium through Playwright, against the
gateway's real api and worker processes, the partner simulators and a case system that counts what it
receives.

The tests are synchronous (Playwright's sync API). Everything asynchronous the world needs besides the
two gateway processes — the partner simulators, the case system's webhook, calls to the API, reads of
the database — runs on one event loop in a background thread (:class:`BackgroundLoop`), so it keeps
answering between tests and never meets the browser's own loop.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from gateway.amqp.names import Names
from gateway.security.clients import ClientStore
from gateway.security.keys import public_pem
from gateway.storage.migrate import upgrade
from tests.conftest import ROOT, World, fresh_judgment
from tests.support.databases import scratch_database
from tests.support.gateway_procs import GatewayProcesses, free_port
from tests.support.lookup_world import LookupWorld, delete_lookup_topology, make_lookup_world

T = TypeVar("T")

#: Debian's chromium; ``GATEWAY_CHROMIUM`` points elsewhere (scripts/ensure-browser.sh reads it too).
CHROMIUM = Path(os.environ.get("GATEWAY_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
#: The marks of every console browser test module (``pytestmark = BROWSER_MARKS``).
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.rabbitmq,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"BROWSER TESTS SKIPPED: {CHROMIUM} is missing; `make browser` installs it (as root)",
    ),
]
VIEWPORT = {"width": 1366, "height": 768}

#: Console accounts of the test installation: username -> (password, role).
OPERATOR = ("lan", "correct horse battery staple", "operator")
AUDITOR = ("minh", "auditor's own long passphrase", "auditor")

#: Deliveries give up fast, so a judgment the case system refuses is parked within a second.
RETRY_DELAYS_SECONDS = [0.2]
MAX_ATTEMPTS = 2


class BackgroundLoop:
    """An event loop running in a daemon thread; :meth:`run` waits for a coroutine scheduled on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="browser-world-loop", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> BackgroundLoop:
        self._thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        self.run(drain(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


class WebhookCaseSystem:
    """The case system as an HTTP receiver of the gateway's signed deliveries. It counts every document
    it accepted by ``Gateway-Message-Id``; while ``accepting`` is off it answers 503 (stored nothing),
    which is what makes the gateway retry and then park."""

    def __init__(self) -> None:
        self.accepting = True
        self.seen: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/inbox"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/inbox", self._inbox)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _inbox(self, request: web.Request) -> web.Response:
        await request.read()
        message_id = request.headers.get("Gateway-Message-Id", "")
        if not self.accepting:
            self.refused[message_id] += 1
            return web.json_response({"stored": False}, status=503)
        self.seen[message_id] += 1
        return web.json_response({"stored": True})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class GarbagePartner:
    """A partner that answers every request ``200`` with a JSON body cut short (the simulators' own garbage
    reply): it is up, so the gateway's breaker stays closed, yet every call fails."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        from gateway.simulators.partners.behaviour import json_garbage

        async def garbage(_request: web.Request) -> web.Response:
            self.calls += 1
            return json_garbage()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", garbage)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class ConsoleProcesses(GatewayProcesses):
    """The api and worker processes, with a few more settings in their environment."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}


@dataclass
class ConsoleWorld:
    """One running installation for the browser tests."""

    bg: BackgroundLoop
    lookup: LookupWorld
    procs: ConsoleProcesses
    case_system: WebhookCaseSystem
    operators_file: Path
    accounts: dict[str, tuple[str, str]] = field(default_factory=dict)  # username -> (password, role)
    #: The partners answering garbage (``console_world(garbage_banks=...)``), by code.
    garbage: dict[str, GarbagePartner] = field(default_factory=dict)

    @property
    def world(self) -> World:
        return self.lookup.world

    @property
    def url(self) -> str:
        return self.procs.url

    @property
    def names(self) -> Names:
        return Names(self.world.settings.broker_namespace)

    @property
    def case_delivery_queue(self) -> str:
        """The gateway's internal queue feeding deliveries to the case system."""
        return self.names.deliver(self.world.case_system.id)

    def logs(self) -> str:
        """The tail of the api and worker logs, for assertion messages."""
        parts = []
        for role in ("api", "worker"):
            log = self.procs.logs / f"{role}.log"
            if log.exists():
                parts.append(f"--- {role}.log ---\n" + log.read_text("utf-8", "replace")[-3000:])
        return "\n".join(parts)

    # --- the API, as the court and the case system use it -------------------------------------------

    def push_judgment(self, **changes: Any) -> dict[str, Any]:
        """A fresh judgment with its own case reference, pushed by the court; returns the document."""
        doc = fresh_judgment()
        doc["case_ref"] = f"TAND-HN/2026/DS/{uuid.uuid4().hex[:8].upper()}"
        doc.update(changes)
        self.bg.run(self._post("/v1/judgments", doc, self.world.court_headers(), expect=(202,)))
        return doc

    def lookup_assets(self, body: dict[str, Any], wait: int = 15) -> dict[str, Any]:
        headers = {**self.world.case_headers(), "Prefer": f"wait={wait}"}
        return self.bg.run(self._post("/v1/asset-inquiries", body, headers, expect=(200, 202)))

    async def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str], expect: tuple[int, ...]
    ) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url + path, json=body, headers=headers) as resp,
        ):
            text = await resp.text()
            assert resp.status in expect, f"{path}: {resp.status} {text}"
            result: dict[str, Any] = await resp.json(content_type=None)
            return result

    def message_status(self, message_id: str) -> str:
        async def get() -> str:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{self.url}/v1/messages/{message_id}", headers=self.world.case_headers()) as resp,
            ):
                assert resp.status == 200, await resp.text()
                return str((await resp.json())["status"])

        return self.bg.run(get())

    # --- the database --------------------------------------------------------------------------------

    def query(self, read: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``read(connection)`` against the installation's database."""
        from gateway.storage.database import Database

        async def run() -> T:
            db = Database(self.world.settings.resolved_database_url)
            try:
                async with db.read() as conn:
                    return await read(conn)
            finally:
                await db.dispose()

        return self.bg.run(run())

    # --- the partner simulators -----------------------------------------------------------------------

    def set_partner_mode(self, kind: str, mode: str) -> None:
        self.bg.run(self.lookup.partners.set_mode(kind, mode))

    # --- another api process ----------------------------------------------------------------------------

    @contextmanager
    def another_api(self, name: str, **env: str) -> Iterator[ConsoleProcesses]:
        """A second api process on the same installation with ``env`` on top (e.g. a broker URL at a
        closed port: an api that cannot reach the broker while everything else can)."""
        procs = ConsoleProcesses(
            self.world, self.procs.logs / name, extra_env={**self.procs.extra_env, **env}
        )
        procs.start("api")
        try:
            self.bg.run(procs.wait_api())
            yield procs
        finally:
            procs.stop_all()


def write_operators(path: Path, accounts: dict[str, tuple[str, str]]) -> None:
    """The console's accounts, written the way ``run.py operators add`` writes them (argon2 hashes)."""
    from gateway.ops import operators

    for username, (password, role) in accounts.items():
        operators.add(path, username, role, password)  # type: ignore[arg-type]


@contextmanager
def console_world(
    home: Path,
    retry_delays_seconds: list[float] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    banks: int | None = None,
    garbage_banks: Sequence[str] = (),
) -> Iterator[ConsoleWorld]:
    """Start everything; stop everything and delete the broker queues afterwards. Deliveries retry
    after ``retry_delays_seconds`` (default :data:`RETRY_DELAYS_SECONDS`). ``banks``: that many banks in
    all, as ``make demo BANKS=N`` configures them; ``garbage_banks`` (among them) answer garbage."""
    delays = retry_delays_seconds or RETRY_DELAYS_SECONDS
    with scratch_database(home) as database_url:
        bg = BackgroundLoop().start()
        case_system = WebhookCaseSystem()
        bg.run(case_system.start())
        garbage = {code: GarbagePartner() for code in garbage_banks}
        for partner in garbage.values():
            bg.run(partner.start())
        lookup: LookupWorld | None = None
        procs: ConsoleProcesses | None = None
        try:
            lookup = bg.run(
                make_lookup_world(
                    home,
                    database_url,
                    settings={
                        "delivery": {
                            "retry_delays_seconds": delays,
                            "max_attempts": max_attempts,
                        }
                    },
                    callback_delay=0.5,
                    banks=banks,
                    bank_endpoints={code: p.url for code, p in garbage.items()},
                )
            )
            world = lookup.world
            # The case system takes its documents over a webhook, so the tests can make it refuse them.
            case = world.case_system
            ClientStore(world.settings.clients_dir).add(
                case.id,
                public_pem(case.key.public_key()),
                ["messages.read", "messages.confirm", "assets.inquire", "documents.send"],
                deliver_to=case_system.url,
            )
            accounts = {name: (password, role) for name, password, role in (OPERATOR, AUDITOR)}
            operators_file = world.settings.path(world.settings.ops.operators_file)
            write_operators(operators_file, accounts)
            bg.run(upgrade(world.settings.resolved_database_url))
            extra_env = {
                "GATEWAY_DELIVERY__RETRY_DELAYS_SECONDS": str(delays),
                "GATEWAY_DELIVERY__MAX_ATTEMPTS": str(max_attempts),
                "GATEWAY_OPS__OPERATORS_FILE": str(operators_file),
            }
            procs = ConsoleProcesses(world, home / "logs", port=lookup.api_port, extra_env=extra_env)
            procs.start("api")
            procs.start("worker")
            bg.run(procs.wait_api())
            yield ConsoleWorld(bg, lookup, procs, case_system, operators_file, accounts, garbage)
        finally:
            try:
                if procs is not None:
                    procs.stop_all()
                if lookup is not None:
                    bg.run(lookup.partners.close())
                    bg.run(delete_lookup_topology(lookup))
                bg.run(case_system.close())
                for partner in garbage.values():
                    bg.run(partner.close())
            finally:
                bg.stop()


# --- driving the console ------------------------------------------------------------------------------


def shot_name(test: str, step: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{test}-{step}")
    return SCREENSHOTS / f"{safe}.png"


@dataclass
class Shots:
    """Screenshots of one test: ``test-artifacts/screenshots/<test>-<step>.png``, numbered in order."""

    page: Any  # playwright.sync_api.Page
    test: str
    taken: list[Path] = field(default_factory=list)

    def __call__(self, step: str) -> Path:
        path = shot_name(self.test, f"{len(self.taken) + 1:02d}-{step}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


def reload_until(page: Any, check: Callable[[], None], timeout: float = 20, what: str = "") -> None:
    """Run ``check`` (Playwright expectations with short timeouts) until it passes, reloading the page
    between tries: for pages that show state the gateway changes in the background."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError as exc:
            if time.monotonic() >= deadline:
                raise AssertionError(f"not within {timeout:g} s: {what}\n{exc}") from exc
        page.reload()


def wait_for(check: Callable[[], bool], timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.1)
