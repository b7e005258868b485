#!/usr/bin/env bash
# The echo server's hot path, measured against another build of it and the raw-TCP ceiling, the way
# every change to that path is checked:
#   - instructions per echoed message under callgrind (exact, the same whatever the machine is doing):
#     the echo server of the same build as each echoserver (`strands-autobahn server`, the same handler
#     on the same library: echoserver's Dispatch signal thread crashes valgrind 3.19) under valgrind,
#     driven by the C client ws-pingpong for SHORT and LONG seconds; the difference in instructions over
#     the difference in messages sent, so start-up and shutdown drop out;
#   - server CPU µs per echoed message (utime + stime from /proc/PID/stat over the client's run), each
#     build and the C raw-TCP echo server in turn, ROUNDS times, server on SERVER_CPU, client on CLIENT_CPU.
# Both in the two shapes the hot path must not lose in: pingpong with 100 connections, and 500
# connections with 16 messages in flight each.
#
#   YARDSTICKS=<folder with pingpong.c and tcp_echo_server.c> SERVERS="old=<echoserver> new=<echoserver>" \
#       bash scripts/bench-server.sh
#   ... PARTS=cpu ROUNDS=5 DURATION=8   (only the CPU rounds; PARTS=callgrind only the counts)
set -euo pipefail
cd "$(dirname "$0")/.."

: "${YARDSTICKS:?set YARDSTICKS to a folder holding pingpong.c and tcp_echo_server.c}"
if [ -z "${SERVERS:-}" ]; then  # This build: make sure it is built (other builds are the caller's).
    source scripts/build.sh
    build_products release echoserver strands-autobahn
