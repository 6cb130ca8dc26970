"""Event-loop stall detection against fixtures that block their own loop at known lines and
measure the blocks with their own clock (fixtures/stall_fixture.py), a healthy loop, uvloop,
and a real aiohttp server under loopback load."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

RATE = 1000.0
THRESHOLD = 0.1  # aprof's default --stall-threshold
# A stall's duration is exact to within its own `uncertainty_s` (half of each gap between the
# samples that straddle its ends: one interval at the full rate, more when samples came late or
# were dropped as torn). On top of that the fixture's clock brackets only the blocking call, not
# the rest of the task step: 2 ms. And the bound itself must stay small, or the detector is not
# telling much: at most 25 ms (samples missing for 50 ms around an end).
SLACK = 0.002
MAX_UNCERTAINTY = 0.025
# 3.10: about 63% of the loop thread's samples in this fixture end in <unreadable> (measured
# 2,584-2,762 of ~4,200, the same since session 3; docs/limits.md), so a stall's end can go
# unseen longer: 28.2 ms seen once in CI, 13 ms in six local runs. Bound: samples missing for
# 80 ms around an end.
MAX_UNCERTAINTY_310 = 0.040
# The figure, two sample intervals + 2 ms, must hold for every stall whose ends were seen
# at the sampling rate (uncertainty within two intervals); around the others samples were lost
# as torn (a start hidden in a churning loop, mostly on 3.10), and there the stall's own
# uncertainty is the bound.
SPEC_TOLERANCE = 2 / RATE + 0.002


def record_until_exit(t, fx, extra=()):
    """aprof record --pid until the fixture exits; returns (summary, speedscope doc)."""
    out, summary = t.path("out.json"), t.path("summary.json")
    res = t.aprof("record", "--pid", fx.pid, "--rate", RATE, "-o", out, "-s", summary, *extra,
                  timeout=90)
    t.require_rc(res, 0, "aprof record")
    with open(summary) as f:
        doc = json.load(f)
    return doc, h.load_speedscope(t, out), res


def function_name(t, qualname):
    """co_qualname on 3.11+, co_name on 3.10."""
    return qualname if not t.interp.version.startswith("3.10") else qualname.rsplit(".", 1)[-1]


def overlaps(stall, block):
    s0 = float(stall["start_monotonic_s"])
    s1 = s0 + float(stall["duration_s"])
    return s0 < block["start"] + block["duration"] and block["start"] < s1


def check_stalls_against_truth(t, summary, truth):
    stalls = summary["stalls"]
    blocks = truth["blocks"]
    t.check(blocks, "the fixture recorded no blocks")
    outside_spec = []
    for b in blocks:
        found = [s for s in stalls if overlaps(s, b)]
        what = "%s block at line %d (%.1f ms)" % (b["kind"], b["line"], b["duration"] * 1e3)
        if b["duration"] < THRESHOLD:
            t.check(not found, "%s was reported as a stall: %s" % (what, found))
            continue
        if not t.check(len(found) == 1, "%s: expected one stall, got %d" % (what, len(found))):
            continue
        s = found[0]
        dur, unc = float(s["duration_s"]), float(s["uncertainty_s"])
        # (sample gaps are exponential around 1 / RATE, so a stall's two straddling gaps can
        # both be short: the bound is only required to be positive and small)
        bound = MAX_UNCERTAINTY_310 if t.interp.version.startswith("3.10") else MAX_UNCERTAINTY
        t.check(0 < unc <= bound, "%s: uncertainty %.4f s" % (what, unc))
        t.near(dur, b["duration"], unc + SLACK, "%s: duration" % what)
        if unc <= 2 / RATE * 1.05 and abs(dur - b["duration"]) > SPEC_TOLERANCE:
            outside_spec.append("%s: %.1f ms off (uncertainty %.1f ms)"
                                % (what, (dur - b["duration"]) * 1e3, unc * 1e3))
        t.eq(s["culprit"]["file"], b["file"], "%s: culprit file" % what)
        t.eq(s["culprit"]["line"], b["line"], "%s: culprit line" % what)
        t.eq(s["culprit"]["function"], function_name(t, b["function"]), "%s: culprit function" % what)
        t.eq(s.get("task"), b["task"], "%s: task" % what)
        t.eq(s["impact"], "critical" if b["duration"] >= 2 * THRESHOLD else "warning",
             "%s: impact" % what)
        t.eq(s["clipped"], False, "%s: clipped" % what)
        t.check(s["stack"] and s["stack"][-1]["line"] == b["line"],
                "%s: representative stack does not end at the blocking line: %s" % (what, s["stack"][-3:]))
    t.check(not outside_spec, "stalls seen at the sampling rate but off by more than two "
            "intervals + 2 ms: %s" % outside_spec)
    for s in stalls:
        t.check(any(overlaps(s, b) and b["duration"] >= THRESHOLD for b in blocks),
                "a stall that matches no block of the fixture: %s" % json.dumps(s)[:400])
    # Grouped by culprit line: one group per blocking line, with the fixture's own count and
    # total (each stall exact to within its uncertainty).
    lines = {}
    for b in blocks:
        if b["duration"] >= THRESHOLD:
            n, total = lines.get(b["line"], (0, 0.0))
            lines[b["line"]] = (n + 1, total + b["duration"])
    groups = {g["culprit"]["line"]: g for g in summary.get("stall_culprits", [])}
    t.eq(sorted(groups), sorted(lines), "stall_culprits lines")
    unc = {}
    for s in stalls:
        unc[s["culprit"]["line"]] = unc.get(s["culprit"]["line"], 0) + float(s["uncertainty_s"])
    for line, (n, total) in lines.items():
        g = groups.get(line)
        if not g:
            continue
        t.eq(g["count"], n, "stall_culprits: stalls at line %d" % line)
        t.near(float(g["total_s"]), total, unc.get(line, 0) + n * SLACK,
               "stall_culprits: total at line %d" % line)
    totals = [float(g["total_s"]) for g in summary.get("stall_culprits", [])]
    t.eq(totals, sorted(totals, reverse=True), "stall_culprits ordered by total")


def check_loop_lag(t, summary, kind):
    loops = summary["loops"]
    if not t.check(len(loops) == 1, "expected one event loop, got %s" % loops):
        return
    lag = loops[0]["loop_lag"]
    t.eq(loops[0]["kind"], kind, "loop kind")
    # A loop the background keeps saturated (the 300 chatter tasks alone make ~55,000 steps a
    # second: 3.10 runs them with hardly a pause) is seldom at its selector: it then has few,
    # long busy stretches, and says so with its blocked_ratio.
    t.check(lag["count"] > 10 or lag["blocked_ratio"] >= 0.9, "too few busy stretches: %s" % lag)
    t.check(0 < lag["min_s"] <= lag["p50_s"] <= lag["p95_s"] <= lag["p99_s"] <= lag["max_s"],
            "lag statistics out of order: %s" % lag)
    t.check(lag["max_s"] >= 0.25, "the 250 ms block is not the longest busy stretch: %s" % lag)
    t.check(0 < lag["blocked_ratio"] <= 1, "blocked_ratio: %s" % lag)


def check_stall_profile(t, doc, summary):
    profiles = [p for p in doc["profiles"] if p["name"] == "event loop stalls"]
    if not t.check(len(profiles) == 1, "no 'event loop stalls' profile"):
        return
    total = sum(profiles[0]["weights"])
    expected = sum(float(s["duration_s"]) for s in summary["stalls"])
    t.near(total, expected, 0.001, "event loop stalls profile: total weight")


def check_no_mixed_stacks(t, doc, truth):
    """At its blocking lines Blocker.run calls only C (time.sleep, socket.recv, time.monotonic):
    a Python frame above it there is a stack read at two moments (the coroutine frame after it
    had moved on, the callees from before). Allow one sample in a thousand (docs/limits.md)."""
    frames = doc["shared"]["frames"]
    blocking = {(b["file"], b["line"]) for b in truth["blocks"]}
    runner = function_name(t, "Blocker.run")
    total, mixed = 0, []
    for prof in doc["profiles"]:
        if not prof["name"].startswith("Thread "):
            continue
        for stack in prof["samples"]:
            total += 1
            for caller, callee in zip(stack, stack[1:]):
                fc = frames[caller]
                if fc["name"] == runner and (fc.get("file"), fc.get("line")) in blocking and \
                        not frames[callee]["name"].startswith("<"):
                    mixed.append([frames[i]["name"] for i in stack[-4:]])
                    break
    t.check(total > 0, "no thread samples")
    t.check(len(mixed) <= max(2, total // 1000), "%d of %d samples pair a blocking line of "
            "Blocker.run with a Python callee, e.g. %s" % (len(mixed), total, mixed[:3]))


def run_stall_fixture(t, python=None, uvloop=False):
    truth_path, ready = t.path("truth.json"), t.path("ready")
    args = [truth_path, ready, "--cycles", 2] + (["--uvloop"] if uvloop else [])
    fx = t.start("stall_fixture.py", *args, python=python)
    fx.wait_file(ready)
    summary, doc, res = record_until_exit(t, fx)
    truth = fx.wait_json(truth_path)
    check_stalls_against_truth(t, summary, truth)
    check_loop_lag(t, summary, "uvloop" if uvloop else "asyncio")
    check_stall_profile(t, doc, summary)
    check_no_mixed_stacks(t, doc, truth)
    t.check("worst event loop stalls" in res.stderr, "summary lacks the worst stalls:\n" + res.stderr)


@h.per_interpreter
@h.smoke
def test_stalls_match_truth(t):
    run_stall_fixture(t)


def require_module(t, module):
    """Skip unless the test's interpreter imports `module` (Debian's python3-uvloop and
    python3-aiohttp: for its python3.11, and for sid's python3.14 in the sid root)."""
    import subprocess
    if subprocess.run([t.py, "-c", "import " + module], capture_output=True).returncode:
        raise h.Skip("%s is not installed for this interpreter" % module)


