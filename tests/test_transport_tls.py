"""Mutual TLS to a partner: the gateway presents the client certificate its configuration names, checks
the partner's certificate against the configured CA, and a refused handshake is reported as such."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.connectors.registry import build_connector
from gateway.connectors.resilience import GuardedConnector
from gateway.partners import BreakerPolicy, Partner, Platforms, RetryPolicy, TlsFiles, XRoadPlatform
from gateway.simulators.partners import banks
from gateway.simulators.partners.behaviour import Behaviour
from gateway.simulators.partners.servers import start_partners
from gateway.simulators.xroad import SecurityServerSim
from tests.support.pki import TestCA
from tests.test_lookup_batches import PERSON, request


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ours = TestCA(tmp_path / "ours", "Partner CA")
    other = TestCA(tmp_path / "other", "Other CA")
    return {
        "ca": ours,
        "server": ours.issue("bank.example", server=True),
        "client": ours.issue("thads-gateway"),
        "stranger": other.issue("thads-gateway"),
        "other_ca": other,
    }


@pytest.fixture
async def tls_bank(
    pki: dict[str, Any], unused_tcp_port: int, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    """The bank simulator behind TLS that requires a client certificate issued by the partner's CA."""
    monkeypatch.setenv("TEST_PARTNER_TOKEN", "simulator-token")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"].path))
    context.load_cert_chain(pki["server"].cert, pki["server"].key)
    context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(banks.make_app(Behaviour(latency=(0.0, 0.0), error_rate=0.0)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{unused_tcp_port}/vcb"
    finally:
        await runner.cleanup()


def partner(endpoint: str, tls: TlsFiles | None) -> Partner:
    return Partner(
        code="BANK-VCB",
        kind="bank",
        protocol="rest",
        endpoint=endpoint,
        timeout_seconds=5,
        retry=RetryPolicy(attempts=1),
        breaker=BreakerPolicy(failures=5, recovery_seconds=60),
        credentials="TEST_PARTNER_TOKEN",
        tls=tls,
    )


async def lookup(p: Partner) -> Any:
    async with aiohttp.ClientSession() as session:
        connector = await build_connector(p, session)
        return await GuardedConnector(p, connector).call(request(1, PERSON))


async def test_the_configured_client_certificate_is_accepted(tls_bank: str, pki: dict[str, Any]) -> None:
    tls = TlsFiles(cert=str(pki["client"].cert), key=str(pki["client"].key), ca=str(pki["ca"].path))
    outcome = await lookup(partner(tls_bank, tls))
    assert outcome.status == "found", outcome.reason


async def test_a_certificate_from_another_ca_is_refused(tls_bank: str, pki: dict[str, Any]) -> None:
    tls = TlsFiles(cert=str(pki["stranger"].cert), key=str(pki["stranger"].key), ca=str(pki["ca"].path))
    outcome = await lookup(partner(tls_bank, tls))
    assert outcome.status == "unavailable"
    assert outcome.reason and "TLS" in outcome.reason, outcome.reason


async def test_no_client_certificate_is_refused(tls_bank: str, pki: dict[str, Any]) -> None:
    outcome = await lookup(partner(tls_bank, TlsFiles(ca=str(pki["ca"].path))))
    assert outcome.status == "unavailable"
    assert outcome.reason and "TLS" in outcome.reason, outcome.reason


async def test_a_partner_whose_certificate_is_not_from_the_configured_ca_is_not_trusted(
    tls_bank: str, pki: dict[str, Any]
) -> None:
    tls = TlsFiles(cert=str(pki["client"].cert), key=str(pki["client"].key), ca=str(pki["other_ca"].path))
    outcome = await lookup(partner(tls_bank, tls))
    assert outcome.status == "unavailable"
    assert outcome.reason and "certificate" in outcome.reason, outcome.reason


async def test_an_unreadable_certificate_stops_start_up_naming_the_partner(tmp_path: Path) -> None:
    tls = TlsFiles(cert=str(tmp_path / "missing.crt"), key=str(tmp_path / "missing.key"))
    with pytest.raises(ValueError, match=r"BANK-VCB.*missing\.crt"):
        await lookup(partner("https://127.0.0.1:9/vcb", tls))


def test_relative_paths_are_read_from_the_config_directory(tmp_path: Path) -> None:
    resolved = TlsFiles(cert="tls/gw.crt", key="tls/gw.key", ca="/etc/ca.pem").resolved(tmp_path)
    assert resolved.cert == str(tmp_path / "tls/gw.crt") and resolved.ca == "/etc/ca.pem"
    with pytest.raises(ValueError, match="needs its key"):
        TlsFiles(cert="gw.crt")


async def test_the_security_server_is_reached_over_mutual_tls(pki: dict[str, Any], tmp_path: Path) -> None:
    """The X-Road transport presents the certificate of [platforms.xroad].tls to its security server,
    which accepts only certificates of its CA: the right one goes through, another CA's is refused."""
    gateway, bank = "XROADVN/GOV/000.00.00.G22/THADS-GW", "XROADVN/COM/0100112437/BANK-VCB"
    partners = await start_partners(error_rate=0.0, latency=(0.0, 0.0))
    sim = SecurityServerSim(
        {f"{bank}/accounts": partners.urls["BANK-VCB"]},
        {gateway: {f"{bank}/accounts"}},
        backend_headers={bank: {"Authorization": "Bearer simulator-token"}},
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"].path))
    context.load_cert_chain(pki["server"].cert, pki["server"].key)
    context.verify_mode = ssl.CERT_REQUIRED
    url = await sim.start(ssl_context=context)
    p = Partner(
        code="BANK-VCB",
        kind="bank",
        protocol="rest",
        transport="xroad",
        xroad={"subsystem": bank, "service_code": "accounts"},
        timeout_seconds=5,
        retry=RetryPolicy(attempts=1),
    )
    try:
        outcomes = []
        for issued in (pki["client"], pki["stranger"]):
            tls = TlsFiles(cert=str(issued.cert), key=str(issued.key), ca=str(pki["ca"].path))
            platforms = Platforms(xroad=XRoadPlatform(security_server=url, client=gateway, tls=tls))
            async with aiohttp.ClientSession() as session:
                connector = await build_connector(p, session, platforms=platforms)
                outcomes.append(await GuardedConnector(p, connector).call(request(1, PERSON)))
    finally:
        await sim.close()
        await partners.close()
    accepted, refused = outcomes
    assert accepted.status == "found" and accepted.evidence and accepted.evidence["verified"], accepted
    assert refused.status == "unavailable" and refused.reason and "TLS" in refused.reason, refused
