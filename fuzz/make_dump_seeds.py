#!/usr/bin/env python3
"""Make the seeds of fuzz_core_dump: for each interpreter on this machine (pyenv's 3.10-3.13 and
Debian's python3.11, or those named), fixtures/async_tree_fixture.py is started, its core taken
with gdb's gcore and shrunk to the pages `aprof dump --core` reads (tools/core_shrink.c), then
written to OUT_DIR/LABEL.core. They depend on this machine's interpreter files (a core names
them by path and build id), so they are made where the fuzzing runs (scripts/fuzz.sh, cached),
not kept in the repository (1-2 MB each).

    python3 fuzz/make_dump_seeds.py BUILD_DIR OUT_DIR [LABEL...]

LABEL: an interpreter's label or its start (3.12 for 3.12.1); none: every interpreter.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def interpreters():
    found = []
    pyenv = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    newest = {}
    for d in glob.glob(os.path.join(pyenv or "/nonexistent", "versions", "3.*")):
        m = re.fullmatch(r"(3)\.(\d+)\.(\d+)", os.path.basename(d))
        if m and 10 <= int(m.group(2)) <= 13:
            key = int(m.group(2))
            if key not in newest or int(m.group(3)) > newest[key][0]:
                newest[key] = (int(m.group(3)), d)
    for minor, (_, d) in sorted(newest.items()):
        found.append((os.path.basename(d), os.path.join(d, "bin", "python3.%d" % minor)))
    if os.access("/usr/bin/python3.11", os.X_OK):
        found.append(("debian-3.11", "/usr/bin/python3.11"))
    return found


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    build, out = sys.argv[1], sys.argv[2]
    labels = set(sys.argv[3:])
    shrink = os.path.join(build, "core_shrink")
    if not os.access(shrink, os.X_OK) or not shutil.which("gcore"):
        sys.exit("needs %s and gdb's gcore" % shrink)
    os.makedirs(out, exist_ok=True)
    for label, python in interpreters():
        if labels and not any(label == x or label.startswith(x + ".") for x in labels):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            truth = os.path.join(tmp, "truth.json")
            fx = subprocess.Popen([python, os.path.join(ROOT, "fixtures", "async_tree_fixture.py"),
                                   truth], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 30
                while not os.path.exists(truth) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not os.path.exists(truth):
                    print("%s: the fixture did not start" % label)
                    continue
                json.load(open(truth))
                subprocess.run(["gcore", "-o", os.path.join(tmp, "core"), str(fx.pid)],
                               check=True, capture_output=True)
            finally:
                fx.kill()
                fx.wait()
            big = os.path.join(tmp, "core.%d" % fx.pid)
            small = os.path.join(out, label + ".core")
            subprocess.run([shrink, big, small], check=True, stderr=subprocess.DEVNULL)
            print("%s: %d -> %d bytes" % (label, os.path.getsize(big), os.path.getsize(small)))


if __name__ == "__main__":
    main()
