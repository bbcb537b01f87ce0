"""Building the services from settings: the api and the worker assemble the same pipeline."""

from __future__ import annotations

from gateway.domain.doctypes import RuleContext
from gateway.partners import load_partners
from gateway.reference_data import (
    load_calendar,
    load_deadlines,
    load_legal_bases,
    load_reminder_lead,
    load_routing,
)
from gateway.security.clients import ClientStore
from gateway.security.signing import Signer
from gateway.services.admissions import ADMISSIONS
from gateway.services.document_rules import DocumentRules, by_code
from gateway.services.documents import DocumentService
from gateway.services.signature_intake import SignatureChecks
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.validation import catalog


def build_document_service(
    settings: Settings, db: Database, clients: ClientStore, signer: Signer
) -> DocumentService:
    """The one document pipeline, as the api and the worker both build it."""
    config = settings.config_dir
    rules = DocumentRules(
        calendar=load_calendar(config),
        partners=by_code(load_partners(config)),
        deadlines=load_deadlines(config),
        rule_context=RuleContext(max_inline_document_bytes=settings.api.max_inline_document_bytes),
        admissions=ADMISSIONS,
        routing=load_routing(config),
        reminder_lead=load_reminder_lead(config),
        legal_bases=frozenset(load_legal_bases(config)),
    )
    # Read once here, for the life of the process: a request never touches the trust list's files.
    signatures = SignatureChecks.load(config, known_types=rules.registry)
    return DocumentService(db, catalog(), signer, clients, rules, signatures=signatures)
