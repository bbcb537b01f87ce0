"""Long-term proof of a signed PDF (PAdES B-LT and B-LTA), and its verification from the file alone.

What a signature needs to be verified in ten years, when the CA's OCSP responder and CRLs are gone: the
certificates of its chain, the revocation answers that showed them good, and a proof that these existed
before anything expired or was broken — a document time-stamp over all of it. Each step is an incremental
update of the file, so the bytes that arrived (and their hash, which the validation report names) stay a
prefix of the file kept:

1. **B-LT**: the validation material of every signature (and of its signature time-stamp) is gathered —
   fetched from the addresses the certificates name, bounded like the check on arrival — and written into
   the document security store (DSS).
2. **B-LTA**: a document time-stamp from the configured time-stamping service covers the file and its DSS.
3. **Renewal**: before the last time-stamp's certificate expires (or its algorithm weakens), the material
   of that time-stamp is added and a new time-stamp covers everything (``renew``).

:func:`verify_offline` re-checks a kept file with no network at all: each signature against the trust
anchors at its signature time-stamp's time with the revocation answers of the DSS, each document
time-stamp at the time of the next one (the last at the time of the check).

Every step runs on its own event loop in a worker thread, within a time budget, as verification does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Literal

import aiohttp
from asn1crypto import x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import PdfTimeStamper
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore, async_add_validation_info
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from yarl import URL

from gateway.signatures.verify import bounded_fetch, host_guard, timestamp_time

Level = Literal["B-LT", "B-LTA"]


@dataclass(frozen=True, slots=True)
class Proof:
    """A file with its long-term proof: its level, how many document time-stamps it carries, and when the
    last one's certificate expires (None without one)."""

    pdf: bytes
    level: Level
    timestamps: int
    archive_expires_at: dt.datetime | None


class ProofFailed(Exception):
    """The proof could not be made now (a responder or the time-stamping service did not answer)."""


async def advance(
    pdf: bytes,
    roots: Sequence[x509.Certificate],
    tsa_url: str | None,
    budget_seconds: float,
    revocation_hosts: Sequence[str] = (),
) -> Proof:
    """The next step of ``pdf``'s proof: validation material and a first archive time-stamp for a file that
    has none, a renewal for one that has. Without ``tsa_url`` only the validation material is added.
    ``revocation_hosts``: the look-ups' allow-list (the time-stamping service is configured, not named by
    a certificate, and is always allowed)."""

    def in_thread() -> Proof:
        async def bounded() -> Proof:
            async with asyncio.timeout(budget_seconds):
                return await _advance(pdf, list(roots), tsa_url, budget_seconds, revocation_hosts)

        return asyncio.run(bounded())

    try:
        async with asyncio.timeout(budget_seconds + 1):
            return await asyncio.to_thread(in_thread)
    except TimeoutError:
        raise ProofFailed(f"not done within {budget_seconds:g} s") from None


