"""The ``worker`` process: outbox relay + delivery consumers (stateless; run as many as you like)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import tomllib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from gateway.amqp import topology
from gateway.amqp.broker import Publisher, connect
from gateway.amqp.consume import Park, RetryLater, callback
from gateway.amqp.hints import Hinter
from gateway.amqp.names import Names
from gateway.connectors.pull import guard
from gateway.connectors.registry import build_connectors, close_all
from gateway.connectors.resilience import GuardedConnector
from gateway.domain.registry import partner_kinds_receiving_documents
from gateway.metrics import observe_signing_key
from gateway.partners import Partner, load_partners, load_platforms, missing_credentials
from gateway.pipeline import build_relay
from gateway.reference_data import load_calendar, load_legal_bases, load_reminder_lead
from gateway.security.clients import Client, ClientStore
from gateway.security.outbound import Outbound, OutboundPolicy, client_session
from gateway.security.signing import Signer
from gateway.services.bulk_expansion import BulkExpander
from gateway.services.factory import build_document_service
from gateway.services.inquiries import LOOKUP_TYPE, InquiryService
from gateway.settings import Settings
from gateway.signatures.departure import DepartureSigning
from gateway.signatures.office import load_office_signers
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.validation import catalog
from gateway.worker import checkpoints as audit_checkpoints
from gateway.worker import events as status_events
from gateway.worker import http as http_listener
from gateway.worker.deadlines import DeadlineWatcher
from gateway.worker.delivery import Deliverer, Recipient
from gateway.worker.gauges import pollers
from gateway.worker.longterm import ProofJob
from gateway.worker.lookups import LookupWorker
from gateway.worker.partner_health import PartnerHealthWriter

log = logging.getLogger(__name__)
RESCAN_SECONDS = 5.0


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = Names(settings.broker_namespace)
        self._consuming: dict[str, str] = {}  # client id -> delivery target it is consumed for
        # Urgent lanes are consumed on a channel of their own: its prefetch is never taken by a backlog.
        self._urgent_channel: AbstractChannel | None = None
        self.metrics_port: int | None = None  # bound port of /metrics, /healthz, /readyz once running

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        db = Database(settings.resolved_database_url, settings.database)
        await upgrade(db.url)
        clients = ClientStore(settings.clients_dir)
        signer = Signer.from_file(settings.path(settings.signing.private_key_file))
        observe_signing_key(settings)
        # Up before the broker connections: while the broker is down, /readyz says so.
        connections: list[Any] = []
        metrics = await http_listener.start(
            http_listener.make_app(
                db, lambda: len(connections) == 2 and not any(c.is_closed for c in connections), settings
            ),
            settings.worker.metrics_host,
            settings.worker.metrics_port,
        )
        self.metrics_port = int(metrics.addresses[0][1]) if metrics is not None else None
        try:
            # Started while the broker is down, the worker waits here; the api keeps accepting.
            publish_conn = await connect(settings.broker_url, "gateway-worker-publish")
            consume_conn = await connect(settings.broker_url, "gateway-worker-consume")
        except BaseException:
            if metrics is not None:
                await metrics.cleanup()
            raise
        connections += [publish_conn, consume_conn]
        publisher = Publisher(publish_conn)
        documents = build_document_service(settings, db, clients, signer)
        partners = load_partners(settings.config_dir)
        _warn_missing_credentials(partners)
        policy = OutboundPolicy.from_settings(settings.outbound)
        # Addresses a client named (callbacks, status webhooks) go through their own session, which
        # connects only where the outbound policy allows; partners and operator-registered webhooks
        # (configuration, not client input) use ``http``.
        async with aiohttp.ClientSession() as http, client_session(policy) as client_http:
            outbound = Outbound(policy, client_http, functools.partial(_outbound_hosts, clients))
            deliverer = Deliverer(db, publisher, self.names, signer, http, settings.delivery, documents)
            relay = build_relay(settings, db, clients, documents, lambda: publisher)
            channel = await consume_conn.channel()
            await channel.set_qos(prefetch_count=settings.delivery.prefetch)
            self._urgent_channel = await consume_conn.channel()
            await self._urgent_channel.set_qos(prefetch_count=settings.delivery.prefetch)
            await topology.declare_exchanges(channel, self.names)
            d = settings.delivery
            await topology.declare_retry_tiers(
                channel, self.names, d.delivery_limit, [int(s * 1000) for s in d.retry_delays_seconds]
            )
            signing = DepartureSigning(load_office_signers(settings.config_dir))
            if signing:
                log.info("documents to partners are signed for %s", ", ".join(sorted(signing.signers)))
            connectors = await build_connectors(
                partners, http, db, load_platforms(settings.config_dir), signing=signing
            )
            # One guard per partner: lookups and document deliveries share its breaker and concurrency
            # (a pull partner, never called, has none: its items wait in its inbox).
            guarded = {p.code: guard(p, connectors[p.code]) for p in partners}
            hinter = Hinter(publish_conn, self.names)
            lookups = LookupWorker(db, self.names, guarded, signer, outbound, hinter.final)
            callbacks = await topology.declare_callbacks(channel, self.names, d.delivery_limit)
            await callbacks.consume(lookups.on_callback)
            # Queues first, relay second: a message published before its queue exists would bounce.
            # Clients' queues before partners' work: a partner's synchronous report goes to a client.
            await self._scan(channel, clients, deliverer)
            await self._consume_partners(channel, partners, guarded, deliverer, lookups)
            watcher = DeadlineWatcher(
                db,
                documents,
                clients,
                settings.agency_code,
                load_reminder_lead(settings.config_dir),
                settings.deadline_scan_seconds,
            )
            tasks = [asyncio.create_task(self._rescan(channel, clients, deliverer), name="rescan")]
            tasks.append(asyncio.create_task(relay.run(), name="relay"))
            tasks += status_events.start(
                db, publish_conn, consume_conn, self.names, signer, outbound, settings
            )
            tasks.append(asyncio.create_task(lookups.watch_deadlines(), name="deadlines"))
            tasks.append(asyncio.create_task(watcher.run(), name="document-deadlines"))
            tasks.append(asyncio.create_task(audit_checkpoints.run(db, signer, settings.audit), name="audit"))
            proofs = _proof_job(settings, db)
            if proofs is not None:
                tasks.append(asyncio.create_task(proofs.run(), name="long-term-proof"))
            tasks.append(
                asyncio.create_task(_bulk_expander(settings, db, signer, partners).run(), name="bulk")
            )
            health = PartnerHealthWriter(db, guarded, interval_seconds=settings.worker.partner_health_seconds)
            tasks.append(asyncio.create_task(health.run(), name="partner-health"))
            for poller in pollers(settings, db, consume_conn):
                tasks.append(asyncio.create_task(poller.run(), name=f"gauges-{poller.name}"))
            log.info("worker running")
            try:
                await stop.wait()
            finally:
                await cancel_all(tasks)
                await lookups.close()
                await relay.close()
                await close_all(connectors)
                if metrics is not None:
                    await metrics.cleanup()
                await consume_conn.close()
                await publish_conn.close()
                await db.dispose()

    async def _consume_partners(
        self,
        channel: AbstractChannel,
        partners: list[Partner],
        guarded: dict[str, GuardedConnector],
        deliverer: Deliverer,
        lookups: LookupWorker,
    ) -> None:
        """One work queue per partner (and its urgent lane) for everything it is sent: lookup requests
        (message type ``asset.lookup``) and, for partners that take documents through their own API
        (banks, the land registry), documents. Four quorum queues per partner, parking included."""
        kinds = partner_kinds_receiving_documents()
        d = self.settings.delivery
        for partner in partners:
            takes_documents = partner.kind in kinds
            if not (takes_documents or partner.is_lookup_source):
                continue
            queue = await topology.declare_recipient(
                channel, self.names, partner.code, d.delivery_limit, None
            )
            deliver = (
                functools.partial(deliverer.deliver, Recipient(partner.code, partner=guarded[partner.code]))
                if takes_documents
                else None
            )
            urgent = await self._urgent_lane(partner.code)
            for lane in (queue, urgent):
                await lane.consume(_partner_work(partner.code, lane.name, lookups, deliver))

    async def _urgent_lane(self, recipient: str) -> AbstractQueue:
        assert self._urgent_channel is not None
        return await topology.declare_urgent_lane(
            self._urgent_channel, self.names, recipient, self.settings.delivery.delivery_limit
        )

    async def _scan(self, channel: AbstractChannel, clients: ClientStore, deliverer: Deliverer) -> None:
        for client in clients.all():
            await self._ensure_consumer(channel, clients, client, deliverer)

    async def _rescan(self, channel: AbstractChannel, clients: ClientStore, deliverer: Deliverer) -> None:
        """Start consuming for every recipient, including ones added while we run."""
        while True:
            await asyncio.sleep(RESCAN_SECONDS)
            try:
                await self._scan(channel, clients, deliverer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recipient scan failed; retrying")

    async def _ensure_consumer(
        self, channel: AbstractChannel, clients: ClientStore, client: Client, deliverer: Deliverer
    ) -> None:
        if client.deliver_to is None or client.revoked:
            return
        target = str(client.deliver_to)
        if self._consuming.get(client.id) == target:
            return
        d = self.settings.delivery
        queue = await topology.declare_recipient(
            channel,
            self.names,
            client.id,
            d.delivery_limit,
            client.deliver_to.target if client.deliver_to.kind == "amqp" else None,
        )
        if client.id not in self._consuming:

            async def on_message(message: AbstractIncomingMessage, client_id: str = client.id) -> None:
                # Looked up per message: a changed delivery target applies at once.
                current = clients.get(client_id)
                if current is None or current.deliver_to is None:
                    # Held a second, then back to the queue: a configuration fix has time to land.
                    raise RetryLater(f"{client_id} has no delivery target")
                await deliverer.deliver(Recipient(client_id, client=current), message)

            urgent = await self._urgent_lane(client.id)
            for lane in (queue, urgent):
                await lane.consume(callback(on_message, queue=lane.name, recipient=client.id))
        self._consuming[client.id] = target
        log.info("delivering to %s via %s", client.id, target)


def _partner_work(
    code: str,
    queue: str,
    lookups: LookupWorker,
    deliver: Callable[[AbstractIncomingMessage], Awaitable[None]] | None,
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """The consumer of one of a partner's lanes: a lookup request to the lookup worker, a document to the
    deliverer (a partner that takes no documents parks one: it cannot be delivered there)."""
    documents = callback(deliver or _takes_no_documents, queue=queue, recipient=code)

    async def on_message(message: AbstractIncomingMessage) -> None:
        if message.type == LOOKUP_TYPE:
            await lookups.on_request(code, queue, message)
        else:
            await documents(message)

    return on_message


async def _takes_no_documents(message: AbstractIncomingMessage) -> None:
    raise Park(f"a {message.type or 'document'} on the work queue of a partner that takes no documents")


def _proof_job(settings: Settings, db: Database) -> ProofJob | None:
    """The long-term proof job, where signatures are checked (an anchor in config/trust/): the anchors
    are what every step validates against."""
    if not (settings.config_dir / "signatures.toml").is_file():
        return None
    from gateway.signatures.trust import TrustList

    roots = TrustList.load(settings.config_dir / "trust").roots()
    if not roots:
        return None
    if not settings.long_term.tsa_url:
        log.warning(
            "long_term.tsa_url is not set: signed documents keep their validation material but get no "
            "archive time-stamp"
        )
    from gateway.signatures.policy import policies_from_mapping

    policies = policies_from_mapping(
        tomllib.loads((settings.config_dir / "signatures.toml").read_text("utf-8"))
    )
    hosts = next((p.revocation_hosts for p in policies.values()), ())
    return ProofJob(db, roots, settings.long_term, revocation_hosts=hosts)


def _bulk_expander(settings: Settings, db: Database, signer: Signer, partners: list[Partner]) -> BulkExpander:
    """Bulk lookups are expanded into their inquiries here, not in the api (docs/bulk.md): whichever worker
    is alive takes over a bulk left half-expanded. Its requests are not held by this worker's relay but
    left to every relay's pass (the api's too): this worker already consumes and calls for them, and a
    thousand debtors' requests published by the process that also works them took it half again as long
    as a thousand single inquiries (BENCHMARKS.md, 45-bulk); a campaign can wait the pass's second."""
    config = settings.config_dir
    inquiries = InquiryService(
        db,
        catalog(),
        partners,
        load_legal_bases(config),
        load_calendar(config),
        pepper=signer.pseudonym_pepper(),
    )
    return BulkExpander(db, inquiries, partners, settings.bulk)


def _outbound_hosts(clients: ClientStore, client_id: str) -> tuple[str, ...] | None:
    client = clients.get(client_id)
    return client.outbound_hosts if client is not None else None


def _warn_missing_credentials(partners: list[Partner]) -> None:
    for partner in missing_credentials(partners):
        log.warning(
            "partner %s: environment variable %s is not set; calls to it go without credentials "
            "and will likely be refused (401)",
            partner.code,
            partner.credentials,
        )


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await Worker(settings).run(stop)


async def cancel_all(tasks: list[asyncio.Task[Any]], attempts: int = 50) -> None:
    """Cancel ``tasks`` and wait for them. A cancellation that lands inside an aio-pika RPC (opening a
    channel, a passive declare) can be absorbed by the library, which closes the channel and lets the
    task carry on; those still running are cancelled again, so a worker always stops."""
    for _ in range(attempts):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.2)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("task %s ended with %r", task.get_name(), task.exception())
