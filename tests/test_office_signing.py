"""An enforcement office's signature on the documents it sends: signed as detached JWS over the canonical
JSON, verified against a trust anchor — and the simulated bank that takes signed orders only."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.connectors.base import ConnectorError
from gateway.connectors.registry import build_connectors, close_all
from gateway.partners import Partner
from gateway.security.keys import b64url
from gateway.services.deliveries import delivery_detail
from gateway.signatures.departure import DepartureSigning
from gateway.signatures.jws import SIGNATURE_HEADER, MalformedJws, attach, signature_of, with_signature
from gateway.signatures.office import (
    JWS_TYPE,
    CertificateNotValid,
    OfficeSigner,
    Pkcs11Key,
    SignatureInvalid,
    SigningConfig,
    SoftwareKey,
    canonical,
    load_certificates,
    load_office_signers,
    thumbprint,
    verify,
)
from gateway.simulators.partners import banks
from gateway.simulators.partners.behaviour import Behaviour
from tests.support.pki import Issued, KeyType, TestCA

EXAMPLES = Path(__file__).resolve().parent.parent / "gateway" / "schemas" / "examples"
ORDER = EXAMPLES / "order.account_blocking" / "valid-person-listed-accounts.json"


def an_order() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(ORDER.read_text("utf-8"))
    return document


def signer_of(issued: Issued, **options: Any) -> OfficeSigner:
    return OfficeSigner.from_files(issued.key, issued.cert, **options)


def reason(document: dict[str, Any], jws: str, anchors: TestCA, **options: Any) -> str:
    with pytest.raises(SignatureInvalid) as refused:
        verify(document, jws, [anchors.cert], **options)
    return refused.value.reason


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca", "Office Root CA")


@pytest.fixture
def office(ca: TestCA) -> Issued:
    return ca.issue("thads-hn", signing=True)


# -- signing and verifying -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "rsa_algorithm", "alg"),
    [("ec", "RS256", "ES256"), ("rsa", "RS256", "RS256"), ("rsa", "PS256", "PS256")],
)
def test_a_signed_order_verifies_with_the_office_certificate(
    tmp_path: Path, key_type: KeyType, rsa_algorithm: Any, alg: str
) -> None:
    ca = TestCA(tmp_path / "ca", "Office Root CA", key_type=key_type)
    office = ca.issue("thads-hn", signing=True, key_type=key_type)
    order = an_order()
    jws = signer_of(office, rsa_algorithm=rsa_algorithm).sign(order)

    assert jws.split(".")[1] == ""  # detached: the order travels as itself
    header = jwt.get_unverified_header(jws)
    assert header["alg"] == alg and header["typ"] == JWS_TYPE
    leaf = load_certificates(office.cert)[0]
    assert base64.b64decode(header["x5c"][0]) == leaf.public_bytes(serialization.Encoding.DER)
    assert header["x5t#S256"] == header["kid"] == thumbprint(leaf)

    verified = verify(order, jws, [ca.cert], expected_subject="CN=thads-hn,O=THADS-HN")
    assert verified.subject == leaf.subject and verified.algorithm == alg
    assert verified.chain[-1] == ca.cert
    assert abs(verified.signed_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_any_jose_library_verifies_it_once_the_canonical_payload_is_put_back(office: Issued) -> None:
    order = an_order()
    jws = signer_of(office).sign(order)
    public_key = load_certificates(office.cert)[0].public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    decoded = jwt.api_jws.decode_complete(attach(jws, canonical(order)), public_key, algorithms=["ES256"])
    assert json.loads(decoded["payload"]) == order


def test_a_changed_amount_breaks_the_signature(ca: TestCA, office: Issued) -> None:
    order = an_order()
    jws = signer_of(office).sign(order)
    tampered = copy.deepcopy(order)
    tampered["body"]["amount"] += 1
    assert reason(tampered, jws, ca) == "bad_signature"


def test_key_order_and_whitespace_do_not_matter(ca: TestCA, office: Issued) -> None:
    order = an_order()
    jws = signer_of(office).sign(order)
    # The document as a partner might parse it from another serialisation: keys reversed, spaced out.
    text = json.dumps(dict(reversed(list(order.items()))), indent=4, ensure_ascii=True)
    assert verify(json.loads(text), jws, [ca.cert]).subject == load_certificates(office.cert)[0].subject


def test_a_certificate_from_another_ca_is_not_trusted(tmp_path: Path, ca: TestCA) -> None:
    stranger = TestCA(tmp_path / "other", "Other Root CA").issue("thads-hn", signing=True)
    order = an_order()
    assert reason(order, signer_of(stranger).sign(order), ca) == "untrusted_certificate"


def test_an_expired_office_certificate_does_not_sign_and_its_signature_is_refused(ca: TestCA) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue(
        "old-office",
        signing=True,
        not_before=now - dt.timedelta(days=3),
        not_after=now - dt.timedelta(days=1),
    )
    order = an_order()
    with pytest.raises(CertificateNotValid):
        signer_of(expired).sign(order)
    # Made anyway, with today's signing time: the certificate had expired when it was made.
    forged = forge(expired, order, iat=int(now.timestamp()))
    assert reason(order, forged, ca) == "certificate_not_valid"


def test_a_signature_made_while_the_certificate_was_valid_still_verifies(ca: TestCA) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    office = ca.issue("thads-hn", signing=True, not_before=now - dt.timedelta(minutes=4))
    order = an_order()
    made = now - dt.timedelta(minutes=2)  # the root (TestCA) is valid from five minutes ago
    jws = signer_of(office, clock=lambda: made).sign(order)
    assert verify(order, jws, [ca.cert]).signed_at == made
    assert reason(order, jws, ca, max_age=dt.timedelta(minutes=1)) == "signature_too_old"


def test_what_the_header_must_say(ca: TestCA, office: Issued) -> None:
    order = an_order()
    now = int(dt.datetime.now(dt.UTC).timestamp())
    assert reason(order, forge(office, order, iat=now, alg="HS256"), ca) == "algorithm_not_allowed"
    assert reason(order, forge(office, order, iat=now, alg="RS256"), ca) == "algorithm_not_allowed"
    assert reason(order, forge(office, order, iat=now, typ="JWT"), ca) == "wrong_type"
    # An extension nobody here understands, marked critical (pyjwt itself already refuses to read it).
    assert reason(order, forge(office, order, iat=now, crit=["exp"]), ca) in (
        "malformed",
        "unsupported_header",
    )
    assert reason(order, forge(office, order, iat=now + 3600), ca) == "signed_in_future"
    assert reason(order, forge(office, order, iat=now, x5t="x"), ca) == "thumbprint_mismatch"
    assert reason(order, "not a jws", ca) == "malformed"
    attached = attach(signer_of(office).sign(order), canonical(order))
    assert reason(order, attached, ca) == "malformed"  # the payload must not travel twice
    assert (
        reason(order, signer_of(office).sign(order), ca, expected_subject="CN=thads-hcm,O=THADS-HCM")
        == "unexpected_signer"
    )


def test_a_tls_client_certificate_is_accepted_but_a_ca_certificate_is_not(ca: TestCA) -> None:
    order = an_order()
    # A certificate naming no key usage signs as well (what many issued certificates look like).
    assert verify(order, signer_of(ca.issue("office-tls")).sign(order), [ca.cert])
    ca_signer = OfficeSigner(SoftwareKey(ca.key), [ca.cert])
    assert reason(order, ca_signer.sign(order), ca) == "untrusted_certificate"


def test_the_key_must_be_the_certificates(ca: TestCA, office: Issued) -> None:
    other = ca.issue("someone-else", signing=True)
    with pytest.raises(ValueError, match="not the key"):
        OfficeSigner.from_files(other.key, office.cert)


def test_signers_come_from_the_signing_configuration(tmp_path: Path, ca: TestCA, office: Issued) -> None:
    assert load_office_signers(tmp_path) == {}
    (tmp_path / "signing.toml").write_text(
        f'[offices.THADS-HN]\nkey_file = "{office.key}"\nchain_file = "{office.cert}"\n', "utf-8"
    )
    signers = load_office_signers(tmp_path)
    order = an_order()
    assert verify(order, signers["THADS-HN"].sign(order), [ca.cert])


def test_the_signature_header_helpers(office: Issued) -> None:
    jws = signer_of(office).sign(an_order())
    headers = with_signature({"Content-Type": "application/json"}, jws)
    assert headers[SIGNATURE_HEADER] == jws and signature_of(headers) == jws
    assert signature_of({}) is None and signature_of({SIGNATURE_HEADER: "  "}) is None
    with pytest.raises(MalformedJws):
        with_signature({}, attach(jws, b"{}"))


def forge(
    issued: Issued,
    document: dict[str, Any],
    *,
    iat: int,
    alg: str = "ES256",
    typ: str = JWS_TYPE,
    crit: list[str] | None = None,
    x5t: str | None = None,
) -> str:
    """A detached JWS made by hand with pyjwt, its header as the test wants it."""
    leaf = load_certificates(issued.cert)[0]
    x5t = x5t or thumbprint(leaf)
    header: dict[str, Any] = {"typ": typ, "kid": x5t, "x5t#S256": x5t, "iat": iat}
    header["x5c"] = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
    if crit is not None:
        header["crit"] = crit
        header["exp"] = iat
    key: Any = serialization.load_pem_private_key(issued.key.read_bytes(), None)
    claimed = alg
    if alg == "HS256":
        key = b"a shared secret of thirty-two bytes!"
    elif alg == "RS256":
        alg = "ES256"  # signed with the EC key, then claimed to be RSA
    compact = jwt.api_jws.encode(canonical(document), key, algorithm=alg, headers=header)
    first, _, last = compact.split(".")
    if claimed != alg:
        # pyjwt writes the alg it signed with; the claim is changed after signing, as a forger would.
        forged = json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))
        first = b64url(json.dumps(forged | {"alg": claimed}).encode())
    return f"{first}..{last}"


# -- the simulated bank that takes signed orders only ----------------------------------------------


@pytest.fixture
async def bank(ca: TestCA) -> AsyncIterator[str]:
    app = banks.make_app(Behaviour(latency=(0.0, 0.0), error_rate=0.0), order_signature_anchors=[ca.cert])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[-1][1]}" + banks.PATHS["BANK-VCB"]
    finally:
        await runner.cleanup()


async def deliver(base: str, order: dict[str, Any], signature: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": "Bearer any-token", "Idempotency-Key": order["message_id"]}
    if signature is not None:
        headers = with_signature(headers, signature)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            base + banks.ORDERS_PATH, json=order, headers=headers, allow_redirects=False
        ) as response,
    ):
        return response.status, await response.json()


async def executed(base: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as session, session.get(base + "/_sim/orders") as response:
        counts: dict[str, int] = await response.json()
        return counts


async def test_the_bank_executes_a_signed_order_and_refuses_a_tampered_or_unsigned_one(
    bank: str, office: Issued, tmp_path: Path
) -> None:
    signer = signer_of(office)
    order = an_order()
    jws = signer.sign(order)

    tampered = copy.deepcopy(order)
    tampered["body"]["amount"] = 1
    status, body = await deliver(bank, tampered, jws)
    assert (status, body["error"]) == (400, "invalid_signature")
    assert "bad_signature" in body["message"]

    status, body = await deliver(bank, order, None)
    assert (status, body["error"]) == (400, "signature_required")

    stranger = TestCA(tmp_path / "other", "Other Root CA").issue("thads-hn", signing=True)
    status, body = await deliver(bank, order, signer_of(stranger).sign(order))
    assert (status, body["error"]) == (400, "invalid_signature")
    assert await executed(bank) == {}

    status, body = await deliver(bank, order, jws)
    assert status == 200, body
    assert await executed(bank) == {order["message_id"]: 1}


async def test_without_a_trust_anchor_the_bank_does_not_look_at_signatures() -> None:
    runner = web.AppRunner(banks.make_app(Behaviour(latency=(0.0, 0.0), error_rate=0.0)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        base = f"http://127.0.0.1:{runner.addresses[-1][1]}" + banks.PATHS["BANK-VCB"]
        status, _ = await deliver(base, an_order(), None)
        assert status == 200
    finally:
        await runner.cleanup()


async def test_the_connector_signs_each_order_as_its_sending_office_and_the_bank_executes_it(
    bank: str, office: Issued, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's way out: the REST connector signs with the sender's key, the signed bank takes the
    order, and the delivery evidence names the key; an office without a key, or whose certificate has
    expired, is refused without retries."""
    monkeypatch.setenv("TEST_BANK_TOKEN", "bank-secret")
    partner = Partner(
        code="BANK-VCB",
        kind="bank",
        protocol="rest",
        endpoint=bank,
        credentials="TEST_BANK_TOKEN",
    )
    order = an_order()
    expired = ca.issue(
        "thads-hcm",
        signing=True,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30),
        not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
    )
    signing = DepartureSigning(
        {"THADS-HN": signer_of(office), "THADS-HCM": OfficeSigner.from_files(expired.key, expired.cert)}
    )
    async with aiohttp.ClientSession() as session:
        connectors = await build_connectors([partner], session, signing=signing)
        receipt = await connectors["BANK-VCB"].deliver(order)
        assert receipt.signature is not None
        assert receipt.signature["office"] == "THADS-HN"
        assert receipt.signature["kid"] == signer_of(office).key_id
        assert delivery_detail("connector", 1, receipt)["signature"]["form"] == "jws-detached"
        assert await executed(bank) == {order["message_id"]: 1}

        unsigned = an_order() | {"message_id": "7a1c9c4e-1111-4d5e-8f00-000000000001", "sender": "THADS-DN"}
        with pytest.raises(ConnectorError) as caught:
            await connectors["BANK-VCB"].deliver(unsigned)
        assert not caught.value.retryable

        stale = an_order() | {"message_id": "7a1c9c4e-1111-4d5e-8f00-000000000002", "sender": "THADS-HCM"}
        with pytest.raises(ConnectorError, match="the office cannot sign") as caught:
            await connectors["BANK-VCB"].deliver(stale)
        assert not caught.value.retryable
        await close_all(connectors)
    assert await executed(bank) == {order["message_id"]: 1}


