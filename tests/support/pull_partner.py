"""A pull bank as a process of its own, for chaos tests: ``python -m tests.support.pull_partner GATEWAY_URL
KEY_FILE JOURNAL [PACE]``. It runs :class:`gateway.simulators.partners.pull.PullPartner` with a journal (so a
restart executes nothing twice) and takes ``PACE`` seconds per item, so that a kill lands mid-batch."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from gateway.security.keys import load_private_key
from gateway.simulators.partners.pull import PullBankDesk, PullPartner, bank_answer

BANK = "BANK-VPB"


class PacedPartner(PullPartner):
    pace = 0.0

    async def _handle(self, session: aiohttp.ClientSession, item: Mapping[str, Any]) -> bool:
        await asyncio.sleep(self.pace)
        return await super()._handle(session, item)


async def main(url: str, key_file: Path, journal: Path, pace: float) -> None:
    partner = PacedPartner(
        BANK,
        url,
        load_private_key(key_file.read_bytes()),
        "thads-gateway",
        desk=PullBankDesk(BANK),
        answer_lookup=bank_answer(BANK),
        wait=2,
        limit=20,
        journal=journal,
        pause=0.2,
    )
    partner.pace = pace
    async with aiohttp.ClientSession() as session:
        await partner.run(session)


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4] if len(sys.argv) > 4 else 0)
        )
    )
