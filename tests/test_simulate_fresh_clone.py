"""``python run.py simulate`` on a fresh clone: the simulators' key pairs are made when missing, the
gateway is told about them (or the log says how), and the simulators keep running."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import tomli_w
from aiohttp.test_utils import TestClient, TestServer

from gateway.amqp.names import Names
from gateway.demo import DEMO_CLIENTS, PARTNER_CLIENTS, inbox_urls
from gateway.partners import load_partners
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, load_private_key, public_pem
from gateway.settings import Settings
from gateway.simulators.main import prepare_keys
from gateway.web.app import create_app
from gateway.worker.main import Worker
from tests.conftest import ROOT, make_world
from tests.support import orders
from tests.support.databases import scratch_database
from tests.support.gateway_procs import delete_topology, free_port
from tests.support.lookup_world import PARTNER_CODES

CASE_QUEUE = "simulate-test.inbox"


def fresh_settings(home: Path) -> Settings:
    config = home / "config"
    config.mkdir(parents=True)
    shutil.copy(ROOT / "config" / "gateway.toml", config / "gateway.toml")
    return Settings(config_dir=config)


def registered_key(store: ClientStore, client_id: str) -> bytes:
    client = store.get(client_id)
    assert client is not None and not client.revoked
    (key,) = client.keys
    return public_pem(key)


def own_key(keys: Path, client_id: str) -> bytes:
    return public_pem(load_private_key((keys / f"{client_id}.key").read_bytes()).public_key())


def test_missing_keys_are_generated_and_registered_with_a_clear_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fresh_settings(tmp_path)
    keys = tmp_path / "keys"
    caplog.set_level(logging.WARNING, logger="gateway.simulators.main")

    prepare_keys(settings, keys, CASE_QUEUE)

    store = ClientStore(settings.clients_dir, recheck_seconds=0)
    for client_id, demo in DEMO_CLIENTS.items():
        assert (keys / f"{client_id}.key").exists()
        assert registered_key(store, client_id) == own_key(keys, client_id)
        client = store.get(client_id)
        assert client is not None and client.grants == frozenset(demo.grants)
    case_system = store.get("THADS-HN")
    assert case_system is not None and str(case_system.deliver_to) == f"amqp:{CASE_QUEUE}"
    text = caplog.text
    assert "generated simulator key pairs" in text and str(keys) in text
    assert "must know its public key" in text and "python run.py clients add --id TAND-HN" in text

    # A second start finds everything in place and says nothing.
    caplog.clear()
    prepare_keys(settings, keys, CASE_QUEUE)
    assert caplog.records == []


def test_an_operator_registered_client_is_left_alone_and_the_log_says_what_to_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = fresh_settings(tmp_path)
    store = ClientStore(settings.clients_dir, recheck_seconds=0)
    operator_key = public_pem(generate_keypair().public_key())
    store.add("TAND-HN", operator_key, ["messages.read"])
    caplog.set_level(logging.WARNING, logger="gateway.simulators.main")

    prepare_keys(settings, tmp_path / "keys", CASE_QUEUE)

    assert registered_key(store, "TAND-HN") == operator_key
    client = store.get("TAND-HN")
    assert client is not None and client.grants == frozenset({"messages.read"})
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("client TAND-HN")]
    assert "401" in line and "python run.py clients add --id TAND-HN" in line


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes]) -> bytes:
    """SIGTERM, then SIGKILL if it has not ended within 15 s; what it printed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return output


def test_full_simulate_starts_on_a_fresh_home_and_keeps_running(tmp_path: Path) -> None:
    settings = fresh_settings(tmp_path)
    shutil.copy(ROOT / "config" / "partners.toml", settings.config_dir / "partners.toml")
    # Own ports for every partner kind and an api nobody answers on: no clash with anything running.
    ports: dict[str, int] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    for partner in load_partners(ROOT / "config"):
        if partner.pulls:
            continue  # never called: it fetches its work
        port = ports.setdefault(partner.kind, free_port())
        url = urlsplit(partner.endpoint)
        endpoint = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))
        env[f"GATEWAY_PARTNER_{partner.code.replace('-', '_')}__ENDPOINT"] = endpoint
    court_port, procuracy_port = free_port(), free_port()
    env |= {
        "GATEWAY_CONFIG_DIR": str(settings.config_dir),
        "GATEWAY_API__PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_DEMO_CASE_QUEUE": f"simulate-test-{uuid.uuid4().hex[:10]}",
        # The court's and procuracy's webhooks: not the shipped 9111/9112 a running demo holds.
        "GATEWAY_SIMULATE__COURT_PORT": str(court_port),
        "GATEWAY_SIMULATE__PROCURACY_PORT": str(procuracy_port),
        "GATEWAY_SIMULATE__TRUST_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "simulate", "--court-interval", "60"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Up once the court's webhook listens (keys made and registered before); then still running.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and not _listening(court_port):
            time.sleep(0.2)
        time.sleep(1)
        still_running = proc.poll() is None
    finally:
        output = _stop(proc)
    log = output.decode("utf-8", "replace")
    assert still_running, log
    assert "No such file" not in log, log
    assert (tmp_path / "var" / "keys" / "TAND-HN.key").exists(), log
    assert "generated simulator key pairs" in log
    # The court signs its judgments with the test PKI, made in the fresh clone's var/pki.
    assert (tmp_path / "var" / "pki" / "tand-hn.key.pem").exists(), log
    # The court and the procuracy took their webhooks on the configured ports, and are registered there.
    store = ClientStore(settings.clients_dir, recheck_seconds=0)
    for client_id, port in (("TAND-HN", court_port), ("VKS-HN", procuracy_port)):
        client = store.get(client_id)
        assert client is not None and str(client.deliver_to) == f"http://127.0.0.1:{port}/inbox", client
    assert f"('127.0.0.1', {court_port})" not in log  # no bind error


def test_the_simulated_inboxes_listen_on_the_configured_ports(tmp_path: Path) -> None:
    settings = fresh_settings(tmp_path)
    assert (settings.simulate.court_port, settings.simulate.procuracy_port) == (9111, 9112)
    os.environ["GATEWAY_SIMULATE__COURT_PORT"] = "19111"
    try:
        moved = Settings(config_dir=settings.config_dir)
    finally:
        del os.environ["GATEWAY_SIMULATE__COURT_PORT"]
    assert inbox_urls(moved) == {
        "court_inbox": "http://127.0.0.1:19111/inbox",
        "procuracy_inbox": "http://127.0.0.1:9112/inbox",
    }


def _partners_toml(config: Path, ports: dict[str, int]) -> dict[str, str]:
    """The shipped partners.toml with every simulator on a port of its own; returns the root URL per
    kind."""
    shipped = tomllib.loads((ROOT / "config" / "partners.toml").read_text("utf-8"))
    for block in shipped["partner"]:
        if block.get("delivery") == "pull":
            continue  # never called: it fetches its work
        url = urlsplit(block["endpoint"])
        port = ports.setdefault(block["kind"], free_port())
        block["endpoint"] = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))
        os.environ[block["credentials"]] = "simulator-token"  # the simulators take any token
    (config / "partners.toml").write_text(tomli_w.dumps(shipped), "utf-8")
    for name in ("legal_bases.toml", "holidays.toml"):
        shutil.copy(ROOT / "config" / name, config / name)
    shutil.copytree(ROOT / "config" / "wsdl", config / "wsdl")
    return {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}


