"""An evidence bundle proves one message's chain segment and shows nothing of anyone else's: its own audit
records in full, the records of other exchanges in between only as links (id, message id, content digest,
hashes). `evidence verify` still recomputes every link to the signed checkpoint offline, and an edit of an
own record, of a link, or an own record passed off as a link, is named."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.cli import main
from gateway.evidence import verify_bundle
from gateway.storage.audit import LINK_FIELDS, link
from gateway.web.app import create_app
from tests.conftest import World, fresh_judgment

OTHERS = "clerk-of-another-case-zulu"  # the subject of the records that are not the message's


async def interleaved(world: World) -> tuple[str, str]:
    """The message's push and read, with another message pushed and read in between."""
    mine, other = fresh_judgment(), fresh_judgment()
    async with TestClient(TestServer(create_app(world.settings))) as api:
        for doc, subject in ((mine, "clerk-x"), (other, OTHERS)):
            resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers(subject=subject))
            assert resp.status == 202, await resp.text()
        for doc, subject in ((other, OTHERS), (mine, "officer-7")):
            got = await api.get(
                f"/v1/messages/{doc['message_id']}", headers=world.case_headers(subject=subject)
            )
            assert got.status == 200
    return str(mine["message_id"]), str(other["message_id"])


@pytest.fixture
def exported(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, str, Path]:
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", world.settings.database_url)
    mine, other = asyncio.run(interleaved(world))
    out = tmp_path / "bundle.json"
    assert main(["evidence", "export", mine, "--out", str(out), "--actor", "auditor-1"]) == 0
    return mine, other, out


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text("utf-8")))


def failed(bundle: dict[str, Any]) -> list[str]:
    return [f"{c.part}: {c.detail}" for c in verify_bundle(bundle) if not c.ok]


def test_other_parties_records_are_links_only_and_the_chain_verifies(
    exported: tuple[str, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    mine, other, path = exported
    bundle = load(path)
    records = bundle["audit"]["records"]
    own = [r for r in records if r["id"] in bundle["audit"]["concerned"]]
    links = [r for r in records if r["id"] not in bundle["audit"]["concerned"]]
    assert [r["action"] for r in own] == ["judgments.push", "messages.read", "evidence.export"]
    assert all(r["message_id"] == mine and "actor" in r for r in own)
    assert len(links) == 2 and all(sorted(r) == sorted(LINK_FIELDS) for r in links)
    assert {r["message_id"] for r in links} == {other}
    text = json.dumps(bundle, ensure_ascii=False)
    assert OTHERS not in text, "another exchange's content travels in the bundle"

    capsys.readouterr()
    assert main(["evidence", "verify", str(path)]) == 0, capsys.readouterr().out
    assert "2 of others shown as links only" in capsys.readouterr().out


def test_an_edited_own_record_fails(exported: tuple[str, str, Path]) -> None:
    _, _, path = exported
    bundle = load(path)
    own = next(r for r in bundle["audit"]["records"] if r.get("action") == "messages.read")
    own["subject"] = "someone-else"
    assert failed(bundle) == [f"audit record {own['id']}: its hash does not match its fields"]


def test_an_edited_link_fails(exported: tuple[str, str, Path]) -> None:
    _, _, path = exported
    bundle = load(path)
    stub = next(r for r in bundle["audit"]["records"] if "content_sha256" in r)
    stub["content_sha256"] = "0" * 64
    assert failed(bundle) == [f"audit record {stub['id']}: its hash does not match its fields"]


def test_an_own_record_hidden_as_a_link_fails(exported: tuple[str, str, Path]) -> None:
    _, _, path = exported
    bundle = load(path)
    records = bundle["audit"]["records"]
    i = next(i for i, r in enumerate(records) if r.get("action") == "messages.read")
    records[i] = link(records[i])
    problems = failed(bundle)
    assert problems and all(p.startswith("audit:") for p in problems), problems
    assert any("carried without content" in p for p in problems)


def test_the_bundle_is_readable_by_its_owner_only(exported: tuple[str, str, Path]) -> None:
    _, _, path = exported
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
