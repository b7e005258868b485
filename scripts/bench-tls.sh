#!/usr/bin/env bash
# TLS figures, with certificates made here (TLS 1.3, OpenSSL's defaults):
#
#   throughput  wss against ws on the same echoserver build, one loop each on SERVER_CPU, perftest on
#               CLIENT_CPU: pingpong with 100 connections and echo with 500 connections × 16 in flight,
#               rounds interleaved; msg/s and the server's µs per message. REFERENCE_WS / REFERENCE_WSS add
#               another server's pair to every round: commands with {port}, {cert} and {key} in them.
#               LOW_MEMORY=1 adds echoserver -tls-low-memory to every round.
#   handshakes  perftest -mode connect (open, close handshake, open again; 50 clients) against ws, and wss
#               with an ECDSA P-256 and an RSA 2048 certificate: openings/s and the server's µs per opening.
#   memory      perftest -mode connect -hold: the server's RSS per idle connection for ws, wss and
#               wss -tls-low-memory, CONNECTIONS at once, then the RSS after they close, ROUNDS times on
#               the same server (a leak grows it round after round).
#   floor       scripts/tls_record_floor.c: OpenSSL alone, per message per side, 100 connections' state
#               in turn, no sockets: the least TLS can add to a small-message echo.
#
#   PARTS="throughput handshakes memory" ROUNDS=2 DURATION=4 CONNECTIONS=10000 bash scripts/bench-tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/build.sh