async def test_a_bank_refuses_an_order_signed_by_another_office(bank: str, ca: TestCA) -> None:
    order = an_order()
    other = signer_of(ca.issue("thads-hcm", signing=True))
    status, body = await deliver(bank, order, other.sign(order))
    assert (status, body["error"]) == (400, "invalid_signature")
    assert "sending office" in body["message"]


# -- the key in an HSM: SoftHSM2 through PKCS#11 ---------------------------------------------------

SOFTHSM_MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
)
HSM_PIN = "1234"


@dataclass(frozen=True)
class Hsm:
    module: Path
    token: str

    def holding(self, issued: Issued, label: str) -> None:
        """Imports ``issued``'s private key into the token under ``label``."""
        subprocess.run(
            [
                *("softhsm2-util", "--import", str(issued.key), "--token", self.token, "--label", label),
                *("--id", label.encode().hex(), "--pin", HSM_PIN),
            ],
            check=True,
            capture_output=True,
        )


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    """One SoftHSM2 token for the session: the PKCS#11 module is loaded once per process, with the
    configuration it finds then."""
    pytest.importorskip("pkcs11")
    module = next((m for m in SOFTHSM_MODULES if m.exists()), None)
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n", "utf-8")
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        subprocess.run(
            [
                *("softhsm2-util", "--init-token", "--free", "--label", "offices"),
                *("--pin", HSM_PIN, "--so-pin", "5678"),
            ],
            check=True,
            capture_output=True,
        )
        yield Hsm(module, "offices")
    finally:
        if before is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = before


