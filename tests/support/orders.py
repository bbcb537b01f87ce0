"""Order documents as the case system sends them (valid against gateway/schemas/order.*), and the report
documents a partner's answer becomes, for tests of the connectors and the partner simulators."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.simulators.partners import seed
from gateway.validation import catalog

OFFICE = "THADS-HN"
DECISION = {"number": "45/QĐ-CCTHADS", "date": "2026-03-09", "issuing_office": OFFICE}
TITLE = {
    "judgment": {"court_code": "TAND-HN", "number": "123/2026/DS-ST", "date": "2026-01-15"},
    "enforcement_decision": {"number": "512/QĐ-CTHADS", "date": "2026-02-20"},
}
RICH = {"id_number": seed.RICH, "full_name": "Nguyễn Văn An", "date_of_birth": "1985-02-14"}
EMPTY = {"id_number": seed.EMPTY, "full_name": "Lê Thị Bình"}
AGENCY_ACCOUNT = {
    "bank_code": "BANK-VCB",
    "account_number": "0011000123999",
    "holder": "Chi cục THADS Hà Nội",
}
# The rich debtor's seeded parcels (seed.RICH_PARCELS) and one nobody owns.
RICH_PARCELS = [
    {"map_sheet": "12", "parcel_number": "345", "certificate_number": "CS 01234"},
    {"map_sheet": "8", "parcel_number": "72"},
]
NO_PARCEL = {"map_sheet": "99", "parcel_number": "9999"}


def order(recipient: str, message_type: str, body: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    """A complete order document; ``body`` adds to decision, title and debtor (default: the rich one)."""
    document = {
        "message_id": str(uuid.uuid4()),
        "message_type": message_type,
        "schema_version": "1",
        "created_at": "2026-03-09T10:20:00+07:00",
        "sender": OFFICE,
        "recipient": recipient,
        "case_ref": "THA-HN-2026-000456",
        "officer_id": "001088009911",
        "legal_basis": "LTHADS-67",
        "purpose": "Bảo đảm thi hành nghĩa vụ trả tiền theo bản án",
        "body": {"decision": DECISION, "title": TITLE, "debtor": RICH, **body},
    }
    return document | envelope


def blocking(bank: str, amount: int, accounts: list[str] | None = None, **body: Any) -> dict[str, Any]:
    wanted: dict[str, Any] = (
        {"accounts": [{"account_number": a} for a in accounts]} if accounts else {"all_accounts": True}
    )
    return order(bank, "order.account_blocking", {"amount": amount, **wanted, **body})


def transfer(bank: str, blocking_order: str, amount: int, **body: Any) -> dict[str, Any]:
    fields = {"blocking_order": blocking_order, "amount": amount, "to_account": AGENCY_ACCOUNT}
    return order(bank, "order.funds_transfer", fields | body)


def release(bank: str, blocking_order: str, scope: str = "full", amount: int | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"blocking_order": blocking_order, "scope": scope}
    return order(bank, "order.account_release", fields | ({"amount": amount} if amount else {}))


def suspension(parcels: list[dict[str, str]], **envelope: Any) -> dict[str, Any]:
    body = {"parcels": parcels, "reason": "Bảo đảm thi hành án"}
    return order("LAND-REG", "order.land_transfer_suspension", body, **envelope)


def lifting(suspension_order: str, parcels: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"suspension_order": suspension_order}
    return order(
        "LAND-REG", "order.land_suspension_lifting", body | ({"parcels": parcels} if parcels else {})
    )


def revocation(recipient: str, revokes: str) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "message_type": "document.revocation",
        "schema_version": "1",
        "created_at": "2026-03-10T08:00:00+07:00",
        "sender": OFFICE,
        "recipient": recipient,
        "case_ref": "THA-HN-2026-000456",
        "body": {"revokes": revokes, "reason": "Quyết định bị hủy"},
    }


def report_document(order_document: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The report document built around a report body a partner answered at once."""
    return {
        "message_id": str(uuid.uuid4()),
        "message_type": "report." + order_document["message_type"].removeprefix("order."),
        "schema_version": "1",
        "created_at": body["executed_at"],
        "sender": order_document["recipient"],
        "recipient": order_document["sender"],
        "in_reply_to": order_document["message_id"],
        "case_ref": order_document["case_ref"],
        "body": body,
    }


def violations(document: dict[str, Any]) -> list[str]:
    """What the document's own schema finds wrong with it, as readable lines."""
    found = catalog().violations(document["message_type"], document)
    return [f"{v.path}: {v.message}" for v in found]
