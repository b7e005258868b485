#!/usr/bin/env bash
# What perftest costs: pingpong against the echoserver (one loop, pinned to SERVER_CPU) from perftest
# (one loop, pinned to CLIENT_CPU), CPU µs per round trip of both processes over the same window
# (perftest -server-pid). With YARDSTICKS=<folder holding pingpong.c> it also drives the same server with
# the lean C client ws-pingpong and compares perftest with it. Prints a Markdown table.
#
#   CONNECTIONS="100 1000 5000" DURATION=10 ROUNDS=3 YARDSTICKS=<folder holding pingpong.c> bash scripts/bench-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

CONNECTIONS=${CONNECTIONS:-100 1000 5000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
if [ "$(nproc)" -lt 2 ]; then CLIENT_CPU=$SERVER_CPU; echo "bench: one CPU only; server and client share it" >&2; fi
[ "$DURATION" -ge 5 ] || { echo "bench: DURATION must be at least 5 s" >&2; exit 2; }

echo "bench: building echoserver and perftest (release)" >&2
. scripts/build.sh
build_products release echoserver perftest
BIN=$(swift build -c release --show-bin-path)

C_CLIENT=""
if [ -n "${YARDSTICKS:-}" ] && [ -f "$YARDSTICKS/pingpong.c" ]; then
    mkdir -p .build-yardsticks
    cc -O2 -std=gnu11 -DWS -o .build-yardsticks/ws-pingpong "$YARDSTICKS/pingpong.c"
    C_CLIENT=.build-yardsticks/ws-pingpong
fi

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# Starts the echoserver; sets server_pid and port.
start_server() {
    local log
    log=$(mktemp)
    taskset -c "$SERVER_CPU" "$BIN/echoserver" -port 0 -host 127.0.0.1 -workers 1 -quiet >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    rm -f "$log"
    [ -n "$port" ] || { echo "bench: echoserver did not start" >&2; exit 1; }
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
# CPU nanoseconds of every thread of a process (schedstat's first field).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

echo "Pingpong, 64-byte payload, ${DURATION} s per run; server on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; $(date -u '+%F %H:%M') UTC"
echo
if [ -n "$C_CLIENT" ]; then
    echo "| clients | perftest rt/s | perftest µs/rt | server µs/rt | perftest / server | ws-pingpong rt/s | ws-pingpong µs/rt | server µs/rt | ws-pingpong / server | perftest / ws-pingpong |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
else
    echo "| clients | perftest rt/s | perftest µs/rt | server µs/rt | perftest / server |"
    echo "|---|---|---|---|---|"
fi
for _ in $(seq 1 "$ROUNDS"); do
    for n in $CONNECTIONS; do
        start_server
        out=$(taskset -c "$CLIENT_CPU" "$BIN/perftest" -host "127.0.0.1:$port" -clients "$n" -mode pingpong \
            -duration "$DURATION" -workers 1 -server-pid "$server_pid")
        stop_server
        rate=$(sed -n 's/^Messages recv: *[0-9]* (\([0-9]*\) msg\/s).*/\1/p' <<<"$out")
        pt=$(awk '/^perftest CPU:/ {print $3}' <<<"$out")
        ps=$(awk '/^server CPU:/ {print $3}' <<<"$out")
        row="| $n | $rate | $pt | $ps | $(awk -v a="$pt" -v b="$ps" 'BEGIN {printf "%.3f", a / b}')"
        if [ -n "$C_CLIENT" ]; then
            # ws-pingpong reports its own CPU share of its window; the server's is read over the middle of
            # that window (2 s in, to 1 s before the end).
            start_server
            log=$(mktemp)
            taskset -c "$CLIENT_CPU" "$C_CLIENT" -p "$port" -u /ws/ -c "$n" -d "$DURATION" -C 1000 >"$log" 2>&1 &
            client=$!
            sleep 2
            s0=$(cpu_ns "$server_pid"); t0=$(date +%s%N)
            sleep $((DURATION - 3))
            s1=$(cpu_ns "$server_pid"); t1=$(date +%s%N)
            wait "$client" || true
            stop_server
            result=$(grep '^RESULT' "$log" || true)
            rm -f "$log"
            crate=$(field "$result" recv_rate); cpct=$(field "$result" client_cpu_pct)
            c=$(awk -v p="$cpct" -v r="$crate" 'BEGIN {printf "%.2f", p * 10000 / r}')
            cs=$(awk -v d=$((s1 - s0)) -v r="$crate" -v t=$((t1 - t0)) 'BEGIN {printf "%.2f", d / (r * t / 1e9) / 1000}')
            row="$row | $crate | $c | $cs | $(awk -v a="$c" -v b="$cs" 'BEGIN {printf "%.3f", a / b}') | $(awk -v a="$pt" -v b="$c" 'BEGIN {printf "%.3f", a / b}')"
        fi
        echo "$row |"
    done
done
