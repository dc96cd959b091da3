#!/usr/bin/env bash
# Runs the whole test suite: unit, property, crash, power-loss, corruption, wire, ring and
# multi-process node tests.
#
# Two runs of the one test binary that together cover every test: Swift Testing runs tests in
# parallel on the cooperative thread pool (one thread per core, two here), and the engine's crash
# and corruption tests block those threads for seconds at a time, which would starve the in-process
# nodes of the node tests. So the node tests get a process of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
swift build --build-tests
swift test --skip-build --skip ConfabNodeTests "$@"
swift test --skip-build --filter ConfabNodeTests "$@"
