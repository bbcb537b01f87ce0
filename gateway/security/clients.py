"""Clients: who may call the gateway, with which keys, for which services, delivered where.

One TOML file per client under ``<config>/clients/``, its public keys beside it under ``keys/``.
Operators manage them with ``python run.py clients add|list|revoke``; running processes notice
changes without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import limits
import tomli_w
from cryptography.exceptions import UnsupportedAlgorithm
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.domain.identifiers import AGENCY_CODE
from gateway.domain.parties import CLIENT_ROLES
from gateway.security.keys import PublicKey, load_public_key, public_pem

log = logging.getLogger(__name__)

CLIENT_ID = AGENCY_CODE  # a client id is its agency code
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,200}$")

#: Services a client can be granted. ``family:detail`` grants are covered by a grant of ``family``.
KNOWN_SERVICES = frozenset(
    {
        "documents.send",
        "judgments.push",
        "messages.read",
        "messages.confirm",
        "assets.inquire",
        "assets.answer",
        "operator",
        "consents.write",
        "data_access.read",
        "partner.pull",
    }
)


class ClientConfigError(ValueError):
    """An invalid client definition (bad id, grant, key or delivery target)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where documents addressed to a client go: its own AMQP queue, or a webhook URL."""

    kind: str  # "amqp" | "webhook"
    target: str

    @classmethod
    def parse(cls, text: str) -> Delivery:
        if text.startswith("amqp:"):
            queue = text[5:]
            if not QUEUE_NAME.match(queue):
                raise ClientConfigError(f"invalid queue name in {text!r}")
            return cls("amqp", queue)
        if text.startswith(("https://", "http://")):
            return cls("webhook", text)
        raise ClientConfigError("--deliver-to must be amqp:QUEUE or an http(s) URL")

    def __str__(self) -> str:
        return f"amqp:{self.target}" if self.kind == "amqp" else self.target


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    name: str
    grants: frozenset[str]
    keys: tuple[PublicKey, ...]
    deliver_to: Delivery | None = None
    revoked: bool = False
    created_at: str = ""
    rate_limit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: What kind of party it is (``court``, ``enforcement_office``...: gateway/domain/parties.py), when
    #: its file says; see :func:`gateway.domain.parties.client_role` for what applies otherwise.
    role: str | None = None
    # Hosts this client's callbacks and webhooks may name (gateway/security/outbound.py); None: any host
    # the outbound policy allows.
    outbound_hosts: tuple[str, ...] | None = None

    def allows(self, service: str) -> bool:
        """Deny by default: exact grant, or the grant of the service's family."""
        if self.revoked:
            return False
        return service in self.grants or service.split(":", 1)[0] in self.grants


