"""Long-term proof of signed judgments: validation material and archive time-stamps added to the file
(PAdES B-LT, B-LTA), renewed before they expire by the workers' job (a short clock drives it), and the
file verified again from itself alone once the CA's services are gone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import pem, x509

from gateway.settings import LongTermSettings
from gateway.signatures.longterm import advance, verify_offline
from gateway.simulators.trust import TrustServices, judgment_pdf, sign_pdf, start_trust_services
from gateway.storage import signed_documents
from gateway.storage.database import Database
from gateway.worker.longterm import ProofJob
from tests.support.loop_thread import LoopThread


class World:
    def __init__(self, services: TrustServices, background: LoopThread, signed: bytes) -> None:
        self.services = services
        self.background = background
        self.signed = signed
        self.roots = [x509.Certificate.load(pem.unarmor(services.root_pem())[2])]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    background = LoopThread()
    services: TrustServices = background.run(start_trust_services(tmp_path_factory.mktemp("trust-keys")))
    signed = background.run(sign_pdf(judgment_pdf(), services, "tand-hn"))
    try:
        yield World(services, background, signed)
    finally:
        background.run(services.close())
        background.close()


async def test_the_proof_grows_by_incremental_updates_and_holds_once_the_ca_is_gone(
    tmp_path: Path,
) -> None:
    """A world of its own: its CA is stopped at the end, as in ten years."""
    background = LoopThread()
    services = background.run(start_trust_services(tmp_path / "keys"))
    roots = [x509.Certificate.load(pem.unarmor(services.root_pem())[2])]
    try:
        signed = background.run(sign_pdf(judgment_pdf(), services, "tand-hn"))
        first = await advance(signed, roots, services.tsa_url, 30)
        assert (first.level, first.timestamps) == ("B-LTA", 1)
        assert first.pdf.startswith(signed)  # the file that arrived is still there, byte for byte
        assert first.archive_expires_at is not None
        renewed = await advance(first.pdf, roots, services.tsa_url, 30)
        assert (renewed.level, renewed.timestamps) == ("B-LTA", 2)
        assert renewed.pdf.startswith(first.pdf)
        without_tsa = await advance(signed, roots, None, 30)
        assert (without_tsa.level, without_tsa.timestamps) == ("B-LT", 0)
    finally:
        background.run(services.close())
        background.close()

    # No OCSP responder, no CRL, no time-stamping service any more: the file alone proves the signature.
    result = await verify_offline(renewed.pdf, roots)
    assert result.ok, result.checks
    assert [c.part for c in result.checks] == [
        "signature Signature1",
        "archive time-stamp 1",
        "archive time-stamp 2",
    ]
    # A judgment number changed inside the kept file breaks it.
    altered = await verify_offline(renewed.pdf.replace(b"Ban an so 12", b"Ban an so 99"), roots)
    assert not altered.ok
    # Without its validation material a signature cannot be proven offline.
    assert not (await verify_offline(signed, roots)).ok
    # Nor under another root.
    other = [x509.Certificate.load(pem.unarmor(services.rogue_root_pem())[2])]
    assert not (await verify_offline(renewed.pdf, other)).ok


async def test_the_job_adds_the_proof_on_arrival_and_renews_it_before_it_expires(
    world: World, db: Database
) -> None:
    clock = {"now": dt.datetime.now(dt.UTC)}
    settings = LongTermSettings(tsa_url=world.services.tsa_url, renew_before_days=90, retry_seconds=60)
    job = ProofJob(db, world.roots, settings, clock=lambda: clock["now"], worker="w1")
    at = clock["now"]
    await db.write(lambda conn: signed_documents.insert(conn, "m-1", "TAND-HN", world.signed, at))

    assert await job.run_once()
    async with db.read() as conn:
        kept = await signed_documents.get(conn, "m-1")
    assert kept is not None and (kept.level, kept.timestamps) == ("B-LTA", 1)
    assert kept.original == world.signed
    assert kept.archive_expires_at is not None
    assert kept.due_at == kept.archive_expires_at - dt.timedelta(days=90)
    assert not await job.run_once()  # nothing due until then

    # Years later, on the clock: inside the renewal window the job stamps the file again.
    clock["now"] = kept.due_at + dt.timedelta(seconds=1)
    assert await job.run_once()
    async with db.read() as conn:
        renewed = await signed_documents.get(conn, "m-1")
    assert renewed is not None and renewed.timestamps == 2
    assert renewed.pdf.startswith(kept.pdf)
    # The service still stamps with the same certificate: not renewed again at once, but later.
    assert renewed.due_at == clock["now"] + dt.timedelta(seconds=60)
    assert (await verify_offline(renewed.pdf, world.roots)).ok


async def test_a_step_that_fails_is_kept_and_tried_again(world: World, db: Database) -> None:
    at = dt.datetime.now(dt.UTC)
    settings = LongTermSettings(tsa_url="http://127.0.0.1:9/tsa", budget_seconds=5, retry_seconds=120)
    job = ProofJob(db, world.roots, settings, clock=lambda: at, worker="w1")
    await db.write(lambda conn: signed_documents.insert(conn, "m-2", "TAND-HN", world.signed, at))
    assert await job.run_once()
    async with db.read() as conn:
        kept = await signed_documents.get(conn, "m-2")
    assert kept is not None and kept.level == "received" and kept.attempts == 1
    assert kept.pdf == world.signed and kept.last_error
    assert kept.due_at == at + dt.timedelta(seconds=120)


async def test_two_workers_never_take_the_same_file(world: World, db: Database) -> None:
    at = dt.datetime.now(dt.UTC)
    await db.write(lambda conn: signed_documents.insert(conn, "m-3", "TAND-HN", world.signed, at))
    lease = dt.timedelta(seconds=60)
    first = await db.write(lambda conn: signed_documents.claim_due(conn, "w1", at, lease))
    second = await db.write(lambda conn: signed_documents.claim_due(conn, "w2", at, lease))
    assert first is not None and second is None
    # The first worker died: once its lease has run out another takes the file.
    later = at + lease + dt.timedelta(seconds=1)
    taken = await db.write(lambda conn: signed_documents.claim_due(conn, "w2", later, lease))
    assert taken is not None and taken.message_id == "m-3"
    # The dead worker's late result is not written over the new holder's.
    stored = await db.write(
        lambda conn: signed_documents.store_proof(conn, "m-3", "w1", b"late", "B-LT", 0, None, later, later)
    )
    assert not stored
