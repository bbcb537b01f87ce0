"""The real ``run.py api`` on a free loopback port, with an isolated configuration, the bundled partners
and reference data, and one registered client of each kind, for schemathesis to run against."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from tests.conftest import ROOT, Party, make_world
from tests.support.gateway_procs import free_port

#: Every kind of client, by the name the suite reports: its id and its grants. ``none`` is registered
#: and granted nothing (every operation must still answer it as documented: 403 or 404).
CLIENT_KINDS: dict[str, tuple[str, list[str]]] = {
    "court": ("TAND-HN", ["judgments.push", "messages.read"]),
    "case-system": ("THADS-HN", ["messages.read", "messages.confirm", "assets.inquire", "documents.send"]),
    "bank": ("BANK-TCB", ["assets.answer", "documents.send", "messages.read"]),
    "none": ("NO-GRANTS", []),
}


@dataclass(frozen=True)
class RunningApi:
    url: str
    tokens: dict[str, str]
    home: Path


@pytest.fixture(scope="module")
def running_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    home = tmp_path_factory.mktemp("contract")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A rate no generated run reaches (429 is documented, but would cut the run short), and a short
    # `Prefer: wait` cap so that a generated wait stays well inside the request timeout.
    api: dict[str, Any] = {
        "public_url": url,
        "port": port,
        "rate_limit": "100000/second",
        "max_wait_seconds": 2,
    }
    world = make_world(home, f"sqlite+aiosqlite:///{home}/gateway.db", api=api)
    for name in ("partners.toml", "legal_bases.toml", "holidays.toml", "documents.toml"):
        shutil.copy(ROOT / "config" / name, world.settings.config_dir / name)
    shutil.copytree(ROOT / "config" / "wsdl", world.settings.config_dir / "wsdl", dirs_exist_ok=True)
    store = ClientStore(world.settings.clients_dir)
    tokens: dict[str, str] = {}
    for kind, (client_id, grants) in CLIENT_KINDS.items():
        party = Party(client_id, generate_keypair("ed25519"))
        deliver_to = f"amqp:{world.case_queue}" if client_id == world.case_system.id else None
        store.add(client_id, public_pem(party.key.public_key()), grants, deliver_to=deliver_to)
        tokens[kind] = party.token(world.settings)
    env = {
        **os.environ,
        "GATEWAY_CONFIG_DIR": str(world.settings.config_dir),
        "GATEWAY_DATABASE_URL": world.settings.database_url,
        "GATEWAY_BROKER_NAMESPACE": world.settings.broker_namespace,
        "GATEWAY_API__PORT": str(port),
        "GATEWAY_API__PUBLIC_URL": url,
        "GATEWAY_API__RATE_LIMIT": api["rate_limit"],
        "GATEWAY_API__MAX_WAIT_SECONDS": str(api["max_wait_seconds"]),
        "GATEWAY_LOG_LEVEL": "WARNING",
        # A development convenience: the generated requests reuse one token per client kind, so tokens
        # are not single-use here (tests/test_single_use_tokens.py covers single use).
        "GATEWAY_AUTH__SINGLE_USE_TOKENS": "false",
        # No broker: the api needs one only to subscribe to status events, and generated runs must not
        # declare queues on the shared broker; those operations answer their documented 503.
        "GATEWAY_BROKER_URL": "amqp://guest:guest@127.0.0.1:9/",
    }
    log = home / "api.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "api"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        _wait_healthy(url, proc, log)
        yield RunningApi(url, tokens, home)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text("utf-8")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the api did not start: {log.read_text('utf-8')}")
