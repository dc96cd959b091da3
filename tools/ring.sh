#!/usr/bin/env bash
# The main job: builds Confab and starts a local ring of three nodes on 127.0.0.1 (replication
# factor 3), returning when every node is normal. Then, from the repository root:
#   .build/release/confab post 42 --sender ada --text hello
#   .build/release/confab history 42
#   .build/release/confab ring status
#   .build/release/confab ring stop
# Extra arguments go to `confab ring start` (see `confab ring start --help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/setup.sh"
cd "$root"
swift build -c release --product confab
exec .build/release/confab ring start --nodes 3 "$@"
