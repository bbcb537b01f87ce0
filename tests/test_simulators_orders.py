"""The partner simulators' side of orders, spoken to directly: the banks' order endpoint and book, the
land registry's order operations, the desk every partner taking documents shares, their idempotency,
switches and count endpoints."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zeep
from lxml import etree

from gateway.simulators.partners import seed
from gateway.simulators.partners.servers import Partners, start_partners
from tests.support import orders

ROOT = Path(__file__).resolve().parent.parent
WSDL = ROOT / "config" / "wsdl" / "land-registry.wsdl"
NS = "urn:vn:gov:land:registry:1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
BEARER = {"Authorization": "Bearer any-token"}
SYNC_BANKS = ("BANK-VCB", "BANK-BIDV", "BANK-CTG", "BANK-AGR")


@pytest.fixture
async def sims() -> AsyncIterator[Partners]:
    partners = await start_partners(error_rate=0.0, latency=(0.0, 0.0), callback_delay=0.05)
    try:
        yield partners
    finally:
        await partners.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def send(
    session: aiohttp.ClientSession,
    sims: Partners,
    document: dict[str, Any],
    bank: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST ``document`` to a bank's order endpoint (its recipient's, unless ``bank`` says otherwise)."""
    url = sims.urls[bank or document["recipient"]] + "/api/v1/orders"
    sent = BEARER | {"Idempotency-Key": str(document.get("message_id"))} if headers is None else headers
    async with session.post(url, json=document, headers=sent) as response:
        return response.status, await response.json()