class ClientFile(BaseModel):
    """What one client file must say. Files are edited by hand too, so each is checked on its own:
    a mistake in one must cost that client its access, not every client theirs."""

    model_config = ConfigDict(extra="ignore")  # e.g. ``revoked_at``: kept in the file, not needed here

    id: str = Field(pattern=CLIENT_ID.pattern)
    name: str | None = None
    grants: list[str] = Field(default_factory=list)
    public_keys: list[str] = Field(default_factory=list)
    deliver_to: str | None = None
    revoked: bool = False
    created_at: str = ""
    rate_limit: str | None = None
    role: str | None = None
    outbound_hosts: list[str] | None = None

    @field_validator("created_at", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> str:
        return str(value)  # an unquoted TOML date-time arrives as a datetime

    @field_validator("deliver_to")
    @classmethod
    def _delivery(cls, value: str | None) -> str | None:
        if value:
            Delivery.parse(value)
        return value

    @field_validator("role")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None:
            validate_role(value)
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str | None) -> str | None:
        # Checked here, not at the first request: a bad limit would otherwise fail each of its calls.
        if value is not None:
            limits.parse(value)
        return value

    @field_validator("outbound_hosts")
    @classmethod
    def _outbound_hosts(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for host in value:
                validate_outbound_host(host)
        return value


_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def validate_outbound_host(host: str) -> str:
    """A host name as an ``outbound_hosts`` entry names it: no scheme, port or path."""
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ClientConfigError(f"outbound host {host!r} must be a host name, e.g. case.example.gov.vn")
    return host


def validate_grant(grant: str) -> str:
    family = grant.split(":", 1)[0]
    if family not in KNOWN_SERVICES:
        raise ClientConfigError(f"unknown service {grant!r}; known: {', '.join(sorted(KNOWN_SERVICES))}")
    return grant


def validate_role(role: str) -> str:
    """A role a client file may state (gateway/domain/parties.py)."""
    if role not in CLIENT_ROLES:
        raise ClientConfigError(f"unknown role {role!r}; known: {', '.join(sorted(CLIENT_ROLES))}")
    return role


class ClientStore:
    """Reads and writes client files; caches them and reloads when the directory changes."""

    def __init__(self, directory: Path, recheck_seconds: float = 1.0) -> None:
        self.directory = directory
        self._recheck = recheck_seconds
        self._checked_at = 0.0
        self._signature: tuple[tuple[str, int], ...] = ()
        self._clients: dict[str, Client] = {}

    # -- reading ---------------------------------------------------------------------------------

    def get(self, client_id: str) -> Client | None:
        self._refresh()
        return self._clients.get(client_id)

    def all(self) -> list[Client]:
        self._refresh()
        return sorted(self._clients.values(), key=lambda c: c.id)

    def _dir_signature(self) -> tuple[tuple[str, int], ...]:
        if not self.directory.is_dir():
            return ()
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.directory.glob("*.toml")))

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < self._recheck:
            return
        self._checked_at = now
        signature = self._dir_signature()
        if signature == self._signature and not force:
            return
        clients: dict[str, Client] = {}
        for name, _ in signature:
            client = self._load_or_skip(self.directory / name)
            if client is None:
                continue
            if client.id in clients:
                log.warning("client file %s repeats client id %s; the later file wins", name, client.id)
            clients[client.id] = client
        self._clients, self._signature = clients, signature

    def _load_or_skip(self, path: Path) -> Client | None:
        """The client a file defines, or None (logged) when it cannot be used. A skipped file is read
        again once the directory changes, so fixing it needs no restart."""
        try:
            return self._load(path)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()
            )
            log.warning("skipping client file %s: %s", path, problems)
        except tomllib.TOMLDecodeError as exc:
            log.warning("skipping client file %s: not valid TOML: %s", path, exc)
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("skipping client file %s: cannot read it or one of its keys: %s", path, exc)
        except (ValueError, UnsupportedAlgorithm) as exc:
            log.warning("skipping client file %s: unusable public key: %s", path, exc)
        return None

    def _load(self, path: Path) -> Client:
        data = ClientFile.model_validate(tomllib.loads(path.read_text("utf-8")))
        keys = tuple(load_public_key((self.directory / k).read_bytes()) for k in data.public_keys)
        return Client(
            id=data.id,
            name=data.name or data.id,
            grants=frozenset(data.grants),
            keys=keys,
            deliver_to=Delivery.parse(data.deliver_to) if data.deliver_to else None,
            revoked=data.revoked,
            created_at=data.created_at,
            rate_limit=data.rate_limit,
            role=data.role,
            outbound_hosts=tuple(data.outbound_hosts) if data.outbound_hosts is not None else None,
        )

    # -- writing (operator CLI) ------------------------------------------------------------------

    def add(
        self,
        client_id: str,
        public_key_pem: bytes,
        grants: list[str],
        deliver_to: str | None = None,
        name: str | None = None,
        role: str | None = None,
        outbound_hosts: list[str] | None = None,
    ) -> Client:
        """Create a client, or add a key / replace grants of an existing one. ``role``: what kind of
        party it is (kept when not given again). ``outbound_hosts``, when given, replaces the hosts its
        callbacks and webhooks may name."""
        if not CLIENT_ID.match(client_id):
            raise ClientConfigError("client id must be an agency code: A-Z, 0-9 and '-', 2-32 chars")
        for grant in grants:
            validate_grant(grant)
        if role is not None:
            validate_role(role)
        if deliver_to:
            Delivery.parse(deliver_to)
        for host in outbound_hosts or []:
            validate_outbound_host(host)
        key = load_public_key(public_key_pem)
        pem = public_pem(key)
        key_name = f"keys/{client_id}-{hashlib.sha256(pem).hexdigest()[:12]}.pem"
        (self.directory / "keys").mkdir(parents=True, exist_ok=True)
        (self.directory / key_name).write_bytes(pem)
        path = self.directory / f"{client_id}.toml"
        data: dict[str, Any] = tomllib.loads(path.read_text("utf-8")) if path.exists() else {}
        keys = list(dict.fromkeys([*data.get("public_keys", []), key_name]))
        # When each key was issued, so the console can show a key's age (a rotation adds a key): a flat
        # list beside public_keys, in its order ("" where not recorded). Not a table: TOML puts tables at
        # the end of the file, and a key an operator appends by hand (rate_limit = ...) would fall into it.
        old_keys = list(data.get("public_keys", []))
        old_times = data.get("key_issued_at")
        recorded = dict(zip(old_keys, old_times, strict=False)) if isinstance(old_times, list) else {}
        recorded.setdefault(key_name, datetime.now(UTC).isoformat(timespec="seconds"))
        data["key_issued_at"] = [str(recorded.get(k, "")) for k in keys]
        data.update(
            {
                "id": client_id,
                "name": name or data.get("name", client_id),
                "grants": sorted(set(grants)),
                "public_keys": keys,
                "revoked": False,
            }
        )
        data.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        if deliver_to:
            data["deliver_to"] = deliver_to
        if role is not None:
            data["role"] = role
        if outbound_hosts is not None:
            data["outbound_hosts"] = list(dict.fromkeys(outbound_hosts))
        self._write(path, data)
        self._refresh(force=True)
        client = self._clients[client_id]
        return client

    def revoke(self, client_id: str) -> None:
        path = self.directory / f"{client_id}.toml"
        if not path.exists():
            raise ClientConfigError(f"no client {client_id!r}")
        data = tomllib.loads(path.read_text("utf-8"))
        data["revoked"] = True
        data["revoked_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._write(path, data)
        self._refresh(force=True)

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(tomli_w.dumps(data), "utf-8")
        tmp.replace(path)  # atomic: a running gateway never reads half a file
