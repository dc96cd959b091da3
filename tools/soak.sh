#!/usr/bin/env bash
# The long soak: the seeded ring simulation over 20,000 seeds (the suite runs 2,000) and the
# end-to-end chat checker five times with fresh seeds. Takes a while; prints each failing seed.
#   bash tools/soak.sh [seeds]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
swift build --build-tests
CONFAB_SIM_SEEDS="${1:-20000}" swift test --skip-build --filter RingSimulationTests
for i in 1 2 3 4 5; do
  swift test --skip-build --filter EndToEndCheckerTests
done