@h.per_interpreter
def test_stalls_uvloop(t):
    require_module(t, "uvloop")
    run_stall_fixture(t, uvloop=True)


@h.representative
def test_healthy_loop_has_no_stalls(t):
    truth_path, ready = t.path("truth.json"), t.path("ready")
    fx = t.start("stall_fixture.py", truth_path, ready, "--healthy", 5)
    fx.wait_file(ready)
    summary, _, _ = record_until_exit(t, fx)
    t.eq(summary["stalls"], [], "stalls in a healthy loop")
    loops = summary["loops"]
    t.check(loops and loops[0]["loop_lag"]["count"] > 20 and loops[0]["loop_lag"]["p99_s"] < 0.05,
            "the healthy loop was not seen working, or with long busy stretches: %s" % loops)


@h.per_interpreter
def test_dump_loop_state(t):
    # A loop blocked for good: dump says busy, not ended, for at least the watch time.
    truth_path, ready = t.path("truth.json"), t.path("ready")
    fx = t.start("stall_fixture.py", truth_path, ready, "--hang")
    truth = fx.wait_json(truth_path)
    time.sleep(1.0)  # past the 0.5 s grace and the 0.1 s before the hang
    res = t.aprof("dump", "--pid", fx.pid, "--json", "--watch", 150, timeout=30)
    t.require_rc(res, 0, "aprof dump --json")
    doc = json.loads(res.stdout)
    main = [th for th in doc["threads"] if th["is_main"]][0]
    loop = main.get("event_loop")
    t.require(loop, "no event_loop in the main thread: %s" % main.keys())
    t.eq((loop["state"], loop.get("busy_ended")), ("busy", False), "a hung loop's state")
    t.check(loop.get("busy_for_s", 0) >= 0.14, "busy_for_s %s < the 150 ms watched" % loop)
    t.eq(main["frames"][-1]["line"], truth["hang_line"], "the hung loop's innermost line")
    blocker = [k for k in doc.get("tasks", []) if k["name"] == "blocker"]
    t.check(blocker and blocker[0]["state"] == "running", "task blocker is not running: %s" % blocker)
    text = t.aprof("dump", "--pid", fx.pid, "--no-async", timeout=30)
    t.check("busy for at least" in text.stdout, "text dump lacks the busy loop:\n" + text.stdout)
    fx.kill()
    # A healthy loop: idle, or busy only briefly.
    truth_path, ready = t.path("truth2.json"), t.path("ready2")
    fx = t.start("stall_fixture.py", truth_path, ready, "--healthy", 5, name="healthy")
    fx.wait_file(ready)
    for _ in range(3):
        doc = json.loads(t.aprof("dump", "--pid", fx.pid, "--json", "--no-async").stdout)
        loop = [th for th in doc["threads"] if th["is_main"]][0].get("event_loop")
        t.check(loop and (loop["state"] == "idle" or (loop["busy_ended"] and
                                                      loop["busy_for_s"] < 0.05)),
                "a healthy loop looks blocked: %s" % loop)


