#!/usr/bin/env bash
# Sets up everything, then runs every test (unit, integration with real ctr,
# runc, mounts and registries). Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

results=$(mktemp /tmp/berth-jest-XXXXXX.json)
trap 'rm -f "$results"' EXIT
# Two workers on the 2-core machines; integration tests share one registry.
npx jest --ci --maxWorkers=2 --json --outputFile="$results" "$@"
jest_status=$?

node scripts/summarize-jest.js "$results"
summary_status=$?
[ $jest_status -ne 0 ] && exit $jest_status
exit $summary_status
