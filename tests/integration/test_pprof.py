"""`aprof record --format pprof`, read back by Go's own `go tool pprof` (Debian's golang-go): the
fixture's own split, per-function totals equal to the folded stacks of the same recording
(`--folded`), labels (pid, thread id and name, task name) against the fixture's own ids and
task names, Function start lines against the fixture's source, locations leaf first."""
import ast
import collections
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CPU_SPLIT = os.path.join(h.FIXTURES, "cpu_split.py")
ASYNC_CPU = os.path.join(h.FIXTURES, "async_cpu_fixture.py")


def go_pprof(t, *args):
    go = shutil.which("go")
    t.require(go, "go is not installed (scripts/setup.sh installs golang-go)")
    res = subprocess.run([go, "tool", "pprof", *args], capture_output=True, text=True,
                         timeout=120)
    t.require(res.returncode == 0, "go tool pprof %s failed (%d):\n%s"
              % (" ".join(args), res.returncode, h.short(res.stderr)))
    return res.stdout


def read_json(t, path):
    t.require(os.path.exists(path), "the fixture wrote no %s" % path)
    with open(path) as f:
        return json.load(f)


TOP_ROW = re.compile(r"^\s*(\d+)\s+[0-9.]+%\s+[0-9.]+%\s+(\d+)\s+[0-9.]+%\s+(.+?)\s*$")


