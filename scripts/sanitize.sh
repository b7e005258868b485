#!/usr/bin/env bash
# The in-process test suites under AddressSanitizer (with LeakSanitizer) or ThreadSanitizer, in a build
# folder of their own. The binary tests are left out: they run the tools as child processes, and
# Foundation's Process.run reads past a buffer under ASan (findMaximumOpenFromProcSelfFD). The TLS tests
# make their certificates with posix_spawn for that reason.
#
#   bash scripts/sanitize.sh            # address (the default)
#   bash scripts/sanitize.sh thread
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SANITIZER=${1:-address}
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt:print_suppressions=0"
swift test --sanitize="$SANITIZER" --scratch-path ".build-$SANITIZER" \
    --filter "StrandsWSTests|StrandsLoopTests|StrandsTLSTests|PerfTestTests"
