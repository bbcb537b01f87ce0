"""Signed-judgment verification against the simulated trust services (a real CA, OCSP responder, CRL and
TSA on loopback): one test per outcome. The PKI and the signed documents are made once for the module."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
import tracemalloc
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from gateway.signatures import verify as verify_module
from gateway.signatures.policy import SignaturePolicy, SignerBinding, decide, policies_from_mapping
from gateway.signatures.trust import TrustList
from gateway.signatures.verify import verify_pdf
from gateway.simulators.trust import (
    SIGNED_EARLIER_AGO,
    SUBJECTS,
    TrustServices,
    judgment_pdf,
    sign_pdf,
    start_trust_services,
)
from tests.support.loop_thread import LoopThread

SIGNERS = {org: SignerBinding(org, cn) for org, cn in SUBJECTS.values()}


def pdf(padding: int = 0) -> bytes:
    return judgment_pdf(padding=padding)


def hide_content(signed: bytes) -> bytes:
    """An incremental update that replaces the page's text: what a second signed revision would hide."""
    w = IncrementalPdfFileWriter(BytesIO(signed))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    new = w.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (Ban an da bi sua) Tj ET"))
    page["/Contents"] = new
    w.update_container(page)
    out = BytesIO()
    w.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


class World:
    def __init__(
        self, services: TrustServices, loop: asyncio.AbstractEventLoop, docs: dict[str, bytes]
    ) -> None:
        self.services = services
        self.loop = loop
        self.docs = docs
        self.trust = TrustList.from_certificates("test", [_der(services.root_pem())])


def _der(pem_bytes: bytes) -> bytes:
    from asn1crypto import pem

    return bytes(pem.unarmor(pem_bytes)[2])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    background = LoopThread()
    run, loop = background.run, background.loop
    services: TrustServices = run(start_trust_services(tmp_path_factory.mktemp("trust-keys")))
    earlier = dt.datetime.now(dt.UTC) - SIGNED_EARLIER_AGO
    plain = pdf()
    docs = {
        "plain": plain,
        "valid": run(sign_pdf(plain, services, "tand-hn")),
        "other_court": run(sign_pdf(plain, services, "tand-hcm")),
        "revoked": run(sign_pdf(plain, services, "tand-hn-revoked")),
        "revoked_later": run(sign_pdf(plain, services, "tand-hn-revoked-later", at=earlier)),
        "expired": run(sign_pdf(plain, services, "tand-hn-expired")),
        "unknown_root": run(sign_pdf(plain, services, "tand-hn", rogue=True)),
        "no_timestamp": run(sign_pdf(plain, services, "tand-hn", timestamp=False)),
        "large": run(sign_pdf(pdf(padding=10_000_000), services, "tand-hn")),
    }
    signed = docs["valid"]
    docs["modified"] = signed.replace(b"Ban an so 12", b"Ban an so 99")
    docs["wrapped"] = run(sign_pdf(hide_content(signed), services, "tand-hn", field_name="Signature2"))
    try:
        yield World(services, loop, docs)
    finally:
        run(services.close())
        background.close()


def policy(revocation: str = "hard-fail") -> SignaturePolicy:
    return SignaturePolicy("judgment.delivery", revocation=revocation, signers=SIGNERS, budget_seconds=30)  # type: ignore[arg-type]


def check(report: Any, name: str) -> str:
    return str(next(c.result for c in report.signatures[0].checks if c.name == name))


