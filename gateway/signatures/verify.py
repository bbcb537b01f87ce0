"""Verification of a signed PDF with pyHanko: integrity, what the signature covers and what changed after
it, the chain to the trust list, the certificate's validity and revocation at the signing time, the
time-stamp, and that the signer is the sender.

The signing time is the time-stamp's when the document carries a valid one: a certificate revoked or expired
after that moment still made a valid signature. Without a time-stamp the only time that can be proven is the
check's own, so the certificate must be good now.

The work runs on its own event loop in a worker thread: parsing, hashing and the difference analysis of a
large PDF are CPU-bound, and pyHanko's asynchronous API still does them on the calling loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import unicodedata
from collections.abc import Sequence
from importlib.metadata import version
from io import BytesIO
from typing import Any

import aiohttp
from asn1crypto import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.general import NonexistentAttributeError, find_unique_cms_attribute
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

from gateway.signatures.policy import SignaturePolicy
from gateway.signatures.report import (
    Check,
    Outcome,
    RevocationEvidence,
    SignatureReport,
    Signer,
    TimeStamp,
    ValidationReport,
    worst,
)
from gateway.signatures.trust import TrustList

#: An OCSP response or CRL larger than this is refused (a national CA's CRL is a few megabytes at most).
MAX_REVOCATION_BYTES = 16 * 1024 * 1024

#: Later revisions a signature tolerates: none, archival data (LTA), and form filling / further signatures.
_ALLOWED_UPDATES = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING)


def _libraries() -> dict[str, str]:
    return {name: version(name) for name in ("pyhanko", "pyhanko-certvalidator")}


async def verify_pdf(
    data: bytes,
    trust: TrustList,
    policy: SignaturePolicy,
    sender: str,
    *,
    now: dt.datetime | None = None,
) -> ValidationReport:
    """Verify the signatures of ``data`` (a PDF) sent by client ``sender`` under ``policy``.

    Never raises for anything about the document: a broken file is ``invalid``, a check that could not be
    completed (a revocation responder down under hard-fail, the time budget spent) is ``indeterminate``.
    ``now``: the time of the check (tests); the current time by default."""
    started = time.monotonic()
    checked_at = now or dt.datetime.now(dt.UTC)
    try:
        async with asyncio.timeout(policy.budget_seconds):
            return await asyncio.to_thread(_verify_in_thread, data, trust, policy, sender, checked_at)
    except TimeoutError:
        return _out_of_time(data, trust, policy, sender, checked_at, started)


def _verify_in_thread(
    data: bytes, trust: TrustList, policy: SignaturePolicy, sender: str, checked_at: dt.datetime
) -> ValidationReport:
    """The thread's own loop serves the revocation look-ups; its budget stops it when the caller gave up."""

    async def bounded() -> ValidationReport:
        started = time.monotonic()
        try:
            async with asyncio.timeout(policy.budget_seconds):
                return await _verify(data, trust, policy, sender, checked_at, started)
        except TimeoutError:
            return _out_of_time(data, trust, policy, sender, checked_at, started)

    return asyncio.run(bounded())


def _out_of_time(
    data: bytes,
    trust: TrustList,
    policy: SignaturePolicy,
    sender: str,
    checked_at: dt.datetime,
    started: float,
) -> ValidationReport:
    """The budget ran out (waiting for a thread counts): nothing proved either way."""
    report = _empty(data, trust, policy, sender, checked_at, started)
    report.outcome = "indeterminate"
    report.reasons = [f"verification did not finish within {policy.budget_seconds:g} s"]
    return report


def _empty(
    data: bytes,
    trust: TrustList,
    policy: SignaturePolicy,
    sender: str,
    checked_at: dt.datetime,
    started: float,
) -> ValidationReport:
    return ValidationReport(
        outcome="unsigned",
        reasons=[],
        warnings=[],
        document_sha256=hashlib.sha256(data).hexdigest(),
        document_type=policy.document_type,
        sender=sender,
        checked_at=checked_at.isoformat(),
        duration_ms=int((time.monotonic() - started) * 1000),
        library=_libraries(),
        trust_list=trust.describe(),
        revocation_mode=policy.revocation,
    )


