"""An enforcement office's signature on the documents the gateway delivers for it, and its verification.

What is signed: the RFC 8785 (JCS) canonical JSON of the whole document as it leaves (``due_at``
included), so key order and whitespace on the wire do not matter. The signature is a detached compact
JWS (RFC 7515, Appendix F): ``<protected header>..<signature>``, its payload the base64url of those
canonical bytes — any JOSE library verifies it once the payload is put back. The payload is base64url
encoded (no RFC 7797 ``b64: false``) because more partner libraries verify that form, and so the
header names no critical extension.

The protected header: ``alg`` (ES256/ES384 by the EC curve; RS256, or PS256 on request, for RSA — the
Vietnamese government CAs issue RSA), ``typ`` (:data:`JWS_TYPE`, so an office signature is never taken
for another kind of JWS), ``cty: json``, ``x5c`` (the office's certificate, then its intermediates; the
root stays out: the partner holds it as its trust anchor), ``x5t#S256`` (the certificate's SHA-256
thumbprint), ``kid`` (the same thumbprint: what a partner pins or logs) and ``iat`` (the signing time,
seconds since the epoch, against which the certificate's validity is judged).

The private key sits behind :class:`KeySource`: :class:`SoftwareKey` (a PEM file: demos and tests) or,
in production, a key that never leaves an HSM (:class:`Pkcs11Key`, through PKCS#11).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import jwt
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store
from jwt.algorithms import get_default_algorithms
from pydantic import BaseModel, ConfigDict

from gateway.partners import read_secret
from gateway.security.keys import b64url
from gateway.signatures.jws import MAX_JWS_CHARS, MalformedJws, attach, detach

#: The ``typ`` of an office's document signature (explicit typing, RFC 8725 §3.11).
JWS_TYPE: Final = "thads-document+jws"
#: The algorithms a signature may use; anything else (``none``, HMAC, …) is refused before any key is
#: looked at.
ALGORITHMS: Final = ("ES256", "ES384", "RS256", "PS256")
RsaAlgorithm = Literal["RS256", "PS256"]
#: Certificates ``x5c`` may carry: the office's and its intermediates.
MAX_CHAIN: Final = 5
#: How far ahead of the verifier's clock a signing time may be (clocks differ).
CLOCK_SKEW: Final = dt.timedelta(minutes=5)

_EC_ALGORITHMS: Final = {"secp256r1": "ES256", "secp384r1": "ES384"}


def canonical(document: Mapping[str, Any]) -> bytes:
    """The signed bytes: RFC 8785 canonical JSON of ``document``."""
    return bytes(rfc8785.dumps(dict(document)))


def algorithm_for(public_key: CertificatePublicKeyTypes, rsa_algorithm: RsaAlgorithm = "RS256") -> str:
    """The JWS ``alg`` a key signs with; ``ValueError`` for a key no office signature may use."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(public_key.curve.name)
        if alg is None:
            raise ValueError(f"EC curve {public_key.curve.name} is not used for office signatures")
        return alg
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise ValueError("an RSA office key must be 2048 bits or more")
        return rsa_algorithm
    raise ValueError("an office key is EC (P-256, P-384) or RSA")


def thumbprint(certificate: x509.Certificate) -> str:
    """``x5t#S256``: base64url of the SHA-256 of the certificate's DER."""
    return b64url(certificate.fingerprint(hashes.SHA256()))


# -- keys -----------------------------------------------------------------------------------------


class KeySource(ABC):
    """Where the office's private key lives; it signs the JWS signing input and gives the signature
    bytes as JWS wants them (EC: ``r || s``, not DER)."""

    @abstractmethod
    def public_key(self) -> CertificatePublicKeyTypes: ...

    @abstractmethod
    def sign(self, data: bytes, algorithm: str) -> bytes: ...

    def close(self) -> None:
        """Let go of what holds the key (an HSM session); nothing for a key in memory."""
        return None


