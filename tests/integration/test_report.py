"""`aprof record -f html` against the stall fixture (fixtures/stall_fixture.py, which blocks its
loop at known lines and times each block with its own clock):

- on every interpreter, the data embedded in the page: the stalls grouped by culprit line are
  the fixture's blocking lines with its own counts and totals; the cpu view leaves out the time
  the fixture slept (time.sleep) and keeps the time it computed; the lag histogram counts every
  busy stretch; the blocker task is on the task timeline; the facts are the run's;
- once, the page itself in headless Chromium (tests/web/check_report.js): it opens from a file
  with every request refused, with no console error, draws the flame graph, lists the stalls
  by the fixture's lines, searches and zooms; screenshots go to $APROF_BINARY_DIR (the one in
  docs/ is such a screenshot)."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

RATE = 1000.0
THRESHOLD = 0.1
SLACK = 0.002
MAX_UNCERTAINTY = 0.025
MAX_UNCERTAINTY_310 = 0.040
WEB = os.path.join(h.SOURCE_DIR, "tests", "web")
BINARY_DIR = os.environ.get("APROF_BINARY_DIR") or os.path.join(h.SOURCE_DIR, "build")


def embedded_data(t, path):
    with open(path, encoding="utf-8") as f:
        page = f.read()
    m = re.search(r'<script id="aprof-data" type="application/json">(.*?)</script>', page, re.S)
    t.require(m, "no data element in %s" % path)
    t.check("<!--APROF-DATA-->" not in page, "the data marker is still in the page")
    return json.loads(m.group(1)), page


def record_report(t, cycles=1):
    truth_path, ready = t.path("truth.json"), t.path("ready")
    fx = t.start("stall_fixture.py", truth_path, ready, "--cycles", cycles)
    fx.wait_file(ready)
    out, summary = t.path("report.html"), t.path("summary.json")
    res = t.aprof("record", "--pid", fx.pid, "--rate", RATE, "-f", "html", "-o", out, "-s", summary,
                  timeout=120)
    t.require_rc(res, 0, "aprof record -f html")
    truth = fx.wait_json(truth_path)
    with open(summary) as f:
        return out, json.load(f), truth, fx.pid


def weight_at_line(tree, function, line):
    """Microseconds of samples whose innermost frame is function:line."""
    frames, nodes = tree["frames"], tree["nodes"]
    total = 0
    for p in tree["profiles"]:
        if p["tid"] <= 0:
            continue
        L = p["leaves"]
        for k in range(0, len(L), 3):
            f = frames[nodes[2 * L[k] + 1]]
            if f[0] == function and f[2] == line:
                total += L[k + 1]
    return total


@h.representative
@h.smoke
def test_report_data_matches_the_stall_fixture(t):
    out, summary, truth, pid = record_report(t)
    data, page = embedded_data(t, out)
    t.eq(data["kind"], "recording", "kind")
    facts = data["facts"]
    t.eq((facts["pid"], facts["samples"]), (pid, summary["samples"]), "facts: pid and samples")
    t.eq(facts["python_version"], summary["target"]["python_version"], "facts: Python")
    # stalls by culprit line: the fixture's lines, counts and totals
    lines = {}
    for b in truth["blocks"]:
        if b["duration"] >= THRESHOLD:
            n, total = lines.get(b["line"], (0, 0.0))
            lines[b["line"]] = (n + 1, total + b["duration"])
    groups = {g["culprit"][2]: g for g in data["stall_groups"]}
    t.eq(sorted(groups), sorted(lines), "stall groups: the fixture's blocking lines")
    bound = MAX_UNCERTAINTY_310 if t.interp.version.startswith("3.10") else MAX_UNCERTAINTY
    for line, (n, total) in lines.items():
        g = groups.get(line)
        if not g:
            continue
        t.eq((g["count"], g["culprit"][1]), (n, truth["blocks"][0]["file"]), "stalls at line %d" % line)
        t.near(g["total_s"], total, n * (bound + SLACK), "stalled time at line %d" % line)
        t.check(g["stack"] and g["stack"][-1][2] == line, "line %d: example stack %s" % (line, g["stack"][-2:]))
    t.eq(len(data["stalls"]), len(summary["stalls"]), "stalls listed")
    # the cpu view against what the fixture did at each line: slept (not on a CPU) or computed
    kinds = {b["kind"]: b["line"] for b in truth["blocks"]}
    fn = "Blocker.run" if not t.interp.version.startswith("3.10") else "run"
    wall_sleep = weight_at_line(data["wall"], fn, kinds["sleep"])
    cpu_sleep = weight_at_line(data["cpu"], fn, kinds["sleep"])
    wall_cpu = weight_at_line(data["wall"], fn, kinds["cpu"])
    cpu_cpu = weight_at_line(data["cpu"], fn, kinds["cpu"])
    t.check(wall_sleep > 0.1e6 and wall_cpu > 0.05e6, "wall view: %d us at the sleep line, %d us "
            "at the cpu line" % (wall_sleep, wall_cpu))
    # a thread asleep in time.sleep is not running: only the samples that caught it going to
    # sleep or waking up may count; a thread computing is running but when preempted
    t.check(cpu_sleep <= 0.1 * wall_sleep, "cpu view keeps %d of %d us at the time.sleep line"
            % (cpu_sleep, wall_sleep))
    t.check(cpu_cpu >= 0.7 * wall_cpu, "cpu view keeps only %d of %d us at the computing line"
            % (cpu_cpu, wall_cpu))
    # loops: every busy stretch in the histogram; tasks: the blocker on the timeline
    loops = [L for L in data["loops"] if L["tid"] == pid]
    if t.check(len(loops) == 1, "one loop in the main thread: %s" % [L["tid"] for L in data["loops"]]):
        t.eq(sum(loops[0]["hist"]), loops[0]["stretches"], "lag histogram: every busy stretch")
        t.check(max(loops[0]["max_lag_ms"]) >= 240, "lag over time misses the 250 ms block")
    names = [r["name"] for r in data["async"]["timeline"]]
    t.check("blocker" in names, "the blocker task is not on the timeline (%d rows)" % len(names))
    t.check(data["async"]["stats"]["seen"] >= 300, "tasks seen: %s" % data["async"]["stats"])
    page_only = len(page) - len(re.search(r'<script id="aprof-data".*?</script>', page, re.S).group(0))
    t.check(page_only < 1000000, "the page without its data is %d bytes" % page_only)


def node_ready():
    return os.path.isdir(os.path.join(WEB, "node_modules", "playwright-core")) and \
        os.path.exists(os.environ.get("APROF_CHROMIUM", "/usr/bin/chromium"))


@h.once
def test_report_opens_in_chromium(t):
    if not node_ready():
        raise h.Skip("playwright-core or Chromium missing (scripts/setup.sh --tests)")
    out, summary, truth, pid = record_report(t, cycles=2)
    shot = os.path.join(BINARY_DIR, "report.png")
    env = dict(os.environ, APROF_REPORT_SEARCH="Blocker")
    res = subprocess.run(["node", os.path.join(WEB, "check_report.js"), out, shot, "--sections"],
                         capture_output=True, text=True, timeout=240, env=env)
    t.require(res.stdout.strip(), "check_report.js printed nothing: %s" % h.short(res.stderr))
    page = json.loads(res.stdout.strip().splitlines()[-1])
    t.eq(page["problems"], [], "problems opening the report")
    rows = page.get("stalls_rows", [])
    lines = sorted({b["line"] for b in truth["blocks"] if b["duration"] >= THRESHOLD})
    shown = sorted(int(m.group(1)) for r in rows for m in [re.search(r"stall_fixture\.py:(\d+)\)$", r[-1])] if m)
    t.eq(shown, lines, "the stalls table's culprit lines")
    t.check(page.get("flame_colours", 0) >= 20, "the flame graph looks empty: %s colours" % page.get("flame_colours"))
    t.check("matches:" in page.get("search_status", ""), "search status: %r" % page.get("search_status"))
    t.check("zoomed" in page.get("zoom_status", ""), "zoom status: %r" % page.get("zoom_status"))
    t.check(str(pid) in page["facts"].get("target", ""), "facts: %s" % page["facts"])
    t.check(any("MainThread" in L for L in page.get("loops", [])), "loops: %s" % page.get("loops"))
    t.check(page.get("stall_stack") and "longest stall" in page["stall_stack"][0],
            "a stall group's stack: %s" % page.get("stall_stack"))
    print("    note: opened in %d ms; screenshots %s" % (page["load_ms"], shot))


@h.once
def test_report_and_trace_refuse_segments(t):
    for fmt in ("html", "trace"):
        res = t.aprof("record", "-f", fmt, "--segment", "5", "--", t.py, "-c", "pass")
        line = h.one_error_line(t, res, 2, "-f %s --segment" % fmt)
        t.check("--segment" in line, "the message names --segment: %r" % line)


if __name__ == "__main__":
    h.main()