async def _verify(
    data: bytes,
    trust: TrustList,
    policy: SignaturePolicy,
    sender: str,
    checked_at: dt.datetime,
    started: float,
) -> ValidationReport:
    report = _empty(data, trust, policy, sender, checked_at, started)
    try:
        signatures = list(PdfFileReader(BytesIO(data), strict=False).embedded_signatures)
    except (PdfError, ValueError, KeyError, IndexError, TypeError) as exc:
        report.outcome = "invalid"
        report.reasons = [f"not a readable PDF: {exc}"]
        return report
    if not signatures:
        report.outcome = "unsigned"
        report.reasons = ["the document carries no signature"]
        return report
    # The fetchers' session is closed with this loop; every look-up is bounded by the policy's budget.
    timeout = aiohttp.ClientTimeout(total=policy.budget_seconds)
    guards = (bounded_fetch, host_guard(policy.revocation_hosts))
    async with aiohttp.ClientSession(timeout=timeout, middlewares=guards) as session:
        backend = AIOHttpFetcherBackend(session, per_request_timeout=policy.budget_seconds)
        for index, emb in enumerate(signatures):
            last = index == len(signatures) - 1
            sig = await _check_signature(emb, last, trust, policy, sender, checked_at, backend)
            report.signatures.append(sig)
    report.outcome = worst([s.outcome for s in report.signatures])
    for sig in report.signatures:
        for check in sig.checks:
            if check.result in ("fail", "indeterminate"):
                report.reasons.append(f"{sig.field}: {check.name}: {check.reason}")
            elif check.result == "skipped" and check.reason:
                report.warnings.append(f"{sig.field}: {check.name}: {check.reason}")
    report.duration_ms = int((time.monotonic() - started) * 1000)
    return report


