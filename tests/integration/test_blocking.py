"""`aprof record --blocking`: a valid profile, and the target is never left stopped, whatever
happens to aprof (SIGKILL, SIGTERM, SIGINT at random moments)."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

REPEATS = 3  # kills per signal and interpreter


def read_counter(path):
    with open(path) as f:
        text = f.read().strip()
    return int(text) if text else 0


def start_heartbeat_fixture(t, duration, *extra):
    ready, heartbeat = t.path("ready.json"), t.path("heartbeat")
    fx = t.start("cpu_split.py", "--duration", duration, "--ready", ready,
                 "--heartbeat", heartbeat, *extra)
    fx.wait_json(ready)
    fx.heartbeat = heartbeat
    return fx


def signal_caught(pid, sig):
    """Whether process pid has a handler installed for sig (SigCgt of /proc/PID/status)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (int(sig) - 1) & 1)
    except OSError:
        pass
    return False


def check_running_free(t, fx, what):
    """No thread of the target is stopped or traced, and its heartbeat keeps counting.
    A stopped target gets SIGCONT afterwards so later checks start from a running one."""
    if not t.check(fx.alive(), "%s: the target died (exit code %s)" % (what, fx.proc.returncode)):
        return False
    ok = True
    for _ in range(3):
        states = h.proc_state(fx.pid)
        bad = {tid: s for tid, s in states.items() if s[0][:1] in "tT" or s[1] != 0}
        if bad:
            ok = t.check(False, "%s: target threads left stopped or traced "
                                "{tid: (State, TracerPid)}: %r" % (what, bad))
            break
        time.sleep(0.05)
    before = read_counter(fx.heartbeat)
    deadline = time.monotonic() + 1.0
    while read_counter(fx.heartbeat) <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    ok = t.check(read_counter(fx.heartbeat) > before,
                 "%s: the target made no progress for 1 s" % what) and ok
    if not ok:
        os.kill(fx.pid, signal.SIGCONT)
    return ok


@h.per_interpreter
@h.smoke
def test_blocking_record(t):
    ratio = round(t.rng.uniform(0.2, 0.8), 2)
    split, out = t.path("split.json"), t.path("out.json")
    fx = start_heartbeat_fixture(t, 3, "--ratio", ratio, "--out", split, "--timeline")
    summary = t.path("summary.json")
    res = t.aprof("record", "--pid", fx.pid, "--blocking", "--rate", 1000, "--duration", 1.5,
                  "-o", out, "-s", summary, timeout=20)
    t.require_rc(res, 0, "record --blocking")
    check_running_free(t, fx, "after record --blocking")
    doc = h.load_speedscope(t, out)
    main = h.merged_profile(doc, fx.pid)
    t.require(main, "no main thread profile in %s" % [p.get("name") for p in doc["profiles"]])
    seconds = h.profile_seconds(main)
    t.near(seconds, 1.5, 0.15, "main thread weights (s) for --duration 1.5")
    a = h.weight_with(doc, main, "spin_a")
    b = h.weight_with(doc, main, "spin_b")
    t.require(a + b > 0, "no sample has spin_a or spin_b on the stack")
    truth = fx.wait_json(split, timeout=10)
    expected = h.window_split(truth["timeline"], *h.sampled_window(summary))
    t.near(a / (a + b), expected, h.split_tolerance(expected or 0.5, h.split_samples(doc, main)),
           "--blocking: share of spin_a (fixture measured %.3f in "
           "the sampled window, %.3f overall)" % (expected or 0, truth["a"]))


@h.once
def test_blocking_weights_add_up_on_a_crowded_cpu(t):
    """--blocking on a target whose CPU three busy processes share: a thread waiting for the
    CPU takes milliseconds to stop (the target is held stopped about 40% of the time), more
    than a sample's own time may count for the state it found. That time is owed to the
    samples that follow, not dropped: the main thread's weights add up to the recording's
    length as the wall clock gives it. Before, 1.16 to 1.41 s of 1.5 were credited with the
    fixture on a CPU that the suite's own tests and two hogs shared (and 1.05 to 1.32 s in
    test_blocking_record under the CPU-hog runs); this set-up is milder (1.38 to 1.48 s)."""
    import shutil
    import subprocess
    if not shutil.which("taskset"):
        raise h.Skip("no taskset")
    cpu = str(h.idlest_cpu())
    hogs = [subprocess.Popen(["taskset", "-c", cpu, "sh", "-c", "while :; do :; done"])
            for _ in range(3)]
    try:
        fx = start_heartbeat_fixture(t, 8, "--ratio", 0.5, "--out", t.path("split.json"))
        h.pin_threads(fx.pid, cpu)
        time.sleep(1.0)  # the hogs and the fixture settle on the CPU
        out, summary = t.path("out.json"), t.path("summary.json")
        res = t.aprof("record", "--pid", fx.pid, "--blocking", "--rate", 1000, "--duration",
                      1.5, "-o", out, "-s", summary, "-q", timeout=30)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    t.require_rc(res, 0, "record --blocking")
    doc = h.load_speedscope(t, out)
    main = h.merged_profile(doc, fx.pid)
    t.require(main, "no main thread profile")
    with open(summary) as f:
        facts = json.load(f)
    # 0.1 s: what may still be owed at the end (0-22 ms seen) and the drift of a mean gap
    # taken over a run whose gaps change
    t.near(h.profile_seconds(main), 1.5, 0.1, "main thread weights (s) for --duration 1.5 "
           "(target held stopped %.2f s, %d samples, %.2f s uncredited)" % (
               facts["target_stopped_s"], facts["samples"], facts.get("uncredited_s", 0)))
    print("    weights %.3f s of 1.5, target held stopped %.2f s, %d samples" % (
        h.profile_seconds(main), facts["target_stopped_s"], facts["samples"]))


@h.representative
# (not the sanitizer run's test: ASan's start-up takes tens of milliseconds, in which a signal
# sent this early finds no handler installed yet and ends aprof before it attached)
def test_blocking_kill_never_leaves_target_stopped(t):
    fx = start_heartbeat_fixture(t, 120, "--sleeper")
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        for i in range(REPEATS):
            delay = round(t.rng.uniform(0.0, 0.4), 3)
            what = "%s to `record --blocking --rate 2000` after %.3f s" % (sig.name, delay)
            out = t.path("out-%s-%d.json" % (sig.name, i))
            proc = t.aprof_background("record", "--pid", fx.pid, "--blocking", "--rate", 2000,
                                      "-o", out, "--quiet", name="aprof-%s-%d" % (sig.name, i))
            time.sleep(delay)
            # the kernel's word on whether aprof has its handler yet (its start-up takes
            # milliseconds, more on a loaded machine): a signal before it ends aprof at once
            handled = signal_caught(proc.pid, sig)
            proc.send_signal(sig)
            res = t.finish(proc, timeout=10)
            early = res.rc == -sig and not os.path.exists(out) and not handled
            if sig == signal.SIGKILL:
                t.check(res.rc == -signal.SIGKILL, "%s: aprof exit status %s" % (what, res.rc))
            elif early:
                pass  # the signal arrived before aprof's main() could install its handlers
            elif t.check(res.rc in (0, 130), "%s: expected exit code 0 (or 130 when nothing "
                                             "was sampled yet)\n%s" % (what, res.describe())):
                if res.rc == 0:
                    h.load_speedscope(t, out)
            check_running_free(t, fx, what)


if __name__ == "__main__":
    h.main()
