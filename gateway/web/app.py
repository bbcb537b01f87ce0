"""The ``api`` process: one aiohttp application for every HTTP face of the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.amqp import hints
from gateway.amqp.broker import BrokerLink
from gateway.amqp.names import Names
from gateway.connectors import bank
from gateway.partners import load_partners
from gateway.pipeline import build_relay
from gateway.problems import set_max_listed
from gateway.reference_data import load_calendar, load_legal_bases
from gateway.security.clients import ClientStore
from gateway.security.outbound import OutboundPolicy
from gateway.security.replay import token_uses_store
from gateway.security.signing import Signer
from gateway.security.tokens import TokenVerifier
from gateway.security.xroad_inbound import load_xroad_inbound
from gateway.services.answers import AnswerService
from gateway.services.bulk import BulkService
from gateway.services.factory import build_document_service
from gateway.services.inquiries import InquiryService
from gateway.services.messages import MessageService
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.migrate import upgrade
from gateway.validation import catalog
from gateway.web.console.app import mount as mount_console
from gateway.web.context import SERVICES, Services
from gateway.web.middleware import problems
from gateway.web.operations import add_routes
from gateway.web.rate_limit import ClientRateLimiter
from gateway.web.rejections import REJECTIONS, RejectionTally, flushing

log = logging.getLogger(__name__)


def build_services(settings: Settings, db: Database) -> Services:
    clients = ClientStore(settings.clients_dir)
    signer = Signer.from_file(settings.path(settings.signing.private_key_file))
    verifier = TokenVerifier(
        clients,
        audience=settings.auth.audience,
        leeway=settings.auth.leeway_seconds,
        max_lifetime=settings.auth.max_token_lifetime_seconds,
    )
    documents = build_document_service(settings, db, clients, signer)
    inquiries = InquiryService(
        db,
        catalog(),
        load_partners(settings.config_dir),
        load_legal_bases(settings.config_dir),
        load_calendar(settings.config_dir),
        pepper=signer.pseudonym_pepper(),
        outbound=OutboundPolicy.from_settings(settings.outbound),
    )
    answers = AnswerService(db, bank.parse_callback)
    answers.watch = inquiries.watch  # a late answer wakes this process's waiters for its inquiry
    return Services(
        settings=settings,
        db=db,
        clients=clients,
        verifier=verifier,
        signer=signer,
        documents=documents,
        messages=MessageService(db, catalog(), documents),
        inquiries=inquiries,
        answers=answers,
        limiter=ClientRateLimiter(settings.api.rate_limit, settings.api.rate_limit_storage),
        token_uses=token_uses_store(db, settings.api.rate_limit_storage, settings.broker_namespace),
        bulk=BulkService(
            db,
            catalog(),
            load_partners(settings.config_dir),
            load_legal_bases(settings.config_dir),
            settings.bulk,
            outbound=OutboundPolicy.from_settings(settings.outbound),
        ),
        xroad=load_xroad_inbound(settings.config_dir),
    )


@contextlib.asynccontextmanager
async def relaying(settings: Settings, services: Services) -> AsyncIterator[None]:
    """The api publishes what it accepts (``relay.publish_from_api``): its own relay, on a broker
    connection made in the background, so the api starts and accepts while the broker is down (rows
    then wait in the outbox for whichever relay can publish)."""
    if not settings.relay.publish_from_api:
        yield
        return
    link = BrokerLink(settings.broker_url, "gateway-api-publish")
    link.start()
    relay = build_relay(settings, services.db, services.clients, services.documents, lambda: link.publisher)
    services.inquiries.relay = relay
    fallback = asyncio.create_task(relay.run(), name="relay")
    # Workers' "this inquiry is final" hints wake this process's Prefer: wait callers.
    listening = asyncio.create_task(_listen_for_hints(link, settings, services), name="hints")
    try:
        yield
    finally:
        for task in (listening, fallback):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await relay.close()
        await link.close()


async def _listen_for_hints(link: BrokerLink, settings: Settings, services: Services) -> None:
    connection = await link.connection()
    try:
        await hints.listen(connection, Names(settings.broker_namespace), services.inquiries.watch)
    except Exception:
        log.warning("not listening for inquiry hints: Prefer: wait re-reads on its own", exc_info=True)


def create_app(settings: Settings, migrate: bool = True) -> web.Application:
    # The body limit is enforced by our reader (413 as problem+json); aiohttp's own cap is a backstop.
    app = web.Application(middlewares=[problems], client_max_size=settings.api.max_body_bytes + 1024)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url, settings.database)
        if migrate:
            await upgrade(db.url)
        app[SERVICES] = services = build_services(settings, db)
        async with flushing(app, db), relaying(settings, services):
            yield
        await services.token_uses.close()
        await db.dispose()

    app[REJECTIONS] = RejectionTally()
    app.cleanup_ctx.append(lifecycle)
    set_max_listed(settings.limits.max_errors)  # how many violations a 422 lists, the rest counted
    add_routes(app)
    mount_console(app, settings)  # the operators' console at /ops
    return app
