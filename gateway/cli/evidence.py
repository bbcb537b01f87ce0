"""``run.py audit`` and ``run.py evidence``: the audit trail and the evidence it gives."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.settings import Settings


def operator(args: argparse.Namespace) -> str:
    """Who runs an operator command: ``--actor``, else the login name."""
    return str(getattr(args, "actor", None) or os.environ.get("USER") or getpass.getuser())


def _keys(settings: Settings, jwks_file: str | None) -> dict[str, ed25519.Ed25519PublicKey]:
    """The gateway's public keys: the current signing key's, and those of a JWKS file (rotated keys)."""
    from gateway.security.signing import Signer, keys_by_id, public_key_from_jwk

    keys: dict[str, ed25519.Ed25519PublicKey] = {}
    path = settings.path(settings.signing.private_key_file)
    if path.exists():
        signer = Signer.from_file(path, create=False)
        keys[signer.key_id] = public_key_from_jwk(signer.jwk)
    if jwks_file:
        keys |= keys_by_id(json.loads(Path(jwks_file).read_text("utf-8")))
    return keys


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "checkpoint":
        return _checkpoint(settings)
    return _verify(settings, args)


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    """Walk the chain against its signed checkpoints: 0 when everything holds, 1 naming the first record
    that does not."""
    from gateway.storage.checkpoints import AuditReport, verify_log
    from gateway.storage.database import Database

    keys = _keys(settings, args.jwks)
    if not keys:
        print("no public key (no signing key file, no --jwks): checkpoints cannot be checked")

    async def run() -> AuditReport:
        db = Database(settings.resolved_database_url)
        try:
            async with db.read() as conn:
                return await verify_log(conn, keys)
        finally:
            await db.dispose()

    report = asyncio.run(run())
    if not report.ok:
        first, *rest = report.ordered()
        print(f"audit chain broken at record {first.record}: {first.message}")
        for finding in rest:
            print(f"  also at record {finding.record}: {finding.message}")
        return 1
    print(f"audit chain intact: {report.records} record(s), {report.checkpoints} checkpoint(s)")
    last = report.last_checkpoint
    if last is not None:
        print(
            f"last checkpoint {last['id']}: record {last['audit_id']} at {last['at']}, "
            f"head {last['head_hash']}, key {last['key_id']}"
        )
    if report.unsigned:
        since = report.unsigned_since.isoformat() if report.unsigned_since else "?"
        print(
            f"{report.unsigned} record(s) after the last checkpoint (since {since}) are not signed yet: "
            "cutting them would go unnoticed until the next checkpoint"
        )
        a = settings.audit
        late = datetime.now(UTC) - timedelta(minutes=2 * a.checkpoint_every_minutes)
        since_at = report.unsigned_since
        if report.unsigned > 2 * a.checkpoint_every_records or (since_at is not None and since_at < late):
            print(
                f"warning: checkpoints are overdue (every {a.checkpoint_every_records} records or "
                f"{a.checkpoint_every_minutes:g} minutes): is a worker running? "
                "('audit checkpoint' signs one now)"
            )
    return 0


def _checkpoint(settings: Settings) -> int:
    """Sign the head of the chain now (if records came since the last checkpoint)."""
    from gateway.security.signing import Signer
    from gateway.storage import checkpoints
    from gateway.storage.database import Database

    signer = Signer.from_file(settings.path(settings.signing.private_key_file), create=False)

    async def run() -> tuple[dict[str, Any] | None, Any]:
        db = Database(settings.resolved_database_url)
        try:
            async with db.transaction() as conn:
                made = await checkpoints.create(conn, signer)
            async with db.read() as conn:
                return made, await checkpoints.latest(conn)
        finally:
            await db.dispose()

    try:
        made, last = asyncio.run(run())
    except checkpoints.ChainBroken as exc:
        print(f"no checkpoint: {exc} (run 'audit verify')")
        return 1
    if made is not None:
        print(
            f"checkpoint {made['id']}: record {made['audit_id']}, head {made['head_hash']}, "
            f"signed by {made['key_id']}"
        )
    elif last is not None:
        print(f"nothing new: checkpoint {last.id} already covers record {last.audit_id}")
    else:
        print("nothing to sign: the audit log is empty")
    return 0


def _evidence(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "export":
        return _export(settings, args)
    return _verify_bundle(settings, args)


def _export(settings: Settings, args: argparse.Namespace) -> int:
    """Write the evidence bundle of one message; the export itself is audited and signed into it."""
    from gateway.domain.identifiers import canonical_uuid
    from gateway.evidence import export
    from gateway.evidence_signatures import FIELD, signed_part
    from gateway.security.keys import write_private
    from gateway.security.signing import Signer
    from gateway.storage import checkpoints, signed_documents
    from gateway.storage import messages as store
    from gateway.storage.audit import AuditEntry, append
    from gateway.storage.database import Database

    message_id = canonical_uuid(args.message_id) or args.message_id
    signer = Signer.from_file(settings.path(settings.signing.private_key_file), create=False)

    async def run() -> dict[str, Any] | None:
        db = Database(settings.resolved_database_url)
        try:
            async with db.read() as conn:
                if await store.get(conn, message_id) is None:
                    return None
            async with db.transaction() as conn:
                await append(
                    conn,
                    AuditEntry(
                        actor=operator(args),
                        action="evidence.export",
                        outcome="read",
                        message_id=message_id,
                    ),
                )
            async with db.transaction() as conn:
                await checkpoints.create(conn, signer)
            async with db.read() as conn:
                bundle = await export(conn, message_id, signer.jwks())
                kept = await signed_documents.get(conn, message_id)
            if kept is not None:
                anchors = [
                    p.read_text("utf-8") for p in sorted((settings.config_dir / "trust").glob("*.pem"))
                ]
                bundle[FIELD] = signed_part(kept, anchors)
            return bundle
        finally:
            await db.dispose()

    try:
        bundle = asyncio.run(run())
    except checkpoints.ChainBroken as exc:
        print(f"no bundle: {exc} (run 'audit verify')", file=sys.stderr)
        return 1
    if bundle is None:
        print(f"no message {args.message_id}", file=sys.stderr)
        return 1
    out = Path(args.out or f"evidence-{message_id}.json")
    # 0600: a bundle holds the message's document, personal data included.
    write_private(out, (json.dumps(bundle, indent=2, ensure_ascii=False) + "\n").encode())
    audit = bundle["audit"]
    records = audit["records"]
    print(
        f"evidence of {message_id} written to {out}: "
        f"{'the document' if bundle['document'] is not None else 'the SHA-256 of the document'}, "
        f"receipt {bundle['receipt'].get('receipt_id')}, {len(bundle['timeline'])} timeline event(s), "
        f"{len(bundle['replies'])} reply(ies), audit records {records[0]['id']}..{records[-1]['id']} "
        f"({len(audit['concerned'])} concerning it), checkpoint {audit['checkpoint']['id']}"
    )
    return 0


def _verify_bundle(settings: Settings, args: argparse.Namespace) -> int:
    """Check a bundle offline; exit 1 naming every part that does not hold."""
    from gateway.evidence import verify_bundle
    from gateway.security.signing import keys_by_id

    try:
        bundle = json.loads(Path(args.bundle).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.bundle}: {exc}", file=sys.stderr)
        return 2
    from gateway.evidence_signatures import signed_checks

    pinned = keys_by_id(json.loads(Path(args.jwks).read_text("utf-8"))) if args.jwks else None
    checks = verify_bundle(bundle, pinned) if isinstance(bundle, dict) else []
    if checks and isinstance(bundle, dict):
        trust = [p.read_bytes() for p in sorted(Path(args.trust).glob("*.pem"))] if args.trust else None
        checks += asyncio.run(signed_checks(bundle, trust))
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.part}: {check.detail}")
    failed = [c.part for c in checks if not c.ok]
    if failed or not checks:
        print(f"evidence does not hold: {', '.join(failed) or 'not a bundle'}")
        return 1
    print(f"evidence holds for {bundle.get('message_id')}")
    return 0


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit log")
    audit.add_argument(
        "action",
        choices=["verify", "checkpoint"],
        help="verify: walk the chain and its signed checkpoints, exit 1 naming the first bad record; "
        "checkpoint: sign the head of the chain now",
    )
    audit.add_argument("--jwks", help="JWKS file of further gateway public keys (rotated ones)")
    audit.set_defaults(func=_audit)

    evidence = sub.add_parser("evidence", help="evidence bundles of a message")
    ev_sub = evidence.add_subparsers(dest="action", required=True)
    exp = ev_sub.add_parser("export", help="write the self-contained evidence bundle of a message")
    exp.add_argument("message_id")
    exp.add_argument("--out", help="file to write (default: evidence-<message_id>.json)")
    exp.add_argument("--actor", help="who exports, for the audit log (default: $USER)")
    ver = ev_sub.add_parser("verify", help="check a bundle offline; exit 1 naming what does not hold")
    ver.add_argument("bundle")
    ver.add_argument("--jwks", help="the gateway's JWKS (GET /v1/keys) to pin instead of the bundle's own")
    ver.add_argument(
        "--trust",
        help="a directory of trust anchors (PEM) to check a signed document against, instead of the bundle's",
    )
    evidence.set_defaults(func=_evidence)
