"""The land registry's orders (``SuspendTransfer``, ``LiftSuspension``, ``RevokeOrder``) run against the
seeded parcels (:func:`seed.land_parcels`), each MessageId executed once (:class:`.desk.Once`): a repeat
gets the first answer again, a repeat with another request is a Client fault.

A parcel the debtor does not own is ``not_owned_by_debtor`` when the registry knows it (the seeded parcels
of ``seed.RICH`` and of a fixed sample of derived subjects), ``not_found`` otherwise; a parcel another
order suspended is ``already_suspended`` (unless the new order ``Replaces`` that one: the suspension passes
to it). Lifting without Parcels lifts what the suspension order suspended; a parcel held by another
suspension is ``suspended_by_another_order``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from lxml import etree

from gateway.domain.orders import outcome_of
from gateway.simulators.partners import as_of, reference, seed
from gateway.simulators.partners.desk import Conflict, Once
from gateway.simulators.partners.land_soap import CODE, LIFT, NS, SUSPEND, SoapFault, q, subject_identifier
from gateway.soap import envelope

# Subjects whose seeded parcels the registry knows besides the debtor's own (derived IDs as in the tests).
KNOWN_SUBJECTS: Final = (seed.RICH, *(f"0010{n:08d}" for n in range(300)))

Key = tuple[str, str]  # (map sheet, parcel number), leading zeros dropped


def parcel_key(map_sheet: str, parcel_number: str) -> Key:
    sheet, number = map_sheet.strip(), parcel_number.strip()
    return (str(int(sheet)) if sheet.isdigit() else sheet, str(int(number)) if number.isdigit() else number)


def seeded_key(parcel: dict[str, Any]) -> Key:
    """A seeded parcel's key: its map sheet and the last part of ``<ward>-<sheet>-<number>``."""
    return parcel_key(str(parcel["map_sheet"]), str(parcel["parcel_id"]).rsplit("-", 1)[-1])


def owned_by(identifier: str) -> frozenset[Key]:
    return frozenset(seeded_key(parcel) for parcel in seed.land_parcels(identifier)[1])


@cache
def known_parcels() -> frozenset[Key]:
    return frozenset().union(*(owned_by(subject) for subject in KNOWN_SUBJECTS))


@dataclass
class ParcelResult:
    map_sheet: str
    parcel_number: str
    status: str
    reason: str | None = None
    registration_ref: str | None = None


def _order_parcels(payload: etree._Element) -> list[tuple[str, str]] | None:
    container = payload.find(q("Parcels"))
    if container is None:
        return None
    return [
        (parcel.findtext(q("MapSheet")) or "", parcel.findtext(q("ParcelNumber")) or "")
        for parcel in container.iterfind(q("Parcel"))
    ]


def _outcome(results: list[ParcelResult], done: str) -> str:
    return outcome_of(sum(result.status == done for result in results), len(results))


def _result_xml(operation: str, message_id: str, outcome: str, results: list[ParcelResult]) -> etree._Element:
    root = etree.Element(q(f"{operation}Response"), nsmap={"lr": NS})
    for name, value in (
        ("Reference", reference(CODE, message_id)),
        ("ExecutedAt", as_of()),
        ("Outcome", outcome),
    ):
        etree.SubElement(root, q(name)).text = value
    container = etree.SubElement(root, q("Parcels"))
    for result in results:
        element = etree.SubElement(container, q("Parcel"))
        for name, text in (
            ("MapSheet", result.map_sheet),
            ("ParcelNumber", result.parcel_number),
            ("Status", result.status),
            ("Reason", result.reason),
            ("RegistrationRef", result.registration_ref),
        ):
            if text is not None:
                etree.SubElement(element, q(name)).text = text
    return root


