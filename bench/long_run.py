#!/usr/bin/env python3
"""Memory and output size of long recordings: does aprof stay flat?

fixtures/many_tasks_fixture.py with 1,000 tasks and --churn (a task-creating churner and a second,
equally busy loop in a thread: thousands of new tasks a second) is recorded at --rate for the
longest checkpoint. aprof's RSS (VmRSS of its process, from /proc) is read every second and
printed at each checkpoint; the speedscope (or --format) file it writes at the end is measured.
A second, short recording of the first checkpoint's length gives the output's size there, so the
growth per minute is the difference, extrapolated to an hour.

    python3 bench/long_run.py [--checkpoints 1,5,10] [--rate 1000] [--python 3.12]
                              [--format speedscope] [--build build]

Prints one table; nothing is asserted (targets: RSS under 50 MB and speedscope output under
100 MB for an hour)."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def find_python(want):
    for it in harness.interpreters():
        if it.label == want or it.label.startswith(want):
            return it.label, it.path
    sys.exit("no interpreter %r (have: %s)" % (want, ", ".join(it.label for it in harness.interpreters())))


def start_fixture(python, tmp):
    ready = os.path.join(tmp, "ready.json")
    proc = subprocess.Popen([python, os.path.join(ROOT, "fixtures", "many_tasks_fixture.py"),
                             ready, "--tasks", "1000", "--churn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 30
    while time.monotonic() < end and not (os.path.exists(ready) and os.path.getsize(ready)):
        time.sleep(0.05)
    return proc


def record(aprof, pid, seconds, rate, fmt, out, checkpoints, resolution):
    """Record; returns ({checkpoint_s: rss_kb}, peak_kb, samples line, exit code)."""
    cmd = [aprof, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate),
           "--format", fmt, "-o", out, "--time-resolution", str(resolution)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    at, peak, pending = {}, 0, sorted(checkpoints)
    last = None
    while proc.poll() is None:
        kb = rss_kb(proc.pid)
        if kb:
            peak = max(peak, kb)
            last = kb
            while pending and time.monotonic() - t0 >= pending[0]:
                at[pending.pop(0)] = kb
        time.sleep(0.5)
    if pending and last:  # the last checkpoint is the end: the last reading before it
        at[pending.pop(0)] = last
    err = proc.stderr.read()
    samples = next((l.strip() for l in err.splitlines() if "samples" in l), "")
    return at, peak, samples, proc.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", default="1,5,10", help="minutes")
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--python", default="3.12")
    ap.add_argument("--format", default="speedscope")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--time-resolution", type=float, default=1.0,
                    help="passed to record (default 1: what a recording past 10 minutes gets)")
    args = ap.parse_args()
    aprof = os.path.join(args.build, "aprof")
    minutes = sorted(float(m) for m in args.checkpoints.split(","))
    label, python = find_python(args.python)
    with tempfile.TemporaryDirectory() as tmp:
        fixture = start_fixture(python, tmp)
        try:
            short = os.path.join(tmp, "short.out")
            long_ = os.path.join(tmp, "long.out")
            at_s, peak_s, _, rc_s = record(aprof, fixture.pid, int(minutes[0] * 60), args.rate,
                                           args.format, short, [], args.time_resolution)
            at, peak, samples, rc = record(aprof, fixture.pid, int(minutes[-1] * 60), args.rate,
                                           args.format, long_, [m * 60 for m in minutes],
                                           args.time_resolution)
            size_s = os.path.getsize(short) if os.path.exists(short) else 0
            size_l = os.path.getsize(long_) if os.path.exists(long_) else 0
        finally:
            fixture.kill()
            fixture.wait()
    print("long recording: %s, fixture many_tasks --tasks 1000 --churn, --rate %d, --format %s, "
          "--time-resolution %g" % (label, args.rate, args.format, args.time_resolution))
    print("exit codes %d (short) %d (long); %s" % (rc_s, rc, samples))
    print("%-10s %10s" % ("minute", "RSS MB"))
    for m in minutes:
        kb = at.get(m * 60)
        print("%-10g %10s" % (m, "%.1f" % (kb / 1024) if kb else "-"))
    print("peak RSS while writing: %.1f MB (short run %.1f MB)" % (peak / 1024, peak_s / 1024))
    span = minutes[-1] - minutes[0]
    per_min = (size_l - size_s) / span if span > 0 else size_l / minutes[-1]
    print("output: %.1f MB after %g min, %.1f MB after %g min: %.2f MB per minute, "
          "%.0f MB for an hour" % (size_s / 1e6, minutes[0], size_l / 1e6, minutes[-1],
                                   per_min / 1e6, (size_s + per_min * (60 - minutes[0])) / 1e6))
    first, last = at.get(minutes[0] * 60), at.get(minutes[-1] * 60)
    if first and last and span > 0:
        grow = (last - first) / span
        print("RSS growth %.2f MB per minute after minute %g: %.1f MB for an hour"
              % (grow / 1024, minutes[0], (first + grow * (60 - minutes[0])) / 1024))


if __name__ == "__main__":
    main()