@pytest.mark.parametrize(("key_type", "rsa_algorithm"), [("ec", "RS256"), ("rsa", "RS256"), ("rsa", "PS256")])
def test_an_office_key_in_an_hsm_signs(
    tmp_path: Path, hsm: Hsm, key_type: KeyType, rsa_algorithm: Any
) -> None:
    ca = TestCA(tmp_path / "ca", "Office Root CA", key_type=key_type)
    office = ca.issue("thads-hn", signing=True, key_type=key_type)
    label = f"{tmp_path.name}-{key_type}-{rsa_algorithm}"
    hsm.holding(office, label)
    certificate = load_certificates(office.cert)[0]
    key = Pkcs11Key(hsm.module, hsm.token, label, HSM_PIN, certificate)
    try:
        order = an_order()
        jws = OfficeSigner(key, [certificate], rsa_algorithm=rsa_algorithm).sign(order)
        assert verify(order, jws, [ca.cert]).certificate == certificate
    finally:
        key.close()


def test_an_hsm_key_that_is_not_the_certificates_is_refused(tmp_path: Path, hsm: Hsm, ca: TestCA) -> None:
    office, other = ca.issue("thads-hn", signing=True), ca.issue("other", signing=True)
    hsm.holding(other, f"{tmp_path.name}-other")
    with pytest.raises(ValueError, match="not the key"):
        Pkcs11Key(hsm.module, hsm.token, f"{tmp_path.name}-other", HSM_PIN, load_certificates(office.cert)[0])
    # No session of the token is open (a refused key lets its session go), so the PIN is asked again.
    with pytest.raises(ValueError, match="PinIncorrect"):
        Pkcs11Key(hsm.module, hsm.token, f"{tmp_path.name}-other", "0000", load_certificates(other.cert)[0])
    with pytest.raises(ValueError, match="NoSuchKey"):
        Pkcs11Key(hsm.module, hsm.token, "no-such-key", HSM_PIN, load_certificates(other.cert)[0])


