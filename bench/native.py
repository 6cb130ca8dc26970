#!/usr/bin/env python3
"""Figures for --native sampling (docs/native.md), printed as JSON.

    bench/native.py [--build DIR] [--python PATH] [--unwinder libunwind|dw|both]
                    [--seconds S] [--repeats N]

1. Microseconds per native sample: tools/bench_native samples bench/native_target.py (one thread
   at the bottom of a mixed Python/C stack of about 40 frames, --depth 3) back to back for S
   seconds (default 5): median, p90, p99 of the wall time of a whole sample, median of the CPU
   time aprof spent on it, and of the time the target was stopped. Target: median < 150 us,
   checked on the CPU time (on a busy machine the wall time also holds waits for a CPU - the
   thread just resumed may preempt aprof - which say nothing about aprof's cost).
2. Slowdown of the target at 100 Hz with --native: the same fixed work run alone and under
   `aprof record --native --rate 100`, alternately, N times each (default 5); the slowdown is the
   median over the pairs of (profiled / plain run just before it) - 1, from the elapsed times the
   target measured itself (also given: fastest profiled / fastest plain - 1). Target: < 5 %.
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
SOURCE = os.path.dirname(HERE)
TARGET = os.path.join(HERE, "native_target.py")
TARGET_MEDIAN_US = 150.0
TARGET_SLOWDOWN_PCT = 5.0


def default_python():
    root = os.environ.get("PYENV_ROOT", "/root/.pyenv")
    best = None
    for d in os.listdir(os.path.join(root, "versions")) if os.path.isdir(
            os.path.join(root, "versions")) else []:
        parts = d.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and (3, 10) <= (
                int(parts[0]), int(parts[1])) <= (3, 13):
            key = tuple(int(p) for p in parts)
            exe = os.path.join(root, "versions", d, "bin", "python%s.%s" % (parts[0], parts[1]))
            if os.access(exe, os.X_OK) and (best is None or key > best[0]):
                best = (key, exe)
    return best[1] if best else sys.executable


def wait_file(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        if proc.poll() is not None:
            raise SystemExit("target exited early: %s" % proc.returncode)
        time.sleep(0.02)
    raise SystemExit("target not ready")


def per_sample(build, python, unwinder, seconds, tmp):
    ready = os.path.join(tmp, "ready-%s.json" % unwinder)
    target = subprocess.Popen([python, TARGET, "--seconds", str(seconds + 30), "--depth", "3",
                               "--ready", ready], stdout=subprocess.DEVNULL)
    try:
        info = wait_file(ready, target)
        time.sleep(0.5)
        out = subprocess.run([os.path.join(build, "bench_native"), str(info["pid"]), str(seconds),
                              "--unwinder", unwinder, "--tid", str(info["tid"])],
                             capture_output=True, text=True, timeout=seconds + 120)
        if out.returncode != 0:
            raise SystemExit("bench_native failed: %s" % out.stderr)
        return json.loads(out.stdout)
    finally:
        target.kill()
        target.wait()


def elapsed(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)["elapsed_s"]
    raise SystemExit("no result from %s: %s %s" % (cmd, out.stdout, out.stderr))


def slowdown(build, python, unwinder, repeats, tmp):
    # Fixed work of about 3 s.
    probe = elapsed([python, TARGET, "--iterations", "20", "--depth", "3"])
    iterations = max(20, int(20 * 3.0 / max(probe, 1e-3)))
    plain = [python, TARGET, "--iterations", str(iterations), "--depth", "3"]
    profiled = [os.path.join(build, "aprof"), "record", "--native", "--unwinder", unwinder,
                "--rate", "100", "--quiet", "-o", os.path.join(tmp, "prof.json"), "--"] + plain
    base, prof = [], []
    for _ in range(repeats):
        base.append(elapsed(plain))
        prof.append(elapsed(profiled))
    # Runs alternate, so each profiled run is compared with the plain run just before it
    # (which cancels slow drifts of the machine); the median of those ratios is the figure.
    ratios = [p / b for b, p in zip(base, prof)]
    return {"iterations": iterations, "alone_s": [round(x, 3) for x in base],
            "profiled_s": [round(x, 3) for x in prof],
            "slowdown_pct": round(100 * (statistics.median(ratios) - 1), 2),
            "slowdown_pct_of_fastest": round(100 * (min(prof) / min(base) - 1), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("APROF_BINARY_DIR",
                                                      os.path.join(SOURCE, "build")))
    ap.add_argument("--python", default=None)
    ap.add_argument("--unwinder", default="both", choices=("libunwind", "dw", "both"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    python = a.python or default_python()
    unwinders = ("libunwind", "dw") if a.unwinder == "both" else (a.unwinder,)
    result = {"python": python, "targets": {"median_us": TARGET_MEDIAN_US,
                                            "slowdown_pct": TARGET_SLOWDOWN_PCT}, "unwinders": {}}
    ok = True
    with tempfile.TemporaryDirectory(prefix="aprof-bench-") as tmp:
        for unwinder in unwinders:
            sample = per_sample(a.build, python, unwinder, a.seconds, tmp)
            slow = slowdown(a.build, python, unwinder, a.repeats, tmp)
            met = (sample["cpu_median_us"] < TARGET_MEDIAN_US and
                   slow["slowdown_pct"] < TARGET_SLOWDOWN_PCT)
            ok = ok and met
            result["unwinders"][unwinder] = {"per_sample": sample, "slowdown": slow,
                                             "targets_met": met}
    result["targets_met"] = ok
    print(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
