"""The bank simulator serves any bank by its code under ``/banks/<CODE>``: a configuration of a hundred
banks needs no simulator code, and each bank's answer for a debtor is the same every time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.simulators.partners import banks, seed
from gateway.simulators.partners.behaviour import Behaviour
from tests.support.lookup_requests import STATED_JSON

HEADERS = {"Authorization": "Bearer any-token"}


def body(id_number: str, ref: str = "req-1") -> dict[str, Any]:
    return {"request_ref": ref, "subject": {"id_number": id_number}, "case_ref": "THA-1", "purpose": "p"} | (
        STATED_JSON
    )


@pytest.fixture
async def base() -> AsyncIterator[str]:
    runner = web.AppRunner(banks.make_app(Behaviour(latency=(0.0, 0.0), error_rate=0.0)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[-1][1]}"
    finally:
        await runner.cleanup()


async def ask(base: str, code: str, id_number: str, ref: str = "req-1") -> tuple[int, dict[str, Any]]:
    url = base + banks.bank_path(code) + banks.INQUIRY_PATH
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body(id_number, ref), headers=HEADERS) as r,
    ):
        return r.status, await r.json()


async def test_any_bank_answers_at_once_the_same_accounts_every_time(base: str) -> None:
    holders = [f"0010{n:08d}" for n in range(1, 40)]
    found = 0
    for code in ("BANK-ACB", "BANK-X042"):
        for id_number in holders:
            status, first = await ask(base, code, id_number, "r1")
            _, again = await ask(base, code, id_number, "r2")
            assert status == 200
            assert first["reference"].startswith(code + "-")
            assert (first["match_status"], first["accounts"]) == (again["match_status"], again["accounts"])
            assert (first["match_status"], first["accounts"]) == banks.accounts(code, id_number)
            assert (first["match_status"] == "found") == bool(first["accounts"])
            found += bool(first["accounts"])
    assert found > 0  # some debtors hold accounts at these banks
    # Two banks draw their own accounts for the same debtor.
    assert [banks.accounts("BANK-ACB", i) for i in holders] != [
        banks.accounts("BANK-X042", i) for i in holders
    ]
    # Whoever holds nothing anywhere holds nothing at any bank.
    assert (await ask(base, "BANK-ACB", seed.EMPTY))[1]["match_status"] == "not_found"


async def test_the_shipped_banks_answer_their_seeded_accounts_on_either_path(base: str) -> None:
    for code in ("BANK-VCB", "BANK-BIDV"):
        own = await ask(base, code, seed.RICH)
        url = base + banks.ANY_BANK_PATH.format(code=code) + banks.INQUIRY_PATH
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json=body(seed.RICH), headers=HEADERS) as r,
        ):
            assert r.status == 200
            anywhere = await r.json()
        assert own[1]["accounts"] == anywhere["accounts"] == seed.bank_accounts(code, seed.RICH)[1] != []


async def test_a_path_that_names_no_bank_code_is_refused(base: str) -> None:
    url = base + "/banks/not a code/api/v1/account-inquiries"
    async with aiohttp.ClientSession() as http, http.post(url, json=body(seed.RICH), headers=HEADERS) as r:
        assert r.status == 404
        assert (await r.json())["error"] == "unknown_bank"
