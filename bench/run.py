#!/usr/bin/env python3
"""aprof benchmarks: prints the figures as JSON lines and a table.

    python3 bench/run.py [--build DIR] [--pythons 3.11,3.12] [--quick]
    python3 bench/run.py --build NEW --against OLD [--repeat 3]   # before/after, side by side

For every CPython 3.10-3.13 under pyenv (and Debian's python3.11):
  sampling   median and p99 microseconds per sample of a 32-frame pure-Python stack, and the
             highest sustained rate (samples back to back, tools/bench_sampler)
  slowdown   the same fixed workload timed with and without `aprof record --rate 1000`
             attached (non-blocking mode), median of alternating runs; on a noisy machine
             bench/slowdown.py (differential, one process) is the more precise figure
With --against, both builds are measured in the same run, alternately (so a drifting machine
load hits both alike), the target and the sampler pinned to CPUs 0 and 1, each figure the
median of --repeat measurements, and printed side by
side with the change in percent (positive: the new build is worse).
Other bench/*.py scripts of the project (task snapshots, native stacks) are run after these,
with their default arguments.
"""
import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pythons(selected):
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() \
        or "/root/.pyenv"
    found = {}
    for d in sorted(glob.glob(os.path.join(root, "versions", "3.*"))):
        m = re.match(r"3\.(\d+)\.(\d+)$", os.path.basename(d))
        if not m or not 10 <= int(m.group(1)) <= 13:
            continue
        minor = "3." + m.group(1)
        exe = os.path.join(d, "bin", "python" + minor)
        if os.path.exists(exe):
            found[minor] = (os.path.basename(d), exe)
    out = [(v, exe) for _, (v, exe) in sorted(found.items())]
    if os.path.exists("/usr/bin/python3.11"):
        out.append(("debian-3.11", "/usr/bin/python3.11"))
    if selected:
        out = [p for p in out if any(p[0].startswith(s) or p[0] == s for s in selected)]
    return out


def pinned(cpu):
    """preexec_fn: run the child on one CPU (when the machine has it)."""
    if cpu is None or cpu >= os.cpu_count():
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def start_target(python, seconds, cpu=None):
    proc = subprocess.Popen([python, os.path.join(ROOT, "fixtures", "deep_stack.py"), str(seconds), "32"],
                            stdout=subprocess.DEVNULL, preexec_fn=pinned(cpu))
    time.sleep(0.5)
    return proc


def sampling(build, python, seconds, pin=False):
    """Per-sample figures of bench_sampler on the 32-deep target. pin: the target on CPU 0 and
    the sampler on CPU 1, so that the scheduler's placement does not decide the figures (for
    comparing builds)."""
    proc = start_target(python, seconds + 2, 0 if pin else None)
    try:
        res = subprocess.run([os.path.join(build, "bench_sampler"), str(proc.pid), str(seconds)],
                             capture_output=True, text=True, timeout=seconds + 30,
                             preexec_fn=pinned(1 if pin else None))
        return json.loads(res.stdout)
    finally:
        proc.kill()
        proc.wait()


def timed_workload(python, iterations, aprof=None):
    cmd = [python, os.path.join(ROOT, "fixtures", "deep_stack.py"), "0", "32", str(iterations)]
    if aprof:
        cmd = [aprof, "record", "--rate", "1000", "-q", "-o", "/dev/null", "--"] + cmd
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return json.loads(res.stdout.strip().splitlines()[-1])["elapsed_s"]


def slowdown(build, python, iterations, rounds):
    aprof = os.path.join(build, "aprof")
    base, prof = [], []
    for _ in range(rounds):  # alternate, so drifting machine load hits both alike
        base.append(timed_workload(python, iterations))
        prof.append(timed_workload(python, iterations, aprof))
    b, p = statistics.median(base), statistics.median(prof)
    # Machine noise only ever adds time: the fastest runs are the least disturbed estimate.
    fb, fp = min(base), min(prof)
    return {"baseline_s": round(b, 4), "profiled_s": round(p, 4),
            "slowdown_pct": round(100 * (p - b) / b, 2),
            "slowdown_pct_of_fastest": round(100 * (fp - fb) / fb, 2), "rounds": rounds}