@dataclass
class Register:
    """What the registry executed: answers per MessageId, and which order suspends which parcel."""

    once: Once[bytes] = field(default_factory=Once)  # the reply to each MessageId
    suspended: dict[Key, str] = field(default_factory=dict)  # parcel -> the suspension order holding it
    # Suspension order -> the parcels (as the order named them) it suspended, lifted since or not.
    suspensions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    revoked: dict[str, str] = field(default_factory=dict)  # revoked order -> the revocation

    def execute(self, operation: str, payload: etree._Element) -> bytes:
        message_id = payload.findtext(q("MessageId")) or ""
        fingerprint = hashlib.sha256(etree.tostring(payload, method="c14n")).hexdigest()
        try:
            known = self.once.seen(message_id, fingerprint)
        except Conflict:
            raise SoapFault(
                "Client", "INVALID_REQUEST", "MessageId already used for another request"
            ) from None
        if known is not None:
            return known
        if operation == SUSPEND:
            answer = self._suspend(message_id, payload)
        elif operation == LIFT:
            answer = self._lift(message_id, payload)
        else:
            answer = self._revoke(message_id, payload)
        return self.once.remember(message_id, fingerprint, envelope(answer))

    @property
    def counts(self) -> dict[str, int]:
        """MessageId -> times executed."""
        return self.once.counts

    def _suspend(self, message_id: str, payload: etree._Element) -> etree._Element:
        owned = owned_by(subject_identifier(payload))
        replaces = payload.findtext(q("Replaces"))
        results: list[ParcelResult] = []
        seen: set[Key] = set()
        for sheet, number in _order_parcels(payload) or []:
            key = parcel_key(sheet, number)
            if key in seen:
                continue
            seen.add(key)
            holder = self.suspended.get(key)
            if key not in owned:
                reason = "not_owned_by_debtor" if key in known_parcels() else "not_found"
                results.append(ParcelResult(sheet, number, "not_suspended", reason))
            elif holder is not None and holder != replaces:
                results.append(ParcelResult(sheet, number, "not_suspended", "already_suspended"))
            else:
                self.suspended[key] = message_id
                self.suspensions.setdefault(message_id, []).append((sheet, number))
                ref = reference(CODE, f"{message_id}|{key[0]}|{key[1]}")
                results.append(ParcelResult(sheet, number, "suspended", registration_ref=ref))
        if replaces is not None:  # what the replaced order held and this one does not name is free again
            for key in [k for k, order in self.suspended.items() if order == replaces]:
                del self.suspended[key]
        return _result_xml(SUSPEND, message_id, _outcome(results, "suspended"), results)

    def _lift(self, message_id: str, payload: etree._Element) -> etree._Element:
        suspension = payload.findtext(q("SuspensionOrder")) or ""
        named = _order_parcels(payload)
        if named is None:  # every parcel that suspension suspended
            if suspension not in self.suspensions:
                raise SoapFault("Client", "INVALID_REQUEST", "unknown SuspensionOrder: name the parcels")
            named = self.suspensions[suspension]
        owned = owned_by(subject_identifier(payload))
        results: list[ParcelResult] = []
        seen: set[Key] = set()
        for sheet, number in named:
            key = parcel_key(sheet, number)
            if key in seen:
                continue
            seen.add(key)
            holder = self.suspended.get(key)
            if holder == suspension:
                del self.suspended[key]
                results.append(ParcelResult(sheet, number, "lifted"))
            elif holder is not None:
                results.append(ParcelResult(sheet, number, "not_lifted", "suspended_by_another_order"))
            else:
                reason = "not_suspended" if key in owned or key in known_parcels() else "not_found"
                results.append(ParcelResult(sheet, number, "not_lifted", reason))
        return _result_xml(LIFT, message_id, _outcome(results, "lifted"), results)

    def _revoke(self, message_id: str, payload: etree._Element) -> etree._Element:
        self.revoked[payload.findtext(q("Revokes")) or ""] = message_id
        root = etree.Element(q("RevokeOrderResponse"), nsmap={"lr": NS})
        for name, value in (
            ("Reference", reference(CODE, message_id)),
            ("Status", "acknowledged"),
            ("ReceivedAt", as_of()),
        ):
            etree.SubElement(root, q(name)).text = value
        return root
