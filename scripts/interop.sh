#!/usr/bin/env bash
# StrandsWS against peers that are not ours, Python `websockets` from PyPI (in the same venv as kosoku):
# - perftest (our client) against a `websockets` echo server, plain and with permessage-deflate offered
#   in both modes against a server that compresses: every message must come back, and with compression
#   every connection must have agreed it;
# - the `websockets` client, with its default compression offer, against echoserver -compression shared
#   and dedicated: the agreed parameters, large compressible and incompressible messages, many small ones;
# - echoserver's GET /metrics read by `prometheus_client`'s own parser (PyPI), the counters checked;
# - TLS with certificates made here: the `websockets` client against echoserver -tls-cert, perftest wss://
#   against a `websockets` server over TLS, and `openssl s_client` against echoserver.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/build.sh
python_venv websockets prometheus_client
build_products debug perftest echoserver
BIN=$(swift build --show-bin-path)
OUT=.build-interop
mkdir -p "$OUT"
pids=()
trap 'for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; done' EXIT
status=0

# Our client against Python servers.
for server in plain deflate; do
    port=$(free_port)
    "$VENV/bin/python" scripts/python_echo_server.py "$port" $([ $server = deflate ] && echo deflate) >"$OUT/server-$server.log" 2>&1 &
    pids+=($!)
    wait_for "$OUT/server-$server.log" listening
    runs=("pingpong off" "echo off")
    [ $server = deflate ] && runs=("echo shared" "echo dedicated" "pingpong dedicated")
    for run in "${runs[@]}"; do
        set -- $run
        name="$1-$2-vs-$server"
        "$BIN/perftest" -host "127.0.0.1:$port" -clients 20 -duration 2 -mode "$1" -payload 2000 -compression "$2" \
            -json "$OUT/$name.json" >"$OUT/$name.log"
        python3 - "$OUT/$name.json" "$name" "$2" <<'PY' || status=1
import json, sys
r = json.load(open(sys.argv[1])); s = r["stats"]; compression = sys.argv[3]
ok = s["connected"] == 20 and s["sent"] > 0 and s["lost"] == 0 and s["received"] == s["sent"] \
    and s["refused"] + s["handshakeFailed"] + s["closedByServer"] == 0
if compression != "off":
    ok = ok and s["compressed"] == 20 and s["wireBytesSent"] < s["payloadBytesSent"]
print(f"interop perftest {sys.argv[2]:26} vs python websockets: connected {s['connected']}/20, sent {s['sent']}, "
      f"received {s['received']}, lost {s['lost']}, compressed {s['compressed']}, "
      f"wire/payload sent {s['wireBytesSent'] / max(s['payloadBytesSent'], 1):.3f}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
    done
done

# The Python client against our server.
for mode in shared dedicated; do
    port=$(free_port)
    "$BIN/echoserver" -host 127.0.0.1 -port "$port" -compression "$mode" -quiet >"$OUT/echoserver-$mode.log" 2>&1 &
    pids+=($!)
    wait_for "$OUT/echoserver-$mode.log" "listening on"
    expected=server_no_context_takeover,client_no_context_takeover
    [ $mode = dedicated ] && expected=-
    echo "interop python websockets client vs echoserver -compression $mode:"
    "$VENV/bin/python" scripts/python_deflate_client.py "ws://127.0.0.1:$port/ws/interop" "$expected" || status=1
    if [ $mode = dedicated ]; then
        # The connections above are gone; their counts stay. Scraped as Prometheus would.
        "$VENV/bin/python" - "$port" <<'PY' || status=1
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5) as response:
    kind = response.headers["Content-Type"]
    text = response.read().decode()
samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
problems = []
if not kind.startswith("text/plain; version=0.0.4"): problems.append(f"content type {kind}")
if samples.get("strands_connections_opened_total", 0) < 1: problems.append("no connection counted")
if samples.get("strands_messages_received_total", 0) < 2000: problems.append("messages not counted")
if samples.get("strands_messages_sent_total") != samples.get("strands_messages_received_total"): problems.append("echoes != messages")
if samples.get("strands_tcp_bytes_received_total", 0) < 2000: problems.append("bytes received not counted")
causes = {s.labels.get("cause") for f in text_string_to_metric_families(text) for s in f.samples
          if s.name == "strands_connection_errors_by_cause_total"}
if causes != {"handshake", "protocol", "too_big", "send_cap", "timeout", "transport"}: problems.append(f"causes {causes}")
print(f"interop prometheus_client parses /metrics: {len(samples)} samples"
      + (": " + ", ".join(problems) if problems else ": ok"))
sys.exit(1 if problems else 0)
PY
    fi
done
# TLS, both roles, with a CA and a certificate for localhost made here.
TLS="$OUT/tls"
rm -rf "$TLS" && mkdir -p "$TLS"
(
    cd "$TLS"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Interop CA"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
) >"$OUT/tls-certificates.log" 2>&1 || { echo "interop: openssl could not make the certificates" >&2; cat "$OUT/tls-certificates.log" >&2; exit 1; }
port=$(free_port)
"$BIN/echoserver" -host 127.0.0.1 -port "$port" -tls-cert "$TLS/server.pem" -tls-key "$TLS/server.key" -quiet >"$OUT/echoserver-tls.log" 2>&1 &
pids+=($!)
wait_for "$OUT/echoserver-tls.log" "listening on"
"$VENV/bin/python" - "$port" "$TLS/ca.pem" <<'PY' || status=1
import asyncio, ssl, sys, websockets
async def main(port, ca):
    context = ssl.create_default_context(cafile=ca)
    async with websockets.connect(f"wss://localhost:{port}/ws/tls", ssl=context, max_size=2**20) as ws:
        payloads = ["hello over TLS ✓", bytes(range(256)) * 1000, "x" * 70000]
        for payload in payloads:
            await ws.send(payload)
            if await ws.recv() != payload:
                sys.exit("interop python websockets client vs echoserver -tls-cert: echo differs")
        print(f"interop python websockets client vs echoserver -tls-cert: {ws.transport.get_extra_info('ssl_object').version()}, "
              f"{len(payloads)} messages echoed intact: ok")
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
PY
if printf 'Q\n' | timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$TLS/ca.pem" \
    -verify_return_error -brief >"$OUT/s_client.log" 2>&1; then
    echo "interop openssl s_client vs echoserver -tls-cert: $(grep -m1 'Protocol version' "$OUT/s_client.log" | tr -s ' '), verified: ok"
else
    echo "interop openssl s_client vs echoserver -tls-cert: FAILED" >&2
    cat "$OUT/s_client.log" >&2
    status=1
fi
port=$(free_port)
"$VENV/bin/python" scripts/python_echo_server.py "$port" tls "$TLS/server.pem" "$TLS/server.key" >"$OUT/server-tls.log" 2>&1 &
pids+=($!)
wait_for "$OUT/server-tls.log" listening
"$BIN/perftest" -host "wss://localhost:$port" -tls-ca "$TLS/ca.pem" -clients 10 -duration 2 -mode echo -payload 2000 \
    -json "$OUT/perftest-tls.json" >"$OUT/perftest-tls.log" || true
python3 - "$OUT/perftest-tls.json" <<'PY' || status=1
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
ok = s["connected"] == 10 and s["sent"] > 0 and s["lost"] == 0 and s["received"] == s["sent"] and s["tlsFailed"] == 0
print(f"interop perftest wss:// vs python websockets over TLS: connected {s['connected']}/10, sent {s['sent']}, "
      f"received {s['received']}, lost {s['lost']}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY

exit $status
