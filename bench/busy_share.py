#!/usr/bin/env python3
"""Does aprof tell the truth about a busy event loop? fixtures/busy_loop.py (1,000 churning
tasks, about 10,000 short task steps a second) measures its own busy share (time outside its
selector's select); aprof records it and its share of loop-thread samples outside select is
printed beside it ("aprof"), with the stall detector's busy share of the same loop ("stalls":
the summary's blocked_ratio), for every interpreter, mode and rate asked for, with the samples
aprof had to mark (stack unreadable) and stitched stacks holding an edge the program cannot make.

    python3 bench/busy_share.py [--seconds 6] [--rates 97,1000,4000]
                                [--modes default,blocking,native] [--pythons 3.12,debian-3.11]
                                [--sleep-ms 100] [--austin PATH]

--sleep-ms: the fixture's mean sleep between a task's steps (longer: a less busy loop).

--austin: Austin built beside the project (never part of it), run on the same fixture for a
third column (its share of samples not in the select line)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
import loopshare  # noqa: E402

MODES = {"default": [], "nonblocking": ["--nonblocking"], "blocking": ["--blocking"],
         "native": ["--native"]}


def wait_for(path, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return True
        time.sleep(0.05)
    return False


def austin_share(austin, pid, seconds, tmp):
    out = os.path.join(tmp, "austin.txt")
    subprocess.run([austin, "-i", "1ms", "-x", str(seconds), "-p", str(pid), "-o", out],
                   capture_output=True, timeout=seconds + 30)
    busy = total = 0
    with open(out, errors="replace") as f:
        for line in f:
            if not line.startswith("P") or ";T" not in line:
                continue
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit() or ";T%d" % pid not in stack and ":%d;" % pid not in stack:
                continue
            total += int(count)
            leaf = stack.rsplit(";", 1)[-1]
            if "select" not in leaf.split(":")[0]:
                busy += int(count)
    return busy / total if total else None


def run_one(aprof, interp, mode, rate, seconds, tmp, austin=None, sleep_ms=100.0):
    clock = os.path.join(tmp, "clock.txt")
    for p in (clock, clock + ".edges.json"):
        if os.path.exists(p):
            os.unlink(p)
    fx = subprocess.Popen([interp.path, os.path.join(ROOT, "fixtures", "busy_loop.py"), clock,
                           "--seconds", str(seconds + 30), "--sleep-ms", str(sleep_ms)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not wait_for(clock):
            return {"error": "fixture did not start: %s" % fx.stderr.read1(500)}
        time.sleep(1.0)  # past start-up
        out, summ = os.path.join(tmp, "out.json"), os.path.join(tmp, "summary.json")
        folded = os.path.join(tmp, "out.txt")
        res = subprocess.run([aprof, "record", "--pid", str(fx.pid), "--rate", str(rate),
                              "--duration", str(seconds), "-o", out, "-s", summ, "-q",
                              "--folded", folded]
                             + MODES[mode], capture_output=True, text=True, timeout=seconds + 60)
        if res.returncode != 0:
            return {"error": "aprof exited %d: %s" % (res.returncode, res.stderr.strip()[-300:])}
        time.sleep(0.05)
        with open(summ) as f:
            summary = json.load(f)
        with open(out) as f:
            doc = json.load(f)
        start = float(summary["start_monotonic_s"])
        end = start + float(summary["duration_s"])
        rows = loopshare.read_clock(clock)
        truth = loopshare.fixture_busy_share(rows, start, end)
        share, secs, _, _ = loopshare.aprof_busy_share(doc, fx.pid)
        with open(folded, encoding="utf-8") as f:  # sample counts (speedscope merges runs)
            n, marked = loopshare.folded_loop_counts(harness.parse_collapsed(f.read()), fx.pid)
        bad, checked = loopshare.impossible_edges(doc, fx.pid,
                                                  loopshare.load_edges(clock + ".edges.json"))
        result = {"truth": truth, "aprof": share, "samples": n, "marked": marked,
                  "stalls_view": loopshare.loop_blocked_ratio(summary, fx.pid),
                  "steps_per_s": loopshare.fixture_steps_per_s(rows, start, end),
                  "impossible": len(bad), "checked": checked, "examples": bad[:3]}
        if austin:
            result["austin"] = austin_share(austin, fx.pid, min(seconds, 6), tmp)
        return result
    finally:
        fx.kill()
        fx.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rates", default="97,1000,4000")
    ap.add_argument("--modes", default="default,blocking,native")
    ap.add_argument("--pythons", default="")
    ap.add_argument("--austin", default="")
    ap.add_argument("--sleep-ms", type=float, default=100.0)
    args = ap.parse_args()
    if args.pythons:
        os.environ["APROF_TEST_PYTHONS"] = args.pythons
    aprof = os.environ.get("APROF") or os.path.join(ROOT, "build", "aprof")
    rates = [float(r) for r in args.rates.split(",")]
    modes = args.modes.split(",")
    print("busy share of the loop thread: the loop's own clock vs aprof (%.0f s each, 1,500 "
          "samples at least)" % args.seconds)
    print("%-12s %-11s %6s %7s %7s %6s %7s %8s %7s %10s%s" % (
        "python", "mode", "Hz", "own", "aprof", "diff", "stalls", "samples", "marked",
        "impossible", "  austin" if args.austin else ""))
    worst = 0.0
    for interp in harness.interpreters():
        # a chrooted interpreter sees only paths inside its root
        tmpdir = interp.root + "/tmp" if interp.root else None
        with tempfile.TemporaryDirectory(prefix="aprof-busy-", dir=tmpdir) as tmp:
            os.chmod(tmp, 0o755)
            for mode in modes:
                for rate in rates:
                    # at least 1,500 samples: a share's standard error then stays near 1 point
                    secs = max(args.seconds, 1500.0 / rate)
                    r = run_one(aprof, interp, mode, rate, secs, tmp, args.austin or None,
                                args.sleep_ms)
                    if "error" in r or r["truth"] is None or r["aprof"] is None:
                        print("%-12s %-11s %6.0f  %s" % (interp.label, mode, rate,
                                                        r.get("error", "no figure")))
                        continue
                    d = (r["aprof"] - r["truth"]) * 100
                    worst = max(worst, abs(d))
                    sv = r["stalls_view"]
                    print("%-12s %-11s %6.0f %6.1f%% %6.1f%% %+6.1f %6s %8d %7d %5d/%-5d%s" % (
                        interp.label, mode, rate, r["truth"] * 100, r["aprof"] * 100, d,
                        "%.1f%%" % (sv * 100) if sv is not None else "-",
                        r["samples"], r["marked"], r["impossible"], r["checked"],
                        "  %5.1f%%" % (r["austin"] * 100) if r.get("austin") is not None else ""),
                        flush=True)
                    for e in r["examples"]:
                        print("    impossible: %s" % e)
    print("largest difference: %.1f points" % worst)


if __name__ == "__main__":
    main()
