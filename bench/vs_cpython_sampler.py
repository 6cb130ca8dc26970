#!/usr/bin/env python3
"""aprof against CPython 3.15's own sampling profiler (profiling.sampling), side by side in one run.

    python3 bench/vs_cpython_sampler.py [--seconds 4] [--rounds 2] [--pythons 3.14,3.15]
                                        [--window 1.0] [--pairs 10] [--pin] [--build DIR]

The interpreters are Debian sid's python3.14 and python3.15 (scripts/sid_root.sh; the root is
APROF_SID_ROOT, else /var/cache/aprof/sid-root, else what scripts/sid_root.sh prints), run
chrooted; fixtures/deep_stack.py is copied into a temporary directory inside the root. /proc is
mounted inside the root for CPython's profiler when it is not there yet (and unmounted after).

  highest sustained rate  one 3.15 target, fixtures/deep_stack.py 32 frames deep, is sampled
             alternately (--rounds rounds, the order swapped every round) by
               CPython   chroot ROOT python3.15 -m profiling.sampling attach -r 1000khz
                                -d SECONDS --collapsed -o F PID
                         samples = the sum of the counts in F; samples/s = samples / SECONDS
                         (also printed: samples / the wall time around the command, and the
                         profiler's own "Captured N samples in S seconds" / "Sample rate")
               aprof     build/bench_sampler PID SECONDS (samples back to back: median and
                         p99 microseconds per sample, sustained samples/s)
             with each tool's CPU use (user + system over its wall time: under 100% means
             the machine's other load took CPU from it)
             then aprof alone on a 3.14 target the same way (3.14 has no profiling.sampling).
  slowdown   the target's own progress (deep_stack.py's time stamp after every unit of work,
             32 frames deep) in --pairs windows of --window seconds with
             `aprof record --pid PID --rate 1000 --duration W -f collapsed -s SUMMARY -q`
             attached, each against the unsampled stretches of --window seconds right before
             and after it (as bench/slowdown.py does), as work units
               per wall second  the sampled window from the summary's CLOCK_MONOTONIC start
                                and duration: everything aprof costs the target, but also
                                every moment another tenant took the target's CPU
               per CPU second   per second the target spent on a CPU (/proc/PID/schedstat
                                at the ends of the stretches; the sampled stretch is the
                                whole aprof command): immune to the machine's other load, but
                                blind to the moments aprof stops a thread caught mid-change
             per window (median, mean, stdev) and pooled over all windows.
Figures only, no verdicts. The issue's targets: at least 2x CPython's rate, median <= 5 us
per sample on 3.14/3.15, slowdown < 1% at 1 kHz. --pin: the target on CPU 0 and the profiler
on CPU 1, for both tools alike.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEPTH = 32

PROCS = []  # every process this script started and has not reaped yet


def sid_root():
    root = os.environ.get("APROF_SID_ROOT")
    if root:
        return root
    default = "/var/cache/aprof/sid-root"
    if os.path.isfile(os.path.join(default, ".aprof-ready")):
        return default
    res = subprocess.run([os.path.join(ROOT, "scripts", "sid_root.sh")], stdout=subprocess.PIPE,
                         text=True, check=True)
    return res.stdout.strip().splitlines()[-1]


def pinned(cpu):
    """preexec_fn: run the child on one CPU (when the machine has it)."""
    if cpu is None or cpu >= os.cpu_count():
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def spawn(cmd, cpu=None, **kw):
    # A session of its own: a Ctrl-C at the terminal reaches only this script, whose finally
    # block then ends the child's whole process group by its id.
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=pinned(cpu), **kw)
    PROCS.append(proc)
    return proc


def reap(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    if proc in PROCS:
        PROCS.remove(proc)


def run(cmd, timeout, cpu=None):
    """Run to completion; returns (returncode, stdout, stderr, wall seconds, CPU seconds)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = spawn(cmd, cpu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        wall = time.monotonic() - t0
        reap(proc)
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime
    return proc.returncode, out, err, wall, cpu


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Box:
    """The bench's directory inside the sid root: `host` from here, `inside` for the chrooted
    processes."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root + "/tmp", exist_ok=True)
        self.host = tempfile.mkdtemp(prefix="aprof-bench-", dir=root + "/tmp")
        self.inside = "/tmp/" + os.path.basename(self.host)
        shutil.copy(os.path.join(ROOT, "fixtures", "deep_stack.py"), self.host)
        self.mounted = False

    def mount_proc(self):
        if os.path.exists(self.root + "/proc/self"):
            return
        subprocess.run(["mount", "-t", "proc", "proc", self.root + "/proc"], check=True)
        self.mounted = True

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.root + "/proc"])
            self.mounted = False
        shutil.rmtree(self.host, ignore_errors=True)

    def python(self, version):
        return ["chroot", self.root, "/usr/bin/python" + version]

    def start_loop(self, version, cpu=None):
        """deep_stack.py looping 32 frames deep; returned once it is past start-up."""
        proc = spawn(self.python(version) + [self.inside + "/deep_stack.py", "3600", str(DEPTH)],
                     cpu, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        # chroot execs the interpreter: proc.pid is the target. Start-up takes some tens of
        # milliseconds of CPU; 0.3 s of CPU means it is in its work loop.
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError("python%s target exited (%d)" % (version, proc.returncode))
            try:
                exe = os.readlink("/proc/%d/exe" % proc.pid)
                if "python" in os.path.basename(exe) and cpu_seconds(proc.pid) >= 0.3:
                    return proc
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("python%s target did not start" % version)


def cpython_sampler(box, pid, seconds, rate, tag, cpu=None):
    out_in = "%s/cpython-%s.txt" % (box.inside, tag)
    cmd = box.python("3.15") + ["-m", "profiling.sampling", "attach", "-r", rate, "-d",
                                str(seconds), "--collapsed", "-o", out_in, str(pid)]
    rc, out, err, wall, cpu_s = run(cmd, timeout=seconds + 60, cpu=cpu)
    text = out + err
    samples = frames = lines = 0
    path = box.root + out_in
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if count.isdigit():
                    samples += int(count)
                    # "tid:N;file:func:line;..." : the frames after the thread
                    frames += int(count) * (stack.count(";"))
                    lines += 1
        os.unlink(path)
    if rc != 0 or not samples:
        raise RuntimeError("CPython's profiler exited %d: %s" % (rc, text.strip()[-400:]))
    got = {"samples": samples, "rate_d": samples / seconds, "rate_wall": samples / wall,
           "wall_s": wall, "mean_frames": frames / samples, "cpu_pct": 100 * cpu_s / wall}
    m = re.search(r"Captured (\d+) samples in ([\d.]+) seconds", text)
    if m:
        got["own_samples"], got["own_seconds"] = int(m.group(1)), float(m.group(2))
    m = re.search(r"Sample rate: ([\d.]+)", text)
    if m:
        got["own_rate"] = float(m.group(1))
    m = re.search(r"Error rate: ([\d.]+)", text)
    if m:
        got["own_error_rate"] = float(m.group(1))
    m = re.search(r"missed (\d+) samples from the expected total of (\d+)", text)
    if m:
        got["own_missed"], got["own_expected"] = int(m.group(1)), int(m.group(2))
    return got


def aprof_sampler(bench_sampler, pid, seconds, cpu=None):
    rc, out, err, wall, cpu_s = run([bench_sampler, str(pid), str(seconds)],
                                    timeout=seconds + 60, cpu=cpu)
    if rc != 0:
        raise RuntimeError("bench_sampler exited %d: %s" % (rc, (out + err).strip()[-400:]))
    got = json.loads(out.strip().splitlines()[-1])
    got["cpu_pct"] = 100 * cpu_s / wall
    return got


def print_cpython(rnd, c):
    own = ""
    if "own_rate" in c:
        own = "  own: %d in %.2f s = %.0f/s" % (c.get("own_samples", 0),
                                               c.get("own_seconds", 0), c["own_rate"])
        if "own_missed" in c:
            own += ", missed %.1f%% of %d asked" % (100.0 * c["own_missed"] / c["own_expected"],
                                                   c["own_expected"])
        if "own_error_rate" in c:
            own += ", error rate %.2f" % c["own_error_rate"]
    print("  round %d  CPython 3.15  %8.0f samples/s (/-d)  %8.0f /s (/wall %.2f s)  "
          "frames %.1f  cpu %.0f%%%s" % (rnd, c["rate_d"], c["rate_wall"], c["wall_s"],
                                          c["mean_frames"], c["cpu_pct"], own), flush=True)


def print_aprof(rnd, label, a):
    print("  round %d  aprof %-7s %8.0f samples/s         median %.2f us  p99 %.2f us  "
          "frames %.1f  cpu %.0f%%  torn %.4f  syscalls/sample %.2f" % (
              rnd, label, a["sustained_hz"], a["median_us"], a["p99_us"], a["mean_frames"],
              a["cpu_pct"], a["torn_ratio"], a["syscalls_per_sample"]), flush=True)


def max_rates(box, args, bench_sampler, versions):
    """{"cpython": [per round], "aprof": {version: [per round]}}"""
    got = {"cpython": [], "aprof": {}}
    tcpu, scpu = (0, 1) if args.pin else (None, None)
    for version in versions:
        print("python%s, %d frames deep, %d rounds of %s s:" % (version, DEPTH, args.rounds,
                                                                 args.seconds), flush=True)
        target = box.start_loop(version, tcpu)
        got["aprof"][version] = []
        try:
            for rnd in range(1, args.rounds + 1):
                order = ["cpython", "aprof"] if rnd % 2 else ["aprof", "cpython"]
                for tool in order:
                    if tool == "cpython" and version == "3.15":
                        c = cpython_sampler(box, target.pid, args.seconds, args.cpython_rate,
                                            "%d" % rnd, scpu)
                        got["cpython"].append(c)
                        print_cpython(rnd, c)
                    elif tool == "aprof":
                        a = aprof_sampler(bench_sampler, target.pid, args.seconds, scpu)
                        got["aprof"][version].append(a)
                        print_aprof(rnd, version, a)
                    time.sleep(0.2)
        finally:
            reap(target)
    return got


def units_between(stamps, start, end):
    return sum(1 for s in stamps if start <= s < end)


def target_cpu_ns(pid):
    """Time the target's (only) thread has spent on a CPU, ns (/proc/PID/schedstat)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def ratios(on, before, after):
    """Slowdown in % of each sampled stretch against the mean of the unsampled ones around it,
    and pooled over all; every stretch is (work units, seconds)."""
    per = []
    for (n_on, t_on), (nb, tb), (na, ta) in zip(on, before, after):
        off = (nb / tb + na / ta) / 2 if tb > 0 and ta > 0 else 0.0
        if t_on > 0 and off > 0:
            per.append(100 * (1 - (n_on / t_on) / off))
    offs = list(before) + [after[-1]] if after else []
    on_n, on_t = sum(n for n, _ in on), sum(t for _, t in on)
    off_n, off_t = sum(n for n, _ in offs), sum(t for _, t in offs)
    pooled = 100 * (1 - (on_n / on_t) / (off_n / off_t)) if on_t and off_n and off_t \
        else float("nan")
    return {"per_window": per, "median_pct": statistics.median(per) if per else float("nan"),
            "mean_pct": statistics.mean(per) if per else float("nan"),
            "stdev_pct": statistics.stdev(per) if len(per) > 1 else float("nan"),
            "pooled_pct": pooled, "off_rate": off_n / off_t if off_t else 0.0,
            "on_rate": on_n / on_t if on_t else 0.0}


def parse_variants(spec):
    """--variants "default=,nonblocking=--nonblocking,old=@/tmp/old/aprof": (name, aprof
    binary or None, extra aprof args); a first word @PATH names another aprof binary (a
    before/after comparison in one run)."""
    out = []
    for item in spec.split(","):
        if not item.strip():
            continue
        name, _, extra = item.partition("=")
        words = extra.split()
        binary = words.pop(0)[1:] if words and words[0].startswith("@") else None
        out.append((name.strip(), binary, words))
    return out or [("default", None, [])]


def slowdown(box, args, aprof, version):
    """The target's work rate while `aprof record --rate 1000` is attached against the
    unsampled stretches right before and after, per wall second (the sampled stretch is
    aprof's own window from its summary) and per second the target spent on a CPU (its
    schedstat, read at the stretches' ends; the sampled stretch is then the whole aprof
    command, attach and detach included). Another tenant taking the target's CPU away shows
    in the first, not in the second; the brief stops of a thread caught mid-change show in
    the first only too. With several --variants the windows take turns (window k runs variant
    k mod n), so that the machine's drifts fall on all alike; each is compared with the
    unsampled stretches around its own windows."""
    variants = parse_variants(args.variants)
    tcpu, scpu = (0, 1) if args.pin else (None, None)
    w = args.window
    seconds = 1.0 + w + args.pairs * (2 * w + 0.4) + 0.5
    stamps_in = "%s/stamps-%s.json" % (box.inside, version)
    target = spawn(box.python(version) + [box.inside + "/deep_stack.py", "%.2f" % seconds,
                                          str(DEPTH), "0", stamps_in],
                   tcpu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    marks, windows = [], []  # (monotonic s, target CPU ns); aprof's (start, end, samples)
    try:
        if target.stdout.readline().strip() != "ready":
            raise RuntimeError("python%s slowdown target did not start" % version)
        t_end = time.monotonic() + seconds
        time.sleep(0.5)
        marks.append((time.monotonic(), target_cpu_ns(target.pid)))
        time.sleep(w)
        marks.append((time.monotonic(), target_cpu_ns(target.pid)))
        for k in range(args.pairs):
            # room for this window and an unsampled stretch after it
            if time.monotonic() + 2 * w + 0.4 > t_end:
                break
            summary = "%s/summary-%s-%d.json" % (box.host, version, k)
            _, binary, extra = variants[k % len(variants)]
            rc, out, err, _, _ = run([binary or aprof, "record", "--pid", str(target.pid), "--rate", "1000",
                                      "--duration", str(w), "-f", "collapsed", "-o",
                                      "%s/record-%s.txt" % (box.host, version), "-s", summary,
                                      "-q"] + extra, timeout=w + 60, cpu=scpu)
            marks.append((time.monotonic(), target_cpu_ns(target.pid)))
            if rc != 0:
                raise RuntimeError("aprof record exited %d: %s" % (rc, (out + err).strip()[-400:]))
            with open(summary) as f:
                doc = json.load(f)
            start = float(doc["start_monotonic_s"])
            windows.append((start, start + float(doc["duration_s"]), int(doc.get("samples", 0)),
                            float(doc.get("target_stopped_s", 0.0))))
            time.sleep(w)
            marks.append((time.monotonic(), target_cpu_ns(target.pid)))
        target.wait(timeout=seconds + 60)
    finally:
        reap(target)
    with open(box.root + stamps_in) as f:
        stamps = json.load(f)
    n = len(windows)

    def stretch(i, per_cpu):  # marks[i]..marks[i+1]
        (t0, c0), (t1, c1) = marks[i], marks[i + 1]
        return units_between(stamps, t0, t1), ((c1 - c0) / 1e9 if per_cpu else t1 - t0)

    def one(ks):
        before = [stretch(2 * k, False) for k in ks]
        after = [stretch(2 * k + 2, False) for k in ks]
        wall = ratios([(units_between(stamps, windows[k][0], windows[k][1]),
                        windows[k][1] - windows[k][0]) for k in ks], before, after)
        cpu = ratios([stretch(2 * k + 1, True) for k in ks],
                     [stretch(2 * k, True) for k in ks],
                     [stretch(2 * k + 2, True) for k in ks])
        on_t = sum(windows[k][1] - windows[k][0] for k in ks)
        return {"windows": len(ks), "wall": wall, "cpu": cpu,
                "sampled_hz": sum(windows[k][2] for k in ks) / on_t if on_t else 0.0,
                "stopped_pct": 100 * sum(windows[k][3] for k in ks) / on_t if on_t else 0.0}

    # the target's share of a CPU in the unsampled and the sampled stretches: how much the
    # machine's other load (and aprof, when the CPUs are all busy) took from it
    def share(first):
        got = [(marks[i + 1][1] - marks[i][1]) / 1e9 / (marks[i + 1][0] - marks[i][0])
               for i in range(first, 2 * n + 1, 2) if i + 1 < len(marks)]
        return statistics.median(got) if got else float("nan")
    out = {}
    for j, (name, _, _) in enumerate(variants):
        ks = [k for k in range(n) if k % len(variants) == j]
        if ks:
            out[name] = one(ks)
            out[name]["target_cpu_share"] = share(0)
            out[name]["target_cpu_share_sampled"] = share(1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=4,
                    help="each max-rate measurement, whole seconds (CPython's -d takes an int)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two tools (0: no rate measurement)")
    ap.add_argument("--pythons", default="3.14,3.15", help="aprof's per-sample cost and slowdown")
    ap.add_argument("--cpython-rate", default="1000khz", help="CPython's -r (default 1000khz)")
    ap.add_argument("--window", type=float, default=1.0, help="slowdown: seconds per window")
    ap.add_argument("--pairs", type=int, default=10, help="slowdown: sampled windows (0: none)")
    ap.add_argument("--variants", default="default=",
                    help="slowdown: NAME=APROF_ARGS,... taking turns window by window, e.g. "
                         "'default=,nonblocking=--nonblocking,old=@/tmp/old/aprof' (@PATH: another "
                         "aprof binary; default: 'default=')")
    ap.add_argument("--pin", action="store_true",
                    help="target on CPU 0, profiler on CPU 1 (both tools alike)")
    ap.add_argument("--build", default="", help="build directory (default: $APROF's, or build/)")
    args = ap.parse_args()

    if args.build:
        aprof = os.path.join(args.build, "aprof")
        bindir = args.build
    else:
        aprof = os.environ.get("APROF") or os.path.join(ROOT, "build", "aprof")
        bindir = os.environ.get("APROF_BINARY_DIR") or os.path.dirname(aprof)
    bench_sampler = os.path.join(bindir, "bench_sampler")
    for exe in (aprof, bench_sampler):
        if not os.access(exe, os.X_OK):
            sys.exit("%s missing: cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && "
                     "cmake --build build -j2" % exe)
    versions = [v.strip() for v in args.pythons.split(",") if v.strip()]
    # 3.15 first: the side-by-side comparison is the headline
    versions = sorted(set(versions) | {"3.15"}, key=lambda v: (v != "3.15", v))
    root = sid_root()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    box = Box(root)
    t_start = time.monotonic()
    try:
        box.mount_proc()
        print("aprof vs CPython's profiling.sampling, root %s, %d CPUs%s, load average %s" % (
            root, os.cpu_count(), ", pinned (target CPU 0, profiler CPU 1)" if args.pin else "",
            loadavg()), flush=True)
        rates = max_rates(box, args, bench_sampler, versions) if args.rounds > 0 else None
        slow = {}
        if args.pairs > 0:
            print("slowdown at 1 kHz (aprof record; variants %s), %d windows of %s s:" % (
                args.variants, args.pairs, args.window), flush=True)
            for version in versions:
                slow[version] = slowdown(box, args, aprof, version)
                for name, s in slow[version].items():
                    for kind, unit in (("wall", "wall s"), ("cpu", "CPU s")):
                        r = s[kind]
                        print("  python%s %s per %-6s %8.1f units unsampled, %8.1f sampled: "
                              "median %+.2f%%, mean %+.2f%% (stdev %.2f), pooled %+.2f%%  "
                              "windows: %s" % (
                                  version, name, unit, r["off_rate"], r["on_rate"],
                                  r["median_pct"], r["mean_pct"], r["stdev_pct"],
                                  r["pooled_pct"],
                                  " ".join("%+.1f" % x for x in r["per_window"])), flush=True)
                    print("  python%s %s: %.0f samples/s in the windows, target stopped %.3f%% "
                          "of them; the target had %.0f%% of a CPU unsampled, %.0f%% sampled" % (
                              version, name, s["sampled_hz"], s["stopped_pct"],
                              100 * s["target_cpu_share"],
                              100 * s["target_cpu_share_sampled"]), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        for proc in list(PROCS):
            reap(proc)
        box.close()

    med = statistics.median
    if rates:
        cp = rates["cpython"]
        cp_rate = med([c["rate_d"] for c in cp])
        print()
        print("highest sustained rate, %d frames deep, median of %d rounds of %s s "
              "(CPython: samples / -d; per wall time %.0f/s, own summary %s/s)" % (
                  DEPTH, len(cp), args.seconds, med([c["rate_wall"] for c in cp]),
                  "%.0f" % med([c["own_rate"] for c in cp]) if all("own_rate" in c for c in cp)
                  else "-"))
        print("%-28s %-7s %11s %10s %8s %15s" % ("tool", "python", "samples/s", "median_us",
                                                "p99_us", "aprof/CPython"))
        print("%-28s %-7s %11.0f %10s %8s %15s" % ("CPython profiling.sampling", "3.15", cp_rate,
                                                   "-", "-", "1.00x"))
        for version in versions:
            a = rates["aprof"][version]
            hz = med([x["sustained_hz"] for x in a])
            print("%-28s %-7s %11.0f %10.2f %8.2f %15s" % (
                "aprof (bench_sampler)", version, hz, med([x["median_us"] for x in a]),
                med([x["p99_us"] for x in a]),
                "%.2fx" % (hz / cp_rate) if version == "3.15" else "(%.2fx)" % (hz / cp_rate)))
        if len(versions) > 1:
            print("(aprof/CPython in parentheses: against CPython's 3.15 figure; 3.14 has no "
                  "profiling.sampling)")
    if slow:
        print()
        print("target slowdown with aprof record at 1 kHz (%s s windows; + is slower)"
              % args.window)
        print("%-7s %-12s %-6s %8s %10s %9s %8s %10s %9s %21s" % (
            "python", "variant", "per", "windows", "median_%", "mean_%", "stdev", "pooled_%",
            "stopped_%", "cpu_share off/on"))
        for version in versions:
            for name, s in slow[version].items():
                for kind in ("wall", "cpu"):
                    r = s[kind]
                    print("%-7s %-12s %-6s %8d %+10.2f %+9.2f %8.2f %+10.2f %9.3f %15.0f%%/%.0f%%"
                          % (version, name, kind, s["windows"], r["median_pct"], r["mean_pct"],
                             r["stdev_pct"], r["pooled_pct"], s["stopped_pct"],
                             100 * s["target_cpu_share"], 100 * s["target_cpu_share_sampled"]))
    print("\ntotal %.0f s, load average now %s; the issue's targets: >= 2x CPython's rate, "
          "median <= 5 us, slowdown < 1%%" % (time.monotonic() - t_start, loadavg()))


if __name__ == "__main__":
    main()
