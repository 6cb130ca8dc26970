#!/usr/bin/env python3
"""Does aprof tell the truth about a busy event loop? fixtures/busy_loop.py (1,000 churning
tasks, about 10,000 short task steps a second) measures its own busy share (time outside its
selector's select); aprof records it and its share of loop-thread samples outside select is
printed beside it ("aprof"), with the stall detector's busy share of the same loop ("stalls":
the summary's blocked_ratio), for every interpreter, mode and rate asked for, with the samples
aprof had to mark (stack unreadable) and stitched stacks holding an edge the program cannot make.

    python3 bench/busy_share.py [--seconds 6] [--rates 97,1000,4000]
                                [--modes default,blocking,native] [--pythons 3.12,debian-3.11]
                                [--sleep-ms 100] [--austin PATH] [--baseline PATH] [--repeat N]

--baseline: another aprof binary (an older build, say) run on the same configurations, each
run of it right after the one of $APROF (or build/aprof), for a side-by-side comparison on a
noisy machine; --repeat runs every configuration N times, and a last table gives each binary's
mean difference from the loop's clock and its spread.

--sleep-ms: the fixture's mean sleep between a task's steps (longer: a less busy loop).
--native-workers N: N threads beside the loop always busy in C (stopped at every sample by
--blocking and --native, while the loop asleep in its selector is not).

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


def run_one(aprof, interp, mode, rate, seconds, tmp, austin=None, sleep_ms=100.0,
            native_workers=0):
    clock = os.path.join(tmp, "clock.txt")
    for p in (clock, clock + ".edges.json"):
        if os.path.exists(p):
            os.unlink(p)
    fx = subprocess.Popen([interp.path, os.path.join(ROOT, "fixtures", "busy_loop.py"), clock,
                           "--seconds", str(seconds + 30), "--sleep-ms", str(sleep_ms),
                           "--native-workers", str(native_workers)], stdin=subprocess.DEVNULL,
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
    ap.add_argument("--native-workers", type=int, default=0)
    ap.add_argument("--baseline", default="")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    if args.pythons:
        os.environ["APROF_TEST_PYTHONS"] = args.pythons
    aprof = os.environ.get("APROF") or os.path.join(ROOT, "build", "aprof")
    rates = [float(r) for r in args.rates.split(",")]
    modes = args.modes.split(",")
    print("busy share of the loop thread: the loop's own clock vs aprof (%.0f s each, 1,500 "
          "samples at least)" % args.seconds)
    binaries = [("", aprof)] + ([("base", args.baseline)] if args.baseline else [])
    print("%-12s %-11s %6s %4s %7s %7s %6s %7s %8s %7s %10s%s" % (
        "python", "mode", "Hz", "bin", "own", "aprof", "diff", "stalls", "samples", "marked",
        "impossible", "  austin" if args.austin else ""))
    worst = 0.0
    diffs = {}  # (python, mode, rate, binary) -> [aprof - own, in points]
    for interp in harness.interpreters():
        # a chrooted interpreter sees only paths inside its root
        tmpdir = interp.root + "/tmp" if interp.root else None
        with tempfile.TemporaryDirectory(prefix="aprof-busy-", dir=tmpdir) as tmp:
            os.chmod(tmp, 0o755)
            for mode in modes:
                for rate in rates:
                    # at least 1,500 samples: a share's standard error then stays near 1 point
                    secs = max(args.seconds, 1500.0 / rate)
                    for _ in range(args.repeat):
                        for tag, binary in binaries:
                            d = run_and_print(binary, tag, interp, mode, rate, secs, tmp, args)
                            if d is not None:
                                worst = max(worst, abs(d))
                                diffs.setdefault((interp.label, mode, rate, tag), []).append(d)
    print("largest difference: %.1f points" % worst)
    if args.repeat > 1 or args.baseline:
        print("\nper configuration: mean difference from the loop's clock (points), its "
              "standard deviation, runs")
        for (label, mode, rate, tag), ds in diffs.items():
            mean = sum(ds) / len(ds)
            sd = (sum((d - mean) ** 2 for d in ds) / (len(ds) - 1)) ** 0.5 if len(ds) > 1 else 0
            print("%-12s %-11s %6.0f %4s %+6.2f %5.2f %3d" % (label, mode, rate, tag, mean, sd,
                                                             len(ds)))


def run_and_print(binary, tag, interp, mode, rate, secs, tmp, args):
    """One recording, printed as a table row; aprof's share minus the loop's, in points.
    Austin (which does not depend on the aprof binary) runs beside the first binary only."""
    r = run_one(binary, interp, mode, rate, secs, tmp, (args.austin or None) if not tag else None,
                args.sleep_ms, args.native_workers)
    if "error" in r or r["truth"] is None or r["aprof"] is None:
        print("%-12s %-11s %6.0f %4s  %s" % (interp.label, mode, rate, tag,
                                              r.get("error", "no figure")))
        return None
    d = (r["aprof"] - r["truth"]) * 100
    sv = r["stalls_view"]
    print("%-12s %-11s %6.0f %4s %6.1f%% %6.1f%% %+6.1f %6s %8d %7d %5d/%-5d%s" % (
        interp.label, mode, rate, tag, r["truth"] * 100, r["aprof"] * 100, d,
        "%.1f%%" % (sv * 100) if sv is not None else "-",
        r["samples"], r["marked"], r["impossible"], r["checked"],
        "  %5.1f%%" % (r["austin"] * 100) if r.get("austin") is not None else ""),
        flush=True)
    for e in r["examples"]:
        print("    impossible: %s" % e)
    return d


if __name__ == "__main__":
    main()
