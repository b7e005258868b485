#!/usr/bin/env bash
# Rooms (topics) under load: `echoserver -pubsub` driven by `perftest -mode fanout`, in the two shapes
# of the topics issue (200 clients in 10 rooms, 5,000 clients in 1 room), for each publisher window in
# WINDOWS, in two layouts: PINNED (server on SERVER_CPU and perftest on CLIENT_CPU, one loop each)
# and SPREAD (each with a loop per CPU, unpinned). Prints a Markdown table: deliveries/s, lost,
# latency p50/p99 (publish to delivery), and the server's CPU µs per delivery over the same window.
#
#   bash scripts/bench-fanout.sh
#   DURATION=5 WINDOWS="1 16 256" LAYOUTS="pinned spread" bash scripts/bench-fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
WINDOWS=${WINDOWS:-"1 16 256"}
LAYOUTS=${LAYOUTS:-"pinned spread"}
SHAPES=${SHAPES:-"200:10 5000:1"}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
. scripts/build.sh
build_products release echoserver perftest >&2
BIN=$(swift build -c release --show-bin-path)
ulimit -n "$(ulimit -Hn)"
out=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT

start_server() {  # layout
    local port_file="$out/server.txt"
    if [ "$1" = pinned ]; then
        taskset -c "$SERVER_CPU" "$BIN/echoserver" -port 0 -host 127.0.0.1 -pubsub -quiet -workers 1 >"$port_file" 2>&1 &
    else
        "$BIN/echoserver" -port 0 -host 127.0.0.1 -pubsub -quiet >"$port_file" 2>&1 &
    fi
    server=$!
    for _ in $(seq 200); do grep -q "listening on" "$port_file" && break; sleep 0.05; done
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$port_file" | head -1 | sed 's/.*://')
    [ -n "$port" ] || { echo "bench-fanout: echoserver did not start: $(cat "$port_file")" >&2; exit 1; }
}

echo "| layout | clients | rooms | window | deliveries/s | lost | p50 ms | p99 ms | server µs per delivery |"
echo "|---|---|---|---|---|---|---|---|---|"
for layout in $LAYOUTS; do
    start_server "$layout"
    for shape in $SHAPES; do
        clients=${shape%%:*}
        rooms=${shape##*:}
        for window in $WINDOWS; do
            json="$out/run.json"
            args=(-host "127.0.0.1:$port" -mode fanout -clients "$clients" -rooms "$rooms" -window "$window"
                  -duration "$DURATION" -server-pid "$server" -json "$json")
            if [ "$layout" = pinned ]; then
                taskset -c "$CLIENT_CPU" "$BIN/perftest" "${args[@]}" -workers 1 >/dev/null
            else
                "$BIN/perftest" "${args[@]}" >/dev/null
            fi
            python3 - "$json" "$layout" "$clients" "$rooms" "$window" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
s, l = r["stats"], r.get("latency") or {}
server = r.get("serverCPUSecondsPer1000")
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | {r['receivedPerSecond']:,.0f} | {s['lost']} of {s['expected']:,} "
      f"| {l.get('p50Ms', 0):.2f} | {l.get('p99Ms', 0):.2f} | {server * 1000:.3f} |" if server is not None else "| n/a |")
EOF
        done
    done
    kill "$server"; wait "$server" 2>/dev/null || true; server=""
done
