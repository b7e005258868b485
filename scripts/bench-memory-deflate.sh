#!/usr/bin/env bash
# Memory per idle connection with permessage-deflate: echoserver -workers 1 -compression MODE (on
# SERVER_CPU) and scripts/deflate_idle_client.py (on CLIENT_CPU) holding CONNECTIONS connections that
# offer it. The server's VmRSS per connection once all are open, after one compressed 1 KiB JSON message
# each way, and after IDLE seconds (past the idle compressor sweep). Each mode of MODES in turn, ROUNDS times.
#
#   CONNECTIONS=5000 ROUNDS=2 MODES="off shared dedicated" bash scripts/bench-memory-deflate.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER=${SERVER:-.build/release/echoserver}
CONNECTIONS=${CONNECTIONS:-5000}
ROUNDS=${ROUNDS:-2}
MODES=${MODES:-off shared dedicated}
IDLE=${IDLE:-21}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() { for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
per() { python3 -c "print(round(($1 - $2) * 1024 / $3))"; }

echo "| round | -compression | agreed | B per connection, open | after one message each | after ${IDLE} s idle |"
echo "|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        port=$(free_port)
        log=$(mktemp)
        taskset -c "$SERVER_CPU" "$SERVER" -port "$port" -workers 1 -quiet -host 127.0.0.1 -compression "$mode" >"$log" 2>&1 & server=$!
        pids+=($server)
        for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break; sleep 0.05; done
        result=$(taskset -c "$CLIENT_CPU" timeout 300 python3 scripts/deflate_idle_client.py "$port" "$server" "$CONNECTIONS" 1024 "$IDLE" | grep '^RESULT')
        kill "$server"; wait "$server" 2>/dev/null || true
        rm -f "$log"
        eval "${result#RESULT }"
        # shellcheck disable=SC2154  # set by eval
        [ "$replies" = "$CONNECTIONS" ] || { echo "bench-memory-deflate: only $replies of $CONNECTIONS echoed" >&2; exit 1; }
        echo "| $round | $mode | $agreed | $(per "$open" "$before" "$CONNECTIONS") | $(per "$echoed" "$before" "$CONNECTIONS") | $(per "$swept" "$before" "$CONNECTIONS") |"
    done
done
