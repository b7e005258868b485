#!/usr/bin/env bash
# Two servers compared in pairs of short runs, one right after the other, many times: the ratio B/A
# of each pair, then their median, range and how many B won. On a machine whose speed drifts by ±25 %
# over minutes, the pairs see the same drift and their ratios do not; the median of 12 or more tells a
# change of a few per cent. Both servers on SERVER_CPU, the C client (ws-pingpong) on CLIENT_CPU.
#
#   YARDSTICKS=<folder with pingpong.c> PAIRS=14 bash scripts/bench-pair.sh \
#       "<server A command with {port}>" "<server B command with {port}>"
#   ... SHAPE="-m pingpong -c 100"      (default: -m window -c 500 -w 16), DURATION=2, SIZE=64
#
# e.g. the async echo before and after a change:
#   bash scripts/bench-pair.sh "/tmp/async-echo-before -port {port} -workers 1" \
#       "Examples/.build/release/async-echo -port {port} -workers 1"
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/build.sh

: "${YARDSTICKS:?set YARDSTICKS to a folder holding pingpong.c}"
[ $# -eq 2 ] || { echo "usage: bench-pair.sh 'COMMAND A with {port}' 'COMMAND B with {port}'" >&2; exit 2; }
PAIRS=${PAIRS:-14}
DURATION=${DURATION:-2}
SIZE=${SIZE:-64}
SHAPE=${SHAPE:--m window -c 500 -w 16}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CLIENT=$(ws_client)
kill_on_exit
ports=()
for command in "$1" "$2"; do
    port=$(free_port)
    # shellcheck disable=SC2086
    taskset -c "$SERVER_CPU" ${command//\{port\}/$port} >/dev/null 2>&1 &
    pids+=($!); ports+=("$port")
done
wait_listening "${ports[0]}" 30
wait_listening "${ports[1]}" 30

rate() {  # PORT: messages echoed per second in one run
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" "$CLIENT" -p "$1" -u /ws/bench -d "$DURATION" -s "$SIZE" $SHAPE 2>&1 \
        | grep '^RESULT' | tr ' ' '\n' | sed -n 's/^recv_rate=//p'
}
echo "bench-pair: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $PAIRS pairs of $DURATION s, $SHAPE, $SIZE-byte messages"
for _ in $(seq 1 "$PAIRS"); do
    a=$(rate "${ports[0]}"); b=$(rate "${ports[1]}")
    [ -n "$a" ] && [ -n "$b" ] && [ "$a" -gt 0 ] || { echo "bench-pair: a run gave no result" >&2; exit 1; }
    echo "$a $b"
done | python3 -c '
import statistics, sys
pairs = [tuple(map(int, line.split())) for line in sys.stdin if line.strip()]
ratios = [b / a for a, b in pairs]
for (a, b), r in zip(pairs, ratios): print(f"  A {a:>9,}  B {b:>9,}  B/A {r:.3f}")
print(f"B/A median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}, B ahead in {sum(r > 1 for r in ratios)} of {len(ratios)}")'
