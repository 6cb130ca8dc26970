"""aprof against the interpreters of Debian sid (scripts/sid_root.sh): CPython 3.14 and 3.15
(stripped), their Py_DEBUG builds python3.14-dbg and python3.15-dbg, and Debian's stripped
3.13, each run chrooted in the root (they need sid's C library), which also covers targets in
a chroot.

The root is given by APROF_SID_ROOT (scripts/test.sh builds it); without it these tests skip.
Ground truth: the fixture's own description of its threads (fixtures/stack_fixture.py), the
asyncio fixture's own all_tasks(), and CPython's own `python3.X -m asyncio ps`.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import nativecheck  # noqa: E402

EXIT_UNSUPPORTED = 5  # docs/exit-codes.md
READABLE = ("python3.14", "python3.14-dbg", "python3.15", "python3.15-dbg", "python3.13")
NEWEST = ("python3.14", "python3.15")  # the versions with their own task lists and asyncio ps
STRIPPED = ("python3.13", "python3.14", "python3.15")  # Debian's PGO builds without .symtab


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
        for name in ("stack_fixture.py", "async_ps_fixture.py", "busy_loop.py",
                     "native_fixture.py"):
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
@h.smoke
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
def test_sid_dump_native(t):
    """--native on Debian's stripped 3.13-3.15, whose exported _PyEval_EvalFrameDefault covers
    only the entry of the evaluation loop (its body is an unnamed split-off part): every
    thread of the native fixture shows its C call merged under the right Python frame, no
    evaluation-loop frame left, for both unwinders. sid's C library enters system calls
    through an internal function that has no symbol in its stripped file, so the innermost C
    function is not named: the C functions the fixture expects must still be below the
    calling Python frame."""
    root = sid_root()
    with Chrooted(t, root) as box:
        for python in STRIPPED:
            truth_path = box.inside + "/native-%s.json" % python
            fx = box.start(t, python, box.inside + "/native_fixture.py", truth_path)
            truth = fx.wait_json(box.root + truth_path, timeout=60)
            for unwinder in nativecheck.UNWINDERS:
                nativecheck.check_merged_dumps(t, fx.pid, truth, unwinder,
                                               "%s, %s: " % (python, unwinder))
            stacks = nativecheck.dump_stacks(t, fx.pid, "dw")
            natives = [f for frames in stacks.values() for f in frames if f["kind"] == "native"]
            nativecheck.check_stripped_names(t, natives, root + "/usr/bin/" + python)
            fx.kill()


@h.once
def test_sid_record(t):
    root = sid_root()
    with Chrooted(t, root) as box:
        for python in NEWEST:
            fx, truth = start_stack_fixture(t, box, python, "rec-" + python)
            out = t.path("out-%s.json" % python)
            res = t.aprof("record", "--pid", fx.pid, "--duration", 1, "--rate", 200, "-o", out,
                          "-q", timeout=60)
            t.require_rc(res, 0, "aprof record on %s" % python)
            doc = h.load_speedscope(t, out)
            t.eq(h.speedscope_problems(doc), [], "speedscope problems")
            names = {f.get("name") for f in doc["shared"]["frames"]}
            for tt in truth["threads"]:
                for f in tt["frames"]:
                    t.check(f["function"] in names, "%s record: %s missing" % (python, f["function"]))
            fx.kill()
            # a churning asyncio service: task-stitched stacks through the workers' tasks
            clock = box.inside + "/clock-%s.txt" % python
            fx = box.start(t, python, box.inside + "/busy_loop.py", clock, "--seconds", 60)
            fx.wait_file(box.root + clock, timeout=60)
            folded = t.path("busy-%s.txt" % python)
            res = t.aprof("record", "--pid", fx.pid, "--duration", 2, "-o", folded,
                          "--format", "collapsed", "-q", timeout=60)
            t.require_rc(res, 0, "aprof record of busy_loop.py on %s" % python)
            with open(folded) as f:
                text = f.read()
            t.check(";<task w-" in text and ";<task sup-" in text,
                    "%s record: no task-stitched stacks through worker and supervisor tasks:\n%s"
                    % (python, h.short(text)))
            fx.kill()


def parse_asyncio_ps(text):
    """Rows of `python -m asyncio ps` (3.14, 3.15): {task id: (name, awaiter ids, tid,
    coroutine stack innermost first)}, columns found by the positions of the header's titles
    (cells may be empty)."""
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
        stack = [x.strip() for x in cells[3].split(" -> ")] if cells[3] else []
        awaiters = rows.setdefault(task, (name, set(), int(tid), stack))[1]
        if awaiter:  # one row per (task, awaiter); 0x0: none
            awaiters.add(awaiter)
    return rows


@h.once
def test_sid_tasks_match_asyncio_ps(t):
    """aprof's task tree of 3.14 and 3.15 targets against the program's own all_tasks() and
    against CPython's own `python3.X -m asyncio ps` (run in the root, which then needs /proc)."""
    root = sid_root()
    with Chrooted(t, root) as box:
        for python in NEWEST:
            check_tasks_against_asyncio_ps(t, box, python)


