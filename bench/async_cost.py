#!/usr/bin/env python3
"""Cost of async-aware recording at 1000 Hz.

    python3 bench/async_cost.py [--build DIR] [--python PY] [--seconds S]

Records a healthy asyncio app (fixtures/stall_fixture.py --healthy: 1,000 tasks ping-ponging
through queues) for S seconds, once with asyncio awareness (task snapshots at 10 Hz, stitching,
awaiting profile, task summary) and once with --no-async, and prints aprof's own CPU use
(user + system time / wall time) and its mean cost per sample, as JSON.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(aprof, python, seconds, extra):
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready")
        app = subprocess.Popen([python, os.path.join(ROOT, "fixtures", "stall_fixture.py"),
                                os.path.join(tmp, "truth.json"), ready, "--healthy",
                                str(seconds + 5)], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(ready) and time.monotonic() < deadline:
                time.sleep(0.05)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            res = subprocess.run([aprof, "record", "--pid", str(app.pid), "--rate", "1000",
                                  "--duration", str(seconds), "-o", os.path.join(tmp, "o.json"),
                                  "-s", os.path.join(tmp, "s.json")] + extra,
                                 capture_output=True, text=True, timeout=seconds + 60)
            wall = time.monotonic() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            with open(os.path.join(tmp, "s.json")) as f:
                summary = json.load(f)
        finally:
            app.kill()
            app.wait()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"([\d.]+) us per sample", res.stderr)
    return {"cpu_pct_of_one_core": round(100 * cpu / wall, 2),
            "us_per_sample": float(m.group(1)) if m else None,
            "rate_hz": round(summary["rate_hz"], 1),
            "task_snapshots": summary.get("tasks", {}).get("snapshots", 0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    aprof = os.path.join(args.build, "aprof")
    aware = run(aprof, args.python, args.seconds, [])
    plain = run(aprof, args.python, args.seconds, ["--no-async"])
    print(json.dumps({"bench": "async_record_cost_1000hz", "python": args.python,
                      "tasks": 1000, "async_aware": aware, "no_async": plain}))


if __name__ == "__main__":
    main()
