"""Partner configuration (``config/partners.toml``, and ``banks.toml`` beside it when there is one): who the
gateway calls, how, and how patiently."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.domain.doctypes import PartnerKind
from gateway.domain.identifiers import AGENCY_CODE
from gateway.domain.inquiry import SOURCE_KINDS
from gateway.transports.base import TransportKind


class RetryPolicy(BaseModel):
    attempts: int = Field(3, ge=1, le=10)
    min_seconds: float = Field(0.2, ge=0)
    max_seconds: float = Field(2.0, gt=0)


class BreakerPolicy(BaseModel):
    failures: int = Field(5, ge=1)
    recovery_seconds: float = Field(10.0, gt=0)


class TlsFiles(BaseModel):
    """Mutual TLS for one outbound route: our client certificate and key (PEM), and the CA bundle the
    other side's certificate must chain to (default: the system's). Paths relative to the config
    directory; the key may instead be named by an environment variable holding its path
    (``key_env``), so it need not live beside the configuration."""

    model_config = ConfigDict(extra="forbid")

    cert: str | None = None
    key: str | None = None
    key_env: str | None = None
    ca: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsFiles:
        if bool(self.cert) != bool(self.key or self.key_env):
            raise ValueError("tls: a client certificate needs its key (key or key_env), and a key its cert")
        return self

    def resolved(self, config_dir: Path) -> TlsFiles:
        def at(value: str | None) -> str | None:
            return str(value if value is None or Path(value).is_absolute() else config_dir / value)

        key = self.key or (os.environ.get(self.key_env) if self.key_env else None)
        return TlsFiles(cert=at(self.cert), key=at(key), ca=at(self.ca))


class XRoadRoute(BaseModel):
    """Where a partner is reached through X-Road: its subsystem (``INSTANCE/CLASS/MEMBER/SUBSYSTEM``)
    and, for REST, the service code its paths follow (for SOAP the service code is the operation)."""

    model_config = ConfigDict(extra="forbid")

    subsystem: str = Field(pattern=r"^[^/\s]+/[^/\s]+/[^/\s]+/[^/\s]+$")
    service_code: str | None = Field(None, pattern=r"^[^/\s]+$")
    service_version: str | None = None


class LgspRoute(BaseModel):
    """Where a partner is reached through an LGSP: the platform (a ``[platforms.lgsp.<name>]`` table) and
    the partner's path on it."""

    model_config = ConfigDict(extra="forbid")

    platform: str
    path: str = Field(pattern=r"^/")


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
    #: How calls travel (gateway/transports/): ``direct`` to ``endpoint``; ``xroad`` through the gateway's
    #: security server to ``xroad``'s subsystem; ``lgsp`` through the platform ``lgsp`` names.
    transport: TransportKind = "direct"
    xroad: XRoadRoute | None = None
    lgsp: LgspRoute | None = None
    #: Mutual TLS to the partner (direct transport; platforms have their own, under [platforms]).
    tls: TlsFiles | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> str:
        return str(PartnerKind.parse(value).value)

    @model_validator(mode="after")
    def _endpoint_when_pushed(self) -> Partner:
        if self.delivery == "push" and self.transport == "direct" and not self.endpoint:
            raise ValueError('endpoint is required unless delivery = "pull" or the transport is a platform')
        if self.transport == "xroad" and self.xroad is None:
            raise ValueError('transport = "xroad" needs xroad = { subsystem = "…", service_code = "…" }')
        if (
            self.transport == "xroad"
            and self.protocol == "rest"
            and not (self.xroad and self.xroad.service_code)
        ):
            raise ValueError("a REST partner reached through X-Road needs xroad.service_code")
        if self.transport == "lgsp" and self.lgsp is None:
            raise ValueError('transport = "lgsp" needs lgsp = { platform = "…", path = "/…" }')
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


def read_secret(env: str | None, file: str | None, config_dir: Path | None = None) -> str | None:
    """A secret named by configuration: the environment variable ``env`` or the file ``file`` (relative to
    the config directory; its content, trailing whitespace dropped). Never the secret itself in TOML."""
    if env and os.environ.get(env):
        return os.environ[env]
    if file:
        path = Path(file)
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
        try:
            return path.read_text("utf-8").strip() or None
        except OSError:
            return None
    return None


class XRoadPlatform(BaseModel):
    """The gateway as an X-Road client: its own security server and its client id there."""

    model_config = ConfigDict(extra="forbid")

    #: The consumer security server's URL (``https://ss.example.gov.vn``); ``/r1/…`` and SOAP go there.
    security_server: str
    #: Who the gateway is on X-Road: ``INSTANCE/CLASS/MEMBER/SUBSYSTEM`` (``XROADVN/GOV/…/THADS-GW``).
    client: str = Field(pattern=r"^[^/\s]+/[^/\s]+/[^/\s]+/[^/\s]+$")
    protocol_version: str = "4.0"
    #: What the gateway does with a REST answer's ``X-Road-Request-Hash`` (gateway/transports/xroad.py):
    #: ``verify`` recomputes it (the simulated security server's form); ``record`` keeps it as the consumer
    #: security server, which must verify it and whose form the gateway cannot recompute, passed it.
    rest_request_hash: Literal["verify", "record"] = "verify"
    tls: TlsFiles | None = None


