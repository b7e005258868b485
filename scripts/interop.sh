#!/usr/bin/env bash
# perftest against an echo server that is not ours: a short pingpong and echo run against a Python
# `websockets` server (from PyPI, in the same venv as kosoku), failing unless every message comes back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=.build-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import websockets" 2>/dev/null || "$VENV/bin/pip" install -q websockets
. scripts/build.sh
build_products debug perftest
PERFTEST=$(swift build --show-bin-path)/perftest
OUT=.build-interop
mkdir -p "$OUT"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/python" scripts/python_echo_server.py "$port" >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q listening "$OUT/server.log" && break; sleep 0.05; done
grep -q listening "$OUT/server.log" || { echo "interop: python server did not start" >&2; cat "$OUT/server.log" >&2; exit 1; }
status=0
for mode in pingpong echo; do
    "$PERFTEST" -host "127.0.0.1:$port" -clients 20 -duration 2 -mode "$mode" -json "$OUT/$mode.json" >"$OUT/$mode.log"
    python3 - "$OUT/$mode.json" "$mode" <<'PY' || status=1
import json, sys
r = json.load(open(sys.argv[1])); s = r["stats"]
ok = s["connected"] == 20 and s["sent"] > 0 and s["lost"] == 0 and s["received"] == s["sent"] and s["refused"] + s["handshakeFailed"] + s["closedByServer"] == 0
print(f"interop {sys.argv[2]:8} vs python websockets: connected {s['connected']}/20, sent {s['sent']}, received {s['received']}, lost {s['lost']}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
done
exit $status
