"""One-shot set-up of the local stack (docker-compose.yml, service ``bootstrap``), run before any
gateway process starts and harmless to run again:

- the receipt signing key (``signing.private_key_file``, volume ``keys``): made here once, so that the
  api and worker containers, which all start together, load one and the same key;
- the simulated court (TAND-HN), case system (THADS-HN) and late-answering bank (BANK-TCB): a key pair
  each under ``GATEWAY_DEMO_KEYS`` (volume ``demo-keys``) and their registration as clients under the
  configuration directory (volume ``clients``), exactly as ``run.py simulate`` would make them.
  Registrations that exist already are left alone (they may have been changed by an operator).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway.demo import CASE_QUEUE, ensure_demo_clients
from gateway.security.signing import Signer
from gateway.settings import load_settings


def main() -> int:
    settings = load_settings()
    key_file = settings.path(settings.signing.private_key_file)
    Signer.from_file(key_file)  # created when missing
    print(f"receipt signing key: {key_file}")
    keys = Path(os.environ.get("GATEWAY_DEMO_KEYS", settings.home / "var" / "demo-keys"))
    case_queue = os.environ.get("GATEWAY_DEMO_CASE_QUEUE", CASE_QUEUE)
    done = ensure_demo_clients(keys, settings.clients_dir, case_queue, replace=False)
    print(f"client keys under {keys}: generated {', '.join(done.created) or 'none'}")
    print(f"clients under {settings.clients_dir}: registered {', '.join(done.registered) or 'none'}")
    for client_id in done.unknown_to_gateway:
        print(f"warning: client {client_id} is registered with another key or revoked; left alone")
    print(
        "a token for the case system: docker compose exec simulators "
        f"python run.py token --client THADS-HN --private-key {keys / 'THADS-HN.key'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
