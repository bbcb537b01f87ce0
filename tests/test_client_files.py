"""A broken client file costs only that client its access: the file is skipped with a log line naming
it and what is wrong, and every other client keeps being served."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.security.clients import ClientStore
from gateway.security.keys import generate_keypair, public_pem
from tests.conftest import COURT, World, fresh_judgment

BAD_FILES = {
    "no-id.toml": 'name = "Tòa án không mã"\ngrants = ["judgments.push"]\n',
    "bad-id.toml": 'id = "not an agency code"\n',
    "not-toml.toml": "id = \n",
    "bad-delivery.toml": 'id = "TAND-X"\ndeliver_to = "ftp://nowhere"\n',
    "missing-key.toml": 'id = "TAND-Y"\npublic_keys = ["keys/absent.pem"]\n',
    "bad-rate.toml": 'id = "TAND-Z"\nrate_limit = "fast please"\n',
    "grants-not-a-list.toml": 'id = "TAND-W"\ngrants = "judgments.push"\n',
}


async def test_client_file_without_id_is_skipped_and_other_clients_are_served(
    api: TestClient[Any, Any], world: World, caplog: pytest.LogCaptureFixture
) -> None:
    bad = world.settings.clients_dir / "ZZ-BROKEN.toml"
    bad.write_text(BAD_FILES["no-id.toml"], "utf-8")
    caplog.set_level(logging.WARNING, logger="gateway.security.clients")

    doc = fresh_judgment()
    resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
    assert resp.status == 202, await resp.text()
    resp = await api.get(f"/v1/messages/{doc['message_id']}", headers=world.case_headers())
    assert resp.status == 200, await resp.text()

    (line,) = [r.getMessage() for r in caplog.records if "ZZ-BROKEN.toml" in r.getMessage()]
    assert "id" in line and "required" in line.lower()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_kind_of_bad_client_file_is_skipped_with_its_reason(
    world: World, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    (world.settings.clients_dir / name).write_text(BAD_FILES[name], "utf-8")
    caplog.set_level(logging.WARNING, logger="gateway.security.clients")

    store = ClientStore(world.settings.clients_dir, recheck_seconds=0)
    assert [c.id for c in store.all()] == sorted([COURT, "THADS-HN"])
    assert any(name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_fixed_client_file_is_picked_up_without_restart(world: World) -> None:
    store = ClientStore(world.settings.clients_dir, recheck_seconds=0)
    path = world.settings.clients_dir / "TAND-HCM.toml"
    path.write_text(BAD_FILES["no-id.toml"], "utf-8")
    assert store.get("TAND-HCM") is None

    key = generate_keypair()
    store.add("TAND-HCM", public_pem(key.public_key()), ["judgments.push"])
    client = store.get("TAND-HCM")
    assert client is not None and client.allows("judgments.push")
