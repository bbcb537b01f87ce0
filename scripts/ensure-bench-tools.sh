#!/usr/bin/env bash
# The benchmarks drive HTTP load with wrk (Debian package `wrk`). Install it from the distribution when
# it is missing and we may be root; otherwise say so loudly (the wrk-driven benchmarks then skip with the
# same message).
set -euo pipefail

log() { printf 'ensure-bench-tools: %s\n' "$*"; }

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}
if command -v apt-get >/dev/null 2>&1; then
    log "installing wrk from the distribution"
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 ||
        { as_root apt-get update -q >/dev/null 2>&1 &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1; }; then
        log "wrk installed: $(command -v wrk)"
        exit 0
    fi
fi
log "WARNING: wrk is missing and could not be installed (not root, or no apt): the HTTP benchmarks will skip"
exit 0