def test_hsm_signers_come_from_the_signing_configuration(
    tmp_path: Path, hsm: Hsm, ca: TestCA, office: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = f"{tmp_path.name}-configured"
    hsm.holding(office, label)
    monkeypatch.setenv("THADS_TEST_HSM_PIN", HSM_PIN)
    (tmp_path / "signing.toml").write_text(
        f'[offices.THADS-HN]\nsource = "pkcs11"\nchain_file = "{office.cert}"\n'
        f'pkcs11_module = "{hsm.module}"\ntoken_label = "{hsm.token}"\nkey_label = "{label}"\n'
        'pin_env = "THADS_TEST_HSM_PIN"\n',
        "utf-8",
    )
    signer = load_office_signers(tmp_path)["THADS-HN"]
    try:
        order = an_order()
        assert verify(order, signer.sign(order), [ca.cert])
    finally:
        signer.key.close()


def test_the_example_signing_configuration_is_well_formed() -> None:
    example = Path(__file__).resolve().parent.parent / "config" / "signing.example.toml"
    config = SigningConfig.model_validate(tomllib.loads(example.read_text("utf-8")))
    assert {office: entry.source for office, entry in config.offices.items()} == {
        "THADS-HN": "software",
        "THADS-HCM": "pkcs11",
    }