fi
SERVERS=${SERVERS:-new=.build/release/echoserver}
PARTS=${PARTS:-callgrind cpu}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
SHORT=${SHORT:-2}
LONG=${LONG:-5}
SIZE=${SIZE:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SHAPES=${SHAPES:-"pingpong:100:1 window:500:16"}

mkdir -p .build-yardsticks
cc -O2 -std=gnu11 -DWS -o .build-yardsticks/ws-pingpong "$YARDSTICKS/pingpong.c"
cc -O2 -std=gnu11 -o .build-yardsticks/tcp-pingpong "$YARDSTICKS/pingpong.c"
cc -O2 -std=gnu11 -o .build-yardsticks/tcp-echo-server "$YARDSTICKS/tcp_echo_server.c"
WS_CLIENT=.build-yardsticks/ws-pingpong
TCP_CLIENT=.build-yardsticks/tcp-pingpong
TCP_SERVER=.build-yardsticks/tcp-echo-server

pids=()
cleanup() { for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() {  # PORT: until the server answers (valgrind starts slowly), at most 60 s
    for _ in $(seq 1 600); do
        python3 - "$1" 2>/dev/null <<'PY' && return 0
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
sys.exit(0 if s.recv(100).startswith(b"HTTP/1.1 200") else 1)
PY
        sleep 0.1
    done
    echo "bench-server: no server on port $1" >&2; return 1
}
wait_port() {  # PORT
    for _ in $(seq 1 200); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1)" "$1" \
            2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench-server: nothing listens on port $1" >&2; return 1
}
health_messages() {  # PORT
    python3 - "$1" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print(json.loads(data.split(b"\r\n\r\n", 1)[1])["messages"])
PY
}
client_args() {  # MODE CONNS WINDOW
    if [ "$1" = pingpong ]; then echo "-m pingpong -c $2"; else echo "-m window -c $2 -w $3"; fi
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
result_field() { grep '^RESULT' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

if [[ " $PARTS " == *" callgrind "* ]]; then
    command -v valgrind >/dev/null || { echo "bench-server: valgrind is not installed" >&2; exit 1; }
    echo "## Instructions per echoed message (callgrind, server side; ${SHORT} s and ${LONG} s runs)"
    echo
    echo "| server | shape | instructions per message |"
    echo "|---|---|---|"
    for shape in $SHAPES; do
        IFS=: read -r mode conns window <<<"$shape"
        for entry in $SERVERS; do
            name=${entry%%=*}; bin=${entry#*=}
            counts=()
            for seconds in $SHORT $LONG; do
                port=$(free_port)
                out=$(mktemp)
                log=$(mktemp)
                valgrind --tool=callgrind --callgrind-out-file="$out" "$(dirname "$bin")/strands-autobahn" server \
                    --host 127.0.0.1 --port "$port" >/dev/null 2>&1 & server=$!; pids+=($server)
                wait_port "$port"
                # shellcheck disable=SC2046
                "$WS_CLIENT" -p "$port" -u /ws/bench -d "$seconds" -s "$SIZE" $(client_args "$mode" "$conns" "$window") \
                    >"$log" 2>&1 || true
                messages=$(result_field "$log" sent)
                rm -f "$log"
                sleep 1  # Let the server finish what is in flight.
                kill -TERM "$server"; wait "$server" 2>/dev/null || true
                instructions=$(sed -n 's/^summary: *//p; s/^totals: *//p' "$out" | head -1 | awk '{print $1}')
                rm -f "$out"*
                counts+=("$instructions" "$messages")
            done
            awk -v a="${counts[0]}" -v ma="${counts[1]}" -v b="${counts[2]}" -v mb="${counts[3]}" \
                -v n="$name" -v s="$mode $conns×$window" \
                'BEGIN { printf "| %s | %s | %.0f (%d → %d messages) |\n", n, s, (b - a) / (mb - ma), ma, mb }'
        done
    done
    echo
fi

if [[ " $PARTS " == *" cpu "* ]]; then
    echo "## Server CPU µs per echoed message (${DURATION} s runs, ${ROUNDS} rounds, interleaved)"
    echo
    echo "| round | shape | server | messages/s | server µs per message | ratio to raw TCP |"
    echo "|---|---|---|---|---|---|"
    for round in $(seq 1 "$ROUNDS"); do
        for shape in $SHAPES; do
            IFS=: read -r mode conns window <<<"$shape"
            declare -A cost=()
            for entry in "raw=$TCP_SERVER" $SERVERS; do
                name=${entry%%=*}; bin=${entry#*=}
                port=$(free_port)
                log=$(mktemp)
                if [ "$name" = raw ]; then
                    taskset -c "$SERVER_CPU" "$bin" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 & server=$!
                    client=$TCP_CLIENT; extra=()
                else
                    taskset -c "$SERVER_CPU" "$bin" -port "$port" -workers 1 -quiet -host 127.0.0.1 >/dev/null 2>&1 &
                    server=$!
                    client=$WS_CLIENT; extra=(-u /ws/bench)
                fi
                pids+=($server)
                wait_port "$port"
                before=$(cpu_ticks "$server")
                # shellcheck disable=SC2046
                taskset -c "$CLIENT_CPU" "$client" -p "$port" "${extra[@]}" -d "$DURATION" -s "$SIZE" \
                    $(client_args "$mode" "$conns" "$window") >"$log" 2>&1 || true
                after=$(cpu_ticks "$server")
                kill "$server"; wait "$server" 2>/dev/null || true
                recv=$(result_field "$log" recv)
                rm -f "$log"
                hz=$(getconf CLK_TCK)
                us=$(awk -v t=$((after - before)) -v hz="$hz" -v m="$recv" 'BEGIN { printf "%.3f", t / hz * 1e6 / m }')
                cost[$name]=$us
                ratio=$(awk -v a="$us" -v b="${cost[raw]}" 'BEGIN { printf "%.2f", a / b }')
                rate=$(awk -v m="$recv" -v d="$DURATION" 'BEGIN { printf "%d", m / d }')
                echo "| $round | $mode $conns×$window | $name | $rate | $us | $ratio |"
            done
            unset cost
        done
    done
fi
