"""The trust list: the certificates a signer's chain must end in, read from a directory of PEM or DER files
(``config/trust/`` by default; see its README). Only certificates are read — a file holding a private key is
refused, so that a key never travels with the configuration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509

SUFFIXES = (".pem", ".crt", ".cer", ".der")


@dataclass(frozen=True)
class Anchor:
    subject: str
    sha256: str
    certificate: x509.Certificate


@dataclass(frozen=True)
class TrustList:
    name: str
    anchors: tuple[Anchor, ...]

    @classmethod
    def from_certificates(cls, name: str, ders: list[bytes]) -> TrustList:
        anchors = []
        for der in ders:
            cert = x509.Certificate.load(der)
            anchors.append(Anchor(cert.subject.human_friendly, hashlib.sha256(der).hexdigest(), cert))
        return cls(name, tuple(anchors))

    @classmethod
    def load(cls, directory: Path, name: str | None = None) -> TrustList:
        """Every certificate in ``directory`` (not its subdirectories), in name order."""
        ders: list[bytes] = []
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            if path.suffix.lower() not in SUFFIXES or not path.is_file():
                continue
            ders.extend(_certificates(path.read_bytes(), path))
        return cls.from_certificates(name or directory.name, ders)

    def roots(self) -> list[x509.Certificate]:
        return [a.certificate for a in self.anchors]

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "anchors": [{"subject": a.subject, "sha256": a.sha256} for a in self.anchors],
        }


def _certificates(raw: bytes, path: Path) -> list[bytes]:
    if not pem.detect(raw):
        return [raw]
    out = []
    for kind, _headers, der in pem.unarmor(raw, multiple=True):
        if "PRIVATE KEY" in kind:
            raise ValueError(f"{path}: holds a private key; a trust list holds certificates only")
        if kind == "CERTIFICATE":
            out.append(bytes(der))
    return out