class SoftwareKey(KeySource):
    """A private key held in memory, read from a PEM file: for demos and tests, not production."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self._key = key

    @classmethod
    def from_pem(cls, path: Path, password: bytes | None = None) -> SoftwareKey:
        key = serialization.load_pem_private_key(path.read_bytes(), password)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{path}: an office key is EC or RSA")
        return cls(key)

    def public_key(self) -> CertificatePublicKeyTypes:
        return self._key.public_key()

    def sign(self, data: bytes, algorithm: str) -> bytes:
        # pyjwt's algorithm objects do the hashing, the padding (PKCS#1 v1.5 or PSS) and the
        # DER -> r||s conversion JWS wants for ECDSA.
        return get_default_algorithms()[algorithm].sign(data, self._key)


class Pkcs11Key(KeySource):
    """The production path: the office key inside an HSM (or the CA's USB token), used through PKCS#11
    with ``python-pkcs11`` (the ``hsm`` extra); the key never leaves the token.

    ``module``: the vendor's PKCS#11 library (SoftHSM2's ``libsofthsm2.so`` in tests); the token is
    found by its label, the private key by ``CKA_LABEL``; ``pin``: the user PIN (from an environment
    variable or a file, never the configuration); ``certificate``: the office certificate, whose public
    key this is — checked once at start with a probe signature.

    Mechanisms: ECDSA signs a SHA-256/384 digest computed here with ``CKM_ECDSA`` (its output is already
    the ``r || s`` JWS wants; SoftHSM2 and many HSMs have no ``CKM_ECDSA_SHA256``); RS256 is
    ``CKM_SHA256_RSA_PKCS``; PS256 is ``CKM_SHA256_RSA_PKCS_PSS`` with MGF1-SHA-256 and a 32-byte salt.
    One session per key, signing serialised on it: a PKCS#11 session is not for concurrent use.
    """

    def __init__(
        self, module: Path, token_label: str, key_label: str, pin: str, certificate: x509.Certificate
    ) -> None:
        # Imported here: only a gateway whose keys are in an HSM needs the library (and its C module).
        import pkcs11

        try:
            token = pkcs11.lib(str(module)).get_token(token_label=token_label)
            try:
                self._session = token.open(user_pin=pin)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # PKCS#11 logs in per token for the whole process: another key of this token did already.
                self._session = token.open()
        except pkcs11.PKCS11Error as exc:
            raise _token_error(token_label, key_label, exc) from None
        try:
            try:
                key = self._session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=key_label)
            except pkcs11.PKCS11Error as exc:
                raise _token_error(token_label, key_label, exc) from None
            if not isinstance(key, pkcs11.types.SignMixin):
                raise ValueError(f"PKCS#11 key {key_label!r} cannot sign")
            self._key = key
            self._pkcs11 = pkcs11
            self._public = certificate.public_key()
            self._lock = threading.Lock()
            probe_alg = algorithm_for(self._public)
            probe = b"office signing key probe"
            algorithm = get_default_algorithms()[probe_alg]
            if not algorithm.verify(probe, algorithm.prepare_key(self._public), self.sign(probe, probe_alg)):
                raise ValueError(f"PKCS#11 key {key_label!r} is not the key of the office certificate")
        except BaseException:
            self._session.close()
            raise

    def public_key(self) -> CertificatePublicKeyTypes:
        return self._public

    def sign(self, data: bytes, algorithm: str) -> bytes:
        mechanism = self._pkcs11.Mechanism
        with self._lock:
            if algorithm in ("ES256", "ES384"):
                digest = (hashlib.sha256 if algorithm == "ES256" else hashlib.sha384)(data).digest()
                return bytes(self._key.sign(digest, mechanism=mechanism.ECDSA))
            if algorithm == "RS256":
                return bytes(self._key.sign(data, mechanism=mechanism.SHA256_RSA_PKCS))
            if algorithm == "PS256":
                pss = (mechanism.SHA256, self._pkcs11.MGF.SHA256, 32)
                return bytes(
                    self._key.sign(data, mechanism=mechanism.SHA256_RSA_PKCS_PSS, mechanism_param=pss)
                )
        raise ValueError(f"{algorithm} is not an office signature algorithm")

    def close(self) -> None:
        self._session.close()


def _token_error(token_label: str, key_label: str, exc: Exception) -> ValueError:
    # The exception's name says what failed (NoSuchToken, PinIncorrect, NoSuchKey…); never the PIN.
    return ValueError(f"PKCS#11 token {token_label!r}, key {key_label!r}: {type(exc).__name__}")


# -- signing --------------------------------------------------------------------------------------


class CertificateNotValid(ValueError):
    """The office certificate is outside its validity period: the office cannot sign now."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OfficeSigner:
    """Signs documents as one office: its key (a :class:`KeySource`) and its certificate chain, the
    office's certificate first, then intermediates (no root)."""

    def __init__(
        self,
        key: KeySource,
        chain: Sequence[x509.Certificate],
        *,
        rsa_algorithm: RsaAlgorithm = "RS256",
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        if not chain:
            raise ValueError("the office certificate chain is empty")
        if len(chain) > MAX_CHAIN:
            raise ValueError(f"at most {MAX_CHAIN} certificates in the chain (leave the root out)")
        certificate = chain[0]
        if _spki(certificate.public_key()) != _spki(key.public_key()):
            raise ValueError("the office key is not the key of the chain's first certificate")
        self.key = key
        self.chain = tuple(chain)
        self.certificate = certificate
        self.algorithm = algorithm_for(certificate.public_key(), rsa_algorithm)
        self.key_id = thumbprint(certificate)
        self._clock = clock
        self._x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]

    @classmethod
    def from_files(
        cls,
        key_file: Path,
        chain_file: Path,
        *,
        password: bytes | None = None,
        rsa_algorithm: RsaAlgorithm = "RS256",
        clock: Callable[[], dt.datetime] = _now,
    ) -> OfficeSigner:
        """A software key (PEM, PKCS#8 or traditional, optionally encrypted) and its chain (PEM)."""
        chain = x509.load_pem_x509_certificates(chain_file.read_bytes())
        key = SoftwareKey.from_pem(key_file, password)
        return cls(key, chain, rsa_algorithm=rsa_algorithm, clock=clock)

    @property
    def subject(self) -> x509.Name:
        return self.certificate.subject

    def sign(self, document: Mapping[str, Any]) -> str:
        """The detached JWS (``header..signature``) of ``document``'s canonical JSON."""
        # iat is whole seconds: the validity is judged on the time a verifier will read back.
        now = self._clock().replace(microsecond=0)
        if not _valid_at(self.certificate, now):
            raise CertificateNotValid(
                f"the office certificate is valid from {self.certificate.not_valid_before_utc} "
                f"to {self.certificate.not_valid_after_utc}"
            )
        header = {
            "alg": self.algorithm,
            "typ": JWS_TYPE,
            "cty": "json",
            "kid": self.key_id,
            "x5c": self._x5c,
            "x5t#S256": self.key_id,
            "iat": int(now.timestamp()),
        }
        # The signing input is composed here rather than by pyjwt's encoder because pyjwt wants the key
        # object itself, and an HSM key is only something that signs bytes.
        encoded_header = b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
        signing_input = f"{encoded_header}.{b64url(canonical(document))}"
        signature = self.key.sign(signing_input.encode("ascii"), self.algorithm)
        return detach(f"{signing_input}.{b64url(signature)}")


