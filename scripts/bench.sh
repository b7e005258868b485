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
. scripts/build.sh
build_products release echoserver perftest
BIN=$(swift build -c release --show-bin-path)
exec "$BIN/perftest" suite "$@"
