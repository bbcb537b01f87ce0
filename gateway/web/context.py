"""What the web application holds: typed application state (``web.AppKey``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from gateway.security.clients import ClientStore
from gateway.security.replay import TokenUses
from gateway.security.signing import Signer
from gateway.security.tokens import TokenVerifier
from gateway.security.xroad_inbound import XRoadInbound
from gateway.services.answers import AnswerService
from gateway.services.bulk import BulkService
from gateway.services.documents import DocumentService
from gateway.services.inquiries import InquiryService
from gateway.services.messages import MessageService
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.web.rate_limit import ClientRateLimiter


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    clients: ClientStore
    verifier: TokenVerifier
    signer: Signer
    documents: DocumentService
    messages: MessageService
    inquiries: InquiryService
    answers: AnswerService
    limiter: ClientRateLimiter
    token_uses: TokenUses
    bulk: BulkService
    #: Which X-Road security servers are trusted and which X-Road clients are whom (``xroad.toml``);
    #: none configured: X-Road headers are refused.
    xroad: XRoadInbound = field(default_factory=XRoadInbound)


SERVICES = web.AppKey("services", Services)
