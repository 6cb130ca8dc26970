"""speedscope output against the real speedscope: every file is validated against the schema that
ships in the speedscope npm package (tests/web/validate_speedscope.js) and loaded in the
speedscope app in headless Chromium (tests/web/load_in_speedscope.js), which must draw it.

Files: a synthetic profile written by tools/synth_profile.c with the real aggregator and writers
(its stdout says what it fed in: that is the ground truth here), and, when aprof can `record`, a
recording of fixtures/cpu_split.py. Screenshots are kept in $APROF_BINARY_DIR/speedscope-*.png.
Needs node and tests/web/node_modules (installed here with `npm ci` when missing).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

WEB = os.path.join(h.SOURCE_DIR, "tests", "web")
BINARY_DIR = os.environ.get("APROF_BINARY_DIR") or os.path.join(h.SOURCE_DIR, "build")
CPU_SPLIT = os.path.join(h.FIXTURES, "cpu_split.py")
FFFD = "\ufffd"


def node_ready(t):
    """node and tests/web/node_modules, running `npm ci` once if the modules are missing."""
    node = shutil.which("node")
    t.require(node, "node is not installed (scripts/setup.sh installs it)")
    if not os.path.isdir(os.path.join(WEB, "node_modules", "speedscope")):
        print("    tests/web/node_modules missing: running npm ci")
        sys.stdout.flush()
        res = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                             cwd=WEB, capture_output=True, text=True, timeout=600)
        t.require(res.returncode == 0, "npm ci in tests/web failed:\n%s" % h.short(res.stderr))
    return node


def run_node(t, script, *args, timeout=180):
    node = node_ready(t)
    try:
        res = subprocess.run([node, os.path.join(WEB, script)] + list(args), cwd=WEB,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise h.Failure("%s %s did not finish within %d s" % (script, " ".join(args), timeout))
    return res.returncode, (res.stdout.strip().splitlines() or [""])[-1], res.stderr


def check_in_speedscope(t, path, label):
    """Schema validation and the real app; both must accept the file."""
    rc, line, err = run_node(t, "validate_speedscope.js", path)
    t.check(rc == 0, "schema validation of %s failed: %s %s" % (label, line, h.short(err, 500)))
    shot = os.path.join(BINARY_DIR, "speedscope-%s.png" % label)
    rc, line, err = run_node(t, "load_in_speedscope.js", path, shot)
    t.check(rc == 0, "speedscope did not draw %s: %s %s" % (label, line, h.short(err, 500)))
    if rc == 0:
        print("    %s\n    screenshot: %s" % (line, shot))


def synth_tool():
    path = os.path.join(BINARY_DIR, "synth_profile")
    if not os.access(path, os.X_OK):
        raise h.Failure("tools/synth_profile was not built (%s)" % path)
    return path


@h.once
def synthetic_profile_loads_in_speedscope(t):
    out, folded = t.path("synth.speedscope.json"), t.path("synth.collapsed.txt")
    res = subprocess.run([synth_tool(), out, folded], capture_output=True, text=True, timeout=60)
    t.require(res.returncode == 0, "synth_profile failed (%d): %s" % (res.returncode, res.stderr))
    fed = {}  # profile name -> (samples, total ns), as synth_profile fed them to the aggregator
    for line in res.stdout.splitlines():
        _, n, total, name = line.split(" ", 3)
        fed[name] = (int(n), int(total))
    t.require(len(fed) == 4, "synth_profile printed no manifest: %r" % res.stdout)

    doc = h.load_speedscope(t, out)
    t.eq(doc["name"], "aprof synthetic profile", "file name")
    t.eq(doc.get("activeProfileIndex"), 0, "activeProfileIndex")
    names = [p["name"] for p in doc["profiles"]]
    t.eq(sorted(names), sorted(fed), "profiles")
    t.check(names[0] == 'Thread 4242 "MainThread"',
            "the first profile (opened by speedscope) is %r, expected the main thread" % names[0])
    t.check(names[-1] == "asyncio: awaiting", "synthetic profiles come after threads: %r" % names)
    for p in doc["profiles"]:
        n, total_ns = fed.get(p["name"], (None, None))
        # Consecutive samples of one stack in a thread (and one await chain in the awaiting
        # profile) are one entry: at most as many entries as samples fed, the same total time.
        t.check(n and 1 <= len(p["samples"]) <= n, "%d entries for %s, fed %s samples"
                % (len(p["samples"]), p["name"], n))
        t.near(sum(p["weights"]) * 1e9, total_ns, 1e-3 * len(p["weights"]) + 1,
               "total ns of %s" % p["name"])
    # The main thread is sampled from the first sample to the last without a gap: its time range
    # starts at 0 (seconds since the recording's first sample began) and spans its weights.
    main = doc["profiles"][0]
    t.near(main["startValue"], 0.0, 1e-9, "startValue of the main thread")
    t.near(main["endValue"] - main["startValue"], sum(main["weights"]), 1e-6,
           "time range of the main thread")
    frames = doc["shared"]["frames"]
    weird = [f for f in frames if f["name"].startswith("we")]
    t.eq([f["name"] for f in weird], ['we"ird\n\x01name' + FFFD + ';semi\\ \u20ac'],
         "hostile frame name after JSON round trip")
    t.check(all("file" not in f for f in frames if f["name"] in ("<idle>", "<task fetch-7>")),
            "frames without a file must not have a file key")
    t.check(all("line" not in f for f in frames if f["name"] == "deflate"),
            "frames without a line must not have a line key")

    with open(folded, encoding="utf-8") as f:
        rows = h.parse_collapsed(f.read())
    counts = {}
    for thread, _, count in rows:
        counts[thread] = counts.get(thread, 0) + count
    t.eq(counts, {name: n for name, (n, _) in fed.items()}, "collapsed sample counts per profile")

    check_in_speedscope(t, out, "synthetic")


def aprof_can_record():
    path = os.environ.get("APROF")
    if not path or not os.access(path, os.X_OK):
        return None
    try:
        res = subprocess.run([path, "help", "record"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if res.returncode == 0 and "record" in res.stdout + res.stderr else None


@h.once
def recorded_profile_loads_in_speedscope(t):
    if not aprof_can_record():
        print("    note: $APROF is missing or has no `record`: recorded part skipped")
        raise h.Skip("aprof record unavailable")
    if not os.path.exists(CPU_SPLIT):
        print("    note: fixtures/cpu_split.py is missing: recorded part skipped")
        raise h.Skip("fixtures/cpu_split.py missing")
    out, split = t.path("cpu_split.speedscope.json"), t.path("split.json")
    res = t.aprof("record", "-q", "-o", out, "--", t.py, CPU_SPLIT, "--duration", "1.5",
                  "--out", split, timeout=120)
    t.require_rc(res, 0, "aprof record")
    doc = h.load_speedscope(t, out)
    with open(split) as f:
        truth = json.load(f)
    main = h.merged_profile(doc, truth["threads"]["main"])
    t.require(main, "no profile for the main thread %s" % truth["threads"]["main"])
    t.check(h.weight_with(doc, main, "spin_a") > 0 and h.weight_with(doc, main, "spin_b") > 0,
            "spin_a and spin_b are both in the recorded profile")
    check_in_speedscope(t, out, "cpu_split")


@h.once
@h.smoke
def recorded_trace_loads_in_speedscope(t):
    """record -f trace of the stall fixture, opened by speedscope's Trace Event Format importer
    (one profile per thread, the first one drawn)."""
    if not aprof_can_record():
        raise h.Skip("aprof record unavailable")
    truth, ready = t.path("truth.json"), t.path("ready")
    out = t.path("stall.trace.json")
    res = t.aprof("record", "-q", "-f", "trace", "-o", out, "--", t.py,
                  os.path.join(h.FIXTURES, "stall_fixture.py"), truth, ready,
                  "--cycles", "1", timeout=120)
    t.require_rc(res, 0, "aprof record -f trace")
    rc, line, err = run_node(t, "load_in_speedscope.js", out,
                             os.path.join(BINARY_DIR, "speedscope-trace.png"))
    t.check(rc == 0, "speedscope did not draw the trace: %s %s" % (line, h.short(err, 500)))


if __name__ == "__main__":
    h.main()
