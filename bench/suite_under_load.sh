#!/usr/bin/env bash
# The whole test command (scripts/test.sh, what CI runs) RUNS times back to back on a clean
# clone of HEAD, with a CPU hog (a busy shell loop) pinned to the last CPU the whole time:
# issue 14's proof that no test flakes when the machine is shared. Prints one line per run
# (exit code, wall time, the failed tests) and a total; exits non-zero if any run failed.
#   bench/suite_under_load.sh [RUNS] [WORKDIR]      (defaults: 5, /tmp/aprof-suite-load)
# Each run's log is kept as WORKDIR/run-N.log. APROF_LOAD_HOG=COMMAND makes the hog that
# command (a long fuzzing run, say: one CPU-bound process is as good a hog as a shell loop),
# run pinned to the same CPU and followed by the shell loop when it ends; its output goes to
# WORKDIR/hog.log.
set -uo pipefail
runs=${1:-5}
work=${2:-/tmp/aprof-suite-load}
src=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$work" && mkdir -p "$work" || exit 2
git clone -q "$src" "$work/clone" || exit 2
cpu=$(($(nproc) - 1))
# setsid: the hog and whatever it starts are one process group, killed together at the end
setsid taskset -c "$cpu" sh -c "${APROF_LOAD_HOG:-:}; while :; do :; done" >"$work/hog.log" 2>&1 &
hog=$!
trap 'kill -- -$hog 2>/dev/null' EXIT
echo "suite under load: $runs runs of scripts/test.sh at $(git -C "$work/clone" rev-parse --short HEAD), a CPU hog on CPU $cpu${APROF_LOAD_HOG:+ ($APROF_LOAD_HOG, then a shell loop)}"
failed=0
for i in $(seq 1 "$runs"); do
    start=$(date +%s)
    (cd "$work/clone" && scripts/test.sh) >"$work/run-$i.log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    bad=$(grep -E '^\s+[0-9]+ - .*\(Failed|Timeout|Exception\)' "$work/run-$i.log" | awk '{print $3}' | tr '\n' ' ')
    grep -q '^fuzz: .*FAILED' "$work/run-$i.log" && bad+="fuzz "
    echo "run $i: exit $rc in ${took} s ${bad:+failed: $bad}"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
done
echo "suite under load: $((runs - failed)) of $runs runs passed"
[ "$failed" -eq 0 ]
