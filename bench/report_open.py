#!/usr/bin/env python3
"""How long a big HTML report takes to open: records fixtures/busy_loop.py (1,000 tasks, about
10,000 task steps a second, the loop partly busy) with `aprof record -f html` for --seconds
(default 600: the issue's 10-minute recording), then opens the report in headless Chromium
(tests/web/check_report.js: from file://, every request refused) --opens times and prints the
report's size, what it holds and the time from navigation until the page has drawn everything.

    python3 bench/report_open.py [--seconds 600] [--python 3.12] [--build build] [--opens 3]

Needs the test dependencies (scripts/setup.sh --tests: Chromium and playwright-core)."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--python", default="3.12")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--opens", type=int, default=3)
    args = ap.parse_args()
    aprof = os.path.join(args.build, "aprof")
    interp = next(i for i in harness.interpreters() if i.label.startswith(args.python))
    tmp = tempfile.mkdtemp(prefix="aprof-report-bench-")
    clock = os.path.join(tmp, "clock.txt")
    fx = subprocess.Popen([interp.path, os.path.join(ROOT, "fixtures", "busy_loop.py"), clock,
                           "--seconds", str(args.seconds + 60)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(clock) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        report, summary = os.path.join(tmp, "report.html"), os.path.join(tmp, "summary.json")
        t0 = time.monotonic()
        res = subprocess.run([aprof, "record", "--pid", str(fx.pid), "-d", str(args.seconds), "-q",
                              "-f", "html", "-o", report, "-s", summary],
                             capture_output=True, text=True)
        took = time.monotonic() - t0
        if res.returncode != 0:
            sys.exit("aprof record failed: %s" % res.stderr)
    finally:
        fx.kill()
        fx.wait()
    with open(summary) as f:
        s = json.load(f)
    with open(report, encoding="utf-8") as f:
        page = f.read()
    data = json.loads(re.search(r'<script id="aprof-data" type="application/json">(.*?)</script>',
                                page, re.S).group(1))
    ntasks = data["async"].get("ntasks", 0)
    segs = sum(len(t["segs"]) for t in data["async"].get("timeline", []))
    print("recording: %s, %.0f s, %d samples, %d tasks seen (%d on the timeline, %d segments), "
          "%d flame graph nodes, %d stalls; record + write took %.1f s"
          % (interp.label, float(s["duration_s"]), s["samples"], ntasks,
             len(data["async"].get("timeline", [])), segs, len(data["wall"]["nodes"]) // 2,
             len(data["stalls"]), took))
    print("report: %.1f MB (page without data: %.0f KB)"
          % (len(page.encode()) / 1e6, (len(page) - len(re.search(
              r'<script id="aprof-data".*?</script>', page, re.S).group(0))) / 1e3))
    loads = []
    for _ in range(args.opens):
        r = subprocess.run(["node", os.path.join(ROOT, "tests", "web", "check_report.js"), report],
                           capture_output=True, text=True, timeout=300)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        if not out.get("ok"):
            sys.exit("the report did not open cleanly: %s" % out.get("problems"))
        loads.append(out["load_ms"])
    print("open in Chromium (navigation to fully drawn), %d times: %s ms; median %d ms"
          % (len(loads), ", ".join(map(str, loads)), sorted(loads)[len(loads) // 2]))


if __name__ == "__main__":
    main()
