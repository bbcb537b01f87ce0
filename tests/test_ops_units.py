"""Pure parts of the operators' tools: masking that spares message ids, sessions that expire and
cannot be forged, parking filters, the CLI's tables."""

from __future__ import annotations

import pytest

from gateway.cli.operations import _table
from gateway.domain.identifiers import scrub, scrub_value
from gateway.ops.parking import ParkedMessage, ParkingFilter
from gateway.web.console.session import SessionCodec


def test_masking_hides_personal_ids_but_keeps_uuids_and_hashes() -> None:
    uuid_with_digit_tail = "92e93231-57e5-4160-be5a-201185012345"
    sha = "16a08eacb52144f150b4e5e43dc93caf6b4548dd2e768105473d001185012345"
    text = f'id "001185012345" in {uuid_with_digit_tail}, hash {sha}, CCCD 001185012345.'
    assert scrub(text) == f'id "001*******45" in {uuid_with_digit_tail}, hash {sha}, CCCD 001*******45.'
    # Nine digits or more are masked (old ID cards, tax codes, bank accounts); eight are not.
    assert scrub("1234567890123") == "123********23"
    assert scrub("order 12345678") == "order 12345678"
    assert scrub_value({"a": ["001185012345", 1], "b": None}) == {"a": ["001*******45", 1], "b": None}


def test_sessions_expire_slide_and_resist_forgery() -> None:
    codec = SessionCodec(b"k" * 32, idle_seconds=60, max_seconds=300)
    session = codec.open("olga", "operator", at=1000)
    cookie = codec.encode(session)
    assert codec.decode(cookie, at=1059) == session
    assert codec.decode(cookie, at=1060) is None
    renewed = codec.renew(session, at=1050)
    assert codec.decode(codec.encode(renewed), at=1100) is not None
    assert codec.renew(session, at=1290).expires_at == 1300  # never past the maximum age
    assert codec.decode(codec.encode(codec.renew(session, at=1290)), at=1300) is None
    other = SessionCodec(b"x" * 32, idle_seconds=60)
    assert other.decode(cookie, at=1001) is None
    payload, mac = cookie.split(".")
    assert codec.decode(payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + mac, at=1001) is None
    for junk in (None, "", "a.b.c", "...", "abc"):
        assert codec.decode(junk, at=1001) is None
    assert codec.csrf_ok(session, codec.csrf(session))
    assert not codec.csrf_ok(session, codec.csrf(codec.open("olga", "operator", at=1000)))
    assert not codec.csrf_ok(session, "")


@pytest.mark.parametrize(
    ("where", "matches"),
    [
        (ParkingFilter(), True),
        (ParkingFilter(message_type="judgment.delivery", sender="TAND-HN"), True),
        (ParkingFilter(recipient="BANK-VCB"), False),
        (ParkingFilter(reason="LIMIT"), True),
        (ParkingFilter(reason="rejected"), False),
    ],
)
def test_parking_filter(where: ParkingFilter, matches: bool) -> None:
    parked = ParkedMessage("m", "judgment.delivery", "TAND-HN", "THADS-HN", "delivery_limit", None, 1, 10)
    assert where.matches(parked) is matches


def test_cli_tables_align_numbers_right() -> None:
    out = _table(["queue", "ready"], [["gw.a", 5], ["gw.longer", None]], right=(1,)).splitlines()
    assert out == ["queue      ready", "---------  -----", "gw.a           5", "gw.longer      -"]
