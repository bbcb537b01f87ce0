"""The signature check at intake: an installation whose config dir has signatures.toml and a trust anchor
verifies a judgment's PDF before storing it, refuses what the policy refuses (422, nothing stored), and keeps
the report of what it let in beside the message. The trust services (CA, OCSP, CRL, TSA) run on loopback in
their own thread, made once for the module."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from gateway.cli import main
from gateway.services import signature_intake
from gateway.signatures import verify
from gateway.simulators.trust import TrustServices, sign_pdf, start_trust_services
from gateway.soap import body_payload
from gateway.web.app import create_app
from tests.conftest import ROOT, World, fresh_judgment, make_world
from tests.support.loop_thread import LoopThread
from tests.test_push_judgment import counts
from tests.test_signature_verification import pdf
from tests.test_soap_endpoint import C, fault, fresh_request, headers


class Pki:
    def __init__(self, services: TrustServices, docs: dict[str, bytes]) -> None:
        self.services = services
        self.docs = docs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    background = LoopThread()
    run = background.run
    services: TrustServices = run(start_trust_services(tmp_path_factory.mktemp("trust-keys")))
    plain = pdf()
    signed = run(sign_pdf(plain, services, "tand-hn"))
    docs = {
        "plain": plain,
        "valid": signed,
        "other_court": run(sign_pdf(plain, services, "tand-hcm")),
        "tampered": signed.replace(b"Ban an so 12", b"Ban an so 99"),
    }
    try:
        yield Pki(services, docs)
    finally:
        run(services.close())
        background.close()


def signing_world(home: Path, database_url: str, pki: Pki, on_missing: str = "refuse") -> World:
    world = make_world(home, database_url)
    config = world.settings.config_dir
    policy = (ROOT / "config" / "signatures.toml").read_text("utf-8")
    assert 'on_missing = "refuse"' in policy
    (config / "signatures.toml").write_text(
        policy.replace('on_missing = "refuse"', f'on_missing = "{on_missing}"'), "utf-8"
    )
    pki.services.write_anchor(config / "trust")
    return world


@pytest.fixture
def world(tmp_path: Path, fresh_database_url: str, pki: Pki) -> World:
    return signing_world(tmp_path, fresh_database_url, pki)


@pytest.fixture
async def api(world: World, aiohttp_client: Callable[..., Any]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    return client


def judgment(pdf_bytes: bytes) -> dict[str, Any]:
    doc = fresh_judgment()
    doc["body"]["document"] = {
        "media_type": "application/pdf",
        "filename": "ban-an.pdf",
        "content_base64": base64.b64encode(pdf_bytes).decode("ascii"),
    }
    return doc


async def refused(api: TestClient[Any, Any], world: World, doc: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    errors: list[dict[str, Any]] = problem["errors"]
    assert errors and all(e["path"] == "$.body.document.content_base64" for e in errors), problem
    read = await api.get(f"/v1/messages/{doc['message_id']}", headers=world.court_headers())
    assert read.status == 404  # nothing of a refused document is stored
    assert (await counts(world))["messages"] == 0
    return errors


async def test_validly_signed_judgment_is_accepted_with_its_report(
    api: TestClient[Any, Any], world: World, pki: Pki, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    doc = judgment(pki.docs["valid"])
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    view = await (await api.get(f"/v1/messages/{doc['message_id']}", headers=world.court_headers())).json()
    signature = view["signature"]
    assert signature["outcome"] == "valid" and signature["decision"] == "accepted"
    assert signature["signer"]["organization"] == "TAND-HN"
    assert signature["signing_time"] and signature["checked_at"] and signature["reasons"] == []
    assert signature["report"]["report_version"] == 1
    (event,) = [e for e in view["timeline"] if e["event"] == "signature_checked"]
    assert event["detail"]["report"]["outcome"] == "valid"

    # The evidence bundle carries the report with the timeline.
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", world.settings.database_url)
    out = tmp_path / "bundle.json"
    command = ["evidence", "export", doc["message_id"], "--out", str(out), "--actor", "auditor-1"]
    assert await asyncio.to_thread(main, command) == 0
    bundle = json.loads(out.read_text("utf-8"))
    events = [e for e in bundle["timeline"] if e["event"] == "signature_checked"]
    assert events and events[0]["detail"]["report"]["signer"]["organization"] == "TAND-HN"


async def test_resend_is_answered_without_verifying_again(
    api: TestClient[Any, Any], world: World, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = judgment(pki.docs["valid"])
    first = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert first.status == 202

    async def must_not_verify(*_: Any, **__: Any) -> Any:
        raise AssertionError("a resend was verified again")

    monkeypatch.setattr(verify, "verify_pdf", must_not_verify)  # imported by the check when it runs
    again = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert again.status == 200
    assert await again.json() == await first.json()
    view = await (await api.get(f"/v1/messages/{doc['message_id']}", headers=world.court_headers())).json()
    assert [e["event"] for e in view["timeline"]].count("signature_checked") == 1


async def test_unsigned_judgment_is_refused(api: TestClient[Any, Any], world: World, pki: Pki) -> None:
    errors = await refused(api, world, judgment(pki.docs["plain"]))
    assert any("no signature" in e["message"] for e in errors), errors


async def test_judgment_signed_by_another_court_is_refused(
    api: TestClient[Any, Any], world: World, pki: Pki
) -> None:
    errors = await refused(api, world, judgment(pki.docs["other_court"]))
    assert any("signer" in e["message"] for e in errors), errors


async def test_tampered_judgment_is_refused(api: TestClient[Any, Any], world: World, pki: Pki) -> None:
    errors = await refused(api, world, judgment(pki.docs["tampered"]))
    assert errors


async def test_flag_policy_accepts_an_unsigned_judgment_flagged(
    tmp_path: Path, fresh_database_url: str, pki: Pki, aiohttp_client: Callable[..., Any]
) -> None:
    world = signing_world(tmp_path, fresh_database_url, pki, on_missing="flag")
    api: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    doc = judgment(pki.docs["plain"])
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    view = await (await api.get(f"/v1/messages/{doc['message_id']}", headers=world.court_headers())).json()
    assert view["signature"]["outcome"] == "unsigned"
    assert view["signature"]["decision"] == "flagged"
    assert view["signature"]["reasons"]


async def test_soap_door_refuses_an_unsigned_judgment_with_a_fault(
    api: TestClient[Any, Any], world: World, pki: Pki
) -> None:
    def unsigned(payload: etree._Element) -> None:
        content = payload.find(f"{C}Body/{C}Document/{C}ContentBase64")
        assert content is not None
        content.text = base64.b64encode(pki.docs["plain"]).decode("ascii")

    request = fresh_request(unsigned)
    message_id = body_payload(etree.fromstring(request)).findtext(C + "MessageId")
    resp = await api.post("/soap/courts", data=request, headers=headers(world))
    element = await fault(resp, 422)
    assert element.findtext(f"detail/{C}GatewayFault/{C}HttpStatus") == "422"
    violations = {v.get("path", ""): v.text or "" for v in element.iter(C + "Violation")}
    assert "no signature" in violations["$.body.document.content_base64"], violations
    read = await api.get(f"/v1/messages/{message_id}", headers=world.court_headers())
    assert read.status == 404
    assert (await counts(world))["messages"] == 0


async def test_without_trust_anchors_nothing_is_checked(
    tmp_path: Path, fresh_database_url: str, pki: Pki, aiohttp_client: Callable[..., Any]
) -> None:
    world = signing_world(tmp_path, fresh_database_url, pki)
    shutil.rmtree(world.settings.config_dir / "trust")
    api: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
    doc = judgment(pki.docs["plain"])
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    view = await (await api.get(f"/v1/messages/{doc['message_id']}", headers=world.court_headers())).json()
    assert "signature" not in view


async def test_generic_door_applies_the_same_policy(
    api: TestClient[Any, Any], world: World, pki: Pki
) -> None:
    doc = judgment(pki.docs["other_court"])
    resp = await api.post("/v1/documents", json=doc, headers=world.court_headers())
    assert resp.status == 422, await resp.text()
    assert {e.get("rule") for e in (await resp.json())["errors"]} == {"signature"}
    assert (await counts(world))["messages"] == 0


def test_a_policy_for_an_unknown_type_stops_the_start(world: World) -> None:
    config = world.settings.config_dir
    text = (config / "signatures.toml").read_text("utf-8")
    (config / "signatures.toml").write_text(text.replace("judgment.delivery", "judgment.delivry"), "utf-8")
    with pytest.raises(ValueError, match=r"judgment\.delivry"):
        signature_intake.SignatureChecks.load(config, known_types={"judgment.delivery"})