# -- verification ---------------------------------------------------------------------------------


class SignatureInvalid(Exception):
    """A signature that does not hold; ``reason`` is a short code a partner can answer with."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Verified:
    """What a good signature proves: who signed (the office's certificate, chained to an anchor) and when
    it says it signed."""

    subject: x509.Name
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # from the office's certificate to the trust anchor
    signed_at: dt.datetime
    algorithm: str
    key_id: str


def load_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM file (a chain, or trust anchors)."""
    return x509.load_pem_x509_certificates(path.read_bytes())


def verify(
    document: Mapping[str, Any],
    jws: str,
    trust_anchors: Sequence[x509.Certificate],
    *,
    expected_subject: x509.Name | str | None = None,
    now: dt.datetime | None = None,
    max_age: dt.timedelta | None = None,
) -> Verified:
    """Check that ``jws`` is an office's signature of ``document``; :class:`SignatureInvalid` otherwise.

    ``trust_anchors``: the root certificates the verifier trusts. ``expected_subject``: the office's
    certificate subject must be this (an ``x509.Name`` or its RFC 4514 string). ``now``: the verifier's
    clock (a signing time beyond it plus :data:`CLOCK_SKEW` is refused); ``max_age``: refuse a signature
    made longer ago than this. Revocation (CRL/OCSP) is not checked here.
    """
    if not trust_anchors:
        raise SignatureInvalid("no_trust_anchor", "no trust anchor is configured")
    if len(jws) > MAX_JWS_CHARS:
        raise SignatureInvalid("malformed", "the signature is too long")
    try:
        header = jwt.get_unverified_header(jws)
    except jwt.PyJWTError:
        raise SignatureInvalid("malformed", "the signature is not a JWS") from None
    if jws.split(".")[1:2] != [""]:
        raise SignatureInvalid("malformed", "the signature must be detached (header..signature)")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise SignatureInvalid("algorithm_not_allowed", f"alg must be one of {', '.join(ALGORITHMS)}")
    if header.get("typ") != JWS_TYPE:
        raise SignatureInvalid("wrong_type", f"typ must be {JWS_TYPE}")
    if "crit" in header or header.get("b64", True) is not True:
        # No extension is understood here, so none may be critical (RFC 7515 §4.1.11).
        raise SignatureInvalid("unsupported_header", "crit and b64 are not supported")
    chain = _chain(header)
    leaf = chain[0]
    if header.get("x5t#S256") != thumbprint(leaf):
        raise SignatureInvalid("thumbprint_mismatch", "x5t#S256 is not the thumbprint of x5c's first")
    if not isinstance(header.get("kid"), str):
        raise SignatureInvalid("malformed", "kid is required")
    signed_at = _signing_time(header, now or _now(), max_age)
    if not _valid_at(leaf, signed_at):
        raise SignatureInvalid("certificate_not_valid", "the certificate was not valid at the signing time")
    public_key = leaf.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey) or not _fits(public_key, alg):
        raise SignatureInvalid("algorithm_not_allowed", "alg does not fit the certificate's key")
    path = _chain_to_anchor(leaf, chain[1:], trust_anchors, signed_at)
    if expected_subject is not None and not _same_subject(leaf.subject, expected_subject):
        raise SignatureInvalid("unexpected_signer", "the certificate is not the expected office's")
    try:
        jwt.api_jws.decode_complete(attach(jws, canonical(document)), public_key, algorithms=[alg])
    except (jwt.PyJWTError, MalformedJws):
        raise SignatureInvalid("bad_signature", "the signature does not match the document") from None
    except (TypeError, ValueError):
        # A document the canonical form cannot express (a non-finite number, an integer beyond 2**53).
        raise SignatureInvalid("bad_signature", "the document has no canonical form") from None
    return Verified(leaf.subject, leaf, path, signed_at, alg, header["kid"])


