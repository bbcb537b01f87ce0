"""The demo's signatures: what its set-up writes before any process starts is what the processes started
later check against — the trust anchor, the office's key, and the example judgments, signed, unsigned and
altered — although the CA's services are served by another process, started later."""

from __future__ import annotations

import asyncio
import base64
import json
import tomllib
from pathlib import Path

from gateway.demo import EXAMPLE
from gateway.demo_signing import OFFICE, SIGNED, TAMPERED, UNSIGNED, prepare_signatures
from gateway.signatures.office import load_certificates, load_office_signers, verify
from gateway.signatures.policy import policies_from_mapping
from gateway.signatures.trust import TrustList
from gateway.signatures.verify import verify_pdf
from gateway.simulators.main import order_signature_anchors
from gateway.simulators.trust import pki_epoch, start_trust_services
from tests.conftest import ROOT
from tests.support.gateway_procs import free_port


def pdf_of(path: Path) -> bytes:
    return base64.b64decode(json.loads(path.read_text("utf-8"))["body"]["document"]["content_base64"])


async def test_the_demo_set_up_signs_and_trusts_what_the_simulators_serve_later(tmp_path: Path) -> None:
    home, config, port = tmp_path / "demo", tmp_path / "demo" / "config", free_port()
    example = json.loads((ROOT / EXAMPLE).read_text("utf-8"))
    paths = await asyncio.to_thread(prepare_signatures, home, config, port, example)

    trust = TrustList.load(config / "trust")
    assert len(trust.anchors) == 1
    policies = policies_from_mapping(tomllib.loads((config / "signatures.toml").read_text("utf-8")))
    policy = policies["judgment.delivery"]
    assert policy.required and policy.revocation == "hard-fail"

    # What `run.py simulate` does later: the same PKI served again, from its keys and its stable epoch.
    services = await start_trust_services(home / "pki", port=port, epoch=pki_epoch(home / "pki"))
    try:
        signed = await verify_pdf(pdf_of(paths[SIGNED]), trust, policy, "TAND-HN")
        assert signed.outcome == "valid", signed.to_dict()
        assert (await verify_pdf(pdf_of(paths[UNSIGNED]), trust, policy, "TAND-HN")).outcome == "unsigned"
        assert (await verify_pdf(pdf_of(paths[TAMPERED]), trust, policy, "TAND-HN")).outcome == "invalid"
    finally:
        await services.close()

    # The office signs with the key signing.toml names, under the root the banks are given.
    signer = load_office_signers(config)[OFFICE]
    order = {"message_id": "m-1", "sender": OFFICE, "body": {"amount": 1}}
    anchors = load_certificates(next((config / "trust").glob("*.pem")))
    assert verify(order, signer.sign(order), anchors).subject == signer.subject

    # `run.py simulate` hands the banks and the police this root, as the installation signs.
    given = order_signature_anchors(config)
    assert given is not None and [c.subject for c in given] == [anchors[0].subject]
    assert order_signature_anchors(tmp_path / "unsigned-config") is None

    numbers = {json.loads(p.read_text("utf-8"))["body"]["judgment"]["number"] for p in paths.values()}
    assert len(numbers) == 3  # three judgments, none a duplicate of another


def test_the_epoch_is_kept_so_every_process_builds_the_same_certificates(tmp_path: Path) -> None:
    first = pki_epoch(tmp_path)
    assert pki_epoch(tmp_path) == first
    (tmp_path / "epoch").write_text("not a time", "utf-8")
    assert pki_epoch(tmp_path) >= first
