#!/usr/bin/env bash
# Browser tests drive Debian's chromium through Playwright (never a browser download).
# Install it from the distribution when it is missing and we may be root; otherwise say so loudly
# (the browser tests then skip with the same message).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM="${GATEWAY_CHROMIUM:-/usr/bin/chromium}"
log() { printf 'ensure-browser: %s\n' "$*"; }

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
if [[ "${GATEWAY_SKIP_SERVICES:-0}" == "1" ]]; then
    log "GATEWAY_SKIP_SERVICES=1 and $CHROMIUM missing: browser tests will skip"
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    log "installing chromium from the distribution"
    if apt_install chromium; then
        log "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
        exit 0
    fi
fi
log "WARNING: $CHROMIUM is missing and could not be installed (not root, or no apt): browser tests will skip"
exit 0