def _chain(header: Mapping[str, Any]) -> list[x509.Certificate]:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c or len(x5c) > MAX_CHAIN:
        raise SignatureInvalid("malformed", f"x5c must list 1 to {MAX_CHAIN} certificates")
    try:
        # x5c is standard base64 (RFC 7515 §4.1.6), not base64url.
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except (TypeError, ValueError):
        raise SignatureInvalid("malformed", "x5c holds something that is not a certificate") from None


def _signing_time(header: Mapping[str, Any], now: dt.datetime, max_age: dt.timedelta | None) -> dt.datetime:
    iat = header.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool) or iat < 0:
        raise SignatureInvalid("malformed", "iat (seconds since the epoch) is required")
    try:
        signed_at = dt.datetime.fromtimestamp(iat, dt.UTC)
    except (OverflowError, ValueError, OSError):
        raise SignatureInvalid("malformed", "iat is out of range") from None
    if signed_at > now + CLOCK_SKEW:
        raise SignatureInvalid("signed_in_future", "the signing time is ahead of the verifier's clock")
    if max_age is not None and signed_at < now - max_age:
        raise SignatureInvalid("signature_too_old", "the signature was made too long ago")
    return signed_at


def _signing_leaf_policy() -> ExtensionPolicy:
    """What the office's certificate must be: not a CA, and if it states key usage, one that signs.

    The Web PKI leaf policy is no fit (it wants a subjectAltName, a server's or a client's name), so the
    leaf policy starts from "anything" and adds these two rules."""

    def not_ca(_policy: object, _cert: x509.Certificate, value: x509.BasicConstraints | None) -> None:
        if value is not None and value.ca:
            raise ValueError("a CA certificate does not sign documents")

    def signs(_policy: object, _cert: x509.Certificate, value: x509.KeyUsage | None) -> None:
        if value is not None and not (value.digital_signature or value.content_commitment):
            raise ValueError("the key usage does not allow signatures")

    return (
        ExtensionPolicy.permit_all()
        .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, not_ca)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, signs)
    )


