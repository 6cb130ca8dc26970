"""Benchmark: one full asyncio task snapshot of 1,000 pending tasks with 5-deep await chains.

Usage: tasks_snapshot.py [--aprof-build DIR] [--python PYTHON] [--tasks N] [--depth D]
                         [--snapshots K]

Starts fixtures/many_tasks_fixture.py (N tasks, each suspended at the bottom of a D-coroutine
await chain ending in asyncio.sleep, all awaited by one gather), then runs DIR/bench_tasks, which
attaches to it and takes K snapshots back to back with one asyncio_reader (what recording does),
and K/10 with a fresh reader each (what a one-shot `aprof dump` does). Prints one JSON object:

    {"tasks_snapshot_us": median microseconds of a snapshot (target: under 2000),
     "target_us": 2000, "ok": true/false, "tasks": ..., "python": "3.12.1",
     "steady": {bench_tasks output}, "fresh": {bench_tasks --fresh output}}
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
TARGET_US = 2000.0


def default_python():
    for v in ("3.12", "3.13", "3.11", "3.10"):
        root = os.environ.get("PYENV_ROOT", "/root/.pyenv")
        cands = sorted(d for d in os.listdir(os.path.join(root, "versions"))
                       if d.startswith(v + ".")) if os.path.isdir(os.path.join(root, "versions")) else []
        if cands:
            return os.path.join(root, "versions", cands[-1], "bin", "python" + v)
    return sys.executable


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aprof-build", default=os.environ.get("APROF_BINARY_DIR",
                                                            os.path.join(SOURCE, "build")))
    ap.add_argument("--python", default=default_python())
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--snapshots", type=int, default=300)
    args = ap.parse_args()
    tool = os.path.join(args.aprof_build, "bench_tasks")
    if not os.access(tool, os.X_OK):
        sys.exit("bench_tasks not found in %s (build the project first)" % args.aprof_build)
    with tempfile.TemporaryDirectory(prefix="aprof-bench-") as tmp:
        ready = os.path.join(tmp, "ready.json")
        fx = subprocess.Popen([args.python, os.path.join(SOURCE, "fixtures", "many_tasks_fixture.py"),
                               ready, "--tasks", str(args.tasks), "--depth", str(args.depth),
                               "--gather"], stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(ready):
                if fx.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the fixture did not start")
                time.sleep(0.05)
            time.sleep(0.2)

            def run(*extra):
                out = subprocess.run([tool, str(fx.pid)] + [str(a) for a in extra],
                                     capture_output=True, text=True, timeout=300)
                if out.returncode != 0:
                    sys.exit("bench_tasks failed: %s" % out.stderr.strip())
                return json.loads(out.stdout)

            steady = run(args.snapshots)
            fresh = run(max(args.snapshots // 10, 5), "--fresh")
        finally:
            fx.kill()
            fx.wait()
    print(json.dumps({"tasks_snapshot_us": steady["median_us"], "target_us": TARGET_US,
                      "ok": steady["median_us"] < TARGET_US, "tasks": steady["tasks"],
                      "depth": args.depth, "python": steady["python"],
                      "steady": steady, "fresh": fresh}))


if __name__ == "__main__":
    main()
