"""The operator command line: ``run.py status`` tables, ``run.py parking list|show|replay|discard``
with filters and audited reasons, ``run.py operators add`` (argon2 hash, password from stdin)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.cli import main
from gateway.ops import operators
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.storage.tables import audit_log, messages
from tests.conftest import ROOT, World, fresh_judgment
from tests.support.console import depth_of, park, queue_ids, recipient_parking


@pytest.fixture
def installation(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """``run.py`` reads its settings from the environment: point it at the test installation."""
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", world.settings.database_url)
    monkeypatch.setenv("GATEWAY_BROKER_NAMESPACE", world.settings.broker_namespace)
    return world


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    return code, capsys.readouterr().out


async def test_operators_add_reads_the_password_from_stdin(
    installation: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    code, out = await run(
        capsys, "operators", "add", "--username", "olga", "--role", "operator", "--password-stdin"
    )
    assert code == 0 and "operator olga (operator)" in out
    path = installation.settings.path(installation.settings.ops.operators_file)
    accounts = operators.load(path)
    assert operators.authenticate(accounts, "olga", "a long enough secret") is not None
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _ = await run(
        capsys, "operators", "add", "--username", "ann", "--role", "auditor", "--password-stdin"
    )
    assert code == 2 and "ann" not in operators.load(path)
    code, out = await run(capsys, "operators", "list")
    assert out.split() == ["olga", "operator"]


@pytest.mark.rabbitmq
async def test_status_and_parking_commands(
    installation: World, api: TestClient[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = []
    for _ in range(3):
        doc = fresh_judgment()
        assert (await api.post("/v1/judgments", json=doc, headers=installation.court_headers())).status == 202
        docs.append(doc)
    a, b, c = (d["message_id"] for d in docs)
    async with recipient_parking(installation.settings) as (queue, parking):
        for doc, why in zip(docs, ["rejected", "rejected", "delivery_limit"], strict=True):
            await park(parking, doc, why)

        code, out = await run(capsys, "status")
        assert code == 0, out
        assert "Queues (AMQP)" in out or "Queues (AMQP + management API)" in out
        [line] = [ln for ln in out.splitlines() if ln.startswith(queue + " ")]
        assert line.split()[-1] == "3"  # parked
        assert "Outbox: 3 waiting for the broker" in out
        assert "Overdue: 0" in out and "Partners" in out

        code, out = await run(capsys, "parking", "list")
        rows = {ln.split()[0]: ln.split()[-1] for ln in out.splitlines() if ln.strip()}
        assert rows[parking] == "3"

        code, out = await run(
            capsys, "parking", "show", "--queue", queue, "--parked-reason", "delivery_limit"
        )
        assert code == 0 and c in out and a not in out and "1 shown of 3 parked" in out
        code, out = await run(capsys, "parking", "show", "--queue", queue, "--message-id", a, "--body")
        assert (
            code == 0 and "judgment.delivery" in out and "001*******45" in out and "001185012345" not in out
        )

        code, out = await run(
            capsys,
            "parking",
            "discard",
            "--queue",
            queue,
            "--message-id",
            b,
            "--reason",
            "sent twice",
            "--actor",
            "bob",
        )
        assert code == 0 and f"discarded 1 message(s) from {parking}" in out
        code, out = await run(capsys, "parking", "discard", "--queue", queue, "--reason", "everything?")
        assert code == 2  # discarding needs ids or --all
        code, out = await run(
            capsys, "parking", "replay", "--queue", queue, "--type", "judgment.delivery", "--reason", "fixed"
        )
        assert code == 0 and f"moved 2 message(s) from {parking} back to {queue}" in out
        assert sorted(await queue_ids(queue)) == sorted([a, c])
        assert await depth_of(parking) == 0

    db = Database(installation.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            audited = list(
                await conn.execute(
                    select(audit_log.c.actor, audit_log.c.action, audit_log.c.message_id, audit_log.c.reason)
                    .where(audit_log.c.action.like("ops.parking.%"))
                    .order_by(audit_log.c.id)
                )
            )
            status = (
                await conn.execute(select(messages.c.status).where(messages.c.message_id == b))
            ).scalar()
    finally:
        await db.dispose()
    assert audited[0] == ("bob", "ops.parking.discard", b, "sent twice")
    assert sorted((r.action, r.message_id, r.reason) for r in audited[1:]) == sorted(
        [("ops.parking.replay", a, "fixed"), ("ops.parking.replay", c, "fixed")]
    )
    assert status == "failed"


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["parking", "list"],
        ["parking", "show", "--queue", "gw.deliver.THADS-HN"],
        ["parking", "replay", "--queue", "gw.deliver.THADS-HN", "--reason", "fixed"],
    ],
)
async def test_a_broker_that_accepts_and_never_answers_ends_the_command(
    installation: World, command: list[str]
) -> None:
    """A loopback listener takes the TCP connection and says nothing (no AMQP handshake): the command
    gives up after ops.broker_timeout_seconds, says so and exits non-zero. The robust connection it
    used before kept reconnecting, and the command never ended."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # kept open, never written to

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await upgrade(installation.settings.resolved_database_url)
    env = {
        **os.environ,
        "GATEWAY_CONFIG_DIR": str(installation.settings.config_dir),
        "GATEWAY_DATABASE_URL": installation.settings.database_url,
        "GATEWAY_BROKER_NAMESPACE": installation.settings.broker_namespace,
        "GATEWAY_BROKER_URL": f"amqp://guest:not-shown@127.0.0.1:{port}/",
        "GATEWAY_OPS__MANAGEMENT_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_OPS__BROKER_TIMEOUT_SECONDS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run.py"),
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # A bound for a hang, far above the setting: not a measure of how fast it gives up.
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"run.py {' '.join(command)} still running after 90 s against a silent broker")
    finally:
        server.close()
        for writer in held:
            writer.close()
    errors = err.decode()
    assert proc.returncode not in (0, None), (out.decode(), errors)
    assert f"127.0.0.1:{port}/ did not answer within 1 s (ops.broker_timeout_seconds)" in errors, errors
    assert "not-shown" not in errors and "Traceback" not in errors
    assert held, "the command never reached the listener"


async def test_status_says_the_brokers_health_is_unknown_without_the_management_api(
    installation: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_OPS__MANAGEMENT_URL", "http://127.0.0.1:9")  # refuses
    await upgrade(installation.settings.resolved_database_url)
    code, out = await run(capsys, "status")
    assert code == 0, out
    assert "Broker health: unknown (the management API does not answer" in out
    assert "WARNING" not in out
    code, out = await run(capsys, "status", "--json")
    assert code == 0 and '"readings": "unknown"' in out
