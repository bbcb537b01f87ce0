"""Partner configuration (``config/partners.toml``): who the gateway calls, how, and how patiently."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from gateway.domain.doctypes import PartnerKind
from gateway.domain.identifiers import AGENCY_CODE
from gateway.domain.inquiry import SOURCE_KINDS


class RetryPolicy(BaseModel):
    attempts: int = Field(3, ge=1, le=10)
    min_seconds: float = Field(0.2, ge=0)
    max_seconds: float = Field(2.0, gt=0)


class BreakerPolicy(BaseModel):
    failures: int = Field(5, ge=1)
    recovery_seconds: float = Field(10.0, gt=0)


class Partner(BaseModel):
    code: str = Field(pattern=AGENCY_CODE.pattern)
    name: str = ""
    #: One of :class:`PartnerKind`'s values (``vehicle`` for the vehicle register, ``police`` for a
    #: police unit); anything else is refused naming the valid ones.
    kind: str
    protocol: Literal["rest", "soap"]
    endpoint: str
    wsdl: str | None = None
    timeout_seconds: float = Field(10.0, gt=0)
    concurrency: int = Field(8, ge=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    deadline: str = "120s"
    credentials: str | None = None
    #: Lookups one call may carry (a bank's batch endpoint, docs/partners.md); 1: one call per lookup.
    batch_size: int = Field(1, ge=1, le=500)

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> str:
        return str(PartnerKind.parse(value).value)

    @property
    def source_id(self) -> str:
        """How the inquiry names this source: the kind, or ``bank:<code>`` for banks."""
        return f"bank:{self.code}" if self.kind == "bank" else self.kind

    @property
    def is_lookup_source(self) -> bool:
        """Partners that only receive documents (police units, the e-ID notification service) are not."""
        return self.kind in SOURCE_KINDS

    def token(self) -> str | None:
        """The partner's API token, read from the environment variable the config names."""
        return os.environ.get(self.credentials) if self.credentials else None


def load_partners(config_dir: Path) -> list[Partner]:
    """Read ``partners.toml``; ``GATEWAY_PARTNER_<CODE>__ENDPOINT`` overrides an endpoint."""
    path = config_dir / "partners.toml"
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text("utf-8"))
    partners = []
    for raw in data.get("partner", []):
        partner = _partner(path, raw)
        env = f"GATEWAY_PARTNER_{partner.code.replace('-', '_')}__ENDPOINT"
        if env in os.environ:
            partner = partner.model_copy(update={"endpoint": os.environ[env]})
        if partner.wsdl and not Path(partner.wsdl).is_absolute():
            partner = partner.model_copy(update={"wsdl": str(config_dir / partner.wsdl)})
        partners.append(partner)
    codes = [p.code for p in partners]
    if len(set(codes)) != len(codes):
        raise ValueError("partner codes must be unique")
    return partners


def _partner(path: Path, raw: Any) -> Partner:
    """One ``[[partner]]`` block; a wrong kind (or any other field) is a ``ValueError`` naming the file,
    the partner and what is valid."""
    code = raw.get("code", "?") if isinstance(raw, dict) else "?"
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: every [[partner]] entry must be a table")
    try:
        return Partner(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ValueError(f"{path}: partner {code}: {problems}") from None


def missing_credentials(partners: list[Partner], environ: Mapping[str, str] | None = None) -> list[Partner]:
    """Partners whose ``credentials`` names an environment variable that is unset or empty: every call
    to them will be refused (401). Partners that need no credentials are never listed. ``environ``
    defaults to this process's environment."""
    env = os.environ if environ is None else environ
    return [p for p in partners if p.credentials and not env.get(p.credentials)]
