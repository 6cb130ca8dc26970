"""aprof against the interpreters of Debian sid (scripts/sid_root.sh): CPython 3.14 (stripped),
its Py_DEBUG build python3.14-dbg, Debian's stripped 3.13, and 3.15, each run chrooted in the
root (they need sid's C library), which also covers targets in a chroot.

The root is given by APROF_SID_ROOT (scripts/test.sh builds it); without it these tests skip.
Ground truth: the fixture's own description of its threads (fixtures/stack_fixture.py).
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

EXIT_UNSUPPORTED = 5  # docs/exit-codes.md
READABLE = ("python3.14", "python3.14-dbg", "python3.13")


def sid_root():
    root = os.environ.get("APROF_SID_ROOT")
    if not root or not os.path.isfile(os.path.join(root, ".aprof-ready")):
        raise h.Skip("no Debian sid root (APROF_SID_ROOT; scripts/sid_root.sh builds it)")
    return root


class Chrooted:
    """A directory inside the root shared with the test: fixtures are copied there and run
    chrooted; what they write is read back through the host path."""

    def __init__(self, t, root):
        self.root = root
        self.inside = "/tmp/%s" % os.path.basename(t.tmp)
        self.host = root + self.inside
        os.makedirs(self.host, exist_ok=True)
        for name in ("stack_fixture.py", "async_ps_fixture.py", "busy_loop.py"):
            shutil.copy(os.path.join(h.FIXTURES, name), self.host)

    def start(self, t, python, *args):
        argv = ["chroot", self.root, python] + [str(a) for a in args]
        fx = h.Fixture(t, argv, "fixture%d" % len(t.procs))
        t.procs.append(fx.proc)
        return fx

    def mount_proc(self):
        """/proc inside the root (CPython's own tools read the target through it); False when
        it cannot be mounted. Unmounted on leaving."""
        if not os.path.exists(self.root + "/proc/self"):
            self.mounted = subprocess.run(["mount", "-t", "proc", "proc",
                                           self.root + "/proc"]).returncode == 0
            return self.mounted
        return True

    def __enter__(self):
        self.mounted = False
        return self

    def __exit__(self, *exc):
        if self.mounted:
            subprocess.run(["umount", self.root + "/proc"])
        shutil.rmtree(self.host, ignore_errors=True)
        return False


def start_stack_fixture(t, box, python, tag):
    truth = "%s/truth-%s.json" % (box.inside, tag)
    fx = box.start(t, python, box.inside + "/stack_fixture.py", truth, "--depth", 40)
    doc = fx.wait_json(box.root + truth, timeout=60)
    time.sleep(0.2)
    return fx, doc


def frame_view(frames):
    return [{k: f.get(k) for k in ("function", "file", "line")} for f in frames]


@h.once
def test_sid_dump_matches_truth(t):
    root = sid_root()
    with Chrooted(t, root) as box:
        for python in READABLE:
            fx, truth = start_stack_fixture(t, box, python, python)
            res = t.aprof("dump", "--pid", fx.pid, "--json", timeout=30)
            t.require_rc(res, 0, "aprof dump --json of %s" % python)
            doc = json.loads(res.stdout)
            t.eq(doc.get("python_version"), truth["python_version"], "%s: version" % python)
            by_tid = {th.get("tid"): th for th in doc.get("threads", [])}
            for tt in truth["threads"]:
                th = by_tid.get(tt["native_id"])
                if not t.check(th is not None, "%s: thread %s missing" % (python, tt["name"])):
                    continue
                t.eq(th.get("name"), tt["name"], "%s: thread name" % python)
                t.eq(frame_view(th.get("frames") or []), tt["frames"],
                     "%s: frames of thread %s (outermost first)" % (python, tt["name"]))
            fx.kill()


@h.once
def test_sid_record_314(t):
    root = sid_root()
    with Chrooted(t, root) as box:
        fx, truth = start_stack_fixture(t, box, "python3.14", "rec")
        out = t.path("out.json")
        res = t.aprof("record", "--pid", fx.pid, "--duration", 1, "--rate", 200, "-o", out,
                      "-q", timeout=60)
        t.require_rc(res, 0, "aprof record on 3.14")
        doc = h.load_speedscope(t, out)
        t.eq(h.speedscope_problems(doc), [], "speedscope problems")
        names = {f.get("name") for f in doc["shared"]["frames"]}
        for tt in truth["threads"]:
            for f in tt["frames"]:
                t.check(f["function"] in names, "3.14 record: %s missing" % f["function"])
        fx.kill()
        # a churning asyncio service: task-stitched stacks through the workers' tasks
        clock = box.inside + "/clock.txt"
        fx = box.start(t, "python3.14", box.inside + "/busy_loop.py", clock, "--seconds", 60)
        fx.wait_file(box.root + clock, timeout=60)
        folded = t.path("busy.txt")
        res = t.aprof("record", "--pid", fx.pid, "--duration", 2, "-o", folded,
                      "--format", "collapsed", "-q", timeout=60)
        t.require_rc(res, 0, "aprof record of busy_loop.py on 3.14")
        with open(folded) as f:
            text = f.read()
        t.check(";<task w-" in text and ";<task sup-" in text,
                "3.14 record: no task-stitched stacks through worker and supervisor tasks:\n%s"
                % h.short(text))
        fx.kill()


def parse_asyncio_ps(text):
    """Rows of `python -m asyncio ps` (3.14): {task id: (name, awaiter ids, tid)}, columns found
    by the positions of the header's titles (cells may be empty)."""
    lines = text.splitlines()
    head = next((i for i, l in enumerate(lines) if l.startswith("tid") and "task id" in l), None)
    if head is None:
        raise h.Failure("no table in asyncio ps output:\n%s" % h.short(text))
    titles = ["tid", "task id", "task name", "coroutine stack", "awaiter chain", "awaiter name",
              "awaiter id"]
    starts = [lines[head].index(x) for x in titles] + [10 ** 6]
    rows = {}
    for line in lines[head + 2:]:
        if not line.strip():
            continue
        cells = [line[starts[i]:starts[i + 1]].strip() for i in range(len(titles))]
        tid, task, name, awaiter = cells[0], int(cells[1], 16), cells[2], int(cells[6] or "0", 16)
        awaiters = rows.setdefault(task, (name, set(), int(tid)))[1]
        if awaiter:  # one row per (task, awaiter); 0x0: none
            awaiters.add(awaiter)
    return rows


@h.once
def test_sid_314_tasks_match_asyncio_ps(t):
    """aprof's task tree of a 3.14 target against the program's own all_tasks() and against
    CPython's own `python3.14 -m asyncio ps` (run in the root, which then needs /proc)."""
    root = sid_root()
    with Chrooted(t, root) as box:
        truth_path = box.inside + "/ps-truth.json"
        fx = box.start(t, "python3.14", box.inside + "/async_ps_fixture.py", truth_path)
        truth = fx.wait_json(box.root + truth_path, timeout=60)
        res = t.aprof("dump", "--pid", fx.pid, "--json", timeout=30)
        t.require_rc(res, 0, "aprof dump --json of the 3.14 asyncio fixture")
        doc = json.loads(res.stdout)
        t.eq((doc.get("asyncio") or {}).get("status"), "ok", "asyncio status on 3.14")
        tasks = {x["id"]: x for x in doc.get("tasks", [])}
        # the program's own view: every task, its name, and the awaiters it built
        for row in truth["tasks"]:
            got = tasks.get(row["id"])
            if not t.check(got is not None, "task %s (%#x) missing" % (row["name"], row["id"])):
                continue
            t.eq(got["name"], row["name"], "name of task %#x" % row["id"])
            t.check(set(row["awaited_by"]) <= set(got.get("awaited_by") or []),
                    "awaiters of %s: %s, program built %s" % (
                        row["name"], got.get("awaited_by"), row["awaited_by"]))
        t.eq(len(tasks), len(truth["tasks"]) + 1,
             "tasks: all_tasks() of both loops, and the main task that asked (Task-1)")
        # CPython's own tool on the same process
        if not box.mount_proc():
            raise h.Skip("cannot mount /proc in the sid root for asyncio ps")
        ps = subprocess.run(["chroot", root, "python3.14", "-m", "asyncio", "ps", str(fx.pid)],
                            capture_output=True, text=True, timeout=60)
        t.require(ps.returncode == 0, "asyncio ps failed: %s" % h.short(ps.stderr))
        rows = parse_asyncio_ps(ps.stdout)
        t.require(len(rows) >= 12, "asyncio ps lists %d tasks:\n%s" % (len(rows), ps.stdout))
        for task, (name, awaiters, tid) in rows.items():
            got = tasks.get(task)
            if not t.check(got is not None, "asyncio ps lists %s (%#x), aprof does not"
                           % (name, task)):
                continue
            t.eq(got["name"], name, "name of %#x (asyncio ps)" % task)
            t.eq(set(got.get("awaited_by") or []), awaiters,
                 "awaiters of %s: aprof against asyncio ps" % name)
            t.eq(got.get("thread"), tid, "thread of %s (asyncio ps)" % name)
        fx.kill()


@h.once
def test_sid_315_is_refused(t):
    root = sid_root()
    with Chrooted(t, root) as box:
        fx, _ = start_stack_fixture(t, box, "python3.15", "315")
        res = t.aprof("dump", "--pid", fx.pid, timeout=30)
        line = h.one_error_line(t, res, EXIT_UNSUPPORTED, "dump of a 3.15 target")
        t.check("3.15" in line and "not supported" in line, "message names 3.15: %s" % line)
        fx.kill()


if __name__ == "__main__":
    h.main()