PARTS=${PARTS:-throughput handshakes memory floor}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
CONNECTIONS=${CONNECTIONS:-10000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
build_products release echoserver perftest
BIN=$(swift build -c release --show-bin-path)
ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A CA and two server certificates for 127.0.0.1 and localhost, one ECDSA P-256 and one RSA 2048.
(
    cd "$WORK"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >san.ext
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Bench CA"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ecdsa.key -out ecdsa.csr -subj /CN=localhost
    openssl x509 -req -in ecdsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ecdsa.pem -days 2 -extfile san.ext
    openssl req -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.csr -subj /CN=localhost
    openssl x509 -req -in rsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out rsa.pem -days 2 -extfile san.ext
) >"$WORK/openssl.log" 2>&1 || { cat "$WORK/openssl.log" >&2; echo "bench-tls: openssl could not make the certificates" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Bytes malloc has handed out and not had back (glibc's mallinfo2, read with gdb): what the connections
# hold, apart from the freed blocks RSS also counts. "-" without gdb.
in_use() {
    command -v gdb >/dev/null || { echo "-"; return; }
    gdb -p "$1" -batch -ex 'p (long)mallinfo2().uordblks' 2>/dev/null | sed -n 's/^\$1 = //p'
}
# start_server NAME PORT ARGS...: an echoserver -workers 1 on SERVER_CPU; its pid in $server
start_server() {
    local port=$1; shift
    taskset -c "$SERVER_CPU" "$BIN/echoserver" -host 127.0.0.1 -port "$port" -workers 1 -quiet "$@" >"$WORK/server-$port.log" 2>&1 &
    server=$!
    pids+=("$server")
    wait_listening "$port" 60
}
# start_command PORT TEMPLATE CERT KEY: another server, from a command template; its pid in $server
start_command() {
    local command=${2//\{port\}/$1}
    command=${command//\{cert\}/$3}
    command=${command//\{key\}/$4}
    taskset -c "$SERVER_CPU" bash -c "exec $command" >"$WORK/server-$1.log" 2>&1 &
    server=$!
    pids+=("$server")
    wait_listening "$1"
}
# perf TARGET ARGS...: one perftest run on CLIENT_CPU; prints "rate µs" (msg/s or openings/s, server µs each)
perf() {
    local target=$1 out; shift
    out=$(taskset -c "$CLIENT_CPU" "$BIN/perftest" $target -workers 1 "$@" 2>&1) || { echo "$out" >&2; echo "bench-tls: perftest failed" >&2; exit 1; }
    local rate us
    if grep -q "^Opened:" <<<"$out"; then
        rate=$(sed -n 's/^Opened:.*(\([0-9]*\)\/s).*/\1/p' <<<"$out")
    else
        rate=$(sed -n 's/^Messages recv: *[0-9]* (\([0-9]*\) msg\/s).*/\1/p' <<<"$out")
    fi
    us=$(sed -n 's/^server CPU: *\([0-9.]*\) ms per 1,000.*/\1/p' <<<"$out")
    grep -q "^Errors: *0 " <<<"$out" || { echo "$out" >&2; echo "bench-tls: errors in a run" >&2; exit 1; }
    echo "${rate:-?} ${us:-?}"
}
ratio() { python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f"{a / b:.2f}" if b else "n/a")' "$1" "$2"; }

echo "bench-tls: $(date -u +%Y-%m-%dT%H:%MZ), $(openssl version | cut -d' ' -f1-2), $(nproc) CPUs, server on CPU $SERVER_CPU, perftest on CPU $CLIENT_CPU"

if [[ " $PARTS " == *" throughput "* ]]; then
    ws_port=$(free_port); start_server "$ws_port"; ws_pid=$server
    wss_port=$(free_port); start_server "$wss_port" -tls-cert "$WORK/ecdsa.pem" -tls-key "$WORK/ecdsa.key"; wss_pid=$server
    reference=""
    low=""
    if [ -n "${LOW_MEMORY:-}" ]; then
        low_port=$(free_port); start_server "$low_port" -tls-cert "$WORK/ecdsa.pem" -tls-key "$WORK/ecdsa.key" -tls-low-memory; low_pid=$server
        low=" wss -tls-low-memory msg/s (µs) |"
    fi
    if [ -n "${REFERENCE_WS:-}" ] && [ -n "${REFERENCE_WSS:-}" ]; then
        rws_port=$(free_port); start_command "$rws_port" "$REFERENCE_WS" "$WORK/ecdsa.pem" "$WORK/ecdsa.key"; rws_pid=$server
        rwss_port=$(free_port); start_command "$rwss_port" "$REFERENCE_WSS" "$WORK/ecdsa.pem" "$WORK/ecdsa.key"; rwss_pid=$server
        reference=" reference ws msg/s (µs) | reference wss msg/s (µs) | reference wss/ws |"
    fi
    echo
    echo "| round | shape | ws msg/s | wss msg/s | wss / ws | server µs/msg ws | wss |$low${reference:+$reference}"
    echo "|---|---|---|---|---|---|---|${low:+---|}${reference:+---|---|---|}"
    for round in $(seq 1 "$ROUNDS"); do
        for shape in "pingpong 100" "echo 500x16"; do
            case $shape in
                pingpong*) args=(-clients 100 -mode pingpong) ;;
                *) args=(-clients 500 -mode echo -window 16) ;;
            esac
            read -r a au < <(perf "-host 127.0.0.1:$ws_port" "${args[@]}" -duration "$DURATION" -server-pid "$ws_pid")
            read -r b bu < <(perf "-host wss://localhost:$wss_port -tls-ca $WORK/ca.pem" "${args[@]}" -duration "$DURATION" -server-pid "$wss_pid")
            line="| $round | $shape | $a | $b | $(ratio "$b" "$a") | $au | $bu |"
            if [ -n "$low" ]; then
                read -r l lu < <(perf "-host wss://localhost:$low_port -tls-ca $WORK/ca.pem" "${args[@]}" -duration "$DURATION" -server-pid "$low_pid")
                line="$line $l ($lu) |"
            fi
            if [ -n "$reference" ]; then
                read -r c cu < <(perf "-host 127.0.0.1:$rws_port" "${args[@]}" -duration "$DURATION" -server-pid "$rws_pid")
                read -r d du < <(perf "-host wss://localhost:$rwss_port -tls-ca $WORK/ca.pem" "${args[@]}" -duration "$DURATION" -server-pid "$rwss_pid")
                line="$line $c ($cu) | $d ($du) | $(ratio "$d" "$c") |"
            fi
            echo "$line"
        done
    done
    for pid in $ws_pid $wss_pid ${low_pid:-} ${rws_pid:-} ${rwss_pid:-}; do kill "$pid" 2>/dev/null || true; done
fi

if [[ " $PARTS " == *" handshakes "* ]]; then
    echo
    echo "| round | server | openings/s (50 clients) | server µs per opening |"
    echo "|---|---|---|---|"
    for round in $(seq 1 "$ROUNDS"); do
        for kind in ws ecdsa rsa; do
            port=$(free_port)
            if [ "$kind" = ws ]; then
                start_server "$port"; target="-host 127.0.0.1:$port"
            else
                start_server "$port" -tls-cert "$WORK/$kind.pem" -tls-key "$WORK/$kind.key"
                target="-host wss://localhost:$port -tls-ca $WORK/ca.pem"
            fi
            read -r rate us < <(perf "$target" -mode connect -clients 50 -duration "$DURATION" -server-pid "$server")
            kill "$server"; wait "$server" 2>/dev/null || true
            echo "| $round | $kind | $rate | $us |"
        done
    done
fi

if [[ " $PARTS " == *" memory "* ]]; then
    echo
    echo "| server | RSS before (KB) | round | RSS with $CONNECTIONS idle (KB) | RSS per connection (B) | malloc in use per connection (B) | RSS after they closed (KB) |"
    echo "|---|---|---|---|---|---|---|"
    for kind in ws wss wss-low-memory; do
        port=$(free_port)
        case $kind in
            ws) start_server "$port"; target="-host 127.0.0.1:$port" ;;
            wss) start_server "$port" -tls-cert "$WORK/ecdsa.pem" -tls-key "$WORK/ecdsa.key"
                 target="-host wss://localhost:$port -tls-ca $WORK/ca.pem" ;;
            *) start_server "$port" -tls-cert "$WORK/ecdsa.pem" -tls-key "$WORK/ecdsa.key" -tls-low-memory
               target="-host wss://localhost:$port -tls-ca $WORK/ca.pem" ;;
        esac
        before=$(rss_kb "$server")
        used_before=$(in_use "$server")
        for round in $(seq 1 "$ROUNDS"); do
            # Held for 3 s once all are open; the RSS is read while they are held, from perftest's output time.
            # TLS connections are opened over a ramp-up at ~800/s, below what one loop handshakes (~1,700/s):
            # all at once, the last would wait past the 10 s handshake timeout.
            rampup=0
            [ "$kind" = ws ] || rampup=$(( CONNECTIONS * 1250 / 1000 ))
            taskset -c "$CLIENT_CPU" "$BIN/perftest" $target -workers 1 -mode connect -hold -clients "$CONNECTIONS" -duration 3 -rampup "$rampup" \
                >"$WORK/hold.log" 2>&1 &
            client=$!
            pids+=("$client")
            for _ in $(seq 1 2400); do grep -q "^\[.*conns $CONNECTIONS/$CONNECTIONS" "$WORK/hold.log" 2>/dev/null && break; sleep 0.05; done
            with=$(rss_kb "$server")
            used=$(in_use "$server")
            wait "$client" || { cat "$WORK/hold.log" >&2; echo "bench-tls: the -hold run failed" >&2; exit 1; }
            grep -q "^Opened: *$CONNECTIONS in" "$WORK/hold.log" || { cat "$WORK/hold.log" >&2; echo "bench-tls: not all connections opened" >&2; exit 1; }
            # Until the server has closed them all (its /health count), then its RSS.
            for _ in $(seq 1 200); do
                open=$(python3 -c 'import ssl,socket,sys,json
port=int(sys.argv[1]); tls=sys.argv[2]=="1"
s=socket.create_connection(("127.0.0.1",port),timeout=5)
if tls:
    c=ssl.create_default_context(cafile=sys.argv[3]); s=c.wrap_socket(s,server_hostname="localhost")
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
d=b""
while True:
    try: chunk=s.recv(4096)
    except ssl.SSLError: break
    if not chunk: break
    d+=chunk
print(json.loads(d.split(b"\r\n\r\n",1)[1])["connections"])' "$port" "$([ "$kind" = ws ] && echo 0 || echo 1)" "$WORK/ca.pem")
                [ "$open" = 0 ] && break
                sleep 0.05
            done
            after=$(rss_kb "$server")
            per_use="-"
            [ "$used" != "-" ] && [ -n "$used" ] && per_use=$(( (used - used_before) / CONNECTIONS ))
            echo "| $kind | $before | $round | $with | $(( (with - before) * 1024 / CONNECTIONS )) | $per_use | $after |"
        done
        kill "$server"; wait "$server" 2>/dev/null || true
    done
fi

if [[ " $PARTS " == *" floor "* ]]; then
    mkdir -p .build-yardsticks
    cc -O2 -o .build-yardsticks/tls-record-floor scripts/tls_record_floor.c -lssl -lcrypto
    echo
    for round in $(seq 1 "$ROUNDS"); do
        taskset -c "$CLIENT_CPU" .build-yardsticks/tls-record-floor "$WORK/ecdsa.pem" "$WORK/ecdsa.key" 100 128 300000 | tr '\n' ' '
        echo
    done
fi