@h.representative
def test_aiohttp_blocking_handler(t):
    require_module(t, "aiohttp")
    ready = t.path("ready.json")
    app = t.start("aiohttp_app.py", ready, name="app")
    info = app.wait_json(ready)
    load = t.start("http_load.py", info["port"], 6, 4, "/fast,/compute,/fast,/legacy",
                   name="load")
    time.sleep(0.5)
    summary = t.path("summary.json")
    res = t.aprof("record", "--pid", app.pid, "--duration", 4, "-o", t.path("out.json"),
                  "-s", summary, timeout=60)
    t.require_rc(res, 0, "aprof record --pid (aiohttp)")
    with open(summary) as f:
        stalls = json.load(f)["stalls"]
    t.check(len(stalls) >= 3, "expected several stalls from /legacy, got %d" % len(stalls))
    for s in stalls:
        if s["clipped"]:  # began before the recording or outlasted it: duration unknown
            t.check(float(s["duration_s"]) <= 0.32, "clipped stall longer than the block: %s" % s)
            continue
        t.eq((s["culprit"]["file"], s["culprit"]["line"], s["culprit"]["function"]),
             (info["file"], info["blocking_line"], "fetch_legacy_report"), "aiohttp stall culprit")
        t.near(float(s["duration_s"]), 0.3, 0.02, "aiohttp stall duration")
    t.check(app.alive(), "the aiohttp app died")
    load.proc.wait(timeout=20)


if __name__ == "__main__":
    h.main()
