"""`run.py evidence export` writes one self-contained bundle for a message; `evidence verify` checks it
offline and names every part that was tampered with."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.cli import main
from gateway.evidence import verify_bundle
from gateway.security.keys import public_jwk
from gateway.security.signing import keys_by_id
from gateway.web.app import create_app
from tests.conftest import World, fresh_judgment


async def push_and_read(world: World) -> str:
    doc = fresh_judgment()
    async with TestClient(TestServer(create_app(world.settings))) as api:
        pushed = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
        assert pushed.status == 202
        got = await api.get(
            f"/v1/messages/{doc['message_id']}", headers=world.case_headers(subject="officer-7")
        )
        assert got.status == 200
    return str(doc["message_id"])


@pytest.fixture
def exported(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, Path]:
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", world.settings.database_url)
    message_id = asyncio.run(push_and_read(world))
    out = tmp_path / "bundle.json"
    assert main(["evidence", "export", message_id, "--out", str(out), "--actor", "auditor-1"]) == 0
    return message_id, out


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text("utf-8")))


def save(path: Path, bundle: dict[str, Any]) -> None:
    path.write_text(json.dumps(bundle), "utf-8")


def verify_cli(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["evidence", "verify", str(path), *extra])
    return code, capsys.readouterr().out


def test_an_exported_bundle_verifies(exported: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    message_id, path = exported
    bundle = load(path)
    assert bundle["message_id"] == message_id
    assert bundle["document"]["message_id"] == message_id
    assert bundle["receipt"]["message_id"] == message_id
    assert [e["event"] for e in bundle["timeline"]] == ["accepted"]
    actions = [r["action"] for r in bundle["audit"]["records"] if r["id"] in bundle["audit"]["concerned"]]
    assert actions == ["judgments.push", "messages.read", "evidence.export"], "the export audits itself"
    records = bundle["audit"]["records"]
    assert bundle["audit"]["checkpoint"]["audit_id"] == records[-1]["id"]

    code, out = verify_cli(path, capsys)
    assert code == 0, out
    assert f"evidence holds for {message_id}" in out
    for part in ("receipt", "document", "audit", "checkpoint", "public key"):
        assert f"ok   {part}:" in out


def tamper_document(b: dict[str, Any]) -> None:
    b["document"]["body"]["judgment"]["number"] = "999/2026/DS-ST"


def tamper_receipt(b: dict[str, Any]) -> None:
    b["receipt"]["received_at"] = "2020-01-01T00:00:00Z"


def tamper_audit_record(b: dict[str, Any]) -> None:
    b["audit"]["records"][0]["actor"] = "SOMEONE-ELSE"


def tamper_checkpoint(b: dict[str, Any]) -> None:
    b["audit"]["checkpoint"]["at"] = "2020-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (tamper_document, "FAIL document:"),
        (tamper_receipt, "FAIL receipt:"),
        (tamper_audit_record, "FAIL audit record "),
        (tamper_checkpoint, "FAIL checkpoint:"),
    ],
)
def test_tampering_with_any_part_is_named(
    exported: tuple[str, Path], capsys: pytest.CaptureFixture[str], tamper: Any, named: str
) -> None:
    _, path = exported
    bundle = load(path)
    tamper(bundle)
    save(path, bundle)
    code, out = verify_cli(path, capsys)
    assert code == 1
    assert named in out and "evidence does not hold:" in out
    assert sum(line.startswith("FAIL") for line in out.splitlines()) == 1, out


def test_a_dropped_payload_is_evidenced_by_its_hash(exported: tuple[str, Path]) -> None:
    _, path = exported
    bundle = load(path)
    bundle["document"] = None
    checks = {c.part: c for c in verify_bundle(bundle)}
    assert checks["document"].ok and "not retained" in checks["document"].detail
    bundle["document_sha256"] = "0" * 64
    assert not {c.part: c for c in verify_bundle(bundle)}["document"].ok


def test_a_bundle_signed_by_another_key_fails_against_the_pinned_keys(
    exported: tuple[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, path = exported
    stranger = tmp_path / "stranger.json"
    stranger.write_text(json.dumps({"keys": [public_jwk(ed25519.Ed25519PrivateKey.generate().public_key())]}))
    code, out = verify_cli(path, capsys, "--jwks", str(stranger))
    assert code == 1 and "FAIL public key:" in out

    gateway_keys = tmp_path / "gateway.json"
    gateway_keys.write_text(json.dumps(load(path)["keys"]))
    assert keys_by_id(load(path)["keys"])
    code, out = verify_cli(path, capsys, "--jwks", str(gateway_keys))
    assert code == 0, out


def test_an_unknown_message_has_no_bundle(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", world.settings.database_url)
    asyncio.run(push_and_read(world))
    missing = "00000000-0000-4000-8000-000000000009"
    assert main(["evidence", "export", missing, "--out", str(tmp_path / "x.json")]) == 1
    assert not (tmp_path / "x.json").exists()
