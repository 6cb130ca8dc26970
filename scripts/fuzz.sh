#!/usr/bin/env bash
# Build the libFuzzer harnesses of fuzz/ with clang (ASan + UBSan) and run each for SECONDS
# (default 60), starting from its seed corpus in fuzz/corpus/NAME (kept by the run in
# $APROF_FUZZ_DIR, default /var/cache/aprof/fuzz, so later runs go on from it).
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
# Exits non-zero on any crash, hang (a run over 10 s), leak or sanitizer report; the input that
# caused it is left in the work directory (crash-*, timeout-*, leak-*) and named on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
build=${APROF_FUZZ_BUILD:-build-fuzz}
work=${APROF_FUZZ_DIR:-/var/cache/aprof/fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DAPROF_FUZZ=ON -DAPROF_WERROR=OFF \
      -DCMAKE_BUILD_TYPE=Debug >/dev/null
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
    for f in fuzz/fuzz_*.c; do harnesses+=("$(basename "$f" .c)"); done
fi
targets=("${harnesses[@]}")
[[ " ${harnesses[*]} " == *" fuzz_core_dump "* ]] && targets+=(core_shrink)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
status=0
for h in "${harnesses[@]}"; do
    corpus="$work/corpus/$h"
    mkdir -p "$corpus" "$work/$h"
    seeds="fuzz/corpus/$h"
    if [ "$h" = fuzz_core_dump ]; then
        # cores of the fixtures under this machine's interpreters, shrunk to what a dump reads;
        # made once per machine (they name the interpreters' files by path and build id)
        seeds="$work/seeds/$h"
        if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
            python3 fuzz/make_dump_seeds.py "$build" "$seeds" 3.10 3.12 debian-3.11 >&2 ||
                { echo "fuzz: cannot make the seeds of $h" >&2; status=1; continue; }
        fi
    fi
    if [ "$h" = fuzz_elf ] || [ "$h" = fuzz_native_symbols ]; then
        # small ELF files of this machine (an executable, a shared library with .eh_frame_hdr
        # and .symtab-less dynamic symbols, a relocatable object) and a shared library with
        # DWARF built from fuzz/native_seed.c; copied or built, not committed
        seeds="$work/seeds/elf"
        if [ ! -f "$seeds/native_seed.so" ]; then
            mkdir -p "$seeds"
            for f in /usr/bin/true /usr/lib/x86_64-linux-gnu/libdl.so.2 \
                     /usr/lib/x86_64-linux-gnu/libutil.so.1 /usr/lib/x86_64-linux-gnu/crt1.o; do
                [ -f "$f" ] && cp "$f" "$seeds/$(basename "$f")"
            done
            # (the relocatable object too: libdw needs a callback to place its sections)
            cc -c -g -O2 -o "$seeds/native_seed.o" fuzz/native_seed.c &&
                cc -shared -fPIC -g -O2 -o "$seeds/native_seed.so" fuzz/native_seed.c ||
                { echo "fuzz: cannot build the seed library of $h" >&2; status=1; continue; }
        fi
    fi
    [ -d "$seeds" ] || seeds=""
    # the committed inputs (regression seeds) of a harness whose seeds are made on the machine
    if [ "$seeds" != "fuzz/corpus/$h" ] && [ -d "fuzz/corpus/$h" ]; then
        seeds="$seeds fuzz/corpus/$h"
    fi
    log="$work/$h/last.log"
    # inputs as long as the largest seed at least (the shrunk cores of fuzz_core_dump)
    max_len=65536
    if [ -n "$seeds" ]; then
        big=$(find $seeds -type f -printf '%s\n' | sort -n | tail -1)
        if [ -n "$big" ] && ((big > max_len)); then max_len=$big; fi
    fi
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$build/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
        -artifact_prefix="$work/$h/" "$corpus" $seeds >"$log" 2>&1 &
    pid=$!
    rc=0
    wait $pid || rc=$? # (set -e would end the script here, before the report)
    # a harness that writes its input to a file (fuzz_elf, fuzz_native_symbols) removes it
    leftover=$(ls /tmp/aprof-fuzz-*-"$pid"* 2>/dev/null || true)
    if [ "$rc" -eq 0 ] && [ -n "$leftover" ]; then
        echo "fuzz: $h left scratch files behind: $leftover" >>"$log"
        rm -f $leftover
        rc=1
    fi
    if [ "$rc" -eq 0 ]; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        [ -n "$execs" ] || execs=$(grep -oE '#[0-9]+' "$log" | tail -1 | tr -d '#')
        echo "fuzz: $h: ${seconds}s, ${execs:-?} executions, corpus $(ls "$corpus" | wc -l) inputs: no crash"
    else
        status=1
        echo "fuzz: $h FAILED; log: $log" >&2
        grep -E '^==[0-9]+==ERROR|SUMMARY|artifact|Test unit written|scratch files' "$log" | head -5 >&2 || true
    fi
done
exit $status
