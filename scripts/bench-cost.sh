#!/usr/bin/env bash
# What perftest costs: pingpong against the echoserver (one loop, pinned to SERVER_CPU) from perftest
# (one loop, pinned to CLIENT_CPU): CPU ns per round trip of both processes over the same interval.
# With YARDSTICKS=<folder holding pingpong.c> the lean C client ws-pingpong drives the same server in
# turn, with messages of the same size, and the table compares the two clients run by run.
#
#   CONNECTIONS="100 1000 5000" DURATION=10 ROUNDS=3 YARDSTICKS=<folder holding pingpong.c> bash scripts/bench-cost.sh
#   MODE=echo WINDOW=64 CONNECTIONS=500 ...   (pipelined: perftest -mode echo against ws-pingpong -m window)
#   MODE=blast CONNECTIONS=100 ...            (perftest -mode blast and the server only)
#
# Method, the same for both clients so that their ratios compare like with like:
# - one echoserver per row; the two clients take turns against it (perftest first in odd rounds,
#   ws-pingpong first in even ones), so a drift of the machine's speed hits both alike;
# - each process's CPU time comes from /proc/PID/task/*/schedstat, read at SAMPLE_FROM s after the client
#   starts and 1 s before its window ends, that is, while every connection is open and busy;
# - round trips per second over that interval are the client's own figure for its window;
# - ws-pingpong sends MESSAGE_BYTES-byte messages: the size of perftest's Go-format messages at
#   -payload PAYLOAD (the envelope around the payload, `{"type":"pingpong","id":…,"ts":…,"data":"…"}`,
#   is 64 bytes with a six-digit id).
# The summary gives the median of each ratio over the rounds, and the median split of each process's
# CPU per round trip into user and system time (/proc/PID/stat, in clock ticks): where the kernel's
# share is alike on both sides, the user share is what tells two clients apart.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

CONNECTIONS=${CONNECTIONS:-100 1000 5000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PAYLOAD=${PAYLOAD:-64}
MODE=${MODE:-pingpong}
WINDOW=${WINDOW:-64}
case "$MODE" in
    pingpong) C_MODE=(-m pingpong); P_MODE=(-mode pingpong) ;;
    echo) C_MODE=(-m window -w "$WINDOW"); P_MODE=(-mode echo -window "$WINDOW") ;;
    blast) C_MODE=(); P_MODE=(-mode blast) ;;
    *) echo "bench: MODE must be pingpong, echo or blast" >&2; exit 2 ;;
esac
MESSAGE_BYTES=${MESSAGE_BYTES:-$((PAYLOAD + 64))}
SAMPLE_FROM=${SAMPLE_FROM:-3}
if [ "$(nproc)" -lt 2 ]; then CLIENT_CPU=$SERVER_CPU; echo "bench: one CPU only; server and client share it" >&2; fi
[ "$DURATION" -ge $((SAMPLE_FROM + 3)) ] || { echo "bench: DURATION must be at least $((SAMPLE_FROM + 3)) s" >&2; exit 2; }

echo "bench: building echoserver and perftest (release)" >&2
. scripts/build.sh
build_products release echoserver perftest
BIN=$(swift build -c release --show-bin-path)

C_CLIENT=""
# ws-pingpong has no blast mode: blast compares perftest with the server alone.
if [ "$MODE" != blast ] && [ -n "${YARDSTICKS:-}" ] && [ -f "$YARDSTICKS/pingpong.c" ]; then
    mkdir -p .build-yardsticks
    cc -O2 -std=gnu11 -DWS -o .build-yardsticks/ws-pingpong "$YARDSTICKS/pingpong.c"
    C_CLIENT=.build-yardsticks/ws-pingpong
fi

