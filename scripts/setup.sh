#!/usr/bin/env bash
# Installs what Strands needs to build on a fresh Debian/Ubuntu machine: libuv's headers and pkg-config.
# Swift itself (6.1 or later) must already be on PATH.
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: swift is not on PATH; install Swift 6.1 or later from swift.org first" >&2
    exit 1
fi
if pkg-config --exists libuv 2>/dev/null; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "setup: installing libuv1-dev and pkg-config with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libuv1-dev pkg-config >/dev/null
pkg-config --exists libuv || { echo "setup: libuv still not found by pkg-config" >&2; exit 1; }