def _chain_to_anchor(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    at: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    verifier = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(at)
        .max_chain_depth(MAX_CHAIN)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_signing_leaf_policy())
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, list(intermediates))
    except x509.verification.VerificationError as exc:
        raise SignatureInvalid("untrusted_certificate", f"the certificate does not chain: {exc}") from None
    return tuple(verified.chain)


def _fits(key: CertificatePublicKeyTypes, alg: str) -> bool:
    rsa_alg: RsaAlgorithm = "PS256" if alg == "PS256" else "RS256"
    try:
        return algorithm_for(key, rsa_alg) == alg
    except ValueError:
        return False


def _valid_at(certificate: x509.Certificate, at: dt.datetime) -> bool:
    return certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc


def _same_subject(subject: x509.Name, expected: x509.Name | str) -> bool:
    if isinstance(expected, x509.Name):
        return subject == expected
    return subject.rfc4514_string() == expected


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- configuration --------------------------------------------------------------------------------


class SigningKeyConfig(BaseModel):
    """One office's signing key in ``config/signing.toml`` (``[offices.<CODE>]``)."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["software", "pkcs11"] = "software"
    #: The office's certificate then its intermediates, PEM (relative to the config directory).
    chain_file: str
    #: software: the private key, PEM; its password (if encrypted) from an env var or a file.
    key_file: str | None = None
    key_password_env: str | None = None
    key_password_file: str | None = None
    #: pkcs11: the module, the token and key labels, the user PIN from an env var or a file.
    pkcs11_module: str | None = None
    token_label: str | None = None
    key_label: str | None = None
    pin_env: str | None = None
    pin_file: str | None = None
    rsa_algorithm: RsaAlgorithm = "RS256"


class SigningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offices: dict[str, SigningKeyConfig] = {}


def load_office_signers(config_dir: Path) -> dict[str, OfficeSigner]:
    """The signers of ``config_dir/signing.toml`` by office code; none when the file is absent."""
    path = config_dir / "signing.toml"
    if not path.exists():
        return {}
    config = SigningConfig.model_validate(tomllib.loads(path.read_text("utf-8")))
    signers: dict[str, OfficeSigner] = {}
    for office, entry in config.offices.items():
        chain = load_certificates(_path(config_dir, entry.chain_file))
        if entry.source == "pkcs11":
            pin = read_secret(entry.pin_env, entry.pin_file, config_dir)
            if not (entry.pkcs11_module and entry.token_label and entry.key_label and pin):
                raise ValueError(f"{office}: pkcs11 needs pkcs11_module, token_label, key_label and a PIN")
            module = Path(entry.pkcs11_module)
            key: KeySource = Pkcs11Key(module, entry.token_label, entry.key_label, pin, chain[0])
        else:
            if entry.key_file is None:
                raise ValueError(f"{office}: key_file is required for a software key")
            password = read_secret(entry.key_password_env, entry.key_password_file, config_dir)
            key = SoftwareKey.from_pem(
                _path(config_dir, entry.key_file), password.encode() if password else None
            )
        signers[office] = OfficeSigner(key, chain, rsa_algorithm=entry.rsa_algorithm)
    return signers


def _path(config_dir: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else config_dir / path
