"""The demo's signatures, set up before its processes start (``run.py demo``).

- A test PKI under ``var/demo/pki`` (keys made once; certificates dated from a stable epoch, so the api,
  which reads the trust anchor at start, and ``run.py simulate``, which serves the CA's services, build the
  same certificates): its root goes to ``config/trust/``, the Hà Nội office's certificate and key are named
  by ``config/signing.toml`` (the worker signs the orders it hands to banks), and ``signatures.toml`` makes
  a judgment's signature required.
- Three judgments to push by hand, under ``var/demo/examples/``: the bundled example judgment signed by
  the court (time-stamped), another unsigned, and another signed then altered. The trust services are
  started for the time it takes to sign them, on the port ``run.py simulate`` serves them on later (the
  certificates name it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any, Final

from gateway.settings import DEFAULT_CONFIG_DIR

#: The office whose orders the demo signs, and its certificate in the test PKI.
OFFICE: Final = "THADS-HN"
OFFICE_LABEL: Final = "thads-hn"
#: The court the demo's judgments are signed by.
COURT_LABEL: Final = "tand-hn"
SIGNED, UNSIGNED, TAMPERED = "judgment-signed.json", "judgment-unsigned.json", "judgment-tampered.json"


def demo_tsa_url(trust_port: int) -> str:
    """The simulated time-stamping service ``run.py simulate`` serves (long_term.tsa_url in the demo)."""
    from gateway.simulators.trust import tsa_url

    return tsa_url(f"http://127.0.0.1:{trust_port}")


def prepare_signatures(home: Path, config: Path, trust_port: int, example: dict[str, Any]) -> dict[str, Path]:
    """Write the demo's trust anchor, signing key configuration and policy into ``config``, and the three
    example judgments (made from ``example``) into ``home/examples``; returns the examples' paths."""
    from gateway.simulators.trust import build_pki, certificate_pem, pki_epoch

    pki = home / "pki"
    services = build_pki(pki, f"http://127.0.0.1:{trust_port}", pki_epoch(pki))
    for old in (config / "trust").glob("*.pem"):
        old.unlink()
    services.write_anchor(config / "trust")
    signing = config / "signing"
    signing.mkdir(parents=True, exist_ok=True)
    # The office's certificate alone: the root is the partner's trust anchor, never sent.
    (signing / f"{OFFICE_LABEL}-chain.pem").write_bytes(certificate_pem(services, OFFICE_LABEL))
    (config / "signing.toml").write_text(
        f"""# Written by run.py demo: the demo office signs with a software key of the test PKI.
[offices.{OFFICE}]
source = "software"
chain_file = "signing/{OFFICE_LABEL}-chain.pem"
key_file = "{pki / f"{OFFICE_LABEL}.key.pem"}"
""",
        "utf-8",
    )
    # The shipped policy, its look-ups allowed to the simulated CA only.
    policy = (DEFAULT_CONFIG_DIR / "signatures.toml").read_text("utf-8")
    if "\nhosts = []\n" not in policy:
        # The shipped policy lost its [revocation] table: the demo would check against any host.
        raise ValueError(f"{DEFAULT_CONFIG_DIR / 'signatures.toml'}: no [revocation] hosts = [] to fill in")
    (config / "signatures.toml").write_text(
        policy.replace("\nhosts = []\n", f'\nhosts = ["127.0.0.1:{trust_port}"]\n', 1), "utf-8"
    )
    # The signed one is the bundled judgment itself (its message id and number: the README's court event
    # names it); the other two are judgments of their own, or they would be answered as its duplicates.
    number = example["body"]["judgment"]["number"]
    pdfs = asyncio.run(_pdfs(pki, trust_port, number))
    directory = home / "examples"
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, pdf in pdfs.items():
        doc = json.loads(json.dumps(example))
        if name != SIGNED:
            doc["message_id"] = str(uuid.uuid4())
            doc["body"]["judgment"]["number"] = f"{uuid.uuid4().int % 900000 + 100000}/2026/DS-ST"
        doc["body"]["document"] = {
            "media_type": "application/pdf",
            "filename": "ban-an.pdf",
            "content_base64": base64.b64encode(pdf).decode("ascii"),
        }
        paths[name] = directory / name
        paths[name].write_text(json.dumps(doc, ensure_ascii=False, indent=2), "utf-8")
    return paths


async def _pdfs(pki: Path, port: int, number: str) -> dict[str, bytes]:
    from gateway.simulators.trust import judgment_pdf, pki_epoch, sign_pdf, start_trust_services

    services = await start_trust_services(pki, port=port, epoch=pki_epoch(pki))
    try:
        signed_pdf = await sign_pdf(judgment_pdf(f"Ban an so {number}"), services, COURT_LABEL)
    finally:
        await services.close()
    # Another number in the signed bytes (as long as the first): a judgment altered after it was signed.
    text = f"Ban an so {number}".encode()
    tampered_pdf = signed_pdf.replace(text, text.replace(b"Ban an so ", b"Ban an so 9")[: len(text)])
    return {SIGNED: signed_pdf, UNSIGNED: judgment_pdf(f"Ban an so {number}"), TAMPERED: tampered_pdf}
