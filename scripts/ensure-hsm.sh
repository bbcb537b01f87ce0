#!/usr/bin/env bash
# The office-signing tests sign with a key inside SoftHSM2 through PKCS#11, the production path's stand-in.
# Install it from the distribution when it is missing and we may be root; otherwise say so (those tests
# then skip, naming it).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf 'ensure-hsm: %s\n' "$*"; }

if command -v softhsm2-util >/dev/null 2>&1; then
    exit 0
fi
if [[ "${GATEWAY_SKIP_SERVICES:-0}" == "1" ]]; then
    log "GATEWAY_SKIP_SERVICES=1 and SoftHSM2 missing: the HSM signing tests will skip"
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    log "installing softhsm2 from the distribution"
    if apt_install softhsm2; then
        exit 0
    fi
fi
log "WARNING: SoftHSM2 is missing and could not be installed (not root, or no apt): the HSM signing tests will skip"
exit 0