server_pid=""
client_pid=""
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
}
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
# User and system clock ticks of a process, all its threads (stat fields 14 and 15, counted after the
# parenthesised name; the process's own line also keeps the ticks of threads that have ended).
ticks() { sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | awk '{printf "%d %d", $12, $13}'; }
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
median1() { median | awk '{printf "%.1f", $1}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Runs one client (perftest or ws) for N connections against the server; sets rate, client_ns, server_ns.
measure() {
    local which=$1 n=$2 log c0 s0 t0 c1 s1 t1 cu0 ck0 su0 sk0 cu1 ck1 su1 sk1
    log=$(mktemp)
    if [ "$which" = perftest ]; then
        taskset -c "$CLIENT_CPU" "$BIN/perftest" -host "127.0.0.1:$port" -clients "$n" "${P_MODE[@]}" \
            -payload "$PAYLOAD" -duration "$DURATION" -workers 1 >"$log" 2>&1 &
    else
        taskset -c "$CLIENT_CPU" "$C_CLIENT" -p "$port" -u /ws/ -c "$n" -d "$DURATION" -s "$MESSAGE_BYTES" \
            "${C_MODE[@]}" -C 1000 >"$log" 2>&1 &
    fi
    client_pid=$!
    sleep "$SAMPLE_FROM"
    c0=$(cpu_ns "$client_pid"); s0=$(cpu_ns "$server_pid"); t0=$(date +%s%N)
    read -r cu0 ck0 <<<"$(ticks "$client_pid")"; read -r su0 sk0 <<<"$(ticks "$server_pid")"
    sleep $((DURATION - 1 - SAMPLE_FROM))
    c1=$(cpu_ns "$client_pid"); s1=$(cpu_ns "$server_pid"); t1=$(date +%s%N)
    read -r cu1 ck1 <<<"$(ticks "$client_pid")"; read -r su1 sk1 <<<"$(ticks "$server_pid")"
    wait "$client_pid" || true
    client_pid=""
    local connect
    if [ "$which" = perftest ]; then
        if [ "$MODE" = blast ]; then  # Blast reports its send rate; the server echoes all of it.
            rate=$(sed -n 's/^Messages sent: *[0-9]* (\([0-9]*\) msg\/s).*/\1/p' "$log")
        else
            rate=$(sed -n 's/^Messages recv: *[0-9]* (\([0-9]*\) msg\/s).*/\1/p' "$log")
        fi
        connect=$(sed -n 's/^Duration:.*(connecting \([0-9.]*\)s.*/\1/p' "$log")
    else
        local result
        result=$(grep '^RESULT' "$log" || true)
        rate=$(field "$result" recv_rate)
        connect=$(field "$result" connect_s)
    fi
    rm -f "$log"
    [ -n "$rate" ] && [ "$rate" != 0 ] || { echo "bench: $which reported no round trips" >&2; exit 1; }
    if awk -v c="$connect" -v f="$SAMPLE_FROM" 'BEGIN {exit !(c > f - 0.5)}'; then
        echo "bench: $which took ${connect}s to connect, into the sampled interval; raise SAMPLE_FROM" >&2
    fi
    # ns per round trip = CPU ns / (round trips per s × interval s).
    client_ns=$(awk -v d=$((c1 - c0)) -v r="$rate" -v t=$((t1 - t0)) 'BEGIN {printf "%.1f", d / (r * t / 1e9)}')
    server_ns=$(awk -v d=$((s1 - s0)) -v r="$rate" -v t=$((t1 - t0)) 'BEGIN {printf "%.1f", d / (r * t / 1e9)}')
    per_tick() { awk -v d="$1" -v r="$rate" -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN {printf "%.1f", d * 1e9 / hz / (r * t / 1e9)}'; }
    client_user=$(per_tick $((cu1 - cu0))); client_sys=$(per_tick $((ck1 - ck0)))
    server_user=$(per_tick $((su1 - su0))); server_sys=$(per_tick $((sk1 - sk0)))
}
HZ=$(getconf CLK_TCK)

echo "$MODE$([ "$MODE" = echo ] && echo " (window $WINDOW)"), ${PAYLOAD}-byte payload (ws-pingpong: ${MESSAGE_BYTES}-byte messages), ${DURATION} s per run," \
    "CPU sampled from ${SAMPLE_FROM} s to 1 s before the end; server on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU;" \
    "$(date -u '+%F %H:%M') UTC"
echo
if [ -n "$C_CLIENT" ]; then
    echo "| clients | round | perftest rt/s | perftest ns/rt | server ns/rt | perftest / server | ws-pingpong rt/s | ws-pingpong ns/rt | server ns/rt | ws-pingpong / server | perftest / ws-pingpong |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
else
    echo "| clients | round | perftest rt/s | perftest ns/rt | server ns/rt | perftest / server |"
    echo "|---|---|---|---|---|---|"
fi
summary=""
for n in $CONNECTIONS; do
    start_server
    ps_ratios=""; ws_ratios=""; pw_ratios=""; pu=""; pk=""; psu=""; psk=""; wu=""; wk=""; wsu=""; wsk=""
    for round in $(seq 1 "$ROUNDS"); do
        order="perftest ws"
        [ -n "$C_CLIENT" ] && [ $((round % 2)) -eq 0 ] && order="ws perftest"
        [ -n "$C_CLIENT" ] || order="perftest"
        for which in $order; do
            measure "$which" "$n"
            if [ "$which" = perftest ]; then
                p_rate=$rate; p_ns=$client_ns; p_server=$server_ns
                pu="$pu $client_user"; pk="$pk $client_sys"; psu="$psu $server_user"; psk="$psk $server_sys"
            else
                w_rate=$rate; w_ns=$client_ns; w_server=$server_ns
                wu="$wu $client_user"; wk="$wk $client_sys"; wsu="$wsu $server_user"; wsk="$wsk $server_sys"
            fi
        done
        ps=$(ratio "$p_ns" "$p_server"); ps_ratios="$ps_ratios $ps"
        row="| $n | $round | $p_rate | $p_ns | $p_server | $ps"
        if [ -n "$C_CLIENT" ]; then
            ws=$(ratio "$w_ns" "$w_server"); pw=$(ratio "$p_ns" "$w_ns")
            ws_ratios="$ws_ratios $ws"; pw_ratios="$pw_ratios $pw"
            row="$row | $w_rate | $w_ns | $w_server | $ws | $pw"
        fi
        echo "$row |"
    done
    stop_server
    line="- $n clients, median of $ROUNDS: perftest / server $(median <<<"$ps_ratios")"
    [ -n "$C_CLIENT" ] && line="$line, ws-pingpong / server $(median <<<"$ws_ratios"), perftest / ws-pingpong $(median <<<"$pw_ratios")"
    line="$line"$'\n'"  - user + system ns per round trip (medians): perftest $(median1 <<<"$pu") + $(median1 <<<"$pk"),"
    line="$line server in its runs $(median1 <<<"$psu") + $(median1 <<<"$psk")"
    [ -n "$C_CLIENT" ] && line="$line; ws-pingpong $(median1 <<<"$wu") + $(median1 <<<"$wk"), server in its runs $(median1 <<<"$wsu") + $(median1 <<<"$wsk")"
    summary="$summary$line"$'\n'
done
echo
printf '%s' "$summary"
