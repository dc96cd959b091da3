#!/usr/bin/env bash
# Runs the whole test suite: unit, property, crash, power-loss, corruption, wire, ring,
# multi-process node tests, the chat server's tests and the browser test (headless Chromium).
#
# Three runs of the one test binary that together cover every test: Swift Testing runs tests in
# parallel on the cooperative thread pool (one thread per core, two here), and the engine's crash
# and corruption tests block those threads for seconds at a time, which would starve the in-process
# nodes and servers of the node and chat tests. So those get processes of their own: the engine,
# ring, wire and client tests; the node tests with the CLI tests (both start node processes); the
# chat tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/lint.sh
swift build --build-tests
swift test --skip-build --skip ConfabNodeTests --skip ConfabCLITests --skip ConfabChatTests "$@"
swift test --skip-build --filter "ConfabNodeTests|ConfabCLITests" "$@"
swift test --skip-build --filter ConfabChatTests "$@"