async def _advance(
    pdf: bytes,
    roots: list[x509.Certificate],
    tsa_url: str | None,
    budget_seconds: float,
    revocation_hosts: Sequence[str],
) -> Proof:
    timeout = aiohttp.ClientTimeout(total=budget_seconds)
    hosts = list(revocation_hosts)
    if hosts and tsa_url:
        tsa = URL(tsa_url)
        hosts.append(f"{tsa.host}:{tsa.port}")
    guards = (bounded_fetch, host_guard(hosts))
    async with aiohttp.ClientSession(timeout=timeout, middlewares=guards) as session:
        backend = AIOHttpFetcherBackend(session, per_request_timeout=budget_seconds)

        def context(**options: Any) -> ValidationContext:
            return ValidationContext(
                trust_roots=roots, allow_fetching=True, fetcher_backend=backend, **options
            )

        reader = PdfFileReader(BytesIO(pdf), strict=False)
        try:
            if reader.embedded_timestamp_signatures and tsa_url:
                stamper = PdfTimeStamper(HTTPTimeStamper(tsa_url, session=session))
                out = await stamper.async_update_archival_timestamp_chain(reader, context(), in_place=False)
                return _proof(out.getvalue())
            data = pdf
            for index, _ in enumerate(reader.embedded_regular_signatures):
                # Each signature of the file as last written: the DSS grows one incremental update each.
                emb = PdfFileReader(BytesIO(data), strict=False).embedded_regular_signatures[index]
                moment = timestamp_time(emb)
                vc = context(moment=moment, retroactive_revinfo=True) if moment else context()
                data = (await async_add_validation_info(emb, vc, in_place=False)).getvalue()
            if tsa_url:
                stamper = PdfTimeStamper(HTTPTimeStamper(tsa_url, session=session))
                writer = IncrementalPdfFileWriter(BytesIO(data))
                out = await stamper.async_timestamp_pdf(writer, "sha256", validation_context=context())
                data = out.getvalue()
            return _proof(data)
        except (aiohttp.ClientError, OSError) as exc:
            raise ProofFailed(f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # pyHanko's own errors: no revocation answer, a refused time-stamp …
            raise ProofFailed(f"{type(exc).__name__}: {exc}") from None


def _proof(pdf: bytes) -> Proof:
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    stamps = reader.embedded_timestamp_signatures
    expires = stamps[-1].signer_cert.not_valid_after if stamps else None
    return Proof(pdf, "B-LTA" if stamps else "B-LT", len(stamps), expires)


def stamp_time(stamp: EmbeddedPdfSignature) -> dt.datetime:
    """The time a document time-stamp certifies (its TSTInfo's genTime)."""
    gen_time: dt.datetime = stamp.signed_data["encap_content_info"]["content"].parsed["gen_time"].native
    return gen_time


# -- verification from the file alone -------------------------------------------------------------------


@dataclass
class OfflineCheck:
    part: str
    ok: bool
    detail: str


@dataclass
class OfflineResult:
    checks: list[OfflineCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


async def verify_offline(
    pdf: bytes, roots: Sequence[x509.Certificate], now: dt.datetime | None = None
) -> OfflineResult:
    """Re-check ``pdf`` with nothing but itself and ``roots``: no look-up leaves the machine."""
    return await asyncio.to_thread(lambda: asyncio.run(_verify_offline(pdf, list(roots), now)))


async def _verify_offline(
    pdf: bytes, roots: list[x509.Certificate], now: dt.datetime | None
) -> OfflineResult:
    result = OfflineResult()
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        dss = DocumentSecurityStore.read_dss(reader)
    except Exception as exc:  # no DSS, or not a PDF: nothing kept to check against
        result.checks.append(OfflineCheck("validation material", False, f"{type(exc).__name__}: {exc}"))
        return result
    stamps = reader.embedded_timestamp_signatures
    first_archive = stamp_time(stamps[0]) if stamps else None

    def context(moment: dt.datetime | None, **options: Any) -> ValidationContext:
        base = {"trust_roots": roots, "allow_fetching": False, "moment": moment} | options
        return dss.as_validation_context(base)

    for emb in reader.embedded_regular_signatures:
        result.checks.append(await _signature(emb, context, first_archive, now))
    for index, stamp in enumerate(stamps):
        later = stamp_time(stamps[index + 1]) if index + 1 < len(stamps) else now
        status = await async_validate_pdf_timestamp(stamp, context(later, revocation_mode="soft-fail"))
        ok = bool(status.intact and status.valid and status.trusted)
        when = status.timestamp.isoformat() if status.timestamp else "?"
        detail = f"archive time-stamp of {when}" + ("" if ok else f": {status.summary()}")
        result.checks.append(OfflineCheck(f"archive time-stamp {index + 1}", ok, detail))
    return result


async def _signature(
    emb: EmbeddedPdfSignature, context: Any, first_archive: dt.datetime | None, now: dt.datetime | None
) -> OfflineCheck:
    part = f"signature {emb.field_name}"
    moment = timestamp_time(emb) or first_archive or now
    try:
        status = await async_validate_pdf_signature(
            emb,
            context(moment, revocation_mode="hard-fail", retroactive_revinfo=True),
            context(moment, revocation_mode="soft-fail"),
        )
    except Exception as exc:
        return OfflineCheck(part, False, f"{type(exc).__name__}: {exc}")
    ok = bool(status.intact and status.valid and status.trusted and not status.revoked)
    signer = status.signing_cert.subject.human_friendly if status.signing_cert else "?"
    at = moment.isoformat() if moment else "the time of the check"
    detail = f"by {signer}, valid at {at}" if ok else status.summary()
    return OfflineCheck(part, ok, detail)
