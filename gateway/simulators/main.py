"""``python run.py simulate``: the partners around the gateway, as real servers/clients on loopback."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from gateway.settings import Settings
from gateway.simulators.case_system import CaseSystemSimulator
from gateway.simulators.court import CourtSimulator


async def serve(settings: Settings, args: argparse.Namespace) -> None:
    """Run the simulated court and case system. Key files come from the demo's key directory."""
    keys = Path(os.environ.get("GATEWAY_DEMO_KEYS", settings.home / "keys"))
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
