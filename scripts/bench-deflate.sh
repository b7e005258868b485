#!/usr/bin/env bash
# permessage-deflate against the plain path: echoserver -workers 1 -compression MODE (on SERVER_CPU)
# driven by perftest -workers 1 (on CLIENT_CPU) in pingpong with 100 clients and `-data text` (event
# records that differ per message, about as compressible as JSON events). For each payload size of SIZES,
# every mode of MODES in turn, ROUNDS times (interleaved): round trips/s, the server's CPU µs per echoed
# message (perftest -server-pid, same window) and the bytes on the wire per payload byte, each way.
#
#   ROUNDS=2 SIZES="300 4096 65536" MODES="off shared dedicated" DURATION=8 bash scripts/bench-deflate.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.build/release}
ROUNDS=${ROUNDS:-2}
SIZES=${SIZES:-300 4096 65536}
MODES=${MODES:-off shared dedicated}
DURATION=${DURATION:-8}
CLIENTS=${CLIENTS:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

pids=()
cleanup() { for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json=$(mktemp)

echo "| round | payload B | -compression | round trips/s | server µs per message | wire/payload sent | wire/payload received | lost | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    for size in $SIZES; do
        for mode in $MODES; do
            port=$(free_port)
            taskset -c "$SERVER_CPU" "$BIN/echoserver" -port "$port" -workers 1 -quiet -host 127.0.0.1 \
                -compression "$mode" >/dev/null 2>&1 & server=$!
            pids+=($server)
            for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break; sleep 0.05; done
            taskset -c "$CLIENT_CPU" "$BIN/perftest" -host "127.0.0.1:$port" -workers 1 -clients "$CLIENTS" \
                -duration "$DURATION" -mode pingpong -payload "$size" -data text -compression "$mode" \
                -server-pid "$server" -json "$json" >/dev/null 2>&1 || true
            kill "$server"; wait "$server" 2>/dev/null || true
            python3 - "$json" "$round" "$size" "$mode" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); s = d["stats"]
ratio = lambda w, p: f"{w / p:.3f}" if p else "n/a"
errors = s["refused"] + s["connectFailed"] + s["connectTimedOut"] + s["handshakeFailed"] + s["closedByServer"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {d['receivedPerSecond']:,.0f} | "
      f"{d['serverCPUSecondsPer1000'] * 1000:.2f} | {ratio(s['wireBytesSent'], s['payloadBytesSent'])} | "
      f"{ratio(s['wireBytesReceived'], s['payloadBytesReceived'])} | {s['lost']} | {errors} |")
PY
            rm -f "$json"
        done
    done
done