def host_guard(hosts: Sequence[str]) -> aiohttp.ClientMiddlewareType:
    """A look-up only to ``hosts`` (``host`` or ``host:port``, from ``[revocation] hosts`` of
    signatures.toml); an empty list lets the certificates name any host. The certificates come from the
    sender: an allow-list keeps a forged one from sending the gateway's look-ups where it likes."""
    allowed = frozenset(h.lower() for h in hosts)

    async def guard(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        host = (request.url.host or "").lower()
        if allowed and host not in allowed and f"{host}:{request.url.port}" not in allowed:
            raise aiohttp.InvalidUrlClientError(request.url, f"{host} is not an allowed revocation host")
        return await handler(request)

    return guard


async def bounded_fetch(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """pyHanko's fetchers follow redirects and read whole bodies; the addresses come from the certificates
    being checked, i.e. from the sender. Here a redirect is refused (it would send the look-up to a host the
    certificate did not name) and a body is read to at most :data:`MAX_REVOCATION_BYTES`."""
    response = await handler(request)
    if 300 <= response.status < 400:
        response.release()
        raise aiohttp.ClientResponseError(
            response.request_info, (), status=response.status, message="redirect not followed"
        )
    if (response.content_length or 0) > MAX_REVOCATION_BYTES:
        response.release()
        raise aiohttp.ClientPayloadError(f"answer larger than {MAX_REVOCATION_BYTES} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_REVOCATION_BYTES:
            response.close()
            raise aiohttp.ClientPayloadError(f"answer larger than {MAX_REVOCATION_BYTES} bytes")
    # The body is read; ClientResponse.read() hands back what is set here instead of reading again.
    response._body = bytes(body)
    return response


def timestamp_time(emb: EmbeddedPdfSignature) -> dt.datetime | None:
    """The time the signature time-stamp claims (trusted only once pyHanko validated the token)."""
    try:
        token = find_unique_cms_attribute(emb.signer_info["unsigned_attrs"], "signature_time_stamp_token")
    except (NonexistentAttributeError, KeyError, ValueError):
        return None
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    gen_time: dt.datetime = tst_info["gen_time"].native
    return gen_time


async def _check_signature(
    emb: EmbeddedPdfSignature,
    last: bool,
    trust: TrustList,
    policy: SignaturePolicy,
    sender: str,
    checked_at: dt.datetime,
    backend: AIOHttpFetcherBackend,
) -> SignatureReport:
    ts_time = timestamp_time(emb)
    moment = ts_time or checked_at
    roots = trust.roots()
    signer_vc = ValidationContext(
        trust_roots=roots,
        allow_fetching=policy.allow_fetching,
        revocation_mode=policy.revocation,
        moment=moment,
        # Revocation data is fetched now, after the signing moment: a later "good" (or a revocation dated
        # after the moment) still speaks of the certificate at that moment.
        retroactive_revinfo=True,
        fetcher_backend=backend,
    )
    ts_vc = ValidationContext(
        trust_roots=roots,
        allow_fetching=policy.allow_fetching,
        revocation_mode="soft-fail",
        moment=checked_at,
        fetcher_backend=backend,
    )
    name = str(emb.field_name)
    sig = SignatureReport(
        field=name,
        outcome="indeterminate",
        signer=None,
        claimed_signing_time=None,
        timestamp=None,
        validation_time=moment.isoformat(),
        coverage=None,
        modification_level=None,
    )
    cert: x509.Certificate = emb.signer_cert
    sig.signer = _signer(cert)
    sig.revocation_sources = _revocation_sources(cert)
    try:
        status = await async_validate_pdf_signature(emb, signer_vc, ts_vc)
    except Exception as exc:
        sig.checks.append(Check("integrity", "indeterminate", f"{type(exc).__name__}: {exc}"))
        return sig
    sig.revocation_data = _revocation_data(signer_vc)
    sig.claimed_signing_time = status.signer_reported_dt.isoformat() if status.signer_reported_dt else None
    sig.coverage = status.coverage.name if status.coverage else None
    sig.modification_level = status.modification_level.name if status.modification_level else None
    sig.checks = _checks(status, last, policy, sender, ts_time, signer_vc)
    if status.timestamp_validity is not None:
        tsv = status.timestamp_validity
        sig.timestamp = TimeStamp(
            time=tsv.timestamp.isoformat(),
            authority=tsv.signing_cert.subject.human_friendly if tsv.signing_cert else None,
            valid=bool(tsv.intact and tsv.valid and tsv.trusted),
        )
    sig.outcome = _outcome(sig.checks)
    return sig


def _outcome(checks: Sequence[Check]) -> Outcome:
    if any(c.result == "fail" for c in checks):
        return "invalid"
    if any(c.result == "indeterminate" for c in checks):
        return "indeterminate"
    return "valid"


def _checks(
    status: PdfSignatureStatus,
    last: bool,
    policy: SignaturePolicy,
    sender: str,
    ts_time: dt.datetime | None,
    vc: ValidationContext,
) -> list[Check]:
    checks: list[Check] = []
    if status.intact and status.valid:
        checks.append(Check("integrity", "pass", "the signed bytes hash to the signed digest"))
    else:
        checks.append(Check("integrity", "fail", "the signed bytes were altered or the signature is broken"))
    checks.append(_coverage(status, last))
    checks.extend(_trust(status, policy, ts_time, vc))
    checks.append(_timestamp(status, ts_time))
    checks.append(_signer_check(status.signing_cert, policy, sender))
    return checks


def _coverage(status: PdfSignatureStatus, last: bool) -> Check:
    coverage = status.coverage
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return Check("coverage", "pass", "the signature covers the whole file")
    if coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        return Check("coverage", "fail", f"the signature covers only part of its revision ({coverage})")
    if isinstance(status.diff_result, SuspiciousModification):
        first_line = (str(status.diff_result).splitlines() or [""])[0]
        return Check("coverage", "fail", f"a later revision changes the signed document: {first_line}")
    level = status.modification_level
    if level in _ALLOWED_UPDATES and status.docmdp_ok is not False:
        what = "later revisions only add signatures, form data or archival data"
        return Check("coverage", "pass", what)
    return Check(
        "coverage", "fail", f"a later revision changes the signed content ({level.name if level else '?'})"
    )


def _trust(
    status: PdfSignatureStatus, policy: SignaturePolicy, ts_time: dt.datetime | None, vc: ValidationContext
) -> list[Check]:
    at = "at the time-stamp's time" if ts_time else "now (no time-stamp proves an earlier signing time)"
    consulted = bool(vc.ocsps or vc.crls)
    if status.trusted:
        chain = Check("chain", "pass", "the certificate chains to an anchor of the trust list")
        validity = Check("validity", "pass", f"the certificate was within its validity period {at}")
        if consulted:
            revocation = Check("revocation", "pass", f"not revoked {at}")
        elif policy.revocation == "soft-fail":
            revocation = Check("revocation", "skipped", "no revocation answer; accepted under soft-fail")
        else:
            revocation = Check("revocation", "indeterminate", "no revocation answer")
        return [chain, validity, revocation]
    indic = status.trust_problem_indic
    indic_name = str(getattr(indic, "name", indic)) if indic is not None else "UNKNOWN"
    if status.revoked:
        details = status.revocation_details
        when = details.revocation_date.isoformat() if details else "?"
        return [
            Check("chain", "pass", "the certificate chains to an anchor of the trust list"),
            Check("revocation", "fail", f"the certificate was revoked on {when}, before the signing time"),
        ]
    if indic_name == "NO_CERTIFICATE_CHAIN_FOUND":
        return [Check("chain", "fail", "the certificate does not chain to any anchor of the trust list")]
    if indic_name.startswith("OUT_OF_BOUNDS"):
        return [
            Check("chain", "pass", "the certificate chains to an anchor of the trust list"),
            Check("validity", "fail", f"the certificate was expired or not yet valid {at}"),
        ]
    if not consulted and policy.revocation == "hard-fail":
        reason = f"no usable OCSP or CRL answer, required under hard-fail ({indic_name})"
        return [Check("revocation", "indeterminate", reason)]
    return [Check("chain", "indeterminate", f"could not be established ({indic_name})")]


def _timestamp(status: PdfSignatureStatus, ts_time: dt.datetime | None) -> Check:
    tsv = status.timestamp_validity
    if ts_time is None or tsv is None:
        return Check("timestamp", "skipped", "")
    if tsv.intact and tsv.valid and tsv.trusted:
        return Check("timestamp", "pass", f"time-stamped {tsv.timestamp.isoformat()} by a trusted authority")
    return Check("timestamp", "fail", "the time-stamp is broken or its authority is not trusted")


def _signer_check(cert: x509.Certificate, policy: SignaturePolicy, sender: str) -> Check:
    binding = policy.binding(sender)
    if binding is None:
        return Check("signer", "fail", f"no signer certificate is configured for sender {sender}")
    subject = cert.subject.native
    org = _nfc(subject.get("organization_name"))
    cn = _nfc(subject.get("common_name"))
    if org != _nfc(binding.organization):
        return Check(
            "signer", "fail", f"signed by organisation {org!r}, not the sender's {binding.organization!r}"
        )
    if binding.common_name is not None and cn != _nfc(binding.common_name):
        return Check("signer", "fail", f"signed by {cn!r}, not the sender's {binding.common_name!r}")
    return Check("signer", "pass", f"the signer is {sender}")


def _nfc(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):  # a multi-valued attribute: the first
        value = value[0]
    return unicodedata.normalize("NFC", str(value))


def _signer(cert: x509.Certificate) -> Signer:
    subject = cert.subject.native
    validity = cert["tbs_certificate"]["validity"]
    return Signer(
        subject=cert.subject.human_friendly,
        organization=_nfc(subject.get("organization_name")),
        common_name=_nfc(subject.get("common_name")),
        issuer=cert.issuer.human_friendly,
        serial=format(cert.serial_number, "x"),
        certificate_sha256=hashlib.sha256(cert.dump()).hexdigest(),
        not_before=validity["not_before"].native.isoformat(),
        not_after=validity["not_after"].native.isoformat(),
    )


def _revocation_sources(cert: x509.Certificate) -> list[str]:
    sources = [f"ocsp {url}" for url in cert.ocsp_urls]
    for point in cert.crl_distribution_points:
        if point.url:
            sources.append(f"crl {point.url}")
    return sources


def _revocation_data(vc: ValidationContext) -> list[RevocationEvidence]:
    out: list[RevocationEvidence] = []
    for resp in vc.ocsps:
        try:
            tbs = resp["response_bytes"]["response"].parsed["tbs_response_data"]
            single = tbs["responses"][0]
            next_update = single["next_update"].native
            out.append(
                RevocationEvidence(
                    kind="ocsp",
                    issuer=_responder(tbs["responder_id"]),
                    produced_at=tbs["produced_at"].native.isoformat(),
                    this_update=single["this_update"].native.isoformat(),
                    next_update=next_update.isoformat() if next_update else None,
                )
            )
        except (KeyError, ValueError, IndexError, TypeError, AttributeError):
            out.append(RevocationEvidence(kind="ocsp", issuer="(unreadable response)"))
    for crl in vc.crls:
        tbs = crl["tbs_cert_list"]
        next_update = tbs["next_update"].native
        out.append(
            RevocationEvidence(
                kind="crl",
                issuer=tbs["issuer"].human_friendly,
                this_update=tbs["this_update"].native.isoformat(),
                next_update=next_update.isoformat() if next_update else None,
            )
        )
    return out


def _responder(responder_id: Any) -> str:
    if responder_id.name == "by_name":
        return str(responder_id.chosen.human_friendly)
    return "key " + bytes(responder_id.chosen.native).hex()


__all__ = ["verify_pdf"]
