"""--redact on record (speedscope, folded, pprof, summary, stderr), dump (text and JSON): the
fixture's task names, the home directory its script runs from and its command line appear in
no output; in their place the documented placeholders (docs/record.md#redact): ~/ for the home
directory, task-XXXXXXXX from the FNV-1a hash of the name (computed here from the fixture's own
task names), <command line>. asyncio's default names (Task-N) stay."""
import gzip
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ASYNC_CPU = os.path.join(h.FIXTURES, "async_cpu_fixture.py")


def fnv1a(text):
    v = 2166136261
    for b in text.encode("utf-8"):
        v = ((v ^ b) * 16777619) & 0xFFFFFFFF
    return v


COUNTER = re.compile(r"(.+)([-_.:# ])(\d+)")


def placeholder(name):
    """docs/record.md#redact: task- and the FNV-1a hash of the name, a trailing counter kept."""
    m = COUNTER.fullmatch(name)
    if m:
        return "task-%08x%s%s" % (fnv1a(m.group(1)), m.group(2), m.group(3))
    return "task-%08x" % fnv1a(name)


def grouped(name):
    """The stitched frame's name of a redacted task: its counter as *."""
    p = placeholder(name)
    return re.sub(r"\d+$", "*", p) if COUNTER.fullmatch(name) else p


class FakeHome:
    """A directory under /home holding a copy of the fixture, removed afterwards."""
    def __init__(self, t):
        self.t = t

    def __enter__(self):
        self.home = "/home/aprof-redact-%d" % os.getpid()
        os.makedirs(os.path.join(self.home, "proj"), exist_ok=True)
        self.script = os.path.join(self.home, "proj", "service.py")
        shutil.copy(ASYNC_CPU, self.script)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.home, ignore_errors=True)


def check_clean(t, what, text, secrets):
    for s in secrets:
        t.check(s not in text, "%s still shows %r" % (what, s))


@h.once
def test_record_redacted(t):
    with FakeHome(t) as home:
        out, folded, summary = t.path("out.json"), t.path("out.txt"), t.path("summary.json")
        pprof, truth_path = t.path("out.pb.gz"), t.path("truth.json")
        res = t.aprof("record", "--redact", "-o", out, "--folded", folded, "-s", summary,
                      "--", t.py, home.script, truth_path, 2, timeout=60)
        t.require_rc(res, 0, "record --redact")
        with open(truth_path) as f:
            truth = json.load(f)
        res2 = t.aprof("record", "--redact", "-f", "pprof", "-o", pprof,
                       "--", t.py, home.script, t.path("truth2.json"), 1, timeout=60)
        t.require_rc(res2, 0, "record --redact -f pprof")
        names = [n for n in truth["workers"] + [truth["parent"], "spawner"]
                 if not re.fullmatch(r"Task-\d+", n)]
        t.require(len(names) >= 10, "the fixture reported only %r" % names)
        # Task names as task frames anywhere; as strings where they are not also function
        # names (supervisor() runs in task "supervisor": the function keeps its name).
        secrets = ["/home/", home.home, truth_path] + ["<task %s>" % n for n in names] + \
            ['"%s"' % n for n in names if re.search(r"-\d+$", n)]
        if t.py.startswith("/root/"):
            secrets.append("/root/")
        with open(out, encoding="utf-8") as f:
            ss = f.read()
        with open(folded, encoding="utf-8") as f:
            fo = f.read()
        with open(summary, encoding="utf-8") as f:
            su = f.read()
        with gzip.open(pprof) as f:
            pb = f.read().decode("utf-8", "replace")
        for what, text in (("speedscope", ss), ("folded", fo), ("summary", su),
                           ("pprof", pb), ("stderr", res.stderr)):
            check_clean(t, what, text, secrets)
        # The placeholders, where the originals would be.
        doc = json.loads(ss)
        t.check(doc["name"].startswith("aprof: <command line> (pid "), "file name %r" % doc["name"])
        files = {f.get("file", "") for f in doc["shared"]["frames"]}
        t.check("~/proj/service.py" in files, "the fixture's file is not ~/proj/service.py: %r"
                % sorted(files)[:10])
        frames = {f["name"] for f in doc["shared"]["frames"]}
        burner = grouped("worker-7")  # stitched stacks group the workers (worker-*)
        t.check("<task %s>" % burner in frames, "no <task %s> (worker-7) frame: %r"
                % (burner, sorted(n for n in frames if n.startswith("<task"))))
        t.eq(json.loads(su)["target"].get("command"), "<command line>", "summary command")
        t.check(placeholder("supervisor") in ss, "supervisor's placeholder missing")
        t.check("task_name" in pb and burner in pb, "pprof task_name label %s missing" % burner)
        t.check("<command line>" in pb, "pprof mapping file is not <command line>")


@h.once
@h.smoke
def test_dump_redacted(t):
    with FakeHome(t) as home:
        truth_path = t.path("truth.json")
        fx = t.start(None, home.script, truth_path, 30)
        seen = None
        for _ in range(100):  # until the workers exist
            res = t.aprof("dump", "--redact", "--json", "--pid", fx.pid, timeout=30)
            if res.rc == 0 and placeholder("worker-3") in res.stdout:
                seen = res
                break
        t.require(seen, "dump --redact never showed worker-3's placeholder")
        text = t.aprof("dump", "--redact", "--pid", fx.pid, timeout=30)
        t.require_rc(text, 0, "dump --redact")
        secrets = ["/home/", "worker-3", "eph-1", "<task supervisor>", truth_path]
        if t.py.startswith("/root/"):
            secrets.append("/root/")
        check_clean(t, "dump --json", seen.stdout, secrets)
        check_clean(t, "dump", text.stdout, secrets)
        doc = json.loads(seen.stdout)
        t.eq(doc["command"], "<command line>", "dump command")
        shown = {task["name"] for task in doc["tasks"]}
        t.check("supervisor" not in shown and placeholder("supervisor") in shown,
                "dump --json task names %r" % sorted(shown))
        t.check(all(re.fullmatch(r"task-[0-9a-f]{8}([-_.:# ]\d+)?|Task-\d+", n) for n in shown),
                "task names that are not placeholders: %r" % sorted(shown))
        workers = {n for n in shown if n.startswith(placeholder("worker-0")[:-1])}
        t.eq(len(workers), 10, "worker-0 .. worker-9 as one hash and their own counters")
        t.check(not doc["binary"].startswith(("/root/", "/home/")), "binary %r" % doc["binary"])
        t.check("~/proj/service.py" in seen.stdout, "no ~/proj/service.py in dump --json")
        t.check(placeholder("supervisor") in text.stdout, "supervisor's placeholder missing")


if __name__ == "__main__":
    h.main()