async def test_valid(world: World) -> None:
    report = await verify_pdf(world.docs["valid"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "valid", report.reasons
    data = json.loads(json.dumps(report.to_dict()))
    assert data["signer"]["organization"] == "TAND-HN"
    assert len(data["signer"]["certificate_sha256"]) == 64
    assert data["signing_time"] and data["signatures"][0]["timestamp"]["valid"] is True
    assert data["trust_list"]["anchors"][0]["sha256"] == world.trust.anchors[0].sha256
    kinds = {r["kind"] for r in data["signatures"][0]["revocation_data"]}
    assert kinds & {"ocsp", "crl"}
    assert set(data["library"]) == {"pyhanko", "pyhanko-certvalidator"}
    assert decide(policy(), report.outcome, tuple(report.warnings)).action == "accept"


async def test_unsigned(world: World) -> None:
    report = await verify_pdf(world.docs["plain"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "unsigned"
    assert decide(policy(), report.outcome).action == "refuse"
    optional = SignaturePolicy("judgment.delivery", required=False)
    assert decide(optional, report.outcome).action == "accept"


async def test_not_a_pdf_is_invalid(world: World) -> None:
    report = await verify_pdf(b"%PDF-1.7 garbage", world.trust, policy(), "TAND-HN")
    assert report.outcome == "invalid"


async def test_signed_by_another_court(world: World) -> None:
    report = await verify_pdf(world.docs["other_court"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "invalid"
    assert check(report, "signer") == "fail"
    assert check(report, "chain") == "pass"


async def test_sender_without_configured_signer_is_refused(world: World) -> None:
    report = await verify_pdf(world.docs["valid"], world.trust, policy(), "TAND-DN")
    assert report.outcome == "invalid"
    assert check(report, "signer") == "fail"


async def test_modified_after_signing(world: World) -> None:
    report = await verify_pdf(world.docs["modified"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "invalid"
    assert check(report, "integrity") == "fail"


async def test_revoked_before_signing(world: World) -> None:
    report = await verify_pdf(world.docs["revoked"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "invalid"
    assert check(report, "revocation") == "fail"


async def test_revoked_after_signing_is_still_valid(world: World) -> None:
    report = await verify_pdf(world.docs["revoked_later"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "valid", report.reasons
    assert check(report, "revocation") == "pass"


async def test_revoked_after_signing_without_timestamp_cannot_be_proven(world: World) -> None:
    # The same certificate, but nothing proves the signature predates the revocation.
    report = await verify_pdf(world.docs["no_timestamp"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "valid", report.reasons  # tand-hn itself is not revoked
    assert check(report, "timestamp") == "skipped"


async def test_expired_certificate(world: World) -> None:
    report = await verify_pdf(world.docs["expired"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "invalid"
    assert check(report, "validity") == "fail"


async def test_unknown_root(world: World) -> None:
    report = await verify_pdf(world.docs["unknown_root"], world.trust, policy(), "TAND-HN")
    assert report.outcome == "invalid"
    assert check(report, "chain") == "fail"


async def test_revocation_down_soft_fail_is_flagged(world: World) -> None:
    world.services.revocation_up = False
    try:
        report = await verify_pdf(world.docs["valid"], world.trust, policy("soft-fail"), "TAND-HN")
    finally:
        world.services.revocation_up = True
    assert report.outcome == "valid", report.reasons
    assert check(report, "revocation") == "skipped"
    assert report.warnings
    assert decide(policy("soft-fail"), report.outcome, tuple(report.warnings)).action == "flag"


async def test_revocation_down_hard_fail_is_not_valid(world: World) -> None:
    world.services.revocation_up = False
    try:
        report = await verify_pdf(world.docs["valid"], world.trust, policy("hard-fail"), "TAND-HN")
    finally:
        world.services.revocation_up = True
    assert report.outcome == "indeterminate", report.reasons
    assert check(report, "revocation") == "indeterminate"
    assert decide(policy(), report.outcome, tuple(report.reasons)).action == "refuse"


async def test_revocation_look_ups_go_only_to_the_allowed_hosts(world: World) -> None:
    allowed = dataclasses.replace(policy(), revocation_hosts=(world.services.url.split("//")[1],))
    report = await verify_pdf(world.docs["valid"], world.trust, allowed, "TAND-HN")
    assert report.outcome == "valid", report.to_dict()
    elsewhere = dataclasses.replace(policy(), revocation_hosts=("ocsp.ca.gov.vn",))
    report = await verify_pdf(world.docs["valid"], world.trust, elsewhere, "TAND-HN")
    assert report.outcome == "indeterminate"  # hard-fail: no revocation answer could be had
    assert check(report, "revocation") == "indeterminate"


async def test_signature_wrapping(world: World) -> None:
    report = await verify_pdf(world.docs["wrapped"], world.trust, policy(), "TAND-HN")
    assert len(report.signatures) == 2
    assert report.outcome == "invalid", report.reasons
    assert report.signatures[0].checks[1].name == "coverage"
    assert report.signatures[0].checks[1].result == "fail"


async def test_large_pdf_within_memory_bound_off_the_loop(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = world.docs["large"]
    assert len(data) > 10_000_000
    threads: list[int] = []
    original = verify_module._verify_in_thread

    def recording(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args)

    monkeypatch.setattr(verify_module, "_verify_in_thread", recording)
    tracemalloc.start()
    try:
        report = await verify_pdf(data, world.trust, policy(), "TAND-HN")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.outcome == "valid", report.reasons
    # The work ran in another thread, so the gateway's loop kept serving; and it held at most a few copies.
    assert threads and threads[0] != threading.get_ident()
    assert peak < 8 * len(data), peak


def test_policies_from_config() -> None:
    raw = {
        "signers": {"TAND-HN": {"organization": "TAND-HN"}},
        "documents": {"judgment.delivery": {"revocation": "soft-fail", "on_missing": "flag"}},
    }
    pol = policies_from_mapping(raw)["judgment.delivery"]
    assert pol.revocation == "soft-fail" and pol.on_missing == "flag"
    assert pol.binding("TAND-HN") == SignerBinding("TAND-HN")
    with pytest.raises(ValueError, match="unknown keys"):
        policies_from_mapping({"documents": {"x": {"revocaton": "soft-fail"}}})


def test_trust_list_refuses_private_keys(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="private key"):
        TrustList.load(tmp_path)


async def test_revocation_fetches_refuse_redirects_and_large_bodies() -> None:
    """The OCSP/CRL addresses come from the certificate under test: no redirect is followed, no body is
    read past the bound."""
    from aiohttp import ClientError, ClientSession, web

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:9/elsewhere")

    async def huge(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * (verify_module.MAX_REVOCATION_BYTES + 1))

    async def small(_: web.Request) -> web.Response:
        return web.Response(body=b"crl")

    app = web.Application()
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/huge", huge)
    app.router.add_get("/small", small)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ClientSession(middlewares=(verify_module.bounded_fetch,)) as session:
            for path in ("/redirect", "/huge"):
                with pytest.raises(ClientError):
                    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                        await response.read()
            async with session.get(f"http://127.0.0.1:{port}/small") as response:
                assert await response.read() == b"crl"
    finally:
        await runner.cleanup()
