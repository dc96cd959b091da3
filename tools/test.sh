#!/usr/bin/env bash
# Runs the whole test suite: unit, property, crash, corruption and fault-injection tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
swift build --build-tests
swift test --skip-build "$@"
