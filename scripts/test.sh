#!/usr/bin/env bash
# Sets up a fresh machine if needed, builds, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
swift test --skip-build
# Examples/: built as a user's package would be, and smoke-tested.
if [ "${SKIP_EXAMPLES:-0}" != 1 ]; then
    bash scripts/examples.sh
fi
# Conformance: the Autobahn TestSuite against StrandsWS as server and client (needs PyPI for kosoku).
# Interop: perftest against a Python `websockets` echo server must lose nothing.
if [ "${SKIP_CONFORMANCE:-0}" != 1 ]; then
    bash scripts/autobahn.sh
    bash scripts/interop.sh
fi
# Fuzzing: each libFuzzer target briefly (FUZZ_SECONDS, 30 by default; run longer by hand).
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
