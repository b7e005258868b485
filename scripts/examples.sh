#!/usr/bin/env bash
# Builds the Examples package (programs written against Strands as a user would, depending on the root
# by path) and smoke-tests them: async-echo on a port of its own choosing must echo every message of a
# perftest run (pingpong and pipelined echo, several loops), then stop on SIGTERM with every connection
# closed and exit 0. chat, driven by Python's `websockets` client (PyPI): rooms on topics, GET /rooms, a
# bad room refused, and SIGINT closing everyone with 1001.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/build.sh
python_venv websockets
build_products debug perftest
BIN=$(swift build --show-bin-path)
swift build --package-path Examples
EXAMPLES=$(swift build --package-path Examples --show-bin-path)
OUT=.build-examples
mkdir -p "$OUT"
pids=()
trap 'for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; done' EXIT
status=0

# README's taste is the taste example, byte for byte, and prints the echo.
python3 - <<'PY' || status=1
import re, sys
readme = open("README.md").read()
block = re.search(r"## A taste of StrandsWS\n.*?```swift\n(.*?)```", readme, re.S).group(1)
if block != open("Examples/Sources/taste/main.swift").read():
    sys.exit("examples: README's taste differs from Examples/Sources/taste/main.swift")
PY
if [ "$(timeout 20 "$EXAMPLES/taste")" = hello ]; then echo "examples taste: hello: ok"
else status=1; echo "examples: the taste did not print hello" >&2; fi

# Bad flags exit 2 with the usage.
if "$EXAMPLES/async-echo" -port nope >"$OUT/bad.log" 2>&1; then status=1; echo "examples: async-echo accepted -port nope" >&2
elif [ $? -ne 2 ] || ! grep -q usage "$OUT/bad.log"; then status=1; echo "examples: async-echo -port nope: no usage, or not exit 2" >&2; fi

"$EXAMPLES/async-echo" -port 0 -workers 2 >"$OUT/async-echo.log" 2>&1 &
server=$!; pids+=($server)
wait_for "$OUT/async-echo.log" "listening on 127.0.0.1:"
port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$OUT/async-echo.log")
for mode in pingpong echo; do
    "$BIN/perftest" -host "127.0.0.1:$port" -path /any/path -clients 50 -duration 2 -mode "$mode" -payload 512 \
        -json "$OUT/async-echo-$mode.json" >"$OUT/async-echo-$mode.log"
    python3 - "$OUT/async-echo-$mode.json" "$mode" <<'PY' || status=1
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
ok = s["connected"] == 50 and s["sent"] > 0 and s["lost"] == 0 and s["received"] == s["sent"] \
    and s["refused"] + s["handshakeFailed"] + s["closedByServer"] == 0
print(f"examples async-echo {sys.argv[2]:8}: connected {s['connected']}/50, sent {s['sent']}, received {s['received']}, "
      f"lost {s['lost']}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
done
kill -TERM "$server"
for _ in $(seq 1 200); do kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$server" 2>/dev/null; then
    status=1; echo "examples: async-echo still running 10 s after SIGTERM" >&2
elif ! wait "$server"; then
    status=1; echo "examples: async-echo exited non-zero after SIGTERM" >&2; cat "$OUT/async-echo.log" >&2
elif ! grep -q "stopped by signal 15" "$OUT/async-echo.log"; then
    status=1; echo "examples: async-echo did not report the signal" >&2
else
    echo "examples async-echo SIGTERM : stopped, exit 0: ok"
fi

"$EXAMPLES/chat" -port 0 -workers 2 >"$OUT/chat.log" 2>&1 &
chat=$!; pids+=($chat)
wait_for "$OUT/chat.log" "listening on 127.0.0.1:"
port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$OUT/chat.log")
"$VENV/bin/python" scripts/chat_smoke.py "$port" >"$OUT/chat-client.log" 2>&1 &
client=$!; pids+=($client)
wait_for "$OUT/chat-client.log" "waiting for the signal" || status=1
kill -INT "$chat"
if ! wait "$client"; then status=1; fi
grep '^chat:' "$OUT/chat-client.log" || true
for _ in $(seq 1 200); do kill -0 "$chat" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$chat" 2>/dev/null; then
    status=1; echo "examples: chat still running 10 s after SIGINT" >&2
elif ! wait "$chat" || ! grep -q "stopped by signal 2" "$OUT/chat.log"; then
    status=1; echo "examples: chat did not stop cleanly on SIGINT" >&2; cat "$OUT/chat.log" >&2
else
    echo "examples chat SIGINT : stopped, exit 0: ok"
fi
[ $status = 0 ] || cat "$OUT/chat-client.log" >&2
exit $status
