"""``run.py data-access``: what the gateway did with one person's data, from the audit trail."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from gateway.cli.evidence import operator
from gateway.domain.errors import DomainError
from gateway.settings import Settings


def _data_access(settings: Settings, args: argparse.Namespace) -> int:
    """Print the same report as ``GET /v1/data-access`` (exit 2 for an ID that is not one)."""
    from gateway.security.signing import Signer
    from gateway.services.citizens import CitizenService
    from gateway.storage.database import Database
    from gateway.validation import catalog

    signer = Signer.from_file(settings.path(settings.signing.private_key_file), create=False)

    async def run() -> dict[str, Any]:
        db = Database(settings.resolved_database_url)
        try:
            service = CitizenService(db, catalog(), signer.pseudonym_pepper())
            return await service.data_access(f"cli:{operator(args)}", None, args.person_id)
        finally:
            await db.dispose()

    try:
        report = asyncio.run(run())
    except DomainError as exc:
        reasons = "; ".join(v.message for v in exc.violations) or str(exc)
        print(f"data-access: {reasons}", file=sys.stderr)
        return 2
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def register(sub: Any) -> None:
    report = sub.add_parser(
        "data-access",
        help="every lookup, order and notice that named a person (the data-access report; audited)",
    )
    report.add_argument("person_id", help="the person's 12-digit personal identification number")
    report.add_argument("--actor", help="who asks, for the audit log (default: $USER)")
    report.set_defaults(func=_data_access)
