#!/usr/bin/env bash
# The raw-TCP floor: 100 connections ping-ponging 64-byte messages between a server loop and a client loop
# pinned to different cores. Prints a Markdown table of round trips per second, latency and CPU per round
# trip. With YARDSTICKS=<folder holding tcp_echo_server.c and pingpong.c> it also measures the C epoll
# yardsticks in the same run, and each side of Strands against them.
#
#   DURATION=10 CONNECTIONS=100 SIZE=64 SERVER_CPU=0 CLIENT_CPU=1 bash scripts/bench-tcp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-100}
SIZE=${SIZE:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CPUS=$(nproc)
if [ "$CPUS" -lt 2 ]; then CLIENT_CPU=$SERVER_CPU; echo "bench: one CPU only; server and client share it" >&2; fi

echo "bench: building (release)" >&2
. scripts/build.sh
BUILD_PACKAGE=Benchmarks build_products release tcp-pingpong
PINGPONG=Benchmarks/.build/release/tcp-pingpong

C_SERVER="" C_CLIENT=""
if [ -n "${YARDSTICKS:-}" ] && [ -f "$YARDSTICKS/pingpong.c" ]; then
    mkdir -p .build-yardsticks
    cc -O2 -std=gnu11 -o .build-yardsticks/tcp-echo-server "$YARDSTICKS/tcp_echo_server.c"
    cc -O2 -std=gnu11 -o .build-yardsticks/tcp-pingpong "$YARDSTICKS/pingpong.c"
    C_SERVER=.build-yardsticks/tcp-echo-server C_CLIENT=.build-yardsticks/tcp-pingpong
fi

pids=()
cleanup() { for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.1)" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: server on port $1 did not start" >&2; return 1
}

# run_pair NAME SERVER_KIND CLIENT_KIND: kinds are "strands" or "c".
run_pair() {
    local name=$1 server=$2 client=$3 port pid t0 t1 out rate p50 p99 msgs
    port=$(free_port)
    if [ "$server" = strands ]; then
        taskset -c "$SERVER_CPU" "$PINGPONG" --serve "$port" --server-cpu "$SERVER_CPU" >/dev/null & pid=$!
    else
        taskset -c "$SERVER_CPU" "$C_SERVER" -p "$port" >/dev/null & pid=$!
    fi
    pids+=("$pid")
    wait_port "$port"
    t0=$(cpu_ticks "$pid")
    if [ "$client" = strands ]; then
        out=$(taskset -c "$CLIENT_CPU" "$PINGPONG" --connect "127.0.0.1:$port" -c "$CONNECTIONS" -s "$SIZE" \
            -d "$DURATION" -w 0 --client-cpu "$CLIENT_CPU" | grep '^RESULT')
        rate=$(field "$out" rtt_per_sec); p50=$(field "$out" p50_us); p99=$(field "$out" p99_us)
    else
        out=$(taskset -c "$CLIENT_CPU" "$C_CLIENT" -p "$port" -c "$CONNECTIONS" -s "$SIZE" -d "$DURATION" 2>/dev/null | grep '^RESULT')
        rate=$(field "$out" recv_rate); p50=$(field "$out" p50_us); p99=$(field "$out" p99_us)
    fi
    t1=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    msgs=$(awk -v r="$rate" -v d="$DURATION" 'BEGIN {print r * d}')
    printf '| %s | %s | %s | %s | %s |\n' "$name" "$rate" "$p50" "$p99" \
        "$(awk -v t=$((t1 - t0)) -v m="$msgs" 'BEGIN {printf "%.2f", (m > 0 ? t * 10000 / m : 0)}')"
}

echo "Raw TCP pingpong, $CONNECTIONS connections, $SIZE-byte messages, ${DURATION} s; server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; $(date -u +%F)"
echo
echo "| server / client | round trips/s | p50 µs | p99 µs | server CPU µs per round trip |"
echo "|---|---|---|---|---|"
if [ -n "$C_SERVER" ]; then
    run_pair "C epoll / C epoll" c c
    run_pair "StrandsLoop / C epoll" strands c
    run_pair "C epoll / StrandsLoop" c strands
fi
run_pair "StrandsLoop / StrandsLoop" strands strands