def pprof_top_counts(t, path, *extra):
    """{function: (flat, cum)} sample counts, as go tool pprof's -top prints them."""
    out = go_pprof(t, "-top", "-nodecount=100000", "-nodefraction=0", "-edgefraction=0",
                   "-sample_index=samples", *extra, path)
    rows = {}
    for line in out.splitlines():
        m = TOP_ROW.match(line)
        if m:
            rows[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    t.require(rows, "no rows in go tool pprof -top:\n%s" % h.short(out))
    return rows


def folded_counts(rows):
    """{function: (flat, cum)} from folded stacks: flat = leaf, cum = anywhere (once a stack)."""
    flat, cum = collections.Counter(), collections.Counter()
    for _thread, names, n in rows:
        if names:
            flat[names[-1]] += n
        for name in set(names):
            cum[name] += n
    return {name: (flat[name], cum[name]) for name in cum}


def def_lines(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    return {node.name: node.lineno for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


@h.once
@h.smoke
def test_pprof_split_and_folded(t):
    out, folded, split = t.path("out.pb.gz"), t.path("out.txt"), t.path("split.json")
    ratio = round(t.rng.uniform(0.2, 0.8), 2)
    res = t.aprof("record", "--format", "pprof", "-o", out, "--folded", folded, "--rate", 1000,
                  "--", t.py, CPU_SPLIT, "--duration", 2, "--ratio", ratio, "--out", split,
                  "--sleeper", timeout=60)
    t.require_rc(res, 0, "record --format pprof --folded")
    truth = read_json(t, split)
    with open(out, "rb") as f:
        t.require(f.read(2) == b"\x1f\x8b", "the pprof file is not gzip-compressed")

    # Per-function totals: go tool pprof against the folded stacks of the same recording.
    with open(folded, encoding="utf-8") as f:
        rows = h.parse_collapsed(f.read())
    expected = folded_counts(rows)
    got = pprof_top_counts(t, out)
    for name in ("spin_a", "spin_b", "sleeper_idle", "main"):
        t.check(name in expected, "folded stacks lack %s" % name)
        t.eq(got.get(name), expected.get(name), "%s (flat, cum) samples: pprof vs folded" % name)
    t.eq(sum(f for f, _ in got.values()), sum(n for _, names, n in rows if names),
         "total samples with a frame: pprof vs folded")

    # The split in wall nanoseconds, against the fixture's own clock.
    wall = go_pprof(t, "-top", "-nodecount=100000", "-nodefraction=0", "-sample_index=wall",
                    "-unit=ns",
                    "-tagfocus=thread_name=MainThread", out)
    ns = {}
    for line in wall.splitlines():
        m = re.match(r"^\s*([0-9.]+)ns\s+[0-9.]+%\s+[0-9.]+%\s+[0-9.]+ns\s+[0-9.]+%\s+(\S+)", line)
        if m:
            ns[m.group(2)] = float(m.group(1))
    a, b = ns.get("spin_a", 0.0), ns.get("spin_b", 0.0)
    t.require(a + b > 0, "no wall time in spin_a or spin_b:\n%s" % h.short(wall))
    n = got["spin_a"][0] + got["spin_b"][0]
    t.near(a / (a + b), truth["a"], h.split_tolerance(truth["a"], n),
           "pprof wall share of spin_a (fixture measured %.3f)" % truth["a"])

    # Labels: the fixture's own pid and thread ids, the threads' names.
    tags = go_pprof(t, "-tags", out)
    t.check(re.search(r"\b%d\b" % truth["pid"], tags), "pid %d not in the labels:\n%s"
            % (truth["pid"], h.short(tags)))
    t.check(re.search(r"\b%d\b" % truth["threads"]["sleeper"], tags),
            "sleeper thread id %d not in the labels" % truth["threads"]["sleeper"])
    for name in ("MainThread", "sleeper-thread"):
        t.check(name in tags, "thread name %s not in the labels:\n%s" % (name, h.short(tags)))

    # Functions' start lines against the fixture's source; every sample's first location is
    # its leaf (the folded stacks' last frame).
    raw = go_pprof(t, "-raw", out)
    lines = def_lines(CPU_SPLIT)
    for fn in ("spin_a", "spin_b", "sleeper_idle"):
        m = re.search(r"^\s*\d+: 0x0 M=1 %s \S+:\d+ s=(\d+)" % fn, raw, re.M)
        t.require(m, "no location of %s in go tool pprof -raw:\n%s" % (fn, h.short(raw)))
        t.eq(int(m.group(1)), lines[fn], "start line of %s" % fn)
    t.check(re.search(r"^PeriodType: wall nanoseconds$", raw, re.M), "period type wall/ns")
    t.check(re.search(r"^Period: 1000000$", raw, re.M), "period 1 ms at 1 kHz")
    loc_fn = dict(re.findall(r"^\s*(\d+): 0x0 M=1 (\S+) ", raw, re.M))
    leaves = collections.Counter()
    in_samples = False
    for line in raw.splitlines():
        if line.startswith("Samples:"):
            in_samples = True
        elif line.startswith("Locations"):
            break
        elif in_samples:
            m = re.match(r"^\s+(\d+)\s+\d+: (\d+)", line)
            if m:
                leaves[loc_fn.get(m.group(2))] += int(m.group(1))
    t.eq(leaves["spin_a"], expected["spin_a"][0], "samples whose first location is spin_a")


@h.once
def test_pprof_task_labels_cpu_mode(t):
    out, truth_path = t.path("out.pb.gz"), t.path("truth.json")
    # exact names: the burner is worker-7 among its siblings (by default all worker-*)
    res = t.aprof("record", "-f", "pprof", "--mode", "cpu", "--exact-task-names", "-o", out,
                  "--", t.py, ASYNC_CPU, truth_path, timeout=60)
    t.require_rc(res, 0, "record --format pprof --mode cpu (async fixture)")
    raw = go_pprof(t, "-raw", out)
    t.check(re.search(r"^samples/count cpu/nanoseconds\[dflt\]$", raw, re.M)
            and re.search(r"^PeriodType: cpu nanoseconds$", raw, re.M),
            "--mode cpu: sample types samples/count and cpu/nanoseconds:\n%s" % h.short(raw, 400))
    truth = read_json(t, truth_path)
    tags = go_pprof(t, "-tags", out)
    section = tags.split("task_name:", 1)[1].split("\n\n", 1)[0] if "task_name:" in tags else ""
    labelled = re.findall(r"^\s+\S+ \(\s*[0-9.]+%\): (.+)$", section, re.M)
    t.require(truth["burner"] in labelled, "task %s (asyncio's own name) not in the task_name "
              "labels %r" % (truth["burner"], labelled))
    # Only running tasks are sampled in thread profiles: any other label names a task the
    # fixture made (or asyncio.run's main task).
    known = set(truth["workers"] + truth["ephemeral"] + [truth["parent"], "spawner"])
    for name in labelled:
        # asyncio.run's main task: Task-N (exact names; Task-* by default)
        t.check(name in known or re.fullmatch(r"Task-(\d+|\*)", name),
                "task_name label %r is not a task of the fixture" % name)
    cpu = truth["cpu_function"]
    everywhere = pprof_top_counts(t, out).get(cpu, (0, 0))[1]
    under_burner = pprof_top_counts(t, out, "-tagfocus=task_name=%s" % truth["burner"]).get(
        cpu, (0, 0))[1]
    t.require(everywhere > 100, "only %d samples in %s" % (everywhere, cpu))
    # burn_cpu runs only in the burner task: every sample of it that names a task names it.
    t.check(under_burner >= 0.95 * everywhere,
            "%d of %d samples of %s labelled task_name=%s"
            % (under_burner, everywhere, cpu, truth["burner"]))


@h.once
def test_pprof_unwritable_folded(t):
    out, split = t.path("out.pb.gz"), t.path("split.json")
    res = t.aprof("record", "-f", "pprof", "-o", out, "--folded", "/nonexistent/dir/x.txt",
                  "--", t.py, CPU_SPLIT, "--duration", 0.3, "--out", split, timeout=30)
    line = h.one_error_line(t, res, 7, "--folded into a missing directory")
    t.check("/nonexistent/dir/x.txt" in line, "the error names the path: %r" % line)
    t.check(not os.path.exists(out), "nothing sampled, so no profile written")


if __name__ == "__main__":
    h.main()
