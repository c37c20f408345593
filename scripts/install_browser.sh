#!/usr/bin/env bash
# The browser the browser tests drive (tests/test_browser.py, tests/test_docs.py): Debian's Chromium, through
# Playwright's Python API with executable_path (Playwright's own browser download is not used: it needs a host
# beyond the package registries). Installed with apt-get when it is missing and we are root; otherwise a note, and
# those tests skip with the reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${CHROMIUM:-}" ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the browser tests (apt-get)"
    t0=$(date +%s)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    echo "== chromium installed in $(( $(date +%s) - t0 )) s: $(chromium --version 2>/dev/null || true)"
else
    echo "== no chromium and not root: the browser tests will skip (install it: apt-get install chromium, or set CHROMIUM=/path)"
fi
