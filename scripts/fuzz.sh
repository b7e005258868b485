#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted bytes with libFuzzer: the frame parser in both roles (with
# UTF-8 validation, parsed whole and split, which must agree), the HTTP request head reader with the
# upgrade checks, the client's reader of the handshake response, the inflate path, the extension-header
# parser with both sides' negotiation, the Redis reply reader (whole and cut) and the Redis bridge's check
# of another node's frame (against the frame parser), and StrandsTLS's record handling through a loopback
# TLS echo server (certificates made here, in .build-fuzz/tls). See Fuzz/FuzzTargets.swift.
#
#   bash scripts/fuzz.sh SECONDS [TARGET...]     # each target for SECONDS (default 30), two at a time
#
# Builds one binary (swiftc -sanitize=fuzzer,address, with the sources of StrandsLoop and StrandsWS)
# in .build-fuzz/. Each target starts from the seeds in Fuzz/corpus/TARGET and grows its own corpus in
# .build-fuzz/corpus/TARGET (kept between runs, not in git). Exits non-zero on any crash, leak or hang
# (a run over 10 s); the input that found it is saved in .build-fuzz/findings/TARGET/ and its path printed.
# A finding becomes a regression test: add the bytes to Tests/StrandsWSTests/FuzzFindingsTests.swift.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(frames-server frames-client http-request http-response inflate deflate-offers resp bridge-frame tls-stream)
JOBS=${JOBS:-2}
OUT=.build-fuzz
mkdir -p "$OUT"

echo "fuzz: building $OUT/strands-fuzz (swiftc -sanitize=fuzzer,address)" >&2
sources=()
while IFS= read -r file; do sources+=("$file"); done < <(
    find Sources/StrandsLoop Sources/StrandsWS Sources/StrandsTLS Fuzz -name '*.swift' ! -name Exports.swift | sort)
if ! swiftc -sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6 \
    -enable-upcoming-feature ExistentialAny -module-name StrandsFuzz -package-name Strands \
    -I Sources/CUV -I Sources/CZlib -I Sources/COpenSSL "${sources[@]}" -luv -lz -lssl -lcrypto \
    -o "$OUT/strands-fuzz" 2>"$OUT/build.log"; then
    grep -E "error" "$OUT/build.log" >&2 || tail -20 "$OUT/build.log" >&2
    echo "fuzz: build failed" >&2
    exit 1
fi

# tls-stream's server certificate (self-signed: its client does not verify; verification is tested elsewhere).
mkdir -p "$OUT/tls"
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$OUT/tls/server.key" \
    -out "$OUT/tls/server.pem" -days 2 -subj /CN=localhost >"$OUT/tls/openssl.log" 2>&1; then
    cat "$OUT/tls/openssl.log" >&2
    echo "fuzz: openssl could not make the certificate" >&2
    exit 1
fi
export STRANDS_FUZZ_TLS="$OUT/tls"

run_target() {  # TARGET
    local target=$1 corpus="$OUT/corpus/$1" findings="$OUT/findings/$1" log="$OUT/$1.log"
    mkdir -p "$corpus" "$findings"
    if STRANDS_FUZZ_TARGET="$target" "$OUT/strands-fuzz" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
        -rss_limit_mb=2048 -max_len=70000 -print_final_stats=1 -artifact_prefix="$findings/" \
        "$corpus" "Fuzz/corpus/$target" >"$log" 2>&1; then
        local runs
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz: $target: ${runs:-?} executions in ${SECONDS_PER_TARGET} s, no findings"
    else
        echo "fuzz: $target: FINDING (see $log)" >&2
        grep -E "ERROR|Fatal error|Precondition failed|SUMMARY|Test unit written" "$log" | head -8 >&2
        return 1
    fi
}

status=0
pids=()
names=()
for target in "${TARGETS[@]}"; do
    run_target "$target" & pids+=($!); names+=("$target")
    if [ ${#pids[@]} -ge "$JOBS" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
