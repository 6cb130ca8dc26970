#!/usr/bin/env bash
# Install what aprof needs on Debian 12 (as root), then configure and build it.
#   scripts/setup.sh [--tests] [BUILD_DIR] [extra cmake args...]
# Without --tests only what building and running aprof needs (compiler, CMake, the libraries'
# headers, python3 for the demo); with --tests also what the test suite uses (cmocka, jansson,
# Debian's python3.11 with aiohttp/uvloop/uvicorn/gunicorn/starlette, tmux, chromium and the npm speedscope
# package, Go's pprof, gdb's gcore for the core-file tests, clang and its libFuzzer runtime,
# dpkg-dev and man-db for the package test...).
# Idempotent: packages already present are not reinstalled; npm packages for the speedscope
# tests are installed from tests/web/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=0
if [ "${1:-}" = --tests ]; then
    tests=1
    shift
fi
build_dir=${1:-build}
shift || true

packages=(build-essential cmake pkg-config libunwind-dev libdw-dev libelf-dev libncurses-dev
          zlib1g-dev python3 procps)
if ((tests)); then
    packages+=(libcmocka-dev libjansson-dev dwarves elfutils tmux python3.11 python3-aiohttp
               python3-uvloop python3-uvicorn python3-gunicorn python3-starlette chromium nodejs npm
               util-linux strace golang-go gdb clang libclang-rt-14-dev
               dpkg-dev man-db)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian's archive on this image: only install them if absent.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs/}"); missing=("${missing[@]/npm/}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((tests)) && [ -f tests/web/package-lock.json ] && [ ! -d tests/web/node_modules/speedscope ]; then
    echo "setup: installing npm packages for the speedscope tests" >&2
    (cd tests/web && npm ci --no-audit --no-fund --silent)
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
