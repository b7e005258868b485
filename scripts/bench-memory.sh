#!/usr/bin/env bash
# Memory per idle WebSocket connection: echoserver -workers 1 (on SERVER_CPU), the C client ws-pingpong
# holding CONNECTIONS idle connections (on CLIENT_CPU); the server's VmRSS before and once all are open,
# divided by the connections. Each server of SERVERS in turn, ROUNDS times.
#
#   YARDSTICKS=<folder with pingpong.c> SERVERS="old=<echoserver> new=.build/release/echoserver" \
#       CONNECTIONS=10000 ROUNDS=2 bash scripts/bench-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

: "${YARDSTICKS:?set YARDSTICKS to a folder holding pingpong.c}"
SERVERS=${SERVERS:-new=.build/release/echoserver}
CONNECTIONS=${CONNECTIONS:-10000}
ROUNDS=${ROUNDS:-2}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

mkdir -p .build-yardsticks
cc -O2 -std=gnu11 -DWS -o .build-yardsticks/ws-pingpong "$YARDSTICKS/pingpong.c"
CLIENT=.build-yardsticks/ws-pingpong
# One process holds every connection: it needs that many descriptors (the hard limit here is 20,000).
ulimit -n "$(ulimit -Hn)"

pids=()
cleanup() { for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
open_connections() {  # PORT: the server's count from /health
    python3 - "$1" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
print(json.loads(data.split(b"\r\n\r\n", 1)[1])["connections"])
PY
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "| round | server | RSS before (KB) | RSS with $CONNECTIONS idle (KB) | bytes per connection |"
echo "|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    for entry in $SERVERS; do
        name=${entry%%=*}; bin=${entry#*=}
        port=$(free_port)
        taskset -c "$SERVER_CPU" "$bin" -port "$port" -workers 1 -quiet -host 127.0.0.1 >/dev/null 2>&1 & server=$!
        pids+=($server)
        for _ in $(seq 1 100); do open_connections "$port" >/dev/null 2>&1 && break; sleep 0.05; done
        before=$(rss_kb "$server")
        taskset -c "$CLIENT_CPU" "$CLIENT" -p "$port" -u /ws/idle -m idle -c "$CONNECTIONS" -d 30 >/dev/null 2>&1 & client=$!
        pids+=($client)
        # Until every connection is open (at most 25 s), then a moment for the last handshakes' memory to settle.
        for _ in $(seq 1 250); do [ "$(open_connections "$port")" -ge "$CONNECTIONS" ] && break; sleep 0.1; done
        open=$(open_connections "$port")
        sleep 1
        with=$(rss_kb "$server")
        kill "$client" 2>/dev/null || true; wait "$client" 2>/dev/null || true
        kill "$server"; wait "$server" 2>/dev/null || true
        [ "$open" -ge "$CONNECTIONS" ] || { echo "bench-memory: only $open of $CONNECTIONS connections opened" >&2; exit 1; }
        echo "| $round | $name | $before | $with | $(( (with - before) * 1024 / CONNECTIONS )) |"
    done
done