def valid_report(order: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    assert orders.violations(orders.report_document(order, body)) == []
    return body


# --------------------------------------------------------------------------------------------- seed


def test_seeded_balances_are_deterministic_and_cover_every_case() -> None:
    ids = [f"0010{n:08d}" for n in range(300)]
    balances = [seed.bank_balances(bank, i) for i in ids for bank in seed.BANKS]
    assert balances == [seed.bank_balances(bank, i) for i in ids for bank in seed.BANKS]
    rows = [row for rows in balances for row in rows]
    assert any(r["closed"] for r in rows)
    assert any(r["earlier_seizure_rank"] for r in rows)
    assert any(r["balance"] == 0 and not r["closed"] for r in rows)
    assert any(0 < r["balance"] <= 20_000_000 for r in rows)
    assert any(r["balance"] >= 100_000_000 for r in rows)
    assert all(r["balance"] == 0 for r in rows if r["closed"])
    # Balances belong to the accounts lookups answer with, one for one.
    for bank in seed.BANKS:
        accounts = seed.expected("bank", bank, seed.RICH)["accounts"]
        numbers = [r["account_number"] for r in seed.bank_balances(bank, seed.RICH)]
        assert numbers == [a["account_number"] for a in accounts]


# -------------------------------------------------------------------------------------------- banks


async def test_the_order_endpoint_refuses_what_it_cannot_execute(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    order = orders.blocking("BANK-VCB", 1_000_000)
    key = {"Idempotency-Key": order["message_id"]}

    assert (await send(session, sims, order, headers=key))[0] == 401
    status, body = await send(session, sims, order, headers=BEARER)
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await send(session, sims, order, headers=BEARER | {"Idempotency-Key": str(uuid.uuid4())})
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await send(session, sims, order, bank="BANK-BIDV")
    assert (status, body["error"]) == (400, "wrong_recipient")
    lookup_like = order | {"message_type": "asset.inquiry"}
    assert (await send(session, sims, lookup_like))[1]["error"] == "unsupported_document"
    bad_debtor = order | {"body": order["body"] | {"debtor": {"id_number": "12345", "full_name": "X"}}}
    status, body = await send(session, sims, bad_debtor)
    assert (status, body["error"]) == (400, "invalid_order")
    both = order | {"body": order["body"] | {"accounts": [{"account_number": "0011004123456"}]}}
    assert (await send(session, sims, both))[0] == 400
    assert await counts(session, sims, "BANK-VCB") == {}


async def counts(session: aiohttp.ClientSession, sims: Partners, code: str) -> dict[str, int]:
    url = sims.urls[code].removesuffix("/soap") + "/_sim/orders"
    async with session.get(url) as response:
        assert response.status == 200
        data: dict[str, int] = await response.json()
        return data


def seeded(wanted: Callable[[dict[str, Any]], bool]) -> tuple[str, str, dict[str, Any]]:
    """A synchronous bank, a derived debtor and one of their seeded accounts that ``wanted`` picks."""
    for n in range(300):
        identifier = f"0010{n:08d}"
        for bank in SYNC_BANKS:
            for row in seed.bank_balances(bank, identifier):
                if wanted(row):
                    return bank, identifier, row
    raise AssertionError("no such seeded account")


@pytest.mark.parametrize(
    ("wanted", "reason"),
    [
        (lambda row: row["closed"], "closed"),
        (lambda row: row["earlier_seizure_rank"] == 2, "earlier_seizure"),
        (lambda row: row["balance"] == 0 and not row["closed"], "insufficient_funds"),
    ],
    ids=["closed", "earlier-seizure", "empty"],
)
async def test_accounts_that_cannot_be_blocked(
    sims: Partners, session: aiohttp.ClientSession, wanted: Callable[[dict[str, Any]], bool], reason: str
) -> None:
    bank, identifier, row = seeded(wanted)
    debtor = {"id_number": identifier, "full_name": "Nguyễn Văn A"}
    order = orders.blocking(bank, 10_000_000, accounts=[row["account_number"]], debtor=debtor)

    status, body = await send(session, sims, order)

    assert status == 200
    valid_report(order, body)
    expected = {"blocked_amount": 0, "status": "not_blocked", "reason": reason}
    expected |= {"earlier_seizure_rank": 2} if reason == "earlier_seizure" else {}
    assert body["accounts"] == [
        {"account_number": row["account_number"], "currency": row["currency"]} | expected
    ]
    assert body["outcome"] == "not_executed"


async def test_blocking_in_order_until_the_amount(sims: Partners, session: aiohttp.ClientSession) -> None:
    vcb = orders.blocking("BANK-VCB", 20_000_000, accounts=["0011038765432", "0011004123456"])
    status, body = await send(session, sims, vcb)

    assert status == 200
    valid_report(vcb, body)
    assert body["accounts"] == [
        {
            "account_number": "0011038765432",
            "currency": "VND",
            "blocked_amount": 12_500_000,
            "status": "partially_blocked",
            "reason": "insufficient_funds",
        },
        {
            "account_number": "0011004123456",
            "currency": "VND",
            "blocked_amount": 7_500_000,
            "status": "blocked",
        },
    ]
    assert (body["outcome"], body["total_blocked"]) == ("executed", 20_000_000)

    # What is blocked is no longer available to the next order.
    second = orders.blocking("BANK-VCB", 900_000_000)
    status, body = await send(session, sims, second)
    assert (body["outcome"], body["total_blocked"]) == ("partially_executed", 842_500_000)
    assert [a["blocked_amount"] for a in body["accounts"]] == [842_500_000, 0]
    assert body["accounts"][1]["reason"] == "insufficient_funds"
    valid_report(second, body)


async def test_accounts_not_needed_are_left_alone(sims: Partners, session: aiohttp.ClientSession) -> None:
    order = orders.blocking("BANK-VCB", 1_000_000)

    _, body = await send(session, sims, order)

    assert [a["account_number"] for a in body["accounts"]] == ["0011004123456"]
    assert body["accounts"][0] | {"status": "blocked"} == body["accounts"][0]


async def test_accounts_the_debtor_does_not_hold(sims: Partners, session: aiohttp.ClientSession) -> None:
    order = orders.blocking("BANK-CTG", 5_000_000, accounts=["100000000001"])

    _, body = await send(session, sims, order)

    assert body["accounts"] == [
        {
            "account_number": "100000000001",
            "currency": "VND",
            "blocked_amount": 0,
            "status": "not_blocked",
            "reason": "no_account",
        }
    ]
    assert (body["outcome"], body["total_blocked"]) == ("not_executed", 0)
    valid_report(order, body)
    nothing = orders.blocking("BANK-CTG", 5_000_000)  # all accounts of a debtor with none here
    _, body = await send(session, sims, nothing)
    assert (body["outcome"], body["accounts"]) == ("not_executed", [])
    valid_report(nothing, body)


async def test_transfers_and_releases_draw_on_the_block(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    block = orders.blocking("BANK-VCB", 860_000_000)
    _, blocked = await send(session, sims, block)
    assert blocked["total_blocked"] == 860_000_000

    partial = orders.release("BANK-VCB", block["message_id"], "partial", 100_000_000)
    _, released = await send(session, sims, partial)
    assert (released["outcome"], released["total_released"]) == ("executed", 100_000_000)
    assert released["released"] == [{"account_number": "0011004123456", "amount": 100_000_000}]
    valid_report(partial, released)

    too_much = orders.transfer("BANK-VCB", block["message_id"], 1_000_000_000)
    _, moved = await send(session, sims, too_much)
    assert (moved["outcome"], moved["transferred_amount"]) == ("partially_executed", 760_000_000)
    assert moved["transfers"] == [
        {"account_number": "0011004123456", "amount": 750_000_000},
        {"account_number": "0011038765432", "amount": 10_000_000},
    ]
    valid_report(too_much, moved)

    full = orders.release("BANK-VCB", block["message_id"])
    _, released = await send(session, sims, full)
    assert (released["outcome"], released["total_released"], released["released"]) == ("not_executed", 0, [])
    valid_report(full, released)

    unknown = orders.transfer("BANK-VCB", str(uuid.uuid4()), 1_000_000)
    _, moved = await send(session, sims, unknown)
    assert (moved["outcome"], moved["transferred_amount"], moved["reason"]) == (
        "not_executed",
        0,
        "blocking_order_unknown",
    )
    valid_report(unknown, moved)


async def test_a_replacing_block_frees_the_one_it_replaces(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    first = orders.blocking("BANK-VCB", 850_000_000, accounts=["0011004123456"])
    await send(session, sims, first)

    replacing = orders.blocking("BANK-VCB", 800_000_000, accounts=["0011004123456"])
    replacing["replaces"] = first["message_id"]
    _, body = await send(session, sims, replacing)

    assert (body["outcome"], body["total_blocked"]) == ("executed", 800_000_000)
    _, moved = await send(session, sims, orders.transfer("BANK-VCB", first["message_id"], 1_000_000))
    assert moved["reason"] == "nothing_blocked"


async def test_each_message_id_executes_once(sims: Partners, session: aiohttp.ClientSession) -> None:
    order = orders.blocking("BANK-AGR", 1_000_000, debtor=orders.EMPTY)
    revocation = orders.revocation("BANK-AGR", order["message_id"])

    answers = [await send(session, sims, order) for _ in range(3)]
    acks = [await send(session, sims, revocation) for _ in range(2)]

    assert all(answer == answers[0] for answer in answers)
    assert acks[0] == acks[1] and acks[0][0] == 200 and acks[0][1]["status"] == "acknowledged"
    assert await counts(session, sims, "BANK-AGR") == {order["message_id"]: 1, revocation["message_id"]: 1}
    changed = order | {"body": order["body"] | {"amount": 2_000_000}}
    status, body = await send(session, sims, changed)
    assert (status, body["error"]) == (409, "idempotency_conflict")


async def test_the_silent_switch(sims: Partners, session: aiohttp.ClientSession) -> None:
    admin = sims.urls["BANK-VCB"] + "/_sim/orders/silent"
    async with session.post(admin, json={"silent": "yes"}) as response:
        assert response.status == 400
    async with session.post(admin, json={"silent": True}) as response:
        assert await response.json() == {"silent": True}
    order = orders.blocking("BANK-VCB", 1_000_000)

    status, body = await send(session, sims, order)
    assert (status, body["status"]) == (202, "processing")
    assert await counts(session, sims, "BANK-VCB") == {}

    async with session.post(admin, json={"silent": False}) as response:
        assert await response.json() == {"silent": False}
    status, body = await send(session, sims, order)  # sent again: now executed, once
    assert status == 200 and body["outcome"] == "executed"
    assert await counts(session, sims, "BANK-VCB") == {order["message_id"]: 1}


async def test_switches_and_counts_ignore_the_failure_modes(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    await sims.set_mode("bank", "failing")
    await sims.set_mode("land", "failing")

    assert await counts(session, sims, "BANK-TCB") == {}
    assert await counts(session, sims, "LAND-REG") == {}
    async with session.post(sims.urls["BANK-TCB"] + "/_sim/orders/silent", json={"silent": True}) as response:
        assert response.status == 200


async def test_an_unknown_silent_bank_fails_start_up() -> None:
    with pytest.raises(ValueError, match="BANK-NONE"):
        await start_partners(silent_banks=["BANK-NONE"])


@pytest.mark.parametrize("bank", SYNC_BANKS)
async def test_every_report_fits_its_schema(
    sims: Partners, session: aiohttp.ClientSession, bank: str
) -> None:
    """Blocking, transferring and releasing for many seeded debtors: every report body is valid."""
    for n in range(40):
        identifier = f"0010{n:08d}"
        debtor = {"id_number": identifier, "full_name": "Nguyễn Văn A"}
        amount = 1_000_000 * (n + 1) ** 2
        block = orders.blocking(bank, amount, debtor=debtor)
        _, blocked = await send(session, sims, block)
        valid_report(block, blocked)
        assert blocked["total_blocked"] == sum(a["blocked_amount"] for a in blocked["accounts"])
        move = orders.transfer(bank, block["message_id"], amount // 2 + 1, debtor=debtor)
        _, moved = await send(session, sims, move)
        valid_report(move, moved)
        free = orders.release(bank, block["message_id"], "partial", amount // 4 + 1)
        _, freed = await send(session, sims, free)
        valid_report(free, freed)


# ------------------------------------------------------------------------------------------ land (SOAP)


def soap_request(operation: str, payload: str) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:l="{NS}"><soap:Body>'
        f"<l:{operation}Request>{payload}</l:{operation}Request></soap:Body></soap:Envelope>"
    ).encode()


SUBJECT = f"<l:Subject><l:IdNumber>{seed.RICH}</l:IdNumber></l:Subject>"
DECISION = (
    "<l:Decision><l:Number>45/QĐ</l:Number><l:Date>2026-03-09</l:Date>"
    "<l:IssuingOffice>THADS-HN</l:IssuingOffice></l:Decision>"
)
HEAD = (
    "<l:CaseRef>THA-1</l:CaseRef><l:OfficerId>001088009911</l:OfficerId>"
    "<l:LegalBasis>LTHADS-69</l:LegalBasis>"
)


def suspend_payload(message_id: str, parcels: list[tuple[str, str]], replaces: str | None = None) -> str:
    items = "".join(
        f"<l:Parcel><l:MapSheet>{sheet}</l:MapSheet><l:ParcelNumber>{number}</l:ParcelNumber></l:Parcel>"
        for sheet, number in parcels
    )
    return (
        f"<l:MessageId>{message_id}</l:MessageId>"
        + (f"<l:Replaces>{replaces}</l:Replaces>" if replaces else "")
        + HEAD
        + DECISION
        + SUBJECT
        + f"<l:Parcels>{items}</l:Parcels>"
    )


async def soap(
    session: aiohttp.ClientSession, sims: Partners, operation: str, payload: str, action: str | None = None
) -> tuple[int, etree._Element]:
    headers = BEARER | {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": f'"{NS}#{action or operation}"',
    }
    async with session.post(
        sims.urls["LAND-REG"], data=soap_request(operation, payload), headers=headers
    ) as resp:
        return resp.status, etree.fromstring(await resp.read())


def parcels_of(answer: etree._Element) -> list[tuple[str | None, ...]]:
    return [
        tuple(parcel.findtext(f"{{{NS}}}{name}") for name in ("MapSheet", "ParcelNumber", "Status", "Reason"))
        for parcel in answer.iter(f"{{{NS}}}Parcel")
    ]


async def test_land_orders_are_executed_once_per_message_id(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    message_id = str(uuid.uuid4())
    payload = suspend_payload(message_id, [("12", "0345")])

    first = await soap(session, sims, "SuspendTransfer", payload)
    again = await soap(session, sims, "SuspendTransfer", payload)
    changed = await soap(session, sims, "SuspendTransfer", suspend_payload(message_id, [("8", "72")]))

    assert first[0] == again[0] == 200
    assert etree.tostring(first[1]) == etree.tostring(again[1])
    assert parcels_of(first[1]) == [("12", "0345", "suspended", None)]
    assert changed[0] == 500 and "MessageId already used" in etree.tostring(changed[1]).decode()
    assert await counts(session, sims, "LAND-REG") == {message_id: 1}


async def test_soap_action_must_match_the_operation(sims: Partners, session: aiohttp.ClientSession) -> None:
    payload = suspend_payload(str(uuid.uuid4()), [("12", "345")])

    status, answer = await soap(session, sims, "SuspendTransfer", payload, action="LiftSuspension")

    assert status == 500
    assert answer.findtext(".//faultcode") == "soap:Client"
    assert await counts(session, sims, "LAND-REG") == {}


async def test_a_replacing_suspension_takes_the_parcels_over(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    await soap(session, sims, "SuspendTransfer", suspend_payload(first, [("12", "345"), ("8", "72")]))

    _, replaced = await soap(
        session, sims, "SuspendTransfer", suspend_payload(second, [("12", "345")], first)
    )
    _, other = await soap(
        session, sims, "SuspendTransfer", suspend_payload(third, [("12", "345"), ("8", "72")])
    )

    assert parcels_of(replaced) == [("12", "345", "suspended", None)]
    # 8/72 was freed with the replaced order; 12/345 is the replacing order's now.
    assert parcels_of(other) == [
        ("12", "345", "not_suspended", "already_suspended"),
        ("8", "72", "suspended", None),
    ]

    lift = (
        f"<l:MessageId>{uuid.uuid4()}</l:MessageId>{HEAD}{DECISION}{SUBJECT}"
        f"<l:SuspensionOrder>{first}</l:SuspensionOrder>"
    )
    _, lifted = await soap(session, sims, "LiftSuspension", lift)
    assert parcels_of(lifted) == [
        ("12", "345", "not_lifted", "suspended_by_another_order"),
        ("8", "72", "not_lifted", "suspended_by_another_order"),
    ]
    assert lifted.findtext(f".//{{{NS}}}Outcome") == "not_executed"


def revoke_with_zeep(url: str, revokes: str) -> tuple[str, str]:
    settings = zeep.Settings(strict=True, forbid_external=True)
    with zeep.Client(str(WSDL), settings=settings) as client:  # type: ignore[no-untyped-call]
        client.transport.session.headers.update(BEARER)
        service = client.create_service("{urn:vn:gov:land:registry:1}LandRegistrySoap11Binding", url)
        answer = service.RevokeOrder(MessageId=str(uuid.uuid4()), Revokes=revokes, Reason="Quyết định bị hủy")
        return answer.Status, answer.Reference


async def test_revoke_order_with_a_plain_zeep_client(sims: Partners) -> None:
    status, reference = await asyncio.to_thread(revoke_with_zeep, sims.urls["LAND-REG"], str(uuid.uuid4()))

    assert status == "acknowledged" and reference.startswith("LAND-REG-")


# ------------------------------------------------------------------ every desk taking documents alike


def police_request() -> dict[str, Any]:
    path = ROOT / "gateway/schemas/examples/police.protection_request/valid-eviction-with-risks.json"
    document: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return document | {"message_id": str(uuid.uuid4())}


async def to_desk(
    session: aiohttp.ClientSession, url: str, document: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = BEARER | {"Idempotency-Key": document["message_id"]}
    async with session.post(url, json=document, headers=headers) as response:
        return response.status, await response.json()


async def test_a_desk_answering_never_executes_nothing_until_it_answers_again(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    desk = sims.urls["CA-HN"]
    request = police_request()
    async with session.post(desk + "/_sim/answers", json={"mode": "never"}) as response:
        assert await response.json() == {"mode": "never"}

    status, body = await to_desk(session, desk + "/api/v1/documents", request)
    assert (status, body["status"]) == (202, "processing")
    revocation = orders.revocation("CA-HN", request["message_id"])
    status, body = await to_desk(session, desk + "/api/v1/documents", revocation)
    assert (status, body["status"]) == (200, "acknowledged")  # a revocation is taken in every mode
    async with session.get(desk + "/_sim/orders") as response:
        assert await response.json() == {revocation["message_id"]: 1}

    async with session.post(desk + "/_sim/answers", json={"mode": "at_once"}) as response:
        assert response.status == 200
    status, body = await to_desk(session, desk + "/api/v1/documents", request)
    assert (status, body["decision"]) == (200, "agreed")
    async with session.get(desk + "/_sim/received") as response:
        received = [item["message_id"] for item in await response.json()]
    assert received == [request["message_id"], revocation["message_id"], request["message_id"]]


async def test_desks_refuse_what_they_do_not_take(sims: Partners, session: aiohttp.ClientSession) -> None:
    order = orders.blocking("CA-HN", 1_000_000)
    status, body = await to_desk(session, sims.urls["CA-HN"] + "/api/v1/documents", order)
    assert (status, body["error"]) == (400, "unsupported_document")
    status, body = await to_desk(session, sims.urls["VNEID"] + "/api/v1/notices", police_request())
    assert (status, body["error"]) == (400, "unsupported_document")
    async with session.post(sims.urls["CA-HN"] + "/_sim/answers", json={"mode": "sometimes"}) as response:
        assert response.status == 400


async def test_a_repeat_after_the_gateway_adds_its_deadline_is_the_same_document(
    sims: Partners, session: aiohttp.ClientSession
) -> None:
    request = police_request()
    url = sims.urls["CA-HN"] + "/api/v1/documents"
    first = await to_desk(session, url, request)
    again = await to_desk(session, url, request | {"due_at": "2026-03-12T17:00:00+07:00"})
    changed = await to_desk(session, url, request | {"case_ref": "THA-HN-2026-000999"})

    assert first == again and first[0] == 200
    assert (changed[0], changed[1]["error"]) == (409, "idempotency_conflict")
