"""deploy/nginx/xroad-mtls.conf in front of a real gateway: a security server's verified certificate gets
its X-Road call through, certificate headers a caller writes itself are replaced (mTLS door) or dropped
(plain door, deploy/nginx/gateway.conf), and a connection without a trusted certificate never reaches the
api. Runs the machine's nginx (Debian: ``apt-get install nginx-light``); skipped without one."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.web.app import create_app
from tests.conftest import COURT, ROOT, fresh_judgment, make_world
from tests.support.gateway_procs import free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx-light)"
)

COURT_XROAD = "XROADVN/GOV/TAND-HN/CASES"
#: How long nginx may take to listen: a bound on waiting, never an assertion about speed.
STARTUP_SECONDS = 20


@dataclass
class Pem:
    cert: Path
    key: Path
    subject: str


def self_signed(directory: Path, name: str, common_name: str, ip: str | None = None) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "THADS"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    pem = Pem(directory / f"{name}.crt", directory / f"{name}.key", subject.rfc4514_string())
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pem


@dataclass
class Edge:
    plain: str
    mtls: str
    server: Pem
    security_server: Pem
    stranger: Pem


def nginx_conf(home: Path, upstream: int, plain: int, mtls: int) -> Path:
    """The deploy/nginx files as shipped, with this test's ports, upstream and certificate paths."""
    conf_d = home / "conf.d"
    conf_d.mkdir()
    gateway = (ROOT / "deploy" / "nginx" / "gateway.conf").read_text("utf-8")
    gateway = gateway.replace("api1:8080", f"127.0.0.1:{upstream}").replace(
        "    server api2:8080 max_fails=3 fail_timeout=10s;\n", ""
    )
    (conf_d / "gateway.conf").write_text(
        gateway.replace("listen 8080;", f"listen 127.0.0.1:{plain};"), "utf-8"
    )
    xroad = (ROOT / "deploy" / "nginx" / "xroad-mtls.conf").read_text("utf-8")
    xroad = xroad.replace("/etc/nginx/xroad", str(home / "xroad")).replace(
        "listen 8443 ssl;", f"listen 127.0.0.1:{mtls} ssl;"
    )
    (conf_d / "xroad-mtls.conf").write_text(xroad, "utf-8")
    temp = home / "temp"
    temp.mkdir()
    main = home / "nginx.conf"
    # Root starts workers as nobody, who could not read this test's private directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main.write_text(
        f"{user}worker_processes 1;\npid {home}/nginx.pid;\nerror_log {home}/error.log notice;\n"
        "events { worker_connections 64; }\n"
        "http {\n  access_log off;\n"
        + "".join(
            f"  {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {conf_d}/*.conf;\n}}\n",
        "utf-8",
    )
    return main


def wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx stopped: {log.read_text('utf-8', 'replace') if log.exists() else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {port} within {STARTUP_SECONDS} s")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def edge(home: Path) -> Iterator[Callable[[int], Edge]]:
    """Starts nginx in front of the api listening on a given port (the test starts the api first)."""
    started: list[subprocess.Popen[bytes]] = []
    certs = home / "xroad"
    certs.mkdir()
    server = self_signed(certs, "server", "gateway.test", ip="127.0.0.1")
    security_server = self_signed(certs, "ss", "ss1.gateway.thads.gov.vn")
    stranger = self_signed(certs, "stranger", "ss1.gateway.thads.gov.vn")  # the same name, another key
    (certs / "security-servers.pem").write_bytes(security_server.cert.read_bytes())

    def start(upstream: int) -> Edge:
        plain, mtls = free_port(), free_port()
        conf = nginx_conf(home, upstream, plain, mtls)
        assert NGINX is not None
        process = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(home), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        wait_for(plain, process, home / "error.log")
        wait_for(mtls, process, home / "error.log")
        return Edge(
            f"http://127.0.0.1:{plain}", f"https://127.0.0.1:{mtls}", server, security_server, stranger
        )

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def tls(edge: Edge, client: Pem | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(edge.server.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


async def post(url: str, context: ssl.SSLContext | None, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/v1/judgments",
            json=fresh_judgment(),
            headers=headers,
            ssl=context or False,
            allow_redirects=False,
        ) as resp,
    ):
        return resp.status, await resp.text()


def xroad(**more: str) -> dict[str, str]:
    return {
        "X-Road-Client": COURT_XROAD,
        "X-Road-Id": str(uuid.uuid4()),
        "X-Road-UserId": "VN001085012345",
        **more,
    }


async def test_only_a_verified_security_server_certificate_gets_an_x_road_call_through(
    home: Path, fresh_database_url: str, aiohttp_server: Callable[..., Any], edge: Callable[[int], Edge]
) -> None:
    world = make_world(home / "gw", fresh_database_url)
    certs = home / "xroad"
    subject = x509.load_pem_x509_certificate((certs / "ss.crt").read_bytes()).subject.rfc4514_string()
    (world.settings.config_dir / "xroad.toml").write_text(
        '[provider]\nenabled = true\n[provider.proxy]\naddresses = ["127.0.0.1"]\n'
        f'[[security_server]]\nname = "ss1"\nsubjects = ["{subject}"]\n'
        f'[[client]]\nxroad_id = "{COURT_XROAD}"\nclient = "{COURT}"\n',
        "utf-8",
    )
    api = await aiohttp_server(create_app(world.settings), host="127.0.0.1")
    door = edge(api.port)
    forged = {"X-Client-Cert-Verified": "SUCCESS", "X-Client-Cert-Subject": subject}

    # The security server's own certificate: accepted as the court.
    status, body = await post(door.mtls, tls(door, door.security_server), xroad())
    assert status == 202, body
    # A certificate of the same name and another key: nginx refuses the connection's request itself.
    status, _ = await post(door.mtls, tls(door, door.stranger), {**xroad(), **forged})
    assert status == 400
    # No certificate at all: likewise.
    status, _ = await post(door.mtls, tls(door, None), {**xroad(), **forged})
    assert status == 400
    # The plain door: the certificate headers a caller writes are dropped, so its X-Road call is refused.
    status, body = await post(door.plain, None, {**xroad(), **forged})
    assert status == 401 and "trusted security server" in body
    # And a token still works there, as ever.
    status, body = await post(door.plain, None, world.court_headers())
    assert status == 202, body
