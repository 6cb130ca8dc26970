#!/usr/bin/env bash
# Install, build and run aprof's whole test suite:
#   1. a -Werror build and every test (cmocka unit tests, integration tests against every
#      CPython 3.10-3.13 under pyenv and Debian's python3.11, speedscope app checks, and
#      Debian sid's 3.13, 3.14, 3.14-dbg and 3.15 run chrooted in a cached root that
#      scripts/sid_root.sh builds once per machine);
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build: the unit and live tests, and one
#      test of each integration file (marked @h.smoke; on every interpreter when it is a
#      per-interpreter test) against that build's aprof, which fails on any report or leak;
#   3. every libFuzzer harness of fuzz/ for APROF_FUZZ_SECONDS each (default 10; docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests build -DAPROF_WERROR=ON
APROF_SID_ROOT=$(scripts/sid_root.sh)
export APROF_SID_ROOT
ctest --test-dir build --output-on-failure --timeout 600 "$@"
scripts/setup.sh --tests build-asan -DAPROF_WERROR=ON -DAPROF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 600 -R '^(unit|live)\.' "$@"
APROF_TEST_SMOKE=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 900 -R '^integration\.' -E 'install' "$@"
scripts/fuzz.sh "${APROF_FUZZ_SECONDS:-10}"
