"""``python run.py simulate``: the partners around the gateway, as real servers/clients on loopback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from gateway.demo import CASE_QUEUE, PARTNER_CLIENTS, ensure_demo_clients, inbox_urls, register_command
from gateway.partners import load_partners
from gateway.settings import Settings
from gateway.signatures.trust import TrustList
from gateway.simulators.case_system import CaseSystemSimulator
from gateway.simulators.court import CourtSimulator
from gateway.simulators.gateway_client import GatewayClient
from gateway.simulators.partners.pull import PullLoops, start_pull_partners
from gateway.simulators.partners.servers import KINDS, Partners, start_partners
from gateway.simulators.platforms import provided, start_platforms
from gateway.simulators.procuracy import ProcuracySimulator
from gateway.simulators.trust import judgment_pdf, pki_epoch, sign_pdf, start_trust_services

log = logging.getLogger(__name__)

# Where config/partners.toml puts them, for a configuration directory without that file.
DEFAULT_PORTS = {
    "land": 9101,
    "bank": 9102,
    "tax": 9103,
    "vehicle": 9104,
    "population": 9105,
    "police": 9106,
    "vneid": 9107,
}


def partner_ports(settings: Settings) -> dict[str, int]:
    """Port per partner kind, from the endpoints of ``config/partners.toml`` (and their overrides)."""
    ports: dict[str, int] = {}
    for partner in load_partners(settings.config_dir):
        port = urlsplit(partner.endpoint).port
        if port is not None and ports.setdefault(partner.kind, port) != port:
            log.warning("%s endpoints use several ports; simulating on %d", partner.kind, ports[partner.kind])
    return DEFAULT_PORTS | ports


def partner_modes(args: argparse.Namespace) -> dict[str, str]:
    """Modes per kind from ``--slow``, ``--failing`` and ``--down``; a kind named twice gets the later."""
    modes: dict[str, str] = {}
    for mode in ("slow", "failing", "down"):
        for kind in getattr(args, mode, None) or []:
            modes[kind] = mode
    return modes


def prepare_keys(
    settings: Settings, keys: Path, case_queue: str, only: tuple[str, ...] | None = None
) -> None:
    """Key pairs for the simulated court, case system and partners that call back (BANK-TCB, CA-HN,
    VNEID) or fetch their work (BANK-VPB), generated when missing (a fresh clone has none), and
    registered as clients in this configuration directory when the gateway does not know them yet;
    ``only``: these clients alone. Clients already registered are left alone: they may be an
    operator's. Every step is logged, because the gateway refuses (401) a simulator whose public key it
    does not know."""
    inboxes = inbox_urls(settings)
    done = ensure_demo_clients(
        keys, settings.clients_dir, case_queue, replace=False, inboxes=inboxes, only=only
    )
    if done.created:
        log.warning(
            "generated simulator key pairs for %s under %s; the gateway accepts the simulators' "
            "requests only once it knows the matching public keys (registered clients)",
            ", ".join(done.created),
            keys,
        )
    for client_id in done.registered:
        log.warning(
            "registered simulator client %s in %s, enough for a gateway using this configuration "
            "directory; a gateway using another must know its public key first: %s",
            client_id,
            settings.clients_dir,
            register_command(client_id, keys, case_queue, inboxes),
        )
    for client_id in done.unknown_to_gateway:
        log.warning(
            "client %s in %s is revoked or lacks the key in %s; the gateway refuses the simulator's "
            "requests (401) until its public key is registered: %s",
            client_id,
            settings.clients_dir,
            keys,
            register_command(client_id, keys, case_queue, inboxes),
        )


async def serve(settings: Settings, args: argparse.Namespace) -> None:
    """Run the partner simulators and, unless ``--partners-only``, the simulated court and case system.
    Key files come from the demo's key directory (made there when missing, see :func:`prepare_keys`);
    BANK-TCB signs its callbacks with ``BANK-TCB.key``."""
    keys = Path(os.environ.get("GATEWAY_DEMO_KEYS", settings.home / "var" / "keys"))
    case_queue = os.environ.get("GATEWAY_DEMO_CASE_QUEUE", CASE_QUEUE)
    partners_only = bool(getattr(args, "partners_only", False))
    # Before the partners start: the ones that call the gateway back sign with these keys, and the
    # gateway must know them (else every late report, police answer and VNeID status gets 401).
    prepare_keys(settings, keys, case_queue, only=PARTNER_CLIENTS if partners_only else None)
    # Banks in pull mode are never called: they fetch their work from the gateway with their own token
    # (their test switches on the banks' server).
    pull_banks = [p.code for p in load_partners(settings.config_dir) if p.pulls and p.kind == "bank"]
    pulling = start_pull_partners(pull_banks, settings.api.public_url, keys, settings.auth.audience, wait=5)
    try:
        partners = await _start_partners(settings, args, keys, pulling)
    except BaseException:
        await pulling.close()
        raise
    try:
        # The exchange platforms partners.toml routes partners through ([platforms]), in front of them.
        platforms = await start_platforms(settings.config_dir, provided(settings))
    except BaseException:
        await pulling.close()
        await partners.close()
        raise
    try:
        if partners_only:
            await asyncio.Event().wait()  # until cancelled (Ctrl-C, SIGTERM)
            return
        pki = settings.path(settings.simulate.pki_dir)
        trust = await start_trust_services(pki, port=settings.simulate.trust_port, epoch=pki_epoch(pki))

        async def sign(number: str) -> bytes:
            return await sign_pdf(judgment_pdf(f"Ban an so {number}"), trust, "tand-hn")

        court = CourtSimulator(
            settings.api.public_url,
            "TAND-HN",
            "THADS-HN",
            keys / "TAND-HN.key",
            settings.auth.audience,
            event_every=5,  # now and then a suspension of a judgment it pushed
            sign=sign,  # PAdES, time-stamped, as a court's system signs a judgment
        )
        await court.start_inbox(port=settings.simulate.court_port)
        procuracy = ProcuracySimulator(
            GatewayClient(settings.api.public_url, "VKS-HN", keys / "VKS-HN.key", settings.auth.audience),
            recommend_every=3,
        )
        await procuracy.start(port=settings.simulate.procuracy_port)
        case_system = CaseSystemSimulator(
            settings.api.public_url,
            "THADS-HN",
            case_queue,
            keys / "THADS-HN.key",
            settings.auth.audience,
            settings.broker_url,
        )
        try:
            await asyncio.gather(case_system.run(), court.run(args.court_interval, args.court_count))
        finally:
            await court.close()
            await procuracy.close()
            await trust.close()
    finally:
        await platforms.close()
        await pulling.close()
        await partners.close()


async def _start_partners(
    settings: Settings, args: argparse.Namespace, keys: Path, pulling: PullLoops
) -> Partners:
    tcb_key = keys / "BANK-TCB.key"
    return await start_partners(
        ports={kind: port for kind, port in partner_ports(settings).items() if kind in KINDS},
        modes=partner_modes(args),
        bank_callback_key=tcb_key if tcb_key.exists() else None,
        audience=settings.auth.audience,
        # The asynchronous bank pushes its order reports to the gateway's documents endpoint.
        gateway_url=settings.api.public_url,
        silent_banks=getattr(args, "silent", None) or (),
        # The police unit pushes its late answers as client CA-HN.
        police_key=keys / "CA-HN.key" if (keys / "CA-HN.key").exists() else None,
        # The notification service pushes delivery statuses and records consents as client VNEID.
        vneid_key=keys / "VNEID.key" if (keys / "VNEID.key").exists() else None,
        bank_routes=pulling.install,
        order_signature_anchors=order_signature_anchors(settings.config_dir),
    )


def order_signature_anchors(config_dir: Path) -> list[x509.Certificate] | None:
    """The roots the simulated banks check the offices' signatures against: the installation's trust
    anchors when it signs what it sends (``signing.toml``, as the demo does); otherwise None, and the banks
    do not look at signatures."""
    if not (config_dir / "signing.toml").exists():
        return None
    roots = TrustList.load(config_dir / "trust").roots()
    return [x509.load_der_x509_certificate(root.dump()) for root in roots] or None
