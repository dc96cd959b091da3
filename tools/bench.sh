#!/usr/bin/env bash
# The storage benchmark's quick run: Confab's engine against RocksDB, LevelDB and SQLite,
# side by side. Writes bench-storage.json and bench-storage.svg in the current directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/setup.sh"
swift build -c release --package-path "$root/Bench" --product confab-bench
swift run -c release --skip-build --package-path "$root/Bench" confab-bench storage --quick --json bench-storage.json "$@"
