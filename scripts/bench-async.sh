#!/usr/bin/env bash
# The async API against the callback API: Examples' async-echo -workers 1 (owned messages through
# `for try await`, and -borrowing, the zero-copy forEachMessage) and echoserver -workers 1, one loop each on SERVER_CPU, driven by the lean C client (ws-pingpong, built from YARDSTICKS' pingpong.c)
# on CLIENT_CPU, in pingpong with 100 connections and with 500 connections × 16 in flight, rounds
# interleaved: messages echoed per second, the ratio, and each server's CPU µs per message.
#
#   YARDSTICKS=<folder with pingpong.c> ROUNDS=3 DURATION=4 bash scripts/bench-async.sh
#
# REFERENCE="NAME=COMMAND" adds a server built elsewhere (never in this repository), its COMMAND with
# {port} where the port goes, serving /ws/bench on one thread: e.g. Hummingbird's WebSocket echo,
# REFERENCE="hummingbird=/path/to/hb-echo {port} 1". It is pinned like the others, in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/build.sh

: "${YARDSTICKS:?set YARDSTICKS to a folder holding pingpong.c}"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
build_products release echoserver
BUILD_PACKAGE=Examples build_products release async-echo
CALLBACK="$(swift build -c release --show-bin-path)/echoserver"
ASYNC="$(swift build -c release --package-path Examples --show-bin-path)/async-echo"
CLIENT=$(ws_client)
kill_on_exit
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

callback_port=$(free_port)
taskset -c "$SERVER_CPU" "$CALLBACK" -host 127.0.0.1 -port "$callback_port" -workers 1 -quiet >/dev/null 2>&1 &
callback=$!; pids+=("$callback")
async_port=$(free_port)
taskset -c "$SERVER_CPU" "$ASYNC" -port "$async_port" -workers 1 >/dev/null 2>&1 &
async=$!; pids+=("$async")
borrow_port=$(free_port)
taskset -c "$SERVER_CPU" "$ASYNC" -port "$borrow_port" -workers 1 -borrowing >/dev/null 2>&1 &
borrow=$!; pids+=("$borrow")
reference_name=""
if [ -n "${REFERENCE:-}" ]; then
    reference_name=${REFERENCE%%=*}
    reference_port=$(free_port)
    reference_cmd=${REFERENCE#*=}
    reference_cmd=${reference_cmd//\{port\}/$reference_port}
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" $reference_cmd >/dev/null 2>&1 &
    reference=$!; pids+=("$reference")
fi
wait_listening "$callback_port"
wait_listening "$async_port"
wait_listening "$borrow_port"
[ -n "$reference_name" ] && wait_listening "$reference_port" 30

# run PORT PID ARGS...: "messages/s µs-per-message" for one client run
run() {
    local port=$1 pid=$2 before after out received
    shift 2
    before=$(cpu_ticks "$pid")
    out=$(taskset -c "$CLIENT_CPU" "$CLIENT" -p "$port" -u /ws/bench -d "$DURATION" -s 64 "$@" 2>&1 | grep '^RESULT')
    after=$(cpu_ticks "$pid")
    received=$(tr ' ' '\n' <<<"$out" | sed -n 's/^recv=//p')
    [ -n "$received" ] && [ "$received" -gt 0 ] || { echo "bench-async: no result from the client: $out" >&2; exit 1; }
    python3 -c 'import sys; r, t, d = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]); print(f"{r / d:.0f} {t * 10000 / r:.2f}")' \
        "$received" "$((after - before))" "$DURATION"
}

echo "bench-async: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU"
echo
header="| round | shape | callback msg/s | async msg/s | async / callback | borrowing msg/s | borrowing / callback | server µs/msg callback | async | borrowing |"
rule="|---|---|---|---|---|---|---|---|---|---|"
if [ -n "$reference_name" ]; then
    header="$header $reference_name msg/s | $reference_name / callback | $reference_name µs/msg |"
    rule="$rule---|---|---|"
fi
echo "$header"
echo "$rule"
for round in $(seq 1 "$ROUNDS"); do
    for shape in "pingpong 100" "500x16"; do
        if [ "$shape" = "pingpong 100" ]; then args=(-m pingpong -c 100); else args=(-m window -c 500 -w 16); fi
        read -r a au < <(run "$callback_port" "$callback" "${args[@]}")
        read -r b bu < <(run "$async_port" "$async" "${args[@]}")
        read -r c cu < <(run "$borrow_port" "$borrow" "${args[@]}")
        ratio=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]):.2f}")' "$a" "$b")
        ratio_c=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]):.2f}")' "$a" "$c")
        row="| $round | $shape | $a | $b | $ratio | $c | $ratio_c | $au | $bu | $cu |"
        if [ -n "$reference_name" ]; then
            read -r d du < <(run "$reference_port" "$reference" "${args[@]}")
            ratio_d=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]):.2f}")' "$a" "$d")
            row="$row $d | $ratio_d | $du |"
        fi
        echo "$row"
    done
done
