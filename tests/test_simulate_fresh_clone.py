"""``python run.py simulate`` on a fresh clone: the simulators' key pairs are made when missing, the
gateway is told about them (or the log says how), and the simulators keep running."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from gateway.demo import DEMO_CLIENTS
from gateway.partners import load_partners
from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, load_private_key, public_pem
from gateway.settings import Settings
from gateway.simulators.main import prepare_keys
from tests.conftest import ROOT
from tests.support.gateway_procs import free_port

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


def test_full_simulate_starts_on_a_fresh_home_and_keeps_running(tmp_path: Path) -> None:
    settings = fresh_settings(tmp_path)
    shutil.copy(ROOT / "config" / "partners.toml", settings.config_dir / "partners.toml")
    # Own ports for every partner kind and an api nobody answers on: no clash with anything running.
    ports: dict[str, int] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    for partner in load_partners(ROOT / "config"):
        port = ports.setdefault(partner.kind, free_port())
        url = urlsplit(partner.endpoint)
        endpoint = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))
        env[f"GATEWAY_PARTNER_{partner.code.replace('-', '_')}__ENDPOINT"] = endpoint
    env |= {
        "GATEWAY_CONFIG_DIR": str(settings.config_dir),
        "GATEWAY_API__PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_DEMO_CASE_QUEUE": f"simulate-test-{uuid.uuid4().hex[:10]}",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "simulate", "--court-interval", "60"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3)
        still_running = proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    log = output.decode("utf-8", "replace")
    assert still_running, log
    assert "No such file" not in log
    assert (tmp_path / "var" / "keys" / "TAND-HN.key").exists()
    assert "generated simulator key pairs" in log
