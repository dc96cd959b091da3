#!/usr/bin/env bash
# Installs the system packages Confab needs (idempotent; run as root on Debian).
#   liblz4-dev          LZ4 for SSTable blocks (linked by the engine)
#   pkg-config          finds liblz4 for SwiftPM
#   librocksdb-dev,
#   libleveldb-dev,
#   libsqlite3-dev      the peers the storage benchmark runs side by side
#   chromium            headless browser for the web client's browser test
set -euo pipefail
needed=(liblz4-dev pkg-config librocksdb-dev libleveldb-dev libsqlite3-dev chromium)
missing=()
for p in "${needed[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "confab setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "confab setup: swift is not on PATH (expected Swift 6.3 at /opt/swift)" >&2; exit 1; }
# Python's prometheus_client (PyPI): the metrics process tests parse /metrics with its text parser.
python3 -c 'import prometheus_client' 2>/dev/null || {
  echo "confab setup: installing prometheus_client (pip)" >&2
  python3 -m pip install -q prometheus_client >/dev/null
}
