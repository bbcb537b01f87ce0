"""Shared fixtures: an isolated configuration directory, clients with real keys, the API app, and
databases: a SQLite file per test, or a fresh PostgreSQL database per test when GATEWAY_DATABASE_URL
names PostgreSQL (``make test-pg``; see tests/support/databases.py); storage tests marked ``postgres``
run on both."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.security.clients import ClientStore
from gateway.security.keys import PrivateKey, generate_keypair, public_pem
from gateway.security.tokens import issue_token
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.web.app import create_app
from tests.support import databases

# The variable selects the suite's backend; no test or process it starts may fall back on it.
databases.take_configured_url()

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "gateway" / "schemas" / "examples"
COURT = "TAND-HN"
CASE_SYSTEM = "THADS-HN"


@dataclass
class Party:
    id: str
    key: PrivateKey

    def token(self, settings: Settings, **kw: Any) -> str:
        return issue_token(self.id, self.key, settings.auth.audience, **kw)

    def headers(self, settings: Settings, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(settings, **kw)}"}


@dataclass
class World:
    settings: Settings
    court: Party
    case_system: Party
    case_queue: str

    def court_headers(self, **kw: Any) -> dict[str, str]:
        return self.court.headers(self.settings, **kw)

    def case_headers(self, **kw: Any) -> dict[str, str]:
        return self.case_system.headers(self.settings, **kw)


def example(message_type: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EXAMPLES / message_type / name).read_text("utf-8"))
    return doc


def fresh_judgment(name: str = "valid-civil-judgment-two-persons.json") -> dict[str, Any]:
    """A valid example with a new message_id and judgment number, so tests never collide."""
    doc = example("judgment.delivery", name)
    doc["message_id"] = str(uuid.uuid4())
    doc["body"]["judgment"]["number"] = f"123/2026/DS-{uuid.uuid4().hex[:16].upper()}"
    return doc


_create_pg_database = databases.create_pg_database
_drop_pg_database = databases.drop_pg_database

#: Storage tests run on both backends; on a PostgreSQL session only on PostgreSQL (the SQLite session
#: covers SQLite).
BACKENDS = ["postgres"] if databases.configured_backend() == "postgres" else ["sqlite", "postgres"]


@pytest.fixture(
    params=[pytest.param(b, marks=pytest.mark.postgres) if b == "postgres" else b for b in BACKENDS]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on both backends."""
    with databases.scratch_database(tmp_path, backend=request.param) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database, on each backend."""
    await upgrade(database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """The test's empty database: a SQLite file, or a PostgreSQL database on a PostgreSQL session."""
    with databases.scratch_database(tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file whatever the session's backend, for tests about SQLite itself."""
    return f"sqlite+aiosqlite:///{tmp_path}/gateway.db"


def make_world(home: Path, database_url: str, deliver_to: str | None = None, **overrides: Any) -> World:
    """A complete, isolated installation: config dir, signing key, a court and a case system."""
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config" / "gateway.toml", config / "gateway.toml")
    shutil.copy(ROOT / "config" / "legal_bases.toml", config / "legal_bases.toml")  # documents cite them
    namespace = fresh_namespace()
    overrides.setdefault("worker", {"metrics_port": 0})  # several workers run at once in tests
    # Tests' receivers are loopback listeners over http; the processes a test starts read the file.
    overrides.setdefault("outbound", {"allow_http_loopback": True})
    toml = config / "gateway.toml"
    allow = str(overrides["outbound"].get("allow_http_loopback", False)).lower()
    toml.write_text(
        toml.read_text("utf-8").replace("allow_http_loopback = false", f"allow_http_loopback = {allow}"),
        "utf-8",
    )
    settings = Settings(
        config_dir=config,
        database_url=database_url,
        broker_namespace=namespace,
        **overrides,
    )
    store = ClientStore(settings.clients_dir)
    court_key, case_key = generate_keypair("ed25519"), generate_keypair("p256")
    store.add(COURT, public_pem(court_key.public_key()), ["judgments.push", "messages.read"])
    case_queue = f"{namespace}.case-system.inbox"
    store.add(
        CASE_SYSTEM,
        public_pem(case_key.public_key()),
        ["messages.read", "messages.confirm"],
        deliver_to=deliver_to or f"amqp:{case_queue}",
    )
    return World(settings, Party(COURT, court_key), Party(CASE_SYSTEM, case_key), case_queue)


@pytest.fixture
def world(tmp_path: Path, fresh_database_url: str) -> World:
    return make_world(tmp_path, fresh_database_url)


@pytest.fixture
async def api(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    return client


def pytest_sessionstart(session: pytest.Session) -> None:
    """A session asked to run on PostgreSQL stops at once when the server does not answer."""
    if databases.configured_backend() == "postgres":
        reason = databases.unreachable_reason()
        if reason is not None:
            pytest.exit(
                f"GATEWAY_DATABASE_URL names PostgreSQL, but: {reason}. Start the server "
                "(make services) or unset the variable to run on SQLite.",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if databases.UNREACHABLE in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.write_sep("!", "PostgreSQL", red=True, bold=True)
        terminalreporter.write_line(
            f"{databases.UNREACHABLE} at {databases.server_description()}: {len(skipped)} test(s) "
            "skipped. Start it (make services) to run them.",
            red=True,
            bold=True,
        )
    elif databases.configured_backend() == "postgres":
        terminalreporter.write_line(f"Database backend: PostgreSQL at {databases.server_description()}")


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"


LEAKED_NAMESPACE = re.compile(r"^t([a-p]{8})[a-p]{6}\.")
# Hex written in the letters a-p: a namespace is never a digit run, which the audit's ID scrubbing would
# mask in a queue name (``t6b1698480369da`` holds ten digits in a row).
_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
_FROM_LETTERS = str.maketrans("abcdefghijklmnop", "0123456789abcdef")
#: A namespace younger than this may belong to a test session running beside this one: keep it.
LEAK_AGE_SECONDS = 3600


def fresh_namespace() -> str:
    """``t`` + creation time (8 hex digits of Unix seconds) + 6 random hex digits, all written in the
    letters a-p: old ones can be told from ones another session is still using."""
    return f"t{int(time.time()):08x}{uuid.uuid4().hex[:6]}".translate(_TO_LETTERS)


def is_leaked(name: str, now: float) -> bool:
    match = LEAKED_NAMESPACE.match(name)
    return match is not None and now - int(match.group(1).translate(_FROM_LETTERS), 16) > LEAK_AGE_SECONDS


@pytest.fixture(scope="session", autouse=True)
def purge_leaked_test_queues() -> None:
    """Delete idle queues left by earlier interrupted test runs (random ``t<hex>.`` namespaces): every
    leaked quorum queue is a Raft log the broker keeps recovering, and hundreds of them slow it down."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return
    try:
        listing = subprocess.run(
            [ctl, "list_queues", "name", "consumers", "--quiet", "--no-table-headers"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return
    leaked = [
        name
        for name, consumers in (line.split("\t") for line in listing.splitlines() if "\t" in line)
        if is_leaked(name, time.time()) and consumers.strip() == "0"
    ]
    if leaked:
        asyncio.run(_delete_queues(leaked))


async def _delete_queues(names: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
