"""`aprof diff` (docs/diff.md) on recordings with a known before and after.

fixtures/cpu_split.py measures with its own clock the share of time spin_a and spin_b really
ran: recorded at two ratios, diff must name them as the two largest changes, by about what the
fixture measured; the same ratio twice must not trip --fail-on function-share with a threshold
derived from the fixture's own difference and the sample count. fixtures/stall_fixture.py with
and without its blocking calls: new-culprit and stall-total must hold one way and not the other,
and the culprit lines that appeared must be the fixture's own block lines (its truth file).
Malformed inputs give one line and exit 10; a condition without its data, exit 2.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

RATE = 1000
EXIT_HOLDS, EXIT_USAGE, EXIT_BAD_INPUT = 1, 2, 10


def record_split(t, ratio, name, fmt="speedscope"):
    out = t.path(name + (".json" if fmt == "speedscope" else ".pb.gz"))
    split = t.path(name + ".split.json")
    res = t.aprof("record", "--rate", RATE, "-f", fmt, "-o", out, "--", t.py,
                  os.path.join(h.FIXTURES, "cpu_split.py"), "--duration", 3, "--ratio", ratio,
                  "--out", split, timeout=90)
    t.require_rc(res, 0, "aprof record -- cpu_split.py --ratio %s" % ratio)
    with open(split) as f:
        return out, json.load(f)


def diff(t, *args, rc=0):
    res = t.aprof("diff", *args, timeout=60)
    t.require_rc(res, rc, "aprof diff %s" % " ".join(str(a) for a in args))
    return res


def diff_json(t, *args, rc=0):
    res = diff(t, *args, "--json", rc=rc)
    try:
        return json.loads(res.stdout)
    except ValueError as e:
        raise h.Failure("diff --json is not JSON (%s): %s" % (e, h.short(res.stdout)))


def fn(doc, name):
    for f in doc["functions"]:
        if f["function"] == name:
            return f
    raise h.Failure("%s not among the functions of the diff: %s" % (name, h.short(json.dumps(doc))))


def report_data(t, path):
    import re
    with open(path, encoding="utf-8") as f:
        m = re.search(r'<script id="aprof-data" type="application/json">(.*?)</script>', f.read(), re.S)
    t.require(m, "no data in %s" % path)
    return json.loads(m.group(1))


def check_page(t, path):
    """The page in headless Chromium (tests/web/check_report.js), when the test tools are there."""
    import subprocess
    web = os.path.join(h.SOURCE_DIR, "tests", "web")
    if not os.path.isdir(os.path.join(web, "node_modules", "playwright-core")):
        print("    note: playwright-core missing: the page was not opened")
        return
    shot = os.path.join(os.environ.get("APROF_BINARY_DIR") or h.SOURCE_DIR, "diff.png")
    res = subprocess.run(["node", os.path.join(web, "check_report.js"), path, shot],
                         capture_output=True, text=True, timeout=240,
                         env=dict(os.environ, APROF_REPORT_SEARCH="spin_a"))
    page = json.loads(res.stdout.strip().splitlines()[-1])
    t.eq(page["problems"], [], "problems opening the diff page")
    t.eq(page.get("flame_title"), "Differential flame graph", "the page's mode")
    t.check(page.get("flame_colours", 0) >= 4, "the flame graph looks empty: %s" % page.get("flame_colours"))
    rows = page.get("stalls_rows", [])
    t.check(rows and rows[0][-1].startswith(("spin_a", "spin_b")),
            "the changes table does not start with spin_a or spin_b: %s" % rows[:2])


@h.once
def test_diff_cpu_split(t):
    before, own_b = record_split(t, 0.25, "before")
    after, own_a = record_split(t, 0.75, "after")
    doc = diff_json(t, before, after)
    names = [f["function"] for f in doc["functions"][:2]]
    t.eq(sorted(names), ["spin_a", "spin_b"], "the two largest changes")
    a, b = fn(doc, "spin_a"), fn(doc, "spin_b")
    # The fixture's shares are of spin_a + spin_b time; the profile's, of all sampled time
    # (interpreter start-up and the loop around them too): scale by the busy part of each run.
    for side, own in (("before", own_b), ("after", own_a)):
        busy = a[side + "_total"] + b[side + "_total"]
        n = doc[side]["entries"]  # fewer than the samples taken: a wider margin
        margin = 4 * math.sqrt(0.25 / n) + 0.02
        t.near(a[side + "_total"] / busy, own["a"], margin, "%s: spin_a's share of spin_a + spin_b"
               " (the fixture measured %.3f)" % (side, own["a"]))
    t.check(a["after_total"] - a["before_total"] > 0.3 and b["after_total"] - b["before_total"] < -0.3,
            "spin_a should grow and spin_b shrink by about 50 points: %s %s" % (a, b))
    res = diff(t, before, after, "--fail-on", "function-share:10", rc=EXIT_HOLDS)
    t.check("spin_a" in res.stdout.split("--fail-on function-share:10: HOLDS:")[-1],
            "the holding condition should name spin_a:\n%s" % res.stdout)
    t.check(res.stderr.strip() == "aprof: diff: 1 of 1 --fail-on conditions hold",
            "stderr: %r" % res.stderr)
    # the same workload again: no function grows by more than the fixture's own difference plus
    # five standard deviations of a share estimated from this many samples
    again, own_again = record_split(t, 0.75, "again")
    doc = diff_json(t, after, again)
    n = min(doc["before"]["entries"], doc["after"]["entries"])
    points = 100 * (abs(own_again["a"] - own_a["a"]) + 5 * math.sqrt(2 * 0.25 / n))
    res = diff(t, after, again, "--fail-on", "function-share:%.1f" % points)
    t.check("holds not" in res.stdout, "the same workload twice:\n%s" % res.stdout)
    text = diff(t, before, after).stdout
    t.check(text.splitlines()[0].startswith("before %s: " % before) and "spin_a (" in text,
            "text output:\n%s" % text)
    # pprof files (gzipped protobuf) read back the same way, also against a speedscope file
    pb_after, own_pb = record_split(t, 0.75, "after-pprof", fmt="pprof")
    doc = diff_json(t, before, pb_after)
    a = fn(doc, "spin_a")
    busy = a["after_total"] + fn(doc, "spin_b")["after_total"]
    margin = 4 * math.sqrt(0.25 / doc["after"]["entries"]) + 0.02
    t.near(a["after_total"] / busy, own_pb["a"], margin, "pprof: spin_a's share of spin_a + spin_b"
           " (the fixture measured %.3f)" % own_pb["a"])
    t.eq(sorted(f["function"] for f in doc["functions"][:2]), ["spin_a", "spin_b"],
         "pprof: the two largest changes")
    # the differential flame graph (--html): its merged stack tree gives each side's spin_a
    # share as the fixture measured it, from speedscope and from pprof files alike
    for name, b_path, a_path, own in (("speedscope", before, after, own_a),
                                      ("pprof", before, pb_after, own_pb)):
        page = t.path("diff-%s.html" % name)
        diff(t, b_path, a_path, "--html", page)
        data = report_data(t, page)
        t.eq(data["kind"], "diff", "%s: kind" % name)
        tree = data["tree"]
        for side, own_side in (("before", own_b), ("after", own)):
            w = {fn_name: sum(tree[side][i] for i in range(len(tree["nodes"]) // 2)
                              if tree["frames"][tree["nodes"][2 * i + 1]][0] == fn_name)
                 for fn_name in ("spin_a", "spin_b")}
            entries = doc["before" if side == "before" else "after"]["entries"]
            margin = 4 * math.sqrt(0.25 / entries) + 0.02
            t.near(w["spin_a"] / (w["spin_a"] + w["spin_b"]), own_side["a"], margin,
                   "%s --html, %s: spin_a's share in the merged tree" % (name, side))
    check_page(t, t.path("diff-speedscope.html"))


def record_stalls(t, name, *fixture_args):
    truth_path, ready = t.path(name + ".truth.json"), t.path(name + ".ready")
    fx = t.start("stall_fixture.py", truth_path, ready, *fixture_args)
    fx.wait_file(ready)
    out, summary = t.path(name + ".json"), t.path(name + ".summary.json")
    res = t.aprof("record", "--pid", fx.pid, "--rate", RATE, "-o", out, "-s", summary,
                  timeout=90)
    t.require_rc(res, 0, "aprof record (%s)" % name)
    return out, summary, fx.wait_json(truth_path)


@h.once
def test_diff_stalls(t):
    healthy, healthy_s, _ = record_stalls(t, "healthy", "--healthy", 3)
    stalling, stalling_s, truth = record_stalls(t, "stalling", "--cycles", 2)
    # healthy -> stalling: new culprit lines, the fixture's own
    doc = diff_json(t, healthy, stalling, "--before-summary", healthy_s, "--after-summary",
                    stalling_s, "--fail-on", "new-culprit", "--fail-on", "stall-total:50",
                    rc=EXIT_HOLDS)
    t.eq([c["holds"] for c in doc["conditions"]], [True, True], "conditions: %s" % doc["conditions"])
    # the blocks of 150 ms and more are stalls at the default 100 ms threshold, the 30 ms ones not
    expected = sorted({(b["file"], b["line"]) for b in truth["blocks"] if b["duration"] >= 0.1})
    t.require(len(expected) == 3, "the fixture should block at 3 lines for 150 ms or more: %s"
              % truth["blocks"])
    got = sorted({(c["file"], c["line"]) for c in doc["culprits_appeared"]})
    t.eq(got, expected, "culprit lines that appeared (the fixture's blocks of 150 ms and more)")
    t.eq(doc["culprits_vanished"], [], "culprit lines that vanished")
    t.check(doc["after"]["stalls"] >= len(expected) and doc["before"]["stalls"] == 0,
            "stall counts: %s %s" % (doc["before"], doc["after"]))
    # stalling -> healthy: nothing new, less stalled time
    doc = diff_json(t, stalling_s, healthy_s, "--fail-on", "new-culprit", "--fail-on",
                    "stall-total:0")
    t.eq([c["holds"] for c in doc["conditions"]], [False, False], "conditions the other way")
    t.eq(sorted({(c["file"], c["line"]) for c in doc["culprits_vanished"]}), expected,
         "culprit lines that vanished")
    # a condition whose data is missing
    res = diff(t, healthy, stalling, "--fail-on", "new-culprit", rc=EXIT_USAGE)
    h.one_error_line(t, res, EXIT_USAGE, "new-culprit without summaries")


@h.once
@h.smoke
def test_diff_bad_inputs(t):
    good = t.path("good.json")
    res = t.aprof("record", "--rate", 200, "-o", good, "--", t.py,
                  os.path.join(h.FIXTURES, "cpu_split.py"), "--duration", 1, timeout=60)
    t.require_rc(res, 0, "aprof record")
    text = open(good).read()
    cases = {
        "truncated.json": text[:len(text) // 2],
        "not-json.json": "hello",
        "array.json": "[1, 2, 3]",
        "other.json": '{"a": 1}',
        "bad-frame.json": text.replace('"samples":[[', '"samples":[[999999,', 1),
        "trailing.json": text + " x",
        "weights.json": text.replace('"weights":[', '"weights":[1,', 1),
    }
    cases["garbage.pb.gz"] = b"\x1f\x8b not really gzip"
    cases["random.pb"] = bytes(t.rng.randrange(256) for _ in range(4096))
    cases["empty.pb"] = ""
    for name, body in cases.items():
        path = t.path(name)
        with open(path, "wb") as f:
            f.write(body if isinstance(body, bytes) else body.encode())
        res = t.aprof("diff", good, path)
        line = h.one_error_line(t, res, EXIT_BAD_INPUT, "diff with %s" % name)
        t.check(path in line, "%s: the line should name the file: %r" % (name, line))
    res = t.aprof("diff", good, t.path("absent.json"))
    h.one_error_line(t, res, EXIT_BAD_INPUT, "a missing file")
    # well-formed but empty: no samples at all is a profile with nothing in it, not an error
    empty = t.path("empty-profile.json")
    with open(empty, "w") as f:
        f.write('{"shared": {"frames": []}, "profiles": [{"type": "sampled", "unit": "seconds", '
                '"samples": [], "weights": []}]}')
    doc = diff_json(t, empty, good)
    t.eq(doc["before"]["entries"], 0, "an empty profile's entries")
    for args in ((good,), (good, good, good), (good, good, "--fail-on", "share:5")):
        h.one_error_line(t, t.aprof("diff", *args), EXIT_USAGE, "diff %s" % " ".join(args))
    diff(t, good, good, "--fail-on", "function-share:0")  # identical files: no growth at all
    # --html: needs a profile on both sides; an unwritable page is exit 7, nothing left behind
    summary_only = t.path("summary-only.json")
    with open(summary_only, "w") as f:
        f.write('{"stalls": [], "stall_culprits": [], "loops": []}')
    h.one_error_line(t, t.aprof("diff", summary_only, summary_only, "--html", t.path("x.html")),
                     EXIT_USAGE, "diff --html of two summaries")
    h.one_error_line(t, t.aprof("diff", good, good, "--html", t.path("no-such-dir/x.html")), 7,
                     "diff --html into a missing directory")
    diff(t, empty, good, "--html", t.path("empty.html"))  # an empty side draws an empty tree
    t.eq(report_data(t, t.path("empty.html"))["tree"]["before"], [0] * (len(
        report_data(t, t.path("empty.html"))["tree"]["nodes"]) // 2), "an empty side's tree")


if __name__ == "__main__":
    h.main()
