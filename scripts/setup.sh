#!/usr/bin/env bash
# Installs what Strands needs on a fresh Debian/Ubuntu machine: libuv's and zlib's headers and pkg-config to build,
# Python 3 with venv for the scripts (Autobahn's kosoku, the interop server, port probes), and redis-server for
# the Redis bridge's tests (each test starts its own on a free loopback port), and Chromium for the test that
# renders perftest's HTML report.
# Swift itself (6.1 or later) must already be on PATH.
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: swift is not on PATH; install Swift 6.1 or later from swift.org first" >&2
    exit 1
fi
need=()
pkg-config --exists libuv 2>/dev/null || need+=(libuv1-dev pkg-config)
pkg-config --exists zlib 2>/dev/null || need+=(zlib1g-dev)
# Debian ships venv's pip bootstrap (ensurepip) separately, in python3-venv.
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3 python3-venv)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# TLS: OpenSSL 3's headers to build StrandsTLS, the openssl command for the tests' certificates, the CA store.
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -d /etc/ssl/certs ] && [ -n "$(ls -A /etc/ssl/certs 2>/dev/null)" ] || need+=(ca-certificates)
# Headless Chromium renders perftest's HTML report in its test.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "setup: installing ${need[*]} with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
pkg-config --exists libuv || { echo "setup: libuv still not found by pkg-config" >&2; exit 1; }
pkg-config --exists zlib || { echo "setup: zlib still not found by pkg-config" >&2; exit 1; }
python3 -c 'import ensurepip, venv' || { echo "setup: python3 with venv still missing" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "setup: redis-server still missing" >&2; exit 1; }
pkg-config --exists openssl || { echo "setup: OpenSSL's headers still not found by pkg-config" >&2; exit 1; }
