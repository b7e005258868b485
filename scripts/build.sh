# Sourced by the other scripts. build_products CONFIG PRODUCT...: builds each product, and on failure
# prints the compiler's errors and exits 1, so that no stale binary from an earlier build is run.
# BUILD_PACKAGE names another package folder (default: this one).
build_products() {
    local config=$1 log
    shift
    log=$(mktemp)
    for product in "$@"; do
        if ! swift build -c "$config" --package-path "${BUILD_PACKAGE:-.}" --product "$product" >"$log" 2>&1; then
            grep -E "error" "$log" >&2 || tail -20 "$log" >&2
            rm -f "$log"
            echo "build of $product ($config) failed" >&2
            exit 1
        fi
    done
    rm -f "$log"
}

# free_port: a free TCP port on 127.0.0.1. wait_listening PORT [SECONDS]: until something accepts on it
# (default 10 s), or exits 1 saying so.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listening() {
    local tries=$(( ${2:-10} * 20 ))
    for _ in $(seq 1 "$tries"); do
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$(basename "$0" .sh): nothing listens on $1" >&2
    exit 1
}

# wait_for FILE PATTERN: until PATTERN appears in FILE (10 s), or prints the file and returns 1.
wait_for() {
    for _ in $(seq 1 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "$(basename "$0" .sh): '$2' never appeared in $1" >&2; cat "$1" >&2; return 1
}

# python_venv MODULE...: the scripts' venv, .build-venv (VENV), with each PyPI package installed that
# cannot be imported yet (a module named as its package).
python_venv() {
    VENV=.build-venv
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    for module in "$@"; do
        "$VENV/bin/python" -c "import $module" 2>/dev/null || "$VENV/bin/pip" install -q "$module"
    done
}

# ws_client: builds the lean C WebSocket client (ws-pingpong) from $YARDSTICKS/pingpong.c and prints its path.
ws_client() {
    mkdir -p .build-yardsticks
    cc -O2 -std=gnu11 -DWS -o .build-yardsticks/ws-pingpong "$YARDSTICKS/pingpong.c"
    echo .build-yardsticks/ws-pingpong
}

# kill_on_exit: the pids in the array `pids` are killed when the script exits.
kill_on_exit() {
    pids=()
    trap 'for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done' EXIT
}
