"""Which kind of party sends a document type, and how the gateway knows a client's kind. Pure.

A grant (``documents.send``, ``documents.send:<type>``) says what a client may *do*; the role says what
the client *is*. A type names the roles that send it (``DocumentType.sent_by``): an order comes from an
enforcement office, a judgment from a court, a bank's report from a bank. A client sends a type only when
it holds a grant for it **and** has one of its roles, so a family grant never lets a court freeze an
account. :data:`GATEWAY` is no client's role: the types only the gateway issues (deadline events,
revocations) are refused to every client, whatever it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

ENFORCEMENT_OFFICE: Final = "enforcement_office"
COURT: Final = "court"
PROCURACY: Final = "procuracy"
BANK: Final = "bank"
LAND: Final = "land"
POLICE: Final = "police"
VNEID: Final = "vneid"
#: The gateway itself: never a client's role.
GATEWAY: Final = "gateway"

#: Roles a client file may state (``role = "court"``); partner kinds of ``config/partners.toml`` are
#: roles too (a bank pushing its late reports is a ``bank``).
CLIENT_ROLES: Final = frozenset(
    {ENFORCEMENT_OFFICE, COURT, PROCURACY, BANK, LAND, POLICE, VNEID, "tax", "vehicle", "population"}
)

#: The agency-code prefixes the gateway's agencies are registered under (Thi hành án dân sự, Tòa án
#: nhân dân, Viện kiểm sát nhân dân): the role of a client whose file states none and that is no
#: configured partner. An operator chooses the client id, a client never does.
ROLE_BY_PREFIX: Final[Mapping[str, str]] = {
    "THADS-": ENFORCEMENT_OFFICE,
    "TAND-": COURT,
    "VKS-": PROCURACY,
}


def client_role(client_id: str, stated: str | None, partner_kind: str | None) -> str | None:
    """A client's role: the one its file states, else the kind of the partner it is
    (``config/partners.toml``), else the one its agency-code prefix gives; ``None`` when nothing says
    (such a client sends no document: deny by default)."""
    if stated:
        return stated
    if partner_kind:
        return partner_kind
    for prefix, role in ROLE_BY_PREFIX.items():
        if client_id.startswith(prefix):
            return role
    return None
