"""The outbound URL policy's rules: https only (http to loopback only with the development setting), no
address a client could use to reach the gateway's own network — whatever form it is written in and
whatever a name resolves to — and, when a client's registration lists them, only its own hosts."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import tomllib
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.security.clients import ClientConfigError, ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.security.outbound import (
    LOOKUPS_AT_ONCE,
    OutboundPolicy,
    OutboundRefused,
    PolicyResolver,
    address_refusal,
)
from tests.conftest import ROOT

STRICT = OutboundPolicy()
DEV = OutboundPolicy(allow_http_loopback=True)

FORBIDDEN = {
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "169.254.169.254": "link-local",  # the cloud metadata service
    "fe80::1": "link-local",
    "100.64.0.1": "shared",
    "100.127.255.254": "shared",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",  # broadcast, inside 240.0.0.0/4
    "192.0.2.10": "private",  # documentation range
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped forms
    "::ffff:169.254.169.254": "link-local",
    "::ffff:10.0.0.1": "private",
    "::ffff:0.0.0.0": "unspecified",
    "2002:a9fe:a9fe::1": "link-local",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
    "2001:db8::1": "private",
}


@pytest.mark.parametrize(("address", "kind"), sorted(FORBIDDEN.items()))
def test_every_forbidden_address_class_is_refused(address: str, kind: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(address))

    assert refusal is not None and kind in refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_a_public_address_is_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_loopback_only_with_the_development_setting_and_nothing_else_with_it() -> None:
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert address_refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allow_loopback=True) is None
    for other in ("169.254.169.254", "10.0.0.1", "0.0.0.0"):
        assert address_refusal(ipaddress.ip_address(other), allow_loopback=True) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://case.example.gov.vn/hook",  # plain http to anyone
        "ftp://case.example.gov.vn/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/",
        "https://0.0.0.0:8080/",
        "https://[::]/",
        "https://10.0.0.5/hook",
        "https://100.64.1.1/hook",
        "https://224.0.0.1/",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://user:secret@case.example.gov.vn/hook",
        "https:///nohost",
        "https://case.example.gov.vn:99999/",
    ],
)
def test_urls_refused_before_any_dns(url: str) -> None:
    (violation,) = STRICT.url_violations(url, "$.callback_url")

    assert violation.path == "$.callback_url"


def test_http_only_to_loopback_and_only_with_the_development_setting() -> None:
    for url in ("http://127.0.0.1:9111/hook", "http://localhost:9111/hook", "http://[::1]:9/x"):
        assert STRICT.url_violations(url, "$.url")
        assert DEV.url_violations(url, "$.url") == []
    assert DEV.url_violations("http://case.example.gov.vn/hook", "$.url")
    assert DEV.url_violations("http://10.0.0.1/hook", "$.url")
    assert DEV.url_violations("https://169.254.169.254/", "$.url")
    assert STRICT.url_violations("https://case.example.gov.vn/hook", "$.url") == []


def test_a_clients_outbound_hosts_are_the_only_ones_it_may_name() -> None:
    hosts = ("case.example.gov.vn", "Backup.Example.Gov.VN.")

    assert STRICT.url_violations("https://case.example.gov.vn/h", "$.url", hosts) == []
    assert STRICT.url_violations("https://backup.example.gov.vn./h", "$.url", hosts) == []
    (refused,) = STRICT.url_violations("https://other.example.gov.vn/h", "$.url", hosts)
    assert "outbound hosts" in refused.message
    assert STRICT.url_violations("https://case.example.gov.vn/h", "$.url", ()) != []


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1", "127.1"])
async def test_a_name_resolving_to_loopback_is_refused_at_registration_and_at_send_time(host: str) -> None:
    url = f"https://{host}/hook"

    (violation,) = await STRICT.violations(url, "$.url")
    assert violation.path == "$.url" and "loopback" in violation.message
    with pytest.raises(OutboundRefused):
        await STRICT.check(url)


async def test_a_name_that_does_not_resolve_is_accepted_at_registration_and_checked_at_send_time() -> None:
    url = "https://no-such-host.invalid/hook"

    assert await STRICT.violations(url, "$.url") == []
    await STRICT.check(url)  # not refused: the send fails on it like on any unreachable receiver


async def test_a_flood_of_slow_names_holds_only_a_few_resolver_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # getaddrinfo runs in the loop's default thread pool, which the storage layer's commits share.
    loop = asyncio.get_running_loop()
    running = peak = 0

    async def slow_getaddrinfo(*_args: object, **_kw: object) -> list[object]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.Event().wait()  # a resolver that never answers
        finally:
            running -= 1
        return []

    monkeypatch.setattr(loop, "getaddrinfo", slow_getaddrinfo)
    quick = OutboundPolicy(resolve_timeout_seconds=0.2)
    answers = await asyncio.gather(
        *(quick.violations(f"https://slow{i}.example/hook", "$.url") for i in range(20))
    )
    assert answers == [[]] * 20  # unresolved by the deadline: accepted, checked again at each send
    assert peak == LOOKUPS_AT_ONCE


async def test_the_sessions_resolver_refuses_a_forbidden_answer() -> None:
    resolver = PolicyResolver(STRICT)
    try:
        with pytest.raises(OSError, match="outbound policy"):
            await resolver.resolve("localhost", 443)
        allowed = await PolicyResolver(DEV).resolve("localhost", 443)
        assert allowed and all(ipaddress.ip_address(r["host"]).is_loopback for r in allowed)
    finally:
        await resolver.close()


def test_a_client_file_lists_its_outbound_hosts(tmp_path: Path) -> None:
    store = ClientStore(tmp_path / "clients", recheck_seconds=0)
    pem = public_pem(generate_keypair("ed25519").public_key())

    assert store.add("THADS-HN", pem, ["assets.inquire"]).outbound_hosts is None
    client = store.add("THADS-HN", pem, ["assets.inquire"], outbound_hosts=["case.example.gov.vn"])
    assert client.outbound_hosts == ("case.example.gov.vn",)
    written = tomllib.loads((tmp_path / "clients" / "THADS-HN.toml").read_text("utf-8"))
    assert written["outbound_hosts"] == ["case.example.gov.vn"]
    assert store.add("THADS-HN", pem, ["assets.inquire"]).outbound_hosts == ("case.example.gov.vn",)
    with pytest.raises(ClientConfigError):
        store.add("THADS-HN", pem, ["assets.inquire"], outbound_hosts=["https://case.example.gov.vn/"])


def test_clients_add_takes_the_hosts_a_client_may_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "gateway.toml", config / "gateway.toml")
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(config))
    assert main(["keys", "--out", str(tmp_path / "keys"), "--name", "THADS-HN"]) == 0
    add = ["clients", "add", "--id", "THADS-HN", "--public-key", str(tmp_path / "keys" / "THADS-HN.pub")]

    assert main([*add, "--grant", "assets.inquire", "--outbound-host", "case.example.gov.vn"]) == 0
    client = ClientStore(config / "clients").get("THADS-HN")
    assert client is not None and client.outbound_hosts == ("case.example.gov.vn",)
