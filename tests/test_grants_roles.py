"""A grant says what a client may do, its role what it is: a type is sent only by the kind of party it
names (an order by an enforcement office), whatever grant a client holds — a court granted the family
``documents.send``, or even ``documents.send:order.account_blocking``, cannot freeze an account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.domain.parties import CLIENT_ROLES, GATEWAY, client_role
from gateway.domain.registry import REGISTRY
from gateway.security.clients import ClientConfigError, ClientStore
from gateway.security.keys import generate_keypair, public_pem
from gateway.web.context import Services
from tests.support.documents_world import (
    blocking_order,
    documents_world,
    refusal,
    register,
    stored,
    submit,
)


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    async with documents_world(tmp_path, database_url) as services:
        yield services


async def test_a_court_granted_documents_send_cannot_send_a_freezing_order(services: Services) -> None:
    order = blocking_order("TAND-HN")
    problem = await refusal(services, "TAND-HN", order, 403)
    assert "is a court" in problem.detail and "enforcement_office" in problem.detail
    assert await stored(services, order["message_id"]) is None


async def test_an_explicit_grant_does_not_give_a_type_the_clients_role_does_not_send(
    services: Services,
) -> None:
    register(
        services.clients,
        "TAND-HN",
        ["documents.send:order.account_blocking"],
        "http://127.0.0.1:9/court",
    )
    await refusal(services, "TAND-HN", blocking_order("TAND-HN"), 403)


@pytest.mark.parametrize("client_id", ["VKS-HN", "BANK-VCB", "DVCQG"])
async def test_no_other_kind_of_party_sends_an_order(services: Services, client_id: str) -> None:
    await refusal(services, client_id, blocking_order(client_id), 403)


async def test_an_enforcement_office_sends_its_order(services: Services) -> None:
    result = await submit(services, "THADS-HN", blocking_order())
    assert not result.duplicate


async def test_a_role_stated_in_the_client_file_is_what_counts(services: Services) -> None:
    # An office registered under a code no prefix tells, with its role in its file.
    register(
        services.clients, "CCTHA-BD", ["documents.send"], "amqp:ccthabd.inbox", role="enforcement_office"
    )
    result = await submit(services, "CCTHA-BD", blocking_order("CCTHA-BD"))
    assert not result.duplicate
    # And a stated role wins over the prefix: this TAND- code is no court's.
    register(services.clients, "TAND-XX", ["documents.send"], "amqp:tandxx.inbox", role="procuracy")
    event = blocking_order("TAND-XX")
    assert "is a procuracy" in (await refusal(services, "TAND-XX", event, 403)).detail


def test_an_unknown_role_is_refused_when_a_client_is_registered(tmp_path: Path) -> None:
    store = ClientStore(tmp_path / "clients")
    key = public_pem(generate_keypair("ed25519").public_key())
    with pytest.raises(ClientConfigError, match="unknown role"):
        store.add("TAND-HN", key, ["documents.send"], role="gateway")


def test_a_client_file_stating_an_unknown_role_is_skipped(tmp_path: Path) -> None:
    store = ClientStore(tmp_path / "clients", recheck_seconds=0)
    key = public_pem(generate_keypair("ed25519").public_key())
    store.add("TAND-HN", key, ["documents.send"], role="court")
    path = tmp_path / "clients" / "TAND-HN.toml"
    path.write_text(path.read_text("utf-8").replace('role = "court"', 'role = "gateway"'), "utf-8")
    assert store.get("TAND-HN") is None


def test_roles_come_from_the_file_then_the_partner_kind_then_the_agency_code() -> None:
    assert client_role("TAND-HN", "procuracy", None) == "procuracy"
    assert client_role("BANK-VCB", None, "bank") == "bank"
    assert client_role("THADS-HN", None, None) == "enforcement_office"
    assert client_role("TAND-HN", None, None) == "court"
    assert client_role("VKS-HN", None, None) == "procuracy"
    assert client_role("DVCQG", None, None) is None


def test_every_type_names_who_sends_it_and_no_client_role_is_the_gateway() -> None:
    for message_type, doc_type in REGISTRY.items():
        assert doc_type.sent_by, f"{message_type} names no sender role"
        assert doc_type.sent_by <= CLIENT_ROLES | {GATEWAY}, message_type
    assert GATEWAY not in CLIENT_ROLES
    senders = {t: d.sent_by for t, d in REGISTRY.items()}
    assert senders["order.account_blocking"] == {"enforcement_office"}
    assert senders["judgment.delivery"] == senders["court.event"] == {"court"}
    assert senders["report.account_blocking"] == {"bank"}
    assert senders["report.land_transfer_suspension"] == {"land"}
    assert senders["procuracy.protest"] == {"procuracy"}
    assert senders["police.protection_answer"] == {"police"}
    assert senders["notice.delivery_status"] == {"vneid"}
