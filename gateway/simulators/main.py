"""``python run.py simulate``: the partners around the gateway, as real servers/clients on loopback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from gateway.partners import load_partners
from gateway.settings import Settings
from gateway.simulators.case_system import CaseSystemSimulator
from gateway.simulators.court import CourtSimulator
from gateway.simulators.partners.servers import KINDS, start_partners

log = logging.getLogger(__name__)

# Where config/partners.toml puts them, for a configuration directory without that file.
DEFAULT_PORTS = {"land": 9101, "bank": 9102, "tax": 9103, "vehicle": 9104, "population": 9105}


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


async def serve(settings: Settings, args: argparse.Namespace) -> None:
    """Run the partner simulators and, unless ``--partners-only``, the simulated court and case system.
    Key files come from the demo's key directory; BANK-TCB signs its callbacks with ``BANK-TCB.key``."""
    keys = Path(os.environ.get("GATEWAY_DEMO_KEYS", settings.home / "keys"))
    tcb_key = keys / "BANK-TCB.key"
    partners = await start_partners(
        ports={kind: port for kind, port in partner_ports(settings).items() if kind in KINDS},
        modes=partner_modes(args),
        bank_callback_key=tcb_key if tcb_key.exists() else None,
        audience=settings.auth.audience,
    )
    try:
        if getattr(args, "partners_only", False):
            await asyncio.Event().wait()  # until cancelled (Ctrl-C, SIGTERM)
            return
        court = CourtSimulator(
            settings.api.public_url, "TAND-HN", "THADS-HN", keys / "TAND-HN.key", settings.auth.audience
        )
        case_system = CaseSystemSimulator(
            settings.api.public_url,
            "THADS-HN",
            os.environ.get("GATEWAY_DEMO_CASE_QUEUE", "thads-hn.judgments"),
            keys / "THADS-HN.key",
            settings.auth.audience,
            settings.broker_url,
        )
        await asyncio.gather(case_system.run(), court.run(args.court_interval, args.court_count))
    finally:
        await partners.close()
