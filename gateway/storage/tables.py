"""The database schema (SQLAlchemy Core). Alembic migrations in ``gateway/migrations`` create it;
a test checks that the two never drift apart."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for long-lived logs.
AutoId = BigInteger().with_variant(Integer(), "sqlite")
TS = DateTime(timezone=True)

#: Every message that crossed the gateway: envelope, status, receipt. Payload retention is a setting.
messages = Table(
    "messages",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("message_type", String(64), nullable=False),
    Column("schema_version", String(8), nullable=False),
    Column("sender", String(32), nullable=False, index=True),
    Column("recipient", String(32), nullable=False, index=True),
    Column("correlation_id", String(36)),
    # The document this one answers (a report answers an order), and the one it replaces.
    Column("in_reply_to", String(36), index=True),
    Column("replaces", String(36)),
    Column("priority", String(8), nullable=False),
    # Business identity of the document within its type (a judgment: court code | number | date): a
    # resend of the same document under a new message_id gets the original receipt.
    Column("natural_key", String(200)),
    Column("sha256", String(64), nullable=False),
    Column("payload", Text),
    Column("receipt", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("case_ref", String(64)),
    Column("delivery_count", Integer, nullable=False, default=0),
    Column("received_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    # Deadline of the awaited step (delivery, or the answer); when its sender is to be reminded of it;
    # reminded_at once the reminder went out.
    Column("due_at", TS),
    Column("remind_at", TS),
    Column("reminded_at", TS),
    UniqueConstraint("message_type", "natural_key"),
    Index("ix_messages_open_due", "status", "due_at"),
    Index("ix_messages_remind", "remind_at"),
    # The console's message list pages by (received_at, message_id): keyset, never OFFSET.
    Index("ix_messages_received_at_message_id", "received_at", "message_id"),
)

#: The timeline of a message: accepted, queued, delivered, confirmed, failed, duplicate pushes...
evidences = Table(
    "evidences",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), ForeignKey("messages.message_id"), nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("detail", Text),
)

#: Transactional outbox: written with the message; the relay publishes each row with a broker confirm,
#: then deletes it (the message's timeline keeps the evidence).
outbox = Table(
    "outbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, index=True),
    Column("exchange", String(64), nullable=False),
    Column("routing_key", String(200), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("headers", Text, nullable=False),
    # NULL for a document: its body is the message row's payload (stored once, read by the relay).
    Column("body", Text),
    Column("created_at", TS, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    # Lease: a relay claims rows until this time; a crashed relay's rows are claimed again after it.
    Column("claimed_until", TS),
    Column("claimed_by", String(64)),
    Index("ix_outbox_claim", "claimed_until", "priority", "id"),
)

#: Append-only, hash-chained audit log: who did what, when, with what outcome. No personal data in clear.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("subject", String(128)),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("status_code", Integer),
    Column("message_id", String(36), index=True),
    Column("object_ref", String(200)),
    Column("reason", Text),
    Column("data", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    # A client's or operator's latest record (the console's "last seen") and the audit page's search by
    # actor: one index seek instead of a walk of the whole log.
    Index("ix_audit_log_actor_id", "actor", "id"),
)

#: Which audit records name which person (keyed pseudonym): the data-access report and the consent rule
#: find a person's records here, not by scanning the audit data. Written with the record, never changed.
audit_persons = Table(
    "audit_persons",
    metadata,
    Column("person_ref", String(64), nullable=False),
    Column("audit_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("person_ref", "audit_id"),
)

#: One row: the head of the audit chain. Updating it serialises audit writers, so the chain never forks.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

#: Asset inquiries: one officer's lookup of one debtor across several sources.
inquiries = Table(
    "inquiries",
    metadata,
    Column("inquiry_id", String(36), primary_key=True),
    Column("client_id", String(32), nullable=False),
    # Idempotency-Key header: the same key from the same client returns the same inquiry.
    Column("idempotency_key", String(128)),
    Column("request_sha256", String(64), nullable=False),
    Column("case_ref", String(64), nullable=False, index=True),
    Column("officer_id", String(12), nullable=False),
    Column("legal_basis", String(64), nullable=False),
    Column("purpose", String(300), nullable=False),
    Column("priority", String(8), nullable=False),
    # Masked ID (001*******45) or enterprise code, and a keyed hash for finding a person's lookups.
    Column("debtor_ref", String(32), nullable=False),
    Column("debtor_pseudonym", String(64), nullable=False, index=True),
    Column("request", Text),
    Column("callback_url", Text),
    Column("status", String(16), nullable=False),
    Column("due_at", TS, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("completed_at", TS),
    # Counted as sources are answered, so an answer updates this row instead of reading every source
    # (the status follows from the counts: gateway.domain.inquiry.status_from_counts).
    Column("sources_total", Integer, nullable=False, server_default="0"),
    Column("sources_pending", Integer, nullable=False, server_default="0"),
    Column("sources_timeout", Integer, nullable=False, server_default="0"),
    UniqueConstraint("client_id", "idempotency_key"),
)

#: One row per source asked: its status, the canonical answer, and the evidence of what answered what.
inquiry_sources = Table(
    "inquiry_sources",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("inquiry_id", String(36), ForeignKey("inquiries.inquiry_id"), nullable=False, index=True),
    Column("source_id", String(48), nullable=False),
    Column("partner_code", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    # Sent to the partner and echoed back (late answers are matched on it).
    Column("request_ref", String(36), nullable=False, unique=True),
    # SHA-256 of the canonical request sent: the answer is evidence about exactly this question.
    Column("request_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("match_status", String(24)),
    Column("rows", Text),
    Column("as_of", String(40)),
    Column("reference", String(128)),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("due_at", TS, nullable=False),
    Column("answered_at", TS),
    # What the exchange platform proved about the call (JSON: X-Road's request hash, an LGSP transaction
    # id); NULL for a direct call. Kept beside the answer: it shows which question the answer answers.
    Column("transport_evidence", Text),
    UniqueConstraint("inquiry_id", "source_id"),
    Index("ix_inquiry_sources_pending", "status", "due_at"),
)

#: Signed anchors of the audit chain: every N records or M minutes the head is signed with the receipt
#: key, so cutting the tail or recomputing every hash after an edit no longer goes unnoticed.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("audit_id", BigInteger, nullable=False, index=True),
    Column("head_hash", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", Text, nullable=False),
)

#: What each worker sees of each partner (breaker, success rate, latency, last error), refreshed every
#: few seconds, so the console in an api process can show partners whatever worker makes the calls.
partner_health = Table(
    "partner_health",
    metadata,
    Column("partner", String(32), primary_key=True),
    Column("worker", String(64), primary_key=True),
    Column("updated_at", TS, nullable=False),
    Column("breaker", String(16), nullable=False),
    Column("calls", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("p50_ms", Integer),
    Column("p95_ms", Integer),
    Column("in_flight", Integer, nullable=False),
    Column("last_error", Text),
    Column("last_error_at", TS),
)

#: Citizens' consent to notices through the national e-ID notification service, as recorded by that
#: service: the latest row per person says whether a second notice may go. Keyed by the pseudonym of
#: the personal ID (never the ID in clear).
consents = Table(
    "consents",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("person_ref", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # granted | withdrawn
    Column("at", TS, nullable=False),
    Column("recorded_by", String(32), nullable=False),
    Column("reference", String(100)),
    Index("ix_consents_person", "person_ref", "channel", "at"),
)

#: Who is told of status changes without polling: a client's own queue bound to ``gw.events``, or a
#: signed webhook.
event_subscriptions = Table(
    "event_subscriptions",
    metadata,
    Column("subscription_id", String(36), primary_key=True),
    Column("client_id", String(32), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # queue | webhook
    Column("target", String(500), nullable=False),
    Column("message_types", Text),  # JSON list; empty: every type the client sends or receives
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
)

#: Status events waiting to be published to ``<ns>.events``, written in the transaction of the status
#: change they report. Kept apart from ``outbox`` so documents never wait behind events; one relay at a
#: time drains it in order (see ``gateway/worker/events.py``).
event_outbox = Table(
    "event_outbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("routing_key", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_until", TS),
    Column("claimed_by", String(64)),
)

#: Bearer tokens already used once (``auth.single_use_tokens``): a token's ``jti`` is remembered until
#: the token expires, for every api process at once, so a copied token cannot be sent again. Keyed by
#: issuer too, since each client chooses its own ids. Rows past ``expires_at`` are pruned.
token_uses = Table(
    "token_uses",
    metadata,
    Column("issuer", String(32), nullable=False),
    Column("jti", String(128), nullable=False),
    Column("expires_at", TS, nullable=False, index=True),
    PrimaryKeyConstraint("issuer", "jti"),
)

#: Console sessions, server side: the signed cookie names a row here, and signing out revokes it for
#: every api process at once. ``expires_at`` is the absolute end; activity never moves it.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("sid", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("issued_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False, index=True),
    Column("revoked_at", TS),
)

#: The inbox of each pull partner (``delivery = "pull"`` in config/partners.toml): the lookups and documents
#: it fetches itself. ``item_id`` is the lookup's ``request_ref`` or the document's ``message_id``, so a
#: redelivered queue message finds its row instead of adding one. An item is handed out when
#: ``available_at`` has passed: at once when stored, again when a lease runs out unacknowledged; an
#: acknowledged (or withdrawn) item has none, and its payload is dropped.
partner_pulls = Table(
    "partner_pulls",
    metadata,
    Column("item_id", String(36), primary_key=True),
    Column("partner", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # lookup | document
    Column("priority", Integer, nullable=False, default=0),  # 1: urgent, handed out first
    Column("state", String(16), nullable=False),  # pending | acknowledged | withdrawn
    Column("payload", Text),
    Column("created_at", TS, nullable=False),
    Column("available_at", TS),
    # The lease of the last fetch: its token (acknowledgements must name it) and its end.
    Column("lease", String(64)),
    Column("leased_until", TS),
    Column("fetches", Integer, nullable=False, default=0),
    Column("first_fetched_at", TS),
    Column("acknowledged_at", TS),
    Index("ix_partner_pulls_available", "partner", "available_at"),
)

#: Bulk lookups: one request naming many debtors, stored as accepted (``request``: the validated body)
#: and expanded by the workers into ordinary inquiries, ``chunk`` debtors per transaction. ``expanded``
#: counts the debtors done and moves in the same transaction as their inquiries, so a chunk is stored
#: whole or not at all; ``claimed_by``/``claimed_until`` is the lease of the worker expanding it.
bulk_inquiries = Table(
    "bulk_inquiries",
    metadata,
    Column("bulk_id", String(36), primary_key=True),
    Column("client_id", String(32), nullable=False),
    Column("token_subject", String(128)),
    Column("idempotency_key", String(128)),
    Column("request_sha256", String(64), nullable=False),
    Column("request", Text, nullable=False),
    Column("callback_base", Text),
    Column("debtors", Integer, nullable=False),
    Column("expanded", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_until", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("expanded_at", TS),
    UniqueConstraint("client_id", "idempotency_key"),
    Index("ix_bulk_inquiries_status", "status"),
)

#: The inquiry each debtor of a bulk became, by its position in the request's ``debtors``.
bulk_items = Table(
    "bulk_items",
    metadata,
    Column("bulk_id", String(36), ForeignKey("bulk_inquiries.bulk_id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("inquiry_id", String(36), ForeignKey("inquiries.inquiry_id"), nullable=False, unique=True),
    PrimaryKeyConstraint("bulk_id", "position"),
)

#: Signed documents kept as proof for as long as the law wants them, whatever happens to the message's
#: payload (dropped once its recipient confirms): the PDF as it arrived, then as the long-term proof job
#: made it (``level``: ``received`` → ``B-LT``, the validation material in a DSS → ``B-LTA``, a document
#: time-stamp over it, renewed before ``archive_expires_at``). ``original_length`` bytes of ``pdf`` are the
#: file that arrived (every later step is an incremental update), so its hash stays checkable.
signed_documents = Table(
    "signed_documents",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("sender", String(64), nullable=False),
    Column("original_sha256", String(64), nullable=False),
    Column("original_length", BigInteger, nullable=False),
    Column("pdf", LargeBinary, nullable=False),
    Column("level", String(16), nullable=False),
    Column("timestamps", Integer, nullable=False, default=0),
    Column("archive_expires_at", TS),
    # When the job should look at it next: at once on arrival, then before the archive time-stamp expires.
    Column("due_at", TS, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("claimed_by", String(64)),
    Column("claimed_until", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_signed_documents_due", "due_at"),
)

#: Figures the console charts over hours and days that nothing else keeps over time (parked and queued
#: messages, overdue documents, each partner's calls, failures and latency): one row per figure, sampled
#: by the worker's gauge loop about once a minute and deleted after eight days (gateway/ops/history.py).
ops_samples = Table(
    "ops_samples",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("series", String(32), nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", BigInteger, nullable=False),
    Index("ix_ops_samples_series_key_at", "series", "key", "at"),
    Index("ix_ops_samples_at", "at"),
)
