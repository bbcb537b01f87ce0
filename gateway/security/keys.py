"""Key material helpers shared by client keys and the gateway's own signing key."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

#: Modes of what the gateway keeps to itself: private keys, the database, evidence bundles, var/.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class UnacceptableKey(ValueError):
    """A key file that is not an accepted kind (Ed25519 or EC P-256)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_public_key(pem: bytes) -> PublicKey:
    key = serialization.load_pem_public_key(pem)
    return _accepted_public(key)


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise UnacceptableKey("only Ed25519 or EC P-256 private keys are accepted")


def _accepted_public(key: object) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise UnacceptableKey("only Ed25519 or EC P-256 public keys are accepted")


def algorithm_for(key: PublicKey | PrivateKey) -> str:
    """The one JWS algorithm a key may be used with: the key decides, never the token header."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "EdDSA"
    return "ES256"


def public_jwk(key: PublicKey) -> dict[str, str]:
    """RFC 7517 JWK of a public key, with ``kid`` = RFC 7638 thumbprint."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    else:
        numbers = key.public_numbers()
        jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    thumb = hashlib.sha256(json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()).digest()
    return {**jwk, "kid": b64url(thumb), "alg": algorithm_for(key), "use": "sig"}


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_keypair(kind: str = "ed25519") -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise UnacceptableKey(f"unknown key kind {kind!r}")


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (set at creation, never world-readable in
    between); a directory that exists is left as it is."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        # pathlib's mkdir(parents=True) gives the parents the default mode; each one is made here. Another
        # process may make it meanwhile.
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=PRIVATE_DIR)


def private_file(path: Path, exclusive: bool = False) -> int:
    """Open ``path`` for writing, created with mode 0600 (an existing file is narrowed to 0600 too);
    ``exclusive``: fail if it exists. Returns the file descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_EXCL if exclusive else 0)
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` readable by its owner only (mode 0600 from creation on)."""
    with os.fdopen(private_file(path, exclusive), "wb") as out:
        out.write(data)


def write_keypair(directory: Path, name: str, kind: str = "ed25519") -> tuple[Path, Path]:
    """Create ``name.key`` (private, mode 0600) and ``name.pub`` in ``directory`` (made 0700 if new)."""
    private_dir(directory)
    key = generate_keypair(kind)
    priv = directory / f"{name}.key"
    pub = directory / f"{name}.pub"
    write_private(priv, private_pem(key))
    pub.write_bytes(public_pem(key.public_key()))
    return priv, pub