class LgspPlatform(BaseModel):
    """A ministry's or province's integration platform (LGSP): an API gateway in front of its partners."""

    model_config = ConfigDict(extra="forbid")

    #: Where the platform's API gateway forwards calls: ``{base_url}{partner.lgsp.path}{connector path}``.
    base_url: str
    #: The OAuth2 token endpoint (client credentials grant).
    token_url: str
    client_id: str
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    scope: str | None = None
    #: The ``lgspaccesstoken`` header's credentials, issued by the platform's operator.
    access_token_env: str | None = None
    access_token_file: str | None = None
    tls: TlsFiles | None = None


class Platforms(BaseModel):
    """``[platforms]`` of ``partners.toml``: the exchange platforms partners may be reached through."""

    model_config = ConfigDict(extra="forbid")

    xroad: XRoadPlatform | None = None
    lgsp: dict[str, LgspPlatform] = Field(default_factory=dict)


def load_platforms(config_dir: Path) -> Platforms:
    """The ``[platforms]`` table of ``partners.toml`` (none: no platform), TLS paths resolved.
    ``GATEWAY_XROAD_SECURITY_SERVER`` overrides the security server's URL and
    ``GATEWAY_LGSP_<NAME>__BASE_URL`` / ``__TOKEN_URL`` a platform's (simulators, staging)."""
    path = config_dir / "partners.toml"
    raw = _read(path).get("platforms", {}) if path.exists() else {}
    try:
        platforms = Platforms(**raw) if isinstance(raw, dict) else Platforms.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ValueError(f"{path}: [platforms]: {problems}") from None
    if platforms.xroad is not None:
        update: dict[str, Any] = {}
        if os.environ.get("GATEWAY_XROAD_SECURITY_SERVER"):
            update["security_server"] = os.environ["GATEWAY_XROAD_SECURITY_SERVER"]
        if platforms.xroad.tls is not None:
            update["tls"] = platforms.xroad.tls.resolved(config_dir)
        platforms.xroad = platforms.xroad.model_copy(update=update)
    for name, lgsp in list(platforms.lgsp.items()):
        update = {}
        for key in ("base_url", "token_url"):
            env = f"GATEWAY_LGSP_{env_code(name)}__{key.upper()}"
            if os.environ.get(env):
                update[key] = os.environ[env]
        if lgsp.tls is not None:
            update["tls"] = lgsp.tls.resolved(config_dir)
        # Secret files are named relative to the config directory, like certificates; the transport
        # that reads them (per call, so a rotated secret needs no restart) does not know that directory.
        for key in ("client_secret_file", "access_token_file"):
            value = getattr(lgsp, key)
            if value and not Path(value).is_absolute():
                update[key] = str(config_dir / value)
        platforms.lgsp[name] = lgsp.model_copy(update=update)
    return platforms


@dataclass(frozen=True, slots=True)
class Route:
    """Where the gateway connects to reach a partner (its endpoint, or the platform in front of it), with
    which TLS files, and how to say it to an operator."""

    url: str
    tls: TlsFiles | None
    label: str


def route_of(partner: Partner, platforms: Platforms) -> Route:
    if partner.pulls:
        return Route("", None, "pull: fetches its work from the gateway")
    if partner.transport == "xroad" and partner.xroad is not None and platforms.xroad is not None:
        service = partner.xroad.subsystem + (
            f"/{partner.xroad.service_code}" if partner.xroad.service_code else ""
        )
        return Route(platforms.xroad.security_server, platforms.xroad.tls, f"X-Road {service}")
    if partner.transport == "lgsp" and partner.lgsp is not None and partner.lgsp.platform in platforms.lgsp:
        platform = platforms.lgsp[partner.lgsp.platform]
        url = platform.base_url.rstrip("/") + partner.lgsp.path
        return Route(url, platform.tls, f"LGSP {partner.lgsp.platform} {partner.lgsp.path}")
    return Route(partner.endpoint, partner.tls, partner.endpoint)


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
        if partner.tls is not None:
            partner = partner.model_copy(update={"tls": partner.tls.resolved(config_dir)})
        partners.append(partner)
    _check_platforms(path, partners, load_platforms(config_dir))
    return partners


def _check_platforms(path: Path, partners: list[Partner], platforms: Platforms) -> None:
    """A partner routed through a platform the configuration does not describe stops start-up."""
    for p in partners:
        if p.pulls:
            continue
        if p.transport == "xroad" and platforms.xroad is None:
            raise ValueError(f"{path}: partner {p.code}: transport xroad needs a [platforms.xroad] table")
        if p.transport == "lgsp" and p.lgsp is not None and p.lgsp.platform not in platforms.lgsp:
            known = ", ".join(sorted(platforms.lgsp)) or "none"
            raise ValueError(
                f"{path}: partner {p.code}: no [platforms.lgsp.{p.lgsp.platform}] table (configured: {known})"
            )


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
    # A pull partner is never called, and a partner reached through a platform is never sent its token
    # (the platform authenticates the gateway): a credentials name inherited from defaults is unused.
    return [
        p
        for p in partners
        if p.credentials and not p.pulls and p.transport == "direct" and not env.get(p.credentials)
    ]
