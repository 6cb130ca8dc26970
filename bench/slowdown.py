#!/usr/bin/env python3
"""Target slowdown caused by `aprof record` at 1000 Hz, measured differentially.

    python3 bench/slowdown.py [--build DIR] [--pythons 3.11,3.12] [--pairs N] [--native]

Timing a workload once with and once without aprof compares two runs that the machine's noise
(frequency, other tenants, scheduling) treats differently; on a shared 2-core VM that noise is a
few percent, more than the effect to measure. Here one long-running target (fixtures/deep_stack.py
work, 32 frames deep) timestamps every unit of work it completes, while aprof is attached for
0.5 s, detached for 0.5 s, N times. The work rate inside the sampled windows (taken from aprof's
own --summary: start and duration in CLOCK_MONOTONIC) is compared with the rate in the unsampled
windows around them; slow drifts affect both alike. Prints JSON per interpreter.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import pythons  # noqa: E402



def rate(stamps, start, end):
    n = sum(1 for s in stamps if start <= s < end)
    return n / (end - start) if end > start else 0.0


def measure(aprof, python, pairs, window, extra):
    with tempfile.TemporaryDirectory() as tmp:
        stamps_path = os.path.join(tmp, "stamps.json")
        seconds = pairs * 2 * window + 3
        target = subprocess.Popen([python, os.path.join(ROOT, "fixtures", "deep_stack.py"), str(seconds),
                                   "32", "0", stamps_path], stdout=subprocess.PIPE, text=True)
        target.stdout.readline()
        time.sleep(0.5)
        windows = []
        for k in range(pairs):
            summary = os.path.join(tmp, "s%d.json" % k)
            subprocess.run([aprof, "record", "--pid", str(target.pid), "--rate", "1000",
                            "--duration", str(window), "-q", "-o", "/dev/null", "-s", summary]
                           + extra, check=True, timeout=60)
            with open(summary) as f:
                doc = json.load(f)
            start = float(doc["start_monotonic_s"])
            windows.append((start, start + float(doc["duration_s"])))
            time.sleep(window)
        target.wait(timeout=seconds + 30)
        with open(stamps_path) as f:
            stamps = json.load(f)
    ratios = []
    for k, (s, e) in enumerate(windows):
        # the unsampled stretches right before and after this window (10 ms margins)
        before = (windows[k - 1][1] + 0.01, s - 0.01) if k else (s - window, s - 0.01)
        after = (e + 0.01, windows[k + 1][0] - 0.01) if k + 1 < len(windows) else (e + 0.01, e + window)
        off = (rate(stamps, *before) + rate(stamps, *after)) / 2
        on = rate(stamps, s, e)
        if off > 0:
            ratios.append(on / off)
    slow = [100 * (1 - r) for r in ratios]
    return {"pairs": len(slow), "slowdown_pct_median": round(statistics.median(slow), 2),
            "slowdown_pct_mean": round(statistics.mean(slow), 2),
            "stdev_pct": round(statistics.stdev(slow), 2) if len(slow) > 1 else None,
            "work_units_per_s": round(statistics.mean(rate(stamps, *w) for w in windows), 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--pythons", default="")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--window", type=float, default=0.5)
    ap.add_argument("--native", action="store_true", help="record with --native at 100 Hz")
    args = ap.parse_args()
    aprof = os.path.join(args.build, "aprof")
    extra = ["--native", "--rate", "100"] if args.native else []
    for label, python in pythons([s for s in args.pythons.split(",") if s]):
        res = measure(aprof, python, args.pairs, args.window, extra)
        print(json.dumps({"python": label, "mode": "native 100 Hz" if args.native
                          else "non-blocking 1000 Hz", **res}), flush=True)


if __name__ == "__main__":
    main()
