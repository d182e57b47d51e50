#!/usr/bin/env bash
# Debian packages used by the tests: real human speech (LibriVox and telephone prompts), and
# Chromium for the browser tests (driven by Playwright; its own browser download is never used),
# and PostgreSQL, of which the call-store tests run a throw-away cluster.
set -euo pipefail
packages=(pocketsphinx-testdata asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav chromium postgresql)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "==> installing test packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