async def _until_listening(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            assert proc.poll() is None, "run.py simulate --partners-only exited"
            try:
                async with http.get(url + "/_sim/mode") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert asyncio.get_running_loop().time() < deadline, f"nothing listens on {url}"
            await asyncio.sleep(0.2)


@pytest.mark.rabbitmq
async def test_partners_only_registers_the_partners_that_call_back_and_a_late_bank_report_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run.py simulate --partners-only`` beside a gateway on the same configuration directory: the
    asynchronous bank (BANK-TCB), the police unit (CA-HN) and VNeID get their key pairs and client
    registrations, so BANK-TCB's report, pushed later, is accepted (it was refused with 401)."""
    with scratch_database(tmp_path) as database_url:
        api_port = free_port()
        world = make_world(
            tmp_path, database_url, api={"public_url": f"http://127.0.0.1:{api_port}", "port": api_port}
        )
        case = world.case_system
        store = ClientStore(world.settings.clients_dir, recheck_seconds=0)
        store.add(
            case.id,
            public_pem(case.key.public_key()),
            ["messages.read", "messages.confirm", "documents.send"],
            deliver_to=f"amqp:{world.case_queue}",
        )
        roots = _partners_toml(world.settings.config_dir, {})
        for name in list(os.environ):
            if name.startswith("GATEWAY_") and not name.startswith("GATEWAY_SECRET_"):
                monkeypatch.delenv(name)
        env = {
            **os.environ,
            "GATEWAY_CONFIG_DIR": str(world.settings.config_dir),
            "GATEWAY_API__PUBLIC_URL": world.settings.api.public_url,
            "GATEWAY_DEMO_KEYS": str(tmp_path / "sim-keys"),
        }
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "simulate", "--partners-only"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        api: TestClient[Any, Any] | None = None
        try:
            api = TestClient(TestServer(create_app(world.settings), port=api_port))
            await _until_listening(roots["bank"], proc)
            for client_id in PARTNER_CLIENTS:
                assert registered_key(store, client_id) == own_key(tmp_path / "sim-keys", client_id)
            assert store.get("VKS-HN") is None  # no court, procuracy or case system with --partners-only
            await api.start_server()
            worker = asyncio.create_task(Worker(world.settings).run(stop))
            order = orders.blocking("BANK-TCB", 10_000_000)
            resp = await api.post("/v1/documents", json=order, headers=world.case_headers())
            assert resp.status == 202, await resp.text()
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                resp = await api.get(f"/v1/messages/{order['message_id']}", headers=world.case_headers())
                current = await resp.json()
                if current["status"] == "answered":
                    break
                assert asyncio.get_running_loop().time() < deadline, current
                await asyncio.sleep(0.2)
            assert current["replies"][0]["sender"] == "BANK-TCB"
        finally:
            stop.set()
            if worker is not None:
                await asyncio.wait_for(worker, 30)
            if api is not None:
                await api.close()
            output = _stop(proc)
            names = Names(world.settings.broker_namespace)
            # The shipped configuration's partners, the pull bank's work queue included.
            await delete_topology(world, names.partner_queues([*PARTNER_CODES, "BANK-VPB"]))
        # A refusal as a status of its own, not the digits inside a port number (":24013").
        assert not re.search(rb"\b401\b", output), output.decode("utf-8", "replace")[-3000:]


def test_simulate_on_ports_taken_says_so_in_one_line(tmp_path: Path) -> None:
    """What ``python run.py simulate --down land`` met while the demo ran: a traceback. Now one line,
    and how to fault a partner of the running demo instead."""
    settings = fresh_settings(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        roots = _partners_toml(settings.config_dir, {"land": port})
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env |= {"GATEWAY_CONFIG_DIR": str(settings.config_dir), "GATEWAY_DEMO_KEYS": str(tmp_path / "keys")}
        done = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "simulate", "--partners-only", "--down", "tax"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert roots["land"] == f"http://127.0.0.1:{port}"
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert f"'127.0.0.1', {port}" in line and "address already in use" in line
    assert "/_sim/mode" in line
