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