def check_tasks_against_asyncio_ps(t, box, python):
    truth_path = box.inside + "/ps-truth-%s.json" % python
    fx = box.start(t, python, box.inside + "/async_ps_fixture.py", truth_path)
    truth = fx.wait_json(box.root + truth_path, timeout=60)
    res = t.aprof("dump", "--pid", fx.pid, "--json", timeout=30)
    t.require_rc(res, 0, "aprof dump --json of the %s asyncio fixture" % python)
    doc = json.loads(res.stdout)
    t.eq((doc.get("asyncio") or {}).get("status"), "ok", "asyncio status on %s" % python)
    tasks = {x["id"]: x for x in doc.get("tasks", [])}
    # the program's own view: every task, its name, and the awaiters it built
    for row in truth["tasks"]:
        got = tasks.get(row["id"])
        if not t.check(got is not None, "%s: task %s (%#x) missing" % (python, row["name"], row["id"])):
            continue
        t.eq(got["name"], row["name"], "%s: name of task %#x" % (python, row["id"]))
        t.check(set(row["awaited_by"]) <= set(got.get("awaited_by") or []),
                "%s: awaiters of %s: %s, program built %s" % (
                    python, row["name"], got.get("awaited_by"), row["awaited_by"]))
    t.eq(len(tasks), len(truth["tasks"]) + 1,
         "%s tasks: all_tasks() of both loops, and the main task that asked (Task-1)" % python)
    # CPython's own tool on the same process
    if not box.mount_proc():
        raise h.Skip("cannot mount /proc in the sid root for asyncio ps")
    ps = subprocess.run(["chroot", box.root, python, "-m", "asyncio", "ps", str(fx.pid)],
                        capture_output=True, text=True, timeout=60)
    t.require(ps.returncode == 0, "%s asyncio ps failed: %s" % (python, h.short(ps.stderr)))
    rows = parse_asyncio_ps(ps.stdout)
    t.require(len(rows) >= 12, "%s asyncio ps lists %d tasks:\n%s" % (python, len(rows), ps.stdout))
    for task, (name, awaiters, tid, stack) in rows.items():
        got = tasks.get(task)
        if not t.check(got is not None, "%s asyncio ps lists %s (%#x), aprof does not"
                       % (python, name, task)):
            continue
        t.eq(got["name"], name, "%s: name of %#x (asyncio ps)" % (python, task))
        t.eq(set(got.get("awaited_by") or []), awaiters,
             "%s: awaiters of %s: aprof against asyncio ps" % (python, name))
        t.eq(got.get("thread"), tid, "%s: thread of %s (asyncio ps)" % (python, name))
        t.eq([f.get("function") for f in reversed(got.get("coroutine_stack") or [])], stack,
             "%s: coroutine stack of %s (innermost first): aprof against asyncio ps"
             % (python, name))
    fx.kill()


# ---------------------------------------------------------------- interpreters gone wrong

