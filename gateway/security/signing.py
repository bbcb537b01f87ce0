"""The gateway's own signature: receipts and webhook deliveries are signed with one Ed25519 key.

The signed bytes are the RFC 8785 (JCS) canonical JSON of the signed fields, so any client can
verify with a standard JSON canonicaliser and the public key from ``GET /v1/keys``.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.security.keys import (
    b64url,
    b64url_decode,
    load_private_key,
    private_dir,
    private_pem,
    public_jwk,
    write_private,
)

log = logging.getLogger(__name__)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical form: the bytes every hash and signature in the gateway is computed over."""
    return bytes(rfc8785.dumps(value))


class Signer:
    """Signs with the configured Ed25519 key."""

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self.jwk = public_jwk(key.public_key())
        self.key_id = self.jwk["kid"]

    @classmethod
    def from_file(cls, path: Path, create: bool = True) -> Signer:
        if not path.exists():
            if not create:
                raise FileNotFoundError(path)
            _create_key_once(path)
        loaded = load_private_key(path.read_bytes())
        if not isinstance(loaded, ed25519.Ed25519PrivateKey):
            raise ValueError("the receipt signing key must be Ed25519")
        return cls(loaded)

    def sign(self, fields: dict[str, Any]) -> str:
        return b64url(self._key.sign(canonical_json(fields)))

    def sign_bytes(self, data: bytes) -> str:
        return b64url(self._key.sign(data))

    def pseudonym_pepper(self) -> bytes:
        """A secret derived from the signing key (Ed25519 signatures are deterministic): keys the
        pseudonyms of personal IDs without another secret to manage."""
        return self._key.sign(b"thads-gateway pseudonym pepper v1")

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}


def _create_key_once(path: Path) -> None:
    """First start: make the key rather than refuse to run. Several processes may start together;
    os.link is atomic and fails if the key exists, so exactly one key wins and everyone loads it."""
    private_dir(path.parent)
    # A random part, not only the pid: containers sharing a volume all run as pid 1.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    write_private(tmp, private_pem(ed25519.Ed25519PrivateKey.generate()), exclusive=True)
    try:
        os.link(tmp, path)
        log.warning("created receipt signing key %s", path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def verify(public_key: ed25519.Ed25519PublicKey, fields: dict[str, Any], signature: str) -> bool:
    """Check a signature made by :meth:`Signer.sign` (used by tests, simulators and clients)."""
    try:
        public_key.verify(b64url_decode(signature), canonical_json(fields))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_from_jwk(jwk: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    """The Ed25519 public key of a JWK as ``GET /v1/keys`` serves it; ``ValueError`` for anything else."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise ValueError("not an Ed25519 JWK")
    return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))


def keys_by_id(jwks: dict[str, Any]) -> dict[str, ed25519.Ed25519PublicKey]:
    """``{kid: key}`` of a JWKS; the kid is recomputed from the key (RFC 7638), never taken on trust."""
    found: dict[str, ed25519.Ed25519PublicKey] = {}
    for jwk in jwks.get("keys", []):
        key = public_key_from_jwk(jwk)
        found[public_jwk(key)["kid"]] = key
    return found
