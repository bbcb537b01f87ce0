"""The registered API clients as operators see them: grants and role, where their documents go, how old
their key is, and when the gateway last heard from them (their latest audit record)."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.parties import client_role
from gateway.ops.audit_log import latest_of
from gateway.partners import Partner
from gateway.security.clients import Client

log = logging.getLogger(__name__)

#: The most clients the page lists (an installation has tens).
MAX_CLIENTS: Final = 500


@dataclass(frozen=True, slots=True)
class ClientLine:
    id: str
    name: str
    role: str
    grants: list[str]
    revoked: bool
    revoked_at: datetime | None
    delivery_kind: str  # "queue" | "webhook" | "pull" | "none"
    delivery_target: str
    keys: int
    created_at: datetime | None
    key_issued_at: datetime | None  # the newest key's issue, None: not recorded
    last_seen_at: datetime | None
    last_action: str


def parse_time(value: Any) -> datetime | None:
    """A time a client file records (ISO 8601 text, or a TOML date-time), aware in UTC; None otherwise."""
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def safe_url(url: str) -> str:
    """A webhook URL without what may be a secret: user and password, query and fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unreadable URL)"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def _file_of(directory: Path, client_id: str) -> dict[str, Any]:
    """What a client file records beside what :class:`Client` keeps (issue times, revocation time)."""
    try:
        return tomllib.loads((directory / f"{client_id}.toml").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _key_issued(data: dict[str, Any], created_at: datetime | None) -> datetime | None:
    """The newest current key's issue time; for a client with one key and no record of it, its creation
    (the first key is issued with the client); otherwise unknown."""
    keys = [k for k in data.get("public_keys", []) if isinstance(k, str)]
    recorded = data.get("key_issued_at")
    times = [parse_time(t) for t in recorded] if isinstance(recorded, list) else []  # beside public_keys
    known = [t for t in times if t is not None]
    if known:
        return max(known)  # unrecorded keys are older: they were added before times were recorded
    if len(keys) == 1:
        return created_at
    return None


async def clients(
    conn: AsyncConnection, registered: list[Client], directory: Path, partners: list[Partner]
) -> list[ClientLine]:
    listed = registered[:MAX_CLIENTS]
    pulls = {p.code for p in partners if p.pulls}
    kinds = {p.code: p.kind for p in partners}
    seen = await latest_of(conn, [c.id for c in listed])
    out = []
    for c in listed:
        data = _file_of(directory, c.id)
        created = parse_time(c.created_at)
        if c.deliver_to is not None and c.deliver_to.kind == "amqp":
            kind, target = "queue", c.deliver_to.target
        elif c.deliver_to is not None:
            kind, target = "webhook", safe_url(c.deliver_to.target)
        elif c.id in pulls:
            kind, target = "pull", "fetches its documents from /v1/partner-inbox"
        else:
            kind, target = "none", ""
        last = seen.get(c.id)
        out.append(
            ClientLine(
                id=c.id,
                name=c.name,
                role=client_role(c.id, c.role, kinds.get(c.id)) or "",
                grants=sorted(c.grants),
                revoked=c.revoked,
                revoked_at=parse_time(data.get("revoked_at")),
                delivery_kind=kind,
                delivery_target=target,
                keys=len(c.keys),
                created_at=created,
                key_issued_at=_key_issued(data, created),
                last_seen_at=last[0] if last else None,
                last_action=last[1] if last else "",
            )
        )
    return out
