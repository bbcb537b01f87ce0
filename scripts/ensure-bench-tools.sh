#!/usr/bin/env bash
# The benchmarks drive HTTP load with wrk (Debian package `wrk`). Install it from the distribution when
# it is missing and we may be root; otherwise say so loudly (the wrk-driven benchmarks then skip with the
# same message).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf 'ensure-bench-tools: %s\n' "$*"; }

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    log "installing wrk from the distribution"
    if apt_install wrk; then
        log "wrk installed: $(command -v wrk)"
        exit 0
    fi
fi
log "WARNING: wrk is missing and could not be installed (not root, or no apt): the HTTP benchmarks will skip"
exit 0
