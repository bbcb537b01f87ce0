"""Benchmark ``37-signatures``: what signatures cost — a court's PDF verified on arrival (pyHanko: the
whole check, the simulated CA's OCSP answered on loopback), by size up to the 10 MB a scanned judgment
may weigh; the long-term proof step a worker adds (validation material and an archive time-stamp); and an
office's detached JWS over an order, made and checked."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem, x509

from gateway.signatures.longterm import advance
from gateway.signatures.office import OfficeSigner, verify
from gateway.signatures.policy import SignaturePolicy, SignerBinding
from gateway.signatures.trust import TrustList
from gateway.signatures.verify import verify_pdf
from gateway.simulators.trust import SUBJECTS, judgment_pdf, sign_pdf, start_trust_services
from tests.bench.results import Row, Section, record
from tests.support.loop_thread import LoopThread
from tests.support.pki import TestCA

pytestmark = [pytest.mark.bench]
COMMAND = "make bench PYTEST_ARGS=tests/bench/test_bench_signatures.py"
SIZES = [("10 KB", 0), ("1 MB", 1_000_000), ("10 MB", 10_000_000)]


def timed(runs: int, action: Callable[[], Any]) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def traced_peak_mb(action: Callable[[], Any]) -> float:
    """The peak of Python allocations (every thread) while ``action`` runs once."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def test_bench_signatures(tmp_path: Path) -> None:
    started = time.monotonic()
    background = LoopThread()
    run = background.run
    services = run(start_trust_services(tmp_path / "keys"))
    rows: list[Row] = []
    try:
        root = x509.Certificate.load(pem.unarmor(services.root_pem())[2])
        trust = TrustList.from_certificates("bench", [root.dump()])
        signers = {org: SignerBinding(org, cn) for org, cn in SUBJECTS.values()}
        policy = SignaturePolicy("judgment.delivery", signers=signers, budget_seconds=60)
        for label, padding in SIZES:
            signed = run(sign_pdf(judgment_pdf(padding=padding), services, "tand-hn"))
            runs = 5 if padding < 5_000_000 else 3
            outcomes: list[str] = []

            def check(pdf: bytes = signed, seen: list[str] = outcomes) -> None:
                seen.append(run(verify_pdf(pdf, trust, policy, "TAND-HN")).outcome)

            seconds = timed(runs, check)
            peak = traced_peak_mb(check)
            assert set(outcomes) == {"valid"}, outcomes
            rows.append(
                Row(
                    name=f"Verify a signed judgment PDF of {label} ({len(signed) / 1e6:.2f} MB)",
                    figure=f"median {statistics.median(seconds) * 1000:.0f} ms (of {runs}); "
                    f"peak Python allocations {peak:.0f} MB",
                    values={"median_s": statistics.median(seconds), "bytes": len(signed)},
                )
            )
            if padding == 1_000_000:

                def prove(pdf: bytes = signed) -> None:
                    run(advance(pdf, [root], services.tsa_url, 60))

                proof_seconds = timed(3, prove)
                rows.append(
                    Row(
                        name=f"Long-term proof step (B-LT + archive time-stamp), {label} PDF",
                        figure=f"median {statistics.median(proof_seconds) * 1000:.0f} ms (of 3)",
                        values={"median_s": statistics.median(proof_seconds)},
                    )
                )
    finally:
        run(services.close())
        background.close()

    ca = TestCA(tmp_path / "office-ca", "Office Root CA")
    issued = ca.issue("thads-hn", signing=True)
    signer = OfficeSigner.from_files(issued.key, issued.cert)
    order = {"message_id": "m-1", "sender": "THADS-HN", "body": {"amount": 1_000_000, "accounts": ["1"] * 20}}
    n = 500
    sign_s = timed(n, lambda: signer.sign(order))
    jws = signer.sign(order)
    verify_s = timed(n, lambda: verify(order, jws, [ca.cert]))
    rows.append(
        Row(
            name="Office signature over an order (ES256 detached JWS)",
            figure=f"sign {statistics.median(sign_s) * 1e6:.0f} µs, verify (chain included) "
            f"{statistics.median(verify_s) * 1e6:.0f} µs (medians of {n})",
            values={"sign_s": statistics.median(sign_s), "verify_s": statistics.median(verify_s)},
        )
    )
    record(
        Section(
            key="37-signatures",
            title="What signatures cost: verification on arrival, long-term proof, orders signed",
            command=COMMAND,
            rows=rows,
            notes=[
                "Verification is the whole check of verify_pdf on its worker thread (integrity, coverage and "
                "modifications, the chain, OCSP from the simulated CA on loopback, the time-stamp, the "
                "signer), hard-fail, one at a time. The PDFs are one page plus incompressible padding, "
                "signed and time-stamped by the simulated court.",
                "Peak Python allocations: tracemalloc's peak over one more verification of that size, every "
                "thread (the PDF held, parsed and hashed), measured apart from the timed runs.",
                "The long-term proof step is what the workers' job does once per judgment: the chain's "
                "certificates and revocation answers written into a DSS, then a document time-stamp from the "
                "simulated TSA.",
                f"Section duration: {time.monotonic() - started:.0f} s.",
            ],
        )
    )
