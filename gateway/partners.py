"""Partner configuration (``config/partners.toml``, and ``banks.toml`` beside it when there is one): who the
gateway calls, how, and how patiently."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

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
    #: Where the gateway calls the partner; a pull partner (``delivery = "pull"``) is never called and
    #: needs none (empty).
    endpoint: str = ""
    wsdl: str | None = None
    timeout_seconds: float = Field(10.0, gt=0)
    concurrency: int = Field(8, ge=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    deadline: str = "120s"
    credentials: str | None = None
    #: ``push``: the gateway calls the partner's API. ``pull``: the partner fetches its lookups and
    #: documents from the gateway (``GET /v1/partner-inbox``) and acknowledges them; each fetched item is
    #: leased to it for ``lease_seconds``, then handed out again unless acknowledged (docs/partners.md).
    delivery: Literal["push", "pull"] = "push"
    lease_seconds: float = Field(300.0, ge=5, le=86400)
    #: Lookups one call may carry (a bank's batch endpoint, docs/partners.md); 1: one call per lookup.
    batch_size: int = Field(1, ge=1, le=500)

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> str:
        return str(PartnerKind.parse(value).value)

    @model_validator(mode="after")
    def _endpoint_when_pushed(self) -> Partner:
        if self.delivery == "push" and not self.endpoint:
            raise ValueError('endpoint is required unless delivery = "pull"')
        return self

    @property
    def pulls(self) -> bool:
        """The partner fetches its work from the gateway instead of being called."""
        return self.delivery == "pull"

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
    """Read ``partners.toml`` and, beside it, ``banks.toml`` when there is one.

    ``[defaults.<kind>]`` tables of ``partners.toml`` state once what every partner of that kind shares
    (for banks: protocol, timeouts, retry, breaker, deadline…); a ``[[partner]]`` block of that kind,
    and every entry of ``banks.toml``'s ``bank`` list (kind ``bank``, one line each: ``{ code, name,
    endpoint }``), inherits them and may override any of them (``retry`` and ``breaker`` key by key).
    In a default's text, ``{CODE}`` stands for the partner's code as an environment-variable name
    (``BANK_VCB``), so ``credentials = "GATEWAY_SECRET_{CODE}"`` names each bank's own secret.
    ``GATEWAY_PARTNER_<CODE>__ENDPOINT`` overrides an endpoint. A code declared twice, in one file or
    across both, is refused."""
    path = config_dir / "partners.toml"
    banks_path = config_dir / BANKS_FILE
    data = _read(path) if path.exists() else {}
    defaults = _defaults(path, data.get("defaults", {}))
    entries: list[tuple[Path, Any]] = [(path, raw) for raw in _entries(path, data, "partner")]
    if banks_path.exists():
        banks = _read(banks_path)
        unknown = set(banks) - {"bank"}
        if unknown:
            raise ValueError(
                f"{banks_path}: only a `bank` list belongs here, not {', '.join(sorted(unknown))}"
            )
        entries += [(banks_path, _as_bank(banks_path, raw)) for raw in _entries(banks_path, banks, "bank")]
    partners: list[Partner] = []
    seen: dict[str, Path] = {}
    for source, raw in entries:
        partner = _partner(source, _with_defaults(raw, defaults))
        if partner.code in seen:
            where = source if seen[partner.code] == source else f"{seen[partner.code]} and {source}"
            raise ValueError(
                f"{where}: partner {partner.code} is declared twice (partner codes must be unique)"
            )
        seen[partner.code] = source
        env = f"GATEWAY_PARTNER_{env_code(partner.code)}__ENDPOINT"
        if env in os.environ:
            partner = partner.model_copy(update={"endpoint": os.environ[env]})
        if partner.wsdl and not Path(partner.wsdl).is_absolute():
            partner = partner.model_copy(update={"wsdl": str(config_dir / partner.wsdl)})
        partners.append(partner)
    return partners


#: The file beside ``partners.toml`` listing banks one line each (optional).
BANKS_FILE = "banks.toml"
#: Fields merged key by key when a partner overrides part of a default.
_NESTED = ("retry", "breaker")


def env_code(code: str) -> str:
    """A partner code as it appears in environment-variable names: ``BANK-VCB`` → ``BANK_VCB``."""
    return code.replace("-", "_")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None


def _entries(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    entries = data.get(key, [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: `{key}` must be a list of tables ([[{key}]] blocks or {key} = [{{…}}, …])")
    return entries


def _defaults(path: Path, raw: Any) -> dict[str, dict[str, Any]]:
    """``[defaults.<kind>]`` tables, by kind; a kind the gateway does not know is refused, naming the file."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError(f"{path}: `defaults` holds one table per partner kind, e.g. [defaults.bank]")
    out: dict[str, dict[str, Any]] = {}
    for kind, table in raw.items():
        try:
            known = str(PartnerKind.parse(kind).value)
        except ValueError as exc:
            raise ValueError(f"{path}: [defaults.{kind}]: {exc}") from None
        if "code" in table or "kind" in table:
            raise ValueError(f"{path}: [defaults.{kind}]: code and kind are each partner's own, not defaults")
        out[known] = table
    return out


def _as_bank(path: Path, raw: Any) -> Any:
    """A ``banks.toml`` entry is a bank: its kind is implied (and another is refused)."""
    if isinstance(raw, dict):
        if raw.get("kind", "bank") != "bank":
            raise ValueError(f"{path}: bank {raw.get('code', '?')}: every entry here is a bank (kind = bank)")
        return {"kind": "bank"} | raw
    return raw


def _with_defaults(raw: Any, defaults: dict[str, dict[str, Any]]) -> Any:
    """``raw`` over the defaults of its kind (nested policies merged key by key), ``{CODE}`` filled in."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("kind"), str)
        or not isinstance(raw.get("code"), str)
    ):
        return raw  # _partner names what is wrong
    try:
        kind = str(PartnerKind.parse(raw["kind"]).value)
    except ValueError:
        return raw
    base = defaults.get(kind)
    if not base:
        return raw
    code = env_code(raw["code"])
    merged: dict[str, Any] = {
        key: value.replace("{CODE}", code) if isinstance(value, str) else value for key, value in base.items()
    }
    for key, value in raw.items():
        if key in _NESTED and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merged[key] | value
        else:
            merged[key] = value
    return merged


def _partner(path: Path, raw: Any) -> Partner:
    """One ``[[partner]]`` block; a wrong kind (or any other field) is a ``ValueError`` naming the file,
    the partner and what is valid."""
    code = raw.get("code", "?") if isinstance(raw, dict) else "?"
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: partner {code}: every entry must be a table")
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
    # A pull partner is never called: a credentials name inherited from its kind's defaults is unused.
    return [p for p in partners if p.credentials and not p.pulls and not env.get(p.credentials)]