def elf_sections(path):
    """{name: (address, file offset, size)} of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    heads = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = heads[shstrndx][4]
    sections = {}
    for name, _type, _flags, addr, offset, size, *_ in heads:
        end = data.index(b"\0", strtab + name)
        sections[data[strtab + name:end].decode()] = (addr, offset, size)
    return sections, data


def dynamic_symbol(path, wanted):
    """Address of a .dynsym symbol."""
    sections, data = elf_sections(path)
    _, off, size = sections[".dynsym"]
    _, stroff, _ = sections[".dynstr"]
    for i in range(size // 24):
        name, _info, _other, _shndx, value, _size = struct.unpack_from("<IBBHQQ", data, off + i * 24)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end].decode() == wanted:
            return value
    raise h.Failure("%s has no dynamic symbol %s" % (path, wanted))


def file_offset(path, address):
    sections, _ = elf_sections(path)
    for addr, off, size in sections.values():
        if addr and addr <= address < addr + size:
            return off + (address - addr)
    raise h.Failure("address %#x is in no section of %s" % (address, path))


def patched_python(box, tag, patches):
    """A copy of sid's stripped python3.15 inside the root with bytes changed: patches are
    (file offset, bytes). Returns its path inside the root."""
    src = box.root + "/usr/bin/python3.15"
    with open(src, "rb") as f:
        data = bytearray(f.read())
    for off, value in patches:
        data[off:off + len(value)] = value
    os.makedirs(box.host + "/" + tag, exist_ok=True)
    dst = "%s/%s/python3.15" % (box.host, tag)
    with open(dst, "wb") as f:
        f.write(data)
    os.chmod(dst, 0o755)
    return "%s/%s/python3.15" % (box.inside, tag)


@h.once
def test_sid_bad_interpreters(t):
    """Real interpreters that aprof must refuse or read only in part, made by patching copies of
    sid's python3.15 (which itself never reads these bytes): a free-threaded flag, an offset
    outside its struct, a future version (3.16), and a corrupt .AsyncioDebug. One line and exit
    5 each, or, for the asyncio section, the stacks with the tasks reported unread."""
    root = sid_root()
    with Chrooted(t, root) as box:
        exe = root + "/usr/bin/python3.15"
        sections, _ = elf_sections(exe)
        runtime = sections[".PyRuntime"][1]  # _Py_DebugOffsets at its start
        aio = sections[".AsyncioDebug"][1]
        version = file_offset(exe, dynamic_symbol(exe, "Py_Version"))
        future = struct.pack("<Q", 0x031000f0)
        cases = [
            ("free-threaded", [(runtime + 16, struct.pack("<Q", 1))],
             "free-threaded interpreter build is not supported"),
            ("bad-offset", [(runtime + 184, struct.pack("<Q", 1 << 20))],  # thread_state.prev
             "implausible offsets"),
            ("future", [(version, future[:4]), (runtime + 8, future)],
             "newer than this aprof"),
        ]
        for tag, patches, expect in cases:
            python = patched_python(box, tag, patches)
            fx, _ = start_stack_fixture(t, box, python, tag)
            res = t.aprof("dump", "--pid", fx.pid, timeout=30)
            line = h.one_error_line(t, res, EXIT_UNSUPPORTED, "dump of a %s 3.15" % tag)
            t.check(expect in line and ("3.15.2" in line or tag == "future"),
                    "%s: message %r should say %r and name the version" % (tag, line, expect))
            if tag == "future":
                t.check("3.16.0" in line, "future: the message names 3.16.0: %s" % line)
            fx.kill()
        # a task struct of size 0: the section fails validation, tasks are not read
        python = patched_python(box, "bad-asyncio", [(aio, struct.pack("<Q", 0))])
        truth_path = box.inside + "/ps-truth-bad.json"
        fx = box.start(t, python, box.inside + "/async_ps_fixture.py", truth_path)
        fx.wait_json(box.root + truth_path, timeout=60)
        res = t.aprof("dump", "--pid", fx.pid, "--json", timeout=30)
        t.require_rc(res, 0, "dump of a 3.15 with a corrupt .AsyncioDebug")
        doc = json.loads(res.stdout)
        t.eq((doc.get("asyncio") or {}).get("status"), "unsupported",
             "asyncio status with a corrupt .AsyncioDebug")
        t.eq(doc.get("tasks") or [], [], "no partial task list")
        t.check(any(f.get("function") == "run" for th in doc.get("threads", [])
                    for f in th.get("frames", [])), "the thread stacks are still read")
        fx.kill()


if __name__ == "__main__":
    h.main()
