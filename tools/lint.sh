#!/usr/bin/env bash
# Checks that every Swift file is formatted as `.swift-format` says (the configuration is
# committed at the top level). `bash tools/lint.sh --fix` rewrites the files in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(Sources Tests Bench/Sources Package.swift Bench/Package.swift)
if [[ "${1:-}" == "--fix" ]]; then
    swift-format format --in-place --recursive --parallel "${paths[@]}"
fi
if ! swift-format lint --strict --recursive --parallel "${paths[@]}"; then
    echo "lint: the files above are not formatted; run 'bash tools/lint.sh --fix' and commit the result" >&2
    exit 1
fi
