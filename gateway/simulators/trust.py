"""Simulated trust services on loopback: a test certification authority with the certificates of two courts
(TAND-HN, TAND-HCM), an enforcement office (THADS-HN) and a bank (BANK-VCB), its CRL, an OCSP responder that
knows of revoked court certificates, and an RFC 3161 time-stamping authority; plus a look-alike authority that
no trust list names. :func:`sign_pdf` signs a PDF as one of them, as a court's system would.

The PKI is declared for certomancer and served by its aiohttp animator; its keys are generated when the
services start (never stored in the repository). Every date is relative to the start, so the certificates
are valid "now" whenever the demo or a test runs.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web
from certomancer.integrations._animator_shared import FAKE_TIME_HEADER
from certomancer.integrations.aiohttp_animator import build_animator_app
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, KeyLabel, PKIArchitecture
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

ARCH = "thads-test"
ROGUE_ARCH = "rogue"

#: Signers by label: (organisation = the client id the gateway knows them by, common name).
SUBJECTS: dict[str, tuple[str, str]] = {
    "tand-hn": ("TAND-HN", "Toa an nhan dan thanh pho Ha Noi"),
    "tand-hcm": ("TAND-HCM", "Toa an nhan dan thanh pho Ho Chi Minh"),
    "thads-hn": ("THADS-HN", "Cuc Thi hanh an dan su thanh pho Ha Noi"),
    "bank-vcb": ("BANK-VCB", "Ngan hang TMCP Ngoai thuong Viet Nam"),
}

#: Further certificates of TAND-HN for the failure cases, each with its own key.
#: ``tand-hn-revoked``: revoked before anything was signed with it; ``tand-hn-revoked-later``: revoked
#: ``REVOKED_LATER_AGO`` ago, after a signature made ``SIGNED_EARLIER_AGO`` ago; ``tand-hn-expired``: expired.
COURT_VARIANTS = ("tand-hn-revoked", "tand-hn-revoked-later", "tand-hn-expired")
SIGNED_EARLIER_AGO = dt.timedelta(days=10)
REVOKED_LATER_AGO = dt.timedelta(days=5)

_KEYS = ("root", "tsa", "rogue-root", "tand-hn-rogue", *SUBJECTS, *COURT_VARIANTS)


def tsa_url(base: str) -> str:
    """The RFC 3161 time-stamping service of the trust services served at ``base``."""
    return f"{base}/{ARCH}/tsa/tsa"


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _ku(*usages: str) -> dict[str, Any]:
    return {
        "id": "key_usage",
        "critical": True,
        "smart-value": {"schema": "key-usage", "params": list(usages)},
    }


def _ca_extensions(crl_repo: str) -> list[dict[str, Any]]:
    return [
        {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
        _ku("digital_signature", "key_cert_sign", "crl_sign"),
        {
            "id": "crl_distribution_points",
            "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": [crl_repo]}},
        },
    ]


def _signer_extensions(ocsp: str, crl_repo: str) -> list[dict[str, Any]]:
    return [
        _ku("digital_signature", "non_repudiation"),
        {
            "id": "authority_information_access",
            "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": [ocsp]}},
        },
        {
            "id": "crl_distribution_points",
            "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": [crl_repo]}},
        },
    ]


def _config(key_dir: Path, url: str, now: dt.datetime) -> dict[str, Any]:
    long = {"valid-from": _iso(now - dt.timedelta(days=400)), "valid-to": _iso(now + dt.timedelta(days=3650))}
    leaf = {"valid-from": _iso(now - dt.timedelta(days=365)), "valid-to": _iso(now + dt.timedelta(days=365))}
    entities: dict[str, Any] = {
        "root": {"common-name": "THADS TEST Root CA - not for production", "organization-name": "THADS TEST"},
        "tsa": {"common-name": "THADS TEST Time-Stamping Authority", "organization-name": "THADS TEST"},
        "rogue-root": {"common-name": "Look-alike Root CA", "organization-name": "Unknown"},
    }
    for label, (org, cn) in SUBJECTS.items():
        entities[label] = {"organization-name": org, "common-name": cn}
    certs: dict[str, Any] = {
        "root": {"subject": "root", "issuer": "root", "validity": long, "extensions": _ca_extensions("root")},
        "tsa": {
            "subject": "tsa",
            "issuer": "root",
            "validity": long,
            "extensions": [
                _ku("digital_signature"),
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
            ],
        },
    }
    for label in SUBJECTS:
        certs[label] = {
            "subject": label,
            "issuer": "root",
            "validity": leaf,
            "extensions": _signer_extensions("ocsp", "root"),
        }
    certs["tand-hn-revoked"] = {
        "template": "tand-hn",
        "subject": "tand-hn",
        "subject-key": "tand-hn-revoked",
        "revocation": {"revoked-since": _iso(now - dt.timedelta(days=30)), "reason": "key_compromise"},
    }
    certs["tand-hn-revoked-later"] = {
        "template": "tand-hn",
        "subject": "tand-hn",
        "subject-key": "tand-hn-revoked-later",
        "revocation": {"revoked-since": _iso(now - REVOKED_LATER_AGO), "reason": "superseded"},
    }
    certs["tand-hn-expired"] = {
        "template": "tand-hn",
        "subject": "tand-hn",
        "subject-key": "tand-hn-expired",
        "validity": {
            "valid-from": _iso(now - dt.timedelta(days=400)),
            "valid-to": _iso(now - dt.timedelta(days=2)),
        },
    }
    rogue_entities = {
        "rogue-root": entities["rogue-root"],
        "tand-hn": entities["tand-hn"],
    }
    return {
        "external-url-prefix": url,
        "keysets": {
            "keys": {
                "path-prefix": str(key_dir),
                "keys": {name: {"path": f"{name}.key.pem"} for name in _KEYS},
            }
        },
        "pki-architectures": {
            ARCH: {
                "keyset": "keys",
                "entity-defaults": {"country-name": "VN"},
                "entities": entities,
                "certs": certs,
                "services": {
                    "ocsp": {"ocsp": {"for-issuer": "root", "responder-cert": "root", "signing-key": "root"}},
                    "crl-repo": {
                        "root": {
                            "for-issuer": "root",
                            "signing-key": "root",
                            "simulated-update-schedule": "P1D",
                        }
                    },
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
                },
            },
            ROGUE_ARCH: {
                "keyset": "keys",
                "entity-defaults": {"country-name": "VN"},
                "entities": rogue_entities,
                "certs": {
                    "rogue-root": {
                        "subject": "rogue-root",
                        "issuer": "rogue-root",
                        "validity": long,
                        "extensions": _ca_extensions("rogue"),
                    },
                    "tand-hn": {
                        "subject": "tand-hn",
                        "subject-key": "tand-hn-rogue",
                        "issuer": "rogue-root",
                        "validity": leaf,
                        "extensions": _signer_extensions("ocsp", "rogue"),
                    },
                },
                "services": {
                    "ocsp": {
                        "ocsp": {
                            "for-issuer": "rogue-root",
                            "responder-cert": "rogue-root",
                            "signing-key": "rogue-root",
                        }
                    },
                    "crl-repo": {
                        "rogue": {
                            "for-issuer": "rogue-root",
                            "signing-key": "rogue-root",
                            "simulated-update-schedule": "P1D",
                        }
                    },
                },
            },
        },
    }


def generate_keys(key_dir: Path) -> None:
    """One P-256 key per certificate, written unencrypted for certomancer to read (test keys only)."""
    key_dir.mkdir(parents=True, exist_ok=True)
    for name in _KEYS:
        path = key_dir / f"{name}.key.pem"
        if path.exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(pem)
        path.chmod(0o600)


@dataclass
class TrustServices:
    """The running services. ``url`` is their base; ``ocsp_up = False`` makes the OCSP responder answer 503
    (the CRL endpoint too, so that no other revocation source stands in), as a responder that is down."""

    url: str
    archs: dict[ArchLabel, PKIArchitecture]
    runner: web.AppRunner | None
    revocation_up: bool = True
    _extra: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> PKIArchitecture:
        return self.archs[ArchLabel(ARCH)]

    @property
    def rogue(self) -> PKIArchitecture:
        return self.archs[ArchLabel(ROGUE_ARCH)]

    @property
    def tsa_url(self) -> str:
        return tsa_url(self.url)

    def root_pem(self) -> bytes:
        return _pem(self.arch.get_cert(CertLabel("root")).dump())

    def rogue_root_pem(self) -> bytes:
        return _pem(self.rogue.get_cert(CertLabel("rogue-root")).dump())

    def write_anchor(self, trust_dir: Path, name: str = "thads-test-root.pem") -> Path:
        """Write the test root certificate (never a key) where a :class:`TrustList` directory expects it."""
        trust_dir.mkdir(parents=True, exist_ok=True)
        path = trust_dir / name
        path.write_bytes(self.root_pem())
        return path

    def signer(self, label: str, *, rogue: bool = False) -> signers.SimpleSigner:
        """A pyHanko signer with the key and certificate of ``label`` (:data:`SUBJECTS`, COURT_VARIANTS)."""
        arch = self.rogue if rogue else self.arch
        spec = arch.get_cert_spec(CertLabel(label))
        root = CertLabel("rogue-root" if rogue else "root")
        key = arch.key_set.get_private_key(KeyLabel(spec.subject_key.value))
        return signers.SimpleSigner(
            signing_cert=arch.get_cert(CertLabel(label)),
            signing_key=key,
            cert_registry=SimpleCertificateStore.from_certs([arch.get_cert(root)]),  # type: ignore[no-untyped-call]
        )

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _pem(der: bytes) -> bytes:
    from asn1crypto import pem

    return bytes(pem.armor("CERTIFICATE", der))


#: A demo PKI is made again once its epoch is this old: its leaf certificates last a year from the epoch.
EPOCH_RENEW_AFTER: Final = dt.timedelta(days=300)


def pki_epoch(key_dir: Path) -> dt.datetime:
    """The moment the certificates of ``key_dir``'s PKI are dated from, kept in ``key_dir/epoch`` so that
    every process building it (the demo's set-up, ``run.py simulate``) makes the same certificates."""
    path = key_dir / "epoch"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        epoch = dt.datetime.fromisoformat(path.read_text("utf-8").strip())
        if now - EPOCH_RENEW_AFTER < epoch <= now:
            return epoch
    except (OSError, ValueError):
        pass
    key_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(now.isoformat(), "utf-8")
    return now


def build_pki(key_dir: Path, url: str, epoch: dt.datetime | None = None) -> TrustServices:
    """The PKI of ``key_dir`` (keys made once), its services' URLs under ``url``, not served: what the
    demo's set-up reads the trust anchor and the office's certificate from, and signs examples with."""
    generate_keys(key_dir)
    now = epoch or dt.datetime.now(dt.UTC).replace(microsecond=0)
    config = CertomancerConfig(_config(key_dir, url, now), key_search_dir=str(key_dir))
    return TrustServices(url=url, archs=dict(config.pki_archs), runner=None)


def certificate_pem(services: TrustServices, label: str) -> bytes:
    """The PEM of one certificate of the PKI (an office's, to go in its signing chain)."""
    return _pem(services.arch.get_cert(CertLabel(label)).dump())


async def start_trust_services(
    key_dir: Path, host: str = "127.0.0.1", port: int = 0, epoch: dt.datetime | None = None
) -> TrustServices:
    """Generate the keys (once per ``key_dir``), build the PKI for the port bound and serve it.
    ``epoch``: the certificates' reference time (now by default; :func:`pki_epoch` for a stable PKI)."""
    # The certificates carry the services' URLs, so the port is bound before the PKI is declared.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    services = build_pki(key_dir, f"http://{host}:{sock.getsockname()[1]}", epoch)
    animator = build_animator_app(services.archs, with_web_ui=False, allow_time_override=True)
    services.runner = web.AppRunner(animator)

    @web.middleware
    async def revocation_switch(request: web.Request, handler: Any) -> web.StreamResponse:
        if not services.revocation_up and ("/ocsp/" in request.path or "/crls/" in request.path):
            return web.Response(status=503, text="revocation services unavailable")
        response: web.StreamResponse = await handler(request)
        return response

    animator.middlewares.insert(0, revocation_switch)
    await services.runner.setup()
    await web.SockSite(services.runner, sock).start()
    return services


async def sign_pdf(
    data: bytes,
    services: TrustServices,
    label: str,
    *,
    rogue: bool = False,
    timestamp: bool = True,
    at: dt.datetime | None = None,
    field_name: str | None = None,
) -> bytes:
    """``data`` signed by ``label`` as a new revision, with an RFC 3161 time-stamp from the simulated TSA
    dated ``at`` (now by default) unless ``timestamp`` is false."""
    meta = signers.PdfSignatureMetadata(field_name=field_name or "Signature1")
    writer = IncrementalPdfFileWriter(BytesIO(data))
    async with aiohttp.ClientSession() as session:
        stamper = None
        if timestamp:
            headers = {FAKE_TIME_HEADER: at.isoformat()} if at is not None else None
            stamper = HTTPTimeStamper(services.tsa_url, session=session, headers=headers)
        pdf_signer = signers.PdfSigner(meta, signer=services.signer(label, rogue=rogue), timestamper=stamper)
        out = await pdf_signer.async_sign_pdf(writer, in_place=False)
    return bytes(out.getvalue()) if isinstance(out, BytesIO) else bytes(out.read())


def judgment_pdf(text: str = "Ban an so 12/2026/DS-ST", padding: int = 0) -> bytes:
    """A one-page PDF reading ``text`` (ASCII), as a court's system renders a judgment before signing it.
    ``padding``: that many incompressible bytes more, as a scanned judgment would carry."""
    w = PdfFileWriter()  # type: ignore[no-untyped-call]
    line = text.encode("ascii", "replace").replace(b"(", b"[").replace(b")", b"]")
    ref = w.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (" + line + b") Tj ET"))
    w.insert_page(PageObject(contents=ref, media_box=[0, 0, 595, 842]))  # type: ignore[no-untyped-call]
    if padding:
        blob = bytes((i * 7919 + (i >> 8)) & 0xFF for i in range(padding))
        w.root["/ThadsPadding"] = w.add_object(generic.StreamObject(stream_data=blob))
    out = BytesIO()
    w.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()
