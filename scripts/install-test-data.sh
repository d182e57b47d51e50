#!/usr/bin/env bash
# Debian packages with real human speech used by the tests (LibriVox and telephone prompts).
set -euo pipefail
packages=(pocketsphinx-testdata asterisk-core-sounds-en-wav)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "==> installing test speech: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
