"""Pushing a judgment over REST: receipts, duplicates, and every kind of bad input."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select

from gateway.security.keys import b64url_decode
from gateway.security.signing import canonical_json
from gateway.storage.database import Database
from gateway.storage.tables import audit_log, messages, outbox
from tests.conftest import World, fresh_judgment


async def counts(world: World) -> dict[str, int]:
    db = Database(world.settings.resolved_database_url)
    try:
        async with db.read() as conn:
            return {
                t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (messages, outbox, audit_log)
            }
    finally:
        await db.dispose()


async def test_push_returns_signed_receipt_verifiable_with_published_key(
    api: TestClient[Any, Any], world: World
) -> None:
    doc = fresh_judgment()
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    receipt = await resp.json()
    assert receipt["message_id"] == doc["message_id"]
    assert resp.headers["Location"] == f"/v1/messages/{doc['message_id']}"
    assert receipt["sha256"] == hashlib.sha256(canonical_json(doc)).hexdigest()

    keys = await (await api.get("/v1/keys")).json()
    (jwk,) = [k for k in keys["keys"] if k["kid"] == receipt["key_id"]]
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    signed = {k: receipt[k] for k in receipt["signed_fields"]}
    public.verify(b64url_decode(receipt["signature"]), canonical_json(signed))


async def test_same_push_twice_returns_original_receipt(api: TestClient[Any, Any], world: World) -> None:
    doc = fresh_judgment()
    first = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    again = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert first.status == 202 and again.status == 200
    assert await again.json() == await first.json()
    assert (await counts(world))["outbox"] == 1


async def test_same_judgment_under_new_message_id_returns_original_receipt(
    api: TestClient[Any, Any], world: World
) -> None:
    doc = fresh_judgment()
    first = await (await api.post("/v1/judgments", json=doc, headers=world.court_headers())).json()
    resend = json.loads(json.dumps(doc))
    resend["message_id"] = str(uuid.uuid4())
    resp = await api.post("/v1/judgments", json=resend, headers=world.court_headers())
    assert resp.status == 200
    assert (await resp.json())["receipt_id"] == first["receipt_id"]
    assert (await counts(world))["messages"] == 1


async def test_reused_message_id_with_other_content_conflicts(
    api: TestClient[Any, Any], world: World
) -> None:
    doc = fresh_judgment()
    await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    doc["body"]["judgment"]["summary"] = "Something else entirely"
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"


async def test_schema_violations_are_all_listed_and_nothing_is_stored(
    api: TestClient[Any, Any], world: World
) -> None:
    doc = fresh_judgment()
    doc["created_at"] = "2026-11-20T09:00:00"  # no offset
    doc["body"]["parties"][0]["person"]["id_number"] = "12345"
    doc["body"]["judgement"] = {}
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 422
    problem = await resp.json()
    paths = [e["path"] for e in problem["errors"]]
    assert "$.created_at" in paths
    assert any(p.startswith("$.body.parties[0].person") for p in paths)
    assert any(
        "judgement" in p or "judgement" in e["message"] for p, e in zip(paths, problem["errors"], strict=True)
    )
    assert paths == sorted(paths)
    c = await counts(world)
    assert c["messages"] == 0 and c["outbox"] == 0 and c["audit_log"] == 1


async def test_malformed_json_is_400(api: TestClient[Any, Any], world: World) -> None:
    resp = await api.post(
        "/v1/judgments",
        data=b'{"message_id": ',
        headers={**world.court_headers(), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert (await resp.json())["type"].endswith("malformed-request")


async def test_wrong_content_type_is_415(api: TestClient[Any, Any], world: World) -> None:
    resp = await api.post(
        "/v1/judgments", data=b"<xml/>", headers={**world.court_headers(), "Content-Type": "text/xml"}
    )
    assert resp.status == 415


async def test_body_over_limit_is_413(api: TestClient[Any, Any], world: World) -> None:
    limit = world.settings.api.max_body_bytes
    resp = await api.post(
        "/v1/judgments",
        data=io.BytesIO(b"{" + b" " * (limit + 10) + b"}"),
        headers={**world.court_headers(), "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await counts(world))["messages"] == 0


async def test_sender_must_be_the_authenticated_client(api: TestClient[Any, Any], world: World) -> None:
    doc = fresh_judgment()
    resp = await api.post("/v1/judgments", json=doc, headers=world.case_headers())
    assert resp.status == 403  # not granted judgments.push
    doc["sender"] = "TAND-HCM"
    doc["body"]["court"]["code"] = "TAND-HCM"
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 403


async def test_unknown_recipient_is_422(api: TestClient[Any, Any], world: World) -> None:
    doc = fresh_judgment()
    doc["recipient"] = "THADS-XX"
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 422
    assert [e["path"] for e in (await resp.json())["errors"]] == ["$.recipient"]


async def test_a_message_type_that_is_not_a_string_is_a_clear_422(
    api: TestClient[Any, Any], world: World
) -> None:
    bad: object
    for bad in ({}, [], 7, None):
        # The court: a client that may send some document (any other is refused before its body is read).
        resp = await api.post("/v1/documents", json={"message_type": bad}, headers=world.court_headers())
        assert resp.status == 422, (bad, await resp.text())
        body = await resp.json()
        assert any(v["path"] == "$.message_type" for v in body["errors"]), body
