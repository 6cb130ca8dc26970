"""aprof against the interpreters of Debian sid (scripts/sid_root.sh): CPython 3.14 (stripped),
its Py_DEBUG build python3.14-dbg, Debian's stripped 3.13, and 3.15, each run chrooted in the
root (they need sid's C library), which also covers targets in a chroot.

The root is given by APROF_SID_ROOT (scripts/test.sh builds it); without it these tests skip.
Ground truth: the fixture's own description of its threads (fixtures/stack_fixture.py).
"""
import json
import os
import shutil
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
        for name in ("stack_fixture.py",):
            shutil.copy(os.path.join(h.FIXTURES, name), self.host)

    def start(self, t, python, *args):
        argv = ["chroot", self.root, python] + [str(a) for a in args]
        fx = h.Fixture(t, argv, "fixture%d" % len(t.procs))
        t.procs.append(fx.proc)
        return fx

    def cleanup(self):
        shutil.rmtree(self.host, ignore_errors=True)


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
    box = Chrooted(t, root)
    try:
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
    finally:
        box.cleanup()


@h.once
def test_sid_record_314(t):
    root = sid_root()
    box = Chrooted(t, root)
    try:
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
        # asyncio is not imported by this fixture; a 3.14 asyncio program's tasks are said to
        # be unread, never listed as none
        fx.kill()
        prog = box.host + "/tasks.py"
        with open(prog, "w") as f:
            f.write("import asyncio\n"
                    "async def leaf(): await asyncio.sleep(1000)\n"
                    "async def main():\n"
                    "    open('%s/started', 'w').close()\n"
                    "    await asyncio.create_task(leaf(), name='leafy')\n"
                    "asyncio.run(main())\n" % box.inside)
        fx = box.start(t, "python3.14", box.inside + "/tasks.py")
        fx.wait_file(box.host + "/started", timeout=60)
        res = t.aprof("dump", "--pid", fx.pid, "--json", timeout=30)
        t.require_rc(res, 0, "aprof dump --json of a 3.14 asyncio program")
        doc = json.loads(res.stdout)
        t.eq((doc.get("asyncio") or {}).get("status"), "unsupported",
             "asyncio status on 3.14 (tasks not read yet)")
        res = t.aprof("dump", "--pid", fx.pid, timeout=30)
        t.check("tasks not read on this Python version yet" in res.stdout,
                "text dump says the tasks are not read:\n%s" % h.short(res.stdout))
        fx.kill()
    finally:
        box.cleanup()


@h.once
def test_sid_315_is_refused(t):
    root = sid_root()
    box = Chrooted(t, root)
    try:
        fx, _ = start_stack_fixture(t, box, "python3.15", "315")
        res = t.aprof("dump", "--pid", fx.pid, timeout=30)
        line = h.one_error_line(t, res, EXIT_UNSUPPORTED, "dump of a 3.15 target")
        t.check("3.15" in line and "not supported" in line, "message names 3.15: %s" % line)
        fx.kill()
    finally:
        box.cleanup()


if __name__ == "__main__":
    h.main()
