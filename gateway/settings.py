"""Settings: ``config/gateway.toml`` overridden by ``GATEWAY_*`` environment variables."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gateway.domain.identifiers import AGENCY_CODE
from gateway.security.keys import private_dir

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def config_dir() -> Path:
    """The configuration directory: ``GATEWAY_CONFIG_DIR`` or ``config/`` beside the package."""
    return Path(os.environ.get("GATEWAY_CONFIG_DIR") or DEFAULT_CONFIG_DIR).resolve()


class DatabaseSettings(BaseModel):
    # The connection pool of each api and worker process on PostgreSQL (SQLite ignores these). A process
    # holds at most pool_size + max_overflow connections: keep that times the number of processes under
    # the server's max_connections (minus what operators and other clients need).
    pool_size: int = Field(10, gt=0)
    max_overflow: int = Field(10, ge=0)
    # How long a transaction waits for a free connection before it fails (the api answers 503).
    pool_timeout_seconds: float = Field(30, gt=0)
    # Connections are replaced once this old (before a firewall or a proxy drops idle ones); 0: never.
    pool_recycle_seconds: float = Field(1800, ge=0)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(8_000_000, gt=0)
    max_inline_document_bytes: int = Field(5_000_000, gt=0)
    max_wait_seconds: float = Field(30, ge=0)
    # Per client, per api process: "<n>/second", "<n>/minute"... (a client file may set its own).
    rate_limit: str = "200/second"
    # "memory://" per process; "redis://127.0.0.1:6379" shares the counts between api processes.
    rate_limit_storage: str = "memory://"


class LimitsSettings(BaseModel):
    """What one request may cost the api before it is refused (docs/architecture.md, "Bounded work")."""

    # XML (SOAP) bodies, counted while parsing, before the XSD sees them: over one is 413 naming it.
    xml_max_elements: int = Field(20_000, gt=0)
    xml_max_attributes: int = Field(64, ge=0)
    xml_max_depth: int = Field(32, gt=0)
    # Violations listed in a 422 (problem+json `errors`, SOAP Fault detail); the rest are counted.
    max_errors: int = Field(100, gt=0)
    # Wall-clock budget of one body's schema validation (XSD and JSON Schema); over it: 413.
    validation_budget_seconds: float = Field(5.0, gt=0)
    # Bodies up to this size are validated on the event loop (cheaper than a thread hop); larger ones
    # in the validation threads.
    inline_validation_bytes: int = Field(16_384, ge=0)
    validation_threads: int = Field(2, gt=0)


class AuthSettings(BaseModel):
    audience: str = "thads-gateway"
    leeway_seconds: int = Field(30, ge=0, le=300)
    max_token_lifetime_seconds: int = Field(3600, gt=0)
    # Each token is accepted once (its jti is remembered until it expires, by every api process): a
    # client mints a token per request. False only for development, where a hand-made token is reused.
    single_use_tokens: bool = True


class SigningSettings(BaseModel):
    private_key_file: str = "var/keys/receipt-signing.pem"
    # Rotate the key this long after its file was written (gateway_signing_key_expiry_timestamp_seconds).
    rotate_after_days: float = Field(365, gt=0)


class WorkerSettings(BaseModel):
    # The worker's own HTTP listener: /metrics, /healthz, /readyz. Port 0 takes a free port.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9180, ge=0, le=65535)
    # How often the worker reads queue depths from the broker and counts inquiries/overdue documents.
    queue_poll_seconds: float = Field(10, gt=0)
    database_poll_seconds: float = Field(15, gt=0)
    # How often each worker writes its view of every partner to partner_health (and on breaker changes).
    partner_health_seconds: float = Field(2, gt=0)


class RelaySettings(BaseModel):
    #: The fallback pass only: what each process commits it publishes at once (gateway/amqp/relay.py).
    poll_interval_seconds: float = Field(1.0, gt=0)
    #: The api publishes what it accepts itself (one broker hop, no polling); off, the worker's
    #: fallback pass publishes it (and the api never connects to the broker).
    publish_from_api: bool = True
    batch_size: int = Field(200, gt=0)
    max_in_flight: int = Field(256, gt=0)
    lease_seconds: float = Field(30, gt=0)


class DeliverySettings(BaseModel):
    prefetch: int = Field(100, gt=0)
    delivery_limit: int = Field(20, gt=0)
    webhook_timeout_seconds: float = Field(10, gt=0)
    retry_delays_seconds: list[float] = Field(
        default_factory=lambda: [1.0, 5.0, 30.0, 120.0, 600.0], min_length=1
    )
    max_attempts: int = Field(60, gt=0)


class LongTermSettings(BaseModel):
    """Long-term proof of the signed documents kept (docs/evidence.md, "Long-term proof")."""

    # The RFC 3161 time-stamping service archive time-stamps come from (a qualified provider in
    # production). Empty: the validation material is kept (B-LT) but no archive time-stamp is added.
    tsa_url: str = ""
    # An archive time-stamp is renewed this long before its certificate expires.
    renew_before_days: float = Field(90, gt=0)
    # How often an idle worker looks for files whose proof is due, and the budget of one step (the
    # revocation look-ups and the time-stamp included); a failed step is tried again after retry_seconds.
    poll_seconds: float = Field(5, gt=0)
    budget_seconds: float = Field(30, gt=0)
    retry_seconds: float = Field(300, gt=0)


class AuditSettings(BaseModel):
    # The head of the audit chain is signed (Ed25519, the receipt key) every N records or M minutes,
    # whichever comes first; a checkpoint makes a cut tail or a recomputed chain detectable.
    checkpoint_every_records: int = Field(100, gt=0)
    checkpoint_every_minutes: float = Field(5, gt=0)


class OpsSettings(BaseModel):
    # Operator accounts of the console at /ops: a TOML file of argon2 hashes (see docs/console.md).
    # No file, no console sign-in: there is no default account or password.
    operators_file: str = "config/operators.toml"
    session_minutes: float = Field(30, gt=0)
    # Times on the console's pages are written in this zone (IANA name), with the UTC value on hover.
    time_zone: str = "Asia/Ho_Chi_Minh"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Ho_Chi_Minh)") from exc
        return value

    # Anything in a non-final status for longer than this is listed as stuck.
    stuck_after_minutes: float = Field(60, gt=0)
    # RabbitMQ management API (queue rates); when it does not answer, depths come over AMQP.
    management_url: str = "http://127.0.0.1:15672"
    management_user: str = "guest"
    management_password: str = "guest"  # noqa: S105 - the broker's own default, overridable
    # Operator commands (run.py status, run.py parking) give up on a broker that does not answer.
    broker_timeout_seconds: float = Field(5, gt=0)
    # However active, a console session ends this long after sign-in (activity never extends it).
    session_max_hours: float = Field(8, gt=0, le=24)
    # Sign-in attempts: per remote address, and failed ones per account (429 with Retry-After past them;
    # shared between api processes when api.rate_limit_storage is Redis).
    signin_rate_per_address: str = "10/minute"
    signin_failures_per_account: str = "5/minute"
    # Password checks (argon2) run on this many threads, at most signin_queue waiting; past that a
    # sign-in is answered 503 at once, and one that waits longer than signin_budget_seconds too.
    signin_workers: int = Field(1, ge=1, le=4)
    signin_queue: int = Field(4, ge=0)
    signin_budget_seconds: float = Field(3, gt=0)
    # A refused attempt (429, 503) is answered after this pause, which costs the api nothing: a client
    # looping on refusals cannot turn them into a flood of cheap requests.
    signin_refusal_delay_seconds: float = Field(1, ge=0, le=10)


class BrokerSettings(BaseModel):
    """The broker's health readings (descriptors, memory, disk, alarms) shown by /readyz and
    ``run.py status``: read from the management API (``ops.management_url``), never over AMQP."""

    # A management API slower than this is reported as "unknown": readiness never waits on it.
    health_timeout_seconds: float = Field(2, gt=0, le=30)
    # Readings are reused this long, so frequent probes cost the broker one request per interval.
    health_cache_seconds: float = Field(15, ge=0)
    # Near a limit (a warning, never a failed check): descriptors committed / limit, memory used /
    # high watermark, free disk within this many times the free-disk limit.
    warn_descriptors_ratio: float = Field(0.8, gt=0, le=1)
    warn_memory_ratio: float = Field(0.8, gt=0, le=1)
    warn_disk_factor: float = Field(2.0, ge=1)
    # The installation size a node's descriptor limit must already hold (docs/deployment.md).
    planned_partners: int = Field(100, ge=0)


class SimulateSettings(BaseModel):
    # Webhooks of the simulated court and procuracy (run.py simulate, run.py demo).
    court_port: int = Field(9111, ge=0, le=65535)
    procuracy_port: int = Field(9112, ge=0, le=65535)
    # The simulated trust services (test CA, CRL, OCSP, time-stamps) the court signs its judgments with,
    # and where their keys are kept (relative to the project's root): the demo uses its own.
    trust_port: int = Field(9130, ge=0, le=65535)
    pki_dir: str = "var/pki"


class OutboundSettings(BaseModel):
    # Calls to client-named addresses (callbacks, webhooks): https to public addresses only. True lets
    # them use plain http to loopback (development, tests, the demo); never in production.
    allow_http_loopback: bool = False
    # How long registering a URL waits for DNS (a name not resolved by then is checked at each send).
    resolve_timeout_seconds: float = Field(2, gt=0)


class BulkSettings(BaseModel):
    """Bulk lookups (docs/bulk.md): many debtors in one request, expanded into inquiries by the workers."""

    # Debtors one bulk request may name; more is refused (413 too-complex) before the body is validated.
    max_debtors: int = Field(1000, gt=0, le=100_000)
    # Debtors turned into inquiries per write transaction: the single writer is never held for long.
    chunk_debtors: int = Field(50, gt=0, le=1000)
    # How often an idle worker looks for bulks to expand (a read), and how long its claim on one lasts.
    poll_seconds: float = Field(0.5, gt=0)
    lease_seconds: float = Field(30, gt=0)
    # Per-debtor results one GET of a bulk shows at most (`limit`).
    max_page: int = Field(100, gt=0, le=1000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore")

    # One URL, or a cluster's nodes separated by commas: connections go to the first that answers and,
    # when one drops, to the next (gateway/amqp/broker.py). Each node's URL carries its credentials.
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    broker_namespace: str = Field("gw", pattern=r"^[a-z][a-z0-9_-]{0,30}$")
    database_url: str = "sqlite:///var/gateway.db"
    # The gateway's own agency code: the sender of what it issues itself (deadline events, revocations).
    agency_code: str = Field("GW-THADS", pattern=AGENCY_CODE.pattern)
    # How often the worker looks for documents nearing or past their deadline.
    deadline_scan_seconds: float = Field(30.0, gt=0)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    config_dir: Path = Field(default_factory=config_dir)
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    long_term: LongTermSettings = Field(default_factory=LongTermSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    simulate: SimulateSettings = Field(default_factory=SimulateSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    bulk: BulkSettings = Field(default_factory=BulkSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML path depends on GATEWAY_CONFIG_DIR, so it is resolved per load, not per class.
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_dir() / "gateway.toml")
        return (init_settings, env_settings, toml)

    @field_validator("broker_url")
    @classmethod
    def _broker_nodes(cls, value: str) -> str:
        if not split_broker_urls(value):
            raise ValueError("broker_url names no node")
        for url in split_broker_urls(value):
            if not url.startswith(("amqp://", "amqps://")):
                raise ValueError(f"broker_url: every node is an amqp:// or amqps:// URL, not {url[:8]!r}...")
        return value

    @property
    def broker_urls(self) -> list[str]:
        """The broker's nodes, in the order connections try them."""
        return split_broker_urls(self.broker_url)

    @cached_property
    def home(self) -> Path:
        """Base for relative paths: the directory holding the config directory."""
        return self.config_dir.parent

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.home / p

    @property
    def resolved_database_url(self) -> str:
        """The database URL with a relative SQLite file made absolute (and its directory created)."""
        url = self.database_url
        scheme, sep, rest = url.partition(":///")
        prefix = scheme + sep
        if scheme.startswith("sqlite") and sep and not rest.startswith("/") and ":memory:" not in url:
            file = self.path(rest)
            private_dir(file.parent)  # 0700: the database holds personal data
            return prefix + str(file)
        return url

    @property
    def clients_dir(self) -> Path:
        return self.config_dir / "clients"


def split_broker_urls(value: str) -> list[str]:
    """``broker_url`` as a list: one URL, or several separated by commas (a cluster's nodes)."""
    return [url.strip() for url in value.split(",") if url.strip()]


def load_settings(**overrides: object) -> Settings:
    """Read the settings afresh (tests pass overrides)."""
    return Settings(**overrides)  # type: ignore[arg-type]
