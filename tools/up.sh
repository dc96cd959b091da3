#!/usr/bin/env bash
# The main job: builds Confab and runs `confab up` — a local ring of three nodes (replication
# factor 3) plus two chat servers in front of it — printing the URL to open in a browser.
# Ctrl-C stops everything; data stays in ./confab-ring, so the next run keeps every chat.
# Extra arguments go to `confab up` (see `confab up --help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/setup.sh"
cd "$root"
swift build -c release --product confab
exec .build/release/confab up "$@"