def slowdown_pair(new, old, python, iterations, rounds):
    """Slowdown of both builds from one set of alternating runs: base, new, old, base, ..."""
    base, with_new, with_old = [], [], []
    for _ in range(rounds):
        base.append(timed_workload(python, iterations))
        with_new.append(timed_workload(python, iterations, os.path.join(new, "aprof")))
        with_old.append(timed_workload(python, iterations, os.path.join(old, "aprof")))
    b = statistics.median(base)
    return (100 * (statistics.median(with_new) - b) / b, 100 * (statistics.median(with_old) - b) / b)


def compare(args, selected):
    seconds, iterations, rounds = (2, 10000, 3) if args.quick else (3, 30000, 7)
    rounds = args.rounds or rounds
    keys = ("median_us", "p99_us", "sustained_hz")
    worse_if_higher = {"median_us": True, "p99_us": True, "sustained_hz": False}
    rows = []
    for label, python in pythons(selected):
        got = {"new": {k: [] for k in keys}, "old": {k: [] for k in keys}}
        for _ in range(args.repeat):  # alternate the builds
            for which, build in (("new", args.build), ("old", args.against)):
                s = sampling(build, python, seconds, pin=True)
                for k in keys:
                    got[which][k].append(s[k])
        sd_new, sd_old = slowdown_pair(args.build, args.against, python, iterations, rounds)
        row = {"python": label}
        for k in keys:
            n, o = statistics.median(got["new"][k]), statistics.median(got["old"][k])
            change = 100 * (n - o) / o if o else 0.0
            row[k] = (o, n, change if worse_if_higher[k] else -change)
        row["slowdown_pct"] = (sd_old, sd_new, sd_new - sd_old)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print()
    print("%-12s %-14s %10s %10s %9s" % ("python", "figure", "old", "new", "worse%"))
    worst = -1e9
    for r in rows:
        for k in keys + ("slowdown_pct",):
            o, n, w = r[k]
            print("%-12s %-14s %10.2f %10.2f %+9.2f%s" % (r["python"], k, o, n, w,
                  "  <-- more than 3% worse" if w > 3 and k != "slowdown_pct" else ""))
            if k != "slowdown_pct":
                worst = max(worst, w)
    print("\nworst change of a per-sample figure: %+.2f%% (positive: the new build is worse)" % worst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--pythons", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0, help="slowdown rounds (default 7, quick 3)")
    ap.add_argument("--no-extras", action="store_true", help="skip the other bench/*.py scripts")
    ap.add_argument("--against", default="", help="another build dir: before/after side by side")
    ap.add_argument("--repeat", type=int, default=3, help="--against: measurements per figure")
    args = ap.parse_args()
    selected = [s for s in args.pythons.split(",") if s]
    if args.against:
        compare(args, selected)
        return
    seconds, iterations, rounds = (2, 10000, 3) if args.quick else (5, 30000, 7)
    rounds = args.rounds or rounds
    rows = []
    for label, python in pythons(selected):
        s = sampling(args.build, python, seconds)
        d = slowdown(args.build, python, iterations, rounds)
        row = {"python": label, **{k: s[k] for k in ("median_us", "p99_us", "sustained_hz",
                                                     "torn_ratio", "syscalls_per_sample")}, **d}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print()
    print("%-12s %10s %8s %13s %11s %10s %12s" % ("python", "median_us", "p99_us", "sustained_hz",
                                                   "torn_ratio", "slowdown%", "fastest_sd%"))
    for r in rows:
        print("%-12s %10.2f %8.2f %13.0f %11.4f %10.2f %12.2f" % (
            r["python"], r["median_us"], r["p99_us"], r["sustained_hz"], r["torn_ratio"],
            r["slowdown_pct"], r["slowdown_pct_of_fastest"]))
    for extra in [] if args.no_extras else sorted(glob.glob(os.path.join(HERE, "*.py"))):
        if os.path.basename(extra) in ("run.py", "deep_stack.py", "slowdown.py") or \
                extra.endswith("_target.py"):
            continue
        print("\n== %s" % os.path.relpath(extra, ROOT), flush=True)
        subprocess.run([sys.executable, extra])


if __name__ == "__main__":
    main()
