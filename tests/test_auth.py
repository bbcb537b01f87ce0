"""Deny by default: only tokens signed by the issuer's registered key, with every required claim,
for a granted service, get through. Every rejection is a 401/403 problem and is audited."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization

from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, private_pem, public_pem
from tests.conftest import COURT, World, fresh_judgment


def claims(world: World, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": COURT,
        "sub": "court-system",
        "aud": world.settings.auth.audience,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


async def push_with(api: TestClient[Any, Any], token: str) -> Any:
    resp = await api.post(
        "/v1/judgments", json=fresh_judgment(), headers={"Authorization": f"Bearer {token}"}
    )
    return resp


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub", "jti"])
async def test_every_required_claim_is_required(
    api: TestClient[Any, Any], world: World, missing: str
) -> None:
    token = jwt.encode(claims(world, **{missing: None}), world.court.key, algorithm="EdDSA")
    resp = await push_with(api, token)
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000},  # expired
        {"aud": "someone-else"},
        {"iss": "TAND-XX"},  # unknown client
        {"exp": int(time.time()) + 86400},  # longer than the allowed lifetime
    ],
)
async def test_bad_claims_are_refused(
    api: TestClient[Any, Any], world: World, overrides: dict[str, Any]
) -> None:
    token = jwt.encode(claims(world, **overrides), world.court.key, algorithm="EdDSA")
    assert (await push_with(api, token)).status == 401


async def test_alg_none_is_refused(api: TestClient[Any, Any], world: World) -> None:
    # PyJWT's types refuse a None key; "none" reads "" as no key, and the token is the same.
    token = jwt.encode(claims(world), "", algorithm="none")
    assert (await push_with(api, token)).status == 401


async def test_hmac_with_the_public_key_as_secret_is_refused(api: TestClient[Any, Any], world: World) -> None:
    # The classic confusion: sign HS256 with the (public) PEM the verifier holds.
    secret = public_pem(world.court.key.public_key())
    header = {"alg": "HS256", "typ": "JWT"}

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims(world)).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert (await push_with(api, f"{signing_input}.{b64(sig)}")).status == 401


async def test_a_key_not_registered_for_the_issuer_is_refused(
    api: TestClient[Any, Any], world: World
) -> None:
    stranger = generate_keypair("ed25519")
    token = jwt.encode(claims(world), stranger, algorithm="EdDSA")
    assert (await push_with(api, token)).status == 401
    # ... including the key of another registered client
    token = jwt.encode(claims(world), world.case_system.key, algorithm="ES256")
    assert (await push_with(api, token)).status == 401


async def test_missing_or_garbled_authorization_is_401(api: TestClient[Any, Any]) -> None:
    resp = await api.post("/v1/judgments", json=fresh_judgment())
    assert resp.status == 401
    assert "Bearer" in resp.headers["WWW-Authenticate"]
    resp = await api.post("/v1/judgments", json=fresh_judgment(), headers={"Authorization": "Bearer x.y.z"})
    assert resp.status == 401


async def test_revoked_client_is_refused(api: TestClient[Any, Any], world: World) -> None:
    ClientStore(world.settings.clients_dir).revoke(COURT)
    await asyncio.sleep(1.1)  # running processes re-read client files within a second
    assert (await push_with(api, world.court.token(world.settings))).status == 401


async def test_ungranted_service_is_403(api: TestClient[Any, Any], world: World) -> None:
    doc = fresh_judgment()
    resp = await api.post(
        f"/v1/messages/{doc['message_id']}/confirmation",
        json={"case_ref": "THA-1"},
        headers=world.court_headers(),
    )
    assert resp.status == 403


def test_private_key_pem_roundtrip_is_pkcs8() -> None:
    key = generate_keypair("p256")
    assert private_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert serialization.load_pem_private_key(private_pem(key), None) is not None


async def test_a_client_over_its_rate_limit_gets_429_with_retry_after(
    api: TestClient[Any, Any], world: World
) -> None:
    path = world.settings.clients_dir / f"{COURT}.toml"
    path.write_text(path.read_text("utf-8") + 'rate_limit = "2/minute"\n', "utf-8")
    await asyncio.sleep(1.1)  # the api re-reads client files within a second
    statuses = [(await push_with(api, world.court.token(world.settings))).status for _ in range(3)]
    assert statuses == [202, 202, 429]
    resp = await push_with(api, world.court.token(world.settings))
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["type"].endswith("rate-limited")


# --- Verified tokens are remembered until they expire, never past a change of their client ----------------


async def test_a_token_used_before_its_client_was_revoked_is_refused_after(
    api: TestClient[Any, Any], world: World
) -> None:
    token = world.court.token(world.settings)
    assert (await push_with(api, token)).status == 202  # verified, and remembered
    ClientStore(world.settings.clients_dir).revoke(COURT)
    await asyncio.sleep(1.1)  # running processes re-read client files within a second
    assert (await push_with(api, token)).status == 401


def test_a_remembered_token_is_not_verified_again_until_it_expires(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.security import tokens

    verifier = tokens.TokenVerifier(
        ClientStore(world.settings.clients_dir), world.settings.auth.audience, leeway=0, max_lifetime=3600
    )
    checks = []
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("key") is not None:
            checks.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)  # the module tokens calls
    token = world.court.token(world.settings, ttl=1)
    assert verifier.verify(token).client.id == COURT
    assert verifier.verify(token).client.id == COURT
    assert len(checks) == 1  # the second time from memory
    time.sleep(2.1)
    with pytest.raises(tokens.TokenRejected, match="expired"):
        verifier.verify(token)
    assert len(checks) == 2  # checked again, and refused
