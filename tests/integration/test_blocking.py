"""`aprof record --blocking`: a valid profile, and the target is never left stopped, whatever
happens to aprof (SIGKILL, SIGTERM, SIGINT at random moments)."""
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
            proc.send_signal(sig)
            res = t.finish(proc, timeout=10)
            early = res.rc == -sig and not os.path.exists(out) and delay < 0.005
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
