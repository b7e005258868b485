#!/usr/bin/env bash
# Runs the Autobahn TestSuite (kosoku, from PyPI) against StrandsWS as a server and as a client, with
# permessage-deflate on, prints a per-group table for each run, and fails on any case that is not OK
# or INFORMATIONAL (FAILED, NON-STRICT and UNIMPLEMENTED all fail). Four runs, at once:
#   server, dedicated compression: all 517 cases      client, dedicated compression: all 517 cases
#   server, shared compression: groups 12 and 13      client, shared compression: groups 12 and 13
# Only groups 12 and 13 negotiate compression, so the rest would repeat the dedicated runs. By default
# the shared runs also leave out the cases of 64 and 128 KiB messages (12.x.9, .10, .14 to .18: 1000
# messages each, about 80 % of the time, spent mostly in kosoku's Python), which the dedicated runs
# still cover; AUTOBAHN_FULL=1 runs all of groups 12 and 13 in the shared runs, AUTOBAHN_FULL=all all
# 517 cases. Reports land in .build-autobahn/ (not in git).
#
#   bash scripts/autobahn.sh            # uses the debug build that `swift build` makes
#   CONFIG=release bash scripts/autobahn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

CONFIG=${CONFIG:-debug}
VENV=.build-venv
OUT=.build-autobahn
if [ ! -x "$VENV/bin/kosoku" ]; then
    echo "autobahn: installing kosoku into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q kosoku
fi
# kosoku 0.1.0 cannot grade its own compression cases without this (see Docs/Conformance.md).
"$VENV/bin/python" scripts/kosoku_patch.py >&2
. scripts/build.sh
build_products "$CONFIG" strands-autobahn
TOOL=$(swift build -c "$CONFIG" --show-bin-path)/strands-autobahn

pids=()
cleanup() { for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_line() {  # FILE PATTERN
    for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "autobahn: '$2' never appeared in $1" >&2; cat "$1" >&2; return 1
}
compression_cases=(-i '12.*' -i '13.*')
shared_cases=("${compression_cases[@]}")
case "${AUTOBAHN_FULL:-0}" in
    1) ;;
    all) shared_cases=() ;;
    *) for y in 9 10 14 15 16 17 18; do shared_cases+=(-x "12.*.$y" -x "13.*.$y"); done ;;
esac

# StrandsWS as a server: kosoku connects to our echo server. NAME MODE [kosoku case flags]
run_server() {
    local name=$1 mode=$2 port; shift 2
    port=$(free_port)
    "$TOOL" server --port "$port" --compression "$mode" >"$OUT/$name.log" 2>&1 & local server=$!
    pids+=($server)
    wait_for_line "$OUT/$name.log" "listening on" || return 1
    # kosoku exits non-zero whenever a case is not OK; the report decides.
    timeout 1200 "$VENV/bin/kosoku" -p 2 "$@" -o "$OUT/$name" "ws://127.0.0.1:$port/ws/autobahn" \
        >"$OUT/kosoku-$name.log" 2>&1 || true
    kill "$server" 2>/dev/null || true
    [ -f "$OUT/$name/index.json" ] || { echo "autobahn: no report for $name" >&2; tail -20 "$OUT/kosoku-$name.log" >&2; return 1; }
}

# StrandsWS as a client: kosoku's fuzzing server drives our client through every case it selects.
run_client() {
    local name=$1 mode=$2 port; shift 2
    port=$(free_port)
    timeout 1200 "$VENV/bin/kosoku" -m fuzzingserver "$@" -o "$OUT/$name" "127.0.0.1:$port" \
        >"$OUT/kosoku-$name.log" 2>&1 & local fuzzer=$!
    pids+=($fuzzer)
    wait_for_line "$OUT/kosoku-$name.log" "listening" || return 1
    timeout 1200 "$TOOL" client --url "ws://127.0.0.1:$port" --agent StrandsWS --compression "$mode" \
        >"$OUT/$name.log" 2>&1 || { echo "autobahn: client driver failed ($name)" >&2; tail -20 "$OUT/$name.log" >&2; return 1; }
    wait_for_line "$OUT/kosoku-$name.log" "wrote reports" || return 1
    [ -f "$OUT/$name/index.json" ] || { echo "autobahn: no report for $name" >&2; return 1; }
}

rm -rf "$OUT"; mkdir -p "$OUT"
status=0
report() {  # NAME TITLE
    echo "## $2"; echo
    python3 scripts/autobahn_report.py "$OUT/$1" || status=1
}
# All four at once: each run is a Python process and ours taking turns, about one core per pair of runs.
started=$SECONDS
timed() { local rc=0; "$@" || rc=$?; echo "autobahn: $2 took $((SECONDS - started)) s" >&2; return $rc; }
runs=()
timed run_server server-dedicated dedicated & runs+=($!)
timed run_client client-dedicated dedicated & runs+=($!)
timed run_server server-shared shared "${shared_cases[@]}" & runs+=($!)
timed run_client client-shared shared "${shared_cases[@]}" & runs+=($!)
for run in "${runs[@]}"; do wait "$run" || status=1; done
report server-dedicated "StrandsWS server, -compression dedicated"
report server-shared "StrandsWS server, -compression shared"
report client-dedicated "StrandsWS client, compression dedicated"
report client-shared "StrandsWS client, compression shared"
exit $status
