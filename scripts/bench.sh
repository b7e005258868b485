#!/usr/bin/env bash
# The PyStrands benchmark on this machine: builds echoserver and perftest (release) and runs
# `perftest suite`, which starts the echoserver pinned to CPU 0, drives it from the other CPUs through
# the five rows of the published table, and prints them as a Markdown table.
#
#   bash scripts/bench.sh                 # full durations (about 80 s)
#   bash scripts/bench.sh -scale 0.2      # a quick look
#   bash scripts/bench.sh -host HOST:PORT # against a server that is already running
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "bench: building echoserver and perftest (release)" >&2
swift build -c release --product echoserver 2>&1 | grep -E "error" >&2 || true
swift build -c release --product perftest 2>&1 | grep -E "error" >&2 || true
BIN=$(swift build -c release --show-bin-path)
[ -x "$BIN/perftest" ] && [ -x "$BIN/echoserver" ] || { echo "bench: build failed" >&2; exit 1; }
exec "$BIN/perftest" suite "$@"
