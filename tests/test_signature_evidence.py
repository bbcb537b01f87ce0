"""A signed judgment's proof from arrival to an evidence bundle checked years later: intake keeps the PDF
beside the message, the workers' job adds its validation material and archive time-stamp, the bundle
carries it, and ``run.py evidence verify`` checks it again after the CA's services are gone."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.cli import main
from gateway.signatures.trust import TrustList
from gateway.simulators.trust import judgment_pdf, sign_pdf, start_trust_services
from gateway.storage import signed_documents
from gateway.storage.database import Database
from gateway.web.app import create_app
from gateway.worker.longterm import ProofJob
from tests.support.console import operator_client
from tests.support.loop_thread import LoopThread
from tests.test_signature_intake import Pki, judgment, signing_world


async def test_a_bundle_proves_the_signature_after_the_ca_is_gone(
    tmp_path: Path,
    fresh_database_url: str,
    aiohttp_client: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    background = LoopThread()
    services = background.run(start_trust_services(tmp_path / "keys"))
    try:
        signed = background.run(sign_pdf(judgment_pdf(), services, "tand-hn"))
        world = signing_world(tmp_path / "home", fresh_database_url, Pki(services, {}))
        api: TestClient[Any, Any] = await aiohttp_client(create_app(world.settings))
        doc = judgment(signed)
        resp = await api.post("/v1/judgments", json=doc, headers=world.court_headers())
        assert resp.status == 202, await resp.text()

        db = Database(world.settings.database_url)
        try:
            async with db.read() as conn:
                kept = await signed_documents.get(conn, doc["message_id"])
            assert kept is not None and kept.level == "received" and kept.original == signed
            roots = TrustList.load(world.settings.config_dir / "trust").roots()
            settings = world.settings.long_term.model_copy(update={"tsa_url": services.tsa_url})
            assert await ProofJob(db, roots, settings).run_once()
        finally:
            await db.dispose()

        # The console's message page shows the report and how far the proof has got.
        await operator_client(api, world.settings)
        page = await (await api.get(f"/ops/messages/{doc['message_id']}")).text()
        assert 'id="signature-outcome">valid<' in page, page
        assert 'data-check="revocation"' in page and "TAND-HN" in page
        assert "<b>B-LTA</b>, 1 archive time-stamp(s)" in page

        monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(world.settings.config_dir))
        monkeypatch.setenv("GATEWAY_DATABASE_URL", world.settings.database_url)
        out = tmp_path / "bundle.json"
        command = ["evidence", "export", doc["message_id"], "--out", str(out), "--actor", "auditor-1"]
        assert await asyncio.to_thread(main, command) == 0
    finally:
        background.run(services.close())
        background.close()

    bundle = json.loads(out.read_text("utf-8"))
    assert bundle["signed_document"]["level"] == "B-LTA"
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["evidence", "verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ok   signed document" in printed and "ok   signature Signature1" in printed, printed
    assert "ok   archive time-stamp 1" in printed, printed

    # The judgment's number changed in the kept file: the bundle no longer holds.
    pdf = base64.b64decode(bundle["signed_document"]["pdf_base64"])
    bundle["signed_document"]["pdf_base64"] = base64.b64encode(
        pdf.replace(b"Ban an so 12", b"Ban an so 99")
    ).decode()
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(bundle), "utf-8")
    assert await asyncio.to_thread(main, ["evidence", "verify", str(altered)]) == 1
    assert "FAIL signed document" in capsys.readouterr().out
