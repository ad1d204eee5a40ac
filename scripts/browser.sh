#!/usr/bin/env bash
# Make headless Chromium (Debian's) and CJK fonts available to the browser tests: install them from
# Debian's packages when absent (idempotent, fast when present). Playwright drives this Chromium
# through executable_path; it never downloads a browser of its own.
# Prints the variable the test suite reads, for `eval "$(scripts/browser.sh)"`.
set -euo pipefail
log() { echo "browser: $*" >&2; }

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$missing fonts-noto-cjk"
if [ -n "$missing" ]; then
  log "installing$missing"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi
echo "export DIZUO_TEST_CHROMIUM=$(command -v chromium)"
