#!/usr/bin/env bash
# Runs the Autobahn TestSuite's 517 cases (kosoku, from PyPI) against StrandsWS as a server and as a
# client, prints a per-group table for each role, and fails on any FAILED or NON-STRICT case, or on
# UNIMPLEMENTED outside the compression groups 12 and 13. Reports land in .build-autobahn/ (not in git).
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
. scripts/build.sh
build_products "$CONFIG" strands-autobahn
TOOL=$(swift build -c "$CONFIG" --show-bin-path)/strands-autobahn

pids=()
cleanup() { for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_line() {  # FILE PATTERN
    for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "autobahn: '$2' never appeared in $1" >&2; cat "$1" >&2; return 1
}

rm -rf "$OUT"; mkdir -p "$OUT"
status=0

# StrandsWS as a server: kosoku connects to our echo server.
port=$(free_port)
"$TOOL" server --port "$port" >"$OUT/server.log" 2>&1 & pids+=($!)
wait_for_line "$OUT/server.log" "listening on"
# kosoku exits non-zero whenever a case is not OK (UNIMPLEMENTED included); the report decides.
timeout 900 "$VENV/bin/kosoku" -p 2 -o "$OUT/server" "ws://127.0.0.1:$port/ws/autobahn" >"$OUT/kosoku-server.log" 2>&1 || true
[ -f "$OUT/server/index.json" ] || { echo "autobahn: no server report" >&2; tail -20 "$OUT/kosoku-server.log" >&2; exit 1; }
echo "## StrandsWS server"; echo
python3 scripts/autobahn_report.py "$OUT/server" --allow-unimplemented 12 13 || status=1

# StrandsWS as a client: kosoku's fuzzing server drives our client through every case.
port=$(free_port)
timeout 900 "$VENV/bin/kosoku" -m fuzzingserver -o "$OUT/client" "127.0.0.1:$port" >"$OUT/kosoku-client.log" 2>&1 & pids+=($!)
wait_for_line "$OUT/kosoku-client.log" "listening"
timeout 900 "$TOOL" client --url "ws://127.0.0.1:$port" --agent StrandsWS >"$OUT/client.log" 2>&1 \
    || { echo "autobahn: client driver failed" >&2; tail -20 "$OUT/client.log" >&2; status=1; }
wait_for_line "$OUT/kosoku-client.log" "wrote reports"
[ -f "$OUT/client/index.json" ] || { echo "autobahn: no client report" >&2; exit 1; }
echo "## StrandsWS client"; echo
python3 scripts/autobahn_report.py "$OUT/client" --allow-unimplemented 12 13 || status=1
exit $status
