"""`aprof dump --core` (docs/dump.md#core-files): the dump of a core file equals the live dump
taken just before it, and both equal what the fixture says about itself.

fixtures/async_tree_fixture.py writes its own task tree (asyncio's registries, cr_await chains,
who awaits whom by construction); a live `dump --json` is taken, then a core of the same process:
gdb's `gcore` for the interpreters on the host, the kernel's own core dump (SIGABRT with an
unlimited RLIMIT_CORE) for the chrooted ones. gcore cannot read the top of a thread's stack that
glibc 2.42 guards with MADV_GUARD_INSTALL (sid's), and writes zeros there (docs/limits.md); the
kernel's dump has it, and its paths are the chroot's own, so it is read with --lib-search ROOT.
Broken inputs (not a core, truncated, corrupt notes, bytes flipped in memory, a core of a
process that is not Python, another build of the interpreter) give one line and their exit code.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from asynctree import check_tree_json, start_tree  # noqa: E402

EXIT_NOT_PYTHON, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_MISSING_FILE = 4, 2, 10, 11
APROF_EXIT_CODES = (0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)  # docs/exit-codes.md


def gcore(t, pid):
    prefix = t.path("gcore")
    res = subprocess.run(["gcore", "-o", prefix, str(pid)], capture_output=True, text=True,
                         timeout=120)
    path = "%s.%d" % (prefix, pid)
    t.require(res.returncode == 0 and os.path.exists(path),
              "gcore %d failed (rc %s): %s" % (pid, res.returncode, h.short(res.stderr)))
    return path


def kernel_core(t, fx, root):
    """SIGABRT the fixture with an unlimited core size; the kernel writes `core` (or core.PID)
    in its working directory, the root of its chroot. Moved into the test's directory."""
    pattern = open("/proc/sys/kernel/core_pattern").read().strip()
    t.require(not pattern.startswith("|") and "/" not in pattern,
              "kernel.core_pattern is %r: this test needs plain core files in the working "
              "directory" % pattern)
    subprocess.run(["prlimit", "--pid", str(fx.pid), "--core=unlimited"], check=True)
    for name in ("core", "core.%d" % fx.pid):
        if os.path.exists(os.path.join(root, name)):
            os.unlink(os.path.join(root, name))
    os.kill(fx.pid, 6)
    fx.proc.wait(timeout=60)
    # the kernel has written the core by the time the parent sees the exit
    for name in ("core", "core.%d" % fx.pid):
        src = os.path.join(root, name)
        if os.path.exists(src):
            dst = t.path("kernel.core")
            shutil.move(src, dst)
            return dst
    raise h.Failure("no core file from the kernel in %s after SIGABRT (exit status %s)"
                    % (root, fx.proc.returncode))


def dump_core(t, core, *extra, rc=0):
    res = t.aprof("dump", "--core", core, "--json", *extra, timeout=120)
    t.require_rc(res, rc, "aprof dump --core %s" % " ".join(extra))
    try:
        return json.loads(res.stdout)
    except ValueError as e:
        raise h.Failure("dump --core --json output is not JSON (%s): %s" % (e, h.short(res.stdout)))


def threads_view(doc):
    """Per thread: name, main or not, loop state and frames. The fixture's blocked task
    spins around a sleep: its innermost line may be the loop's or the sleep's."""
    view = {}
    for th in doc.get("threads", []):
        frames = [(f["function"], f["file"], f["line"]) for f in th.get("frames", [])]
        spinning = any(f[0] == "spin_blocking" for f in frames)
        frames = [f[:2] + ("309-310",) if f[0] == "spin_blocking" and f[2] in (309, 310) else f
                  for f in frames]
        view[th["tid"]] = {"name": th.get("name"), "is_main": th.get("is_main"),
                           "spinning": spinning,
                           "complete": th.get("complete"),
                           "event_loop": (th.get("event_loop") or {}).get("state"),
                           "frames": frames}
    return view


def without_spinner(view):
    """The spinning thread's native frames differ with where its sleep was caught."""
    return {tid: th for tid, th in view.items() if not th["spinning"]}


def tasks_view(doc):
    return sorted(json.dumps(d, sort_keys=True) for d in doc.get("tasks", []))


def check_shrunk_core(t, core, doc, lib):
    """tools/core_shrink keeps only the bytes a dump reads (the fuzzing seeds are made so): the
    small core must dump exactly as the whole one."""
    shrink = os.path.join(os.environ.get("APROF_BINARY_DIR", ""), "core_shrink")
    if not os.access(shrink, os.X_OK):
        t.check(False, "no %s (built with aprof)" % shrink)
        return
    small = t.path("small.core")
    res = subprocess.run([shrink, core, small] + lib, capture_output=True, text=True, timeout=120)
    if not t.check(res.returncode == 0, "core_shrink failed (rc %s): %s" % (
            res.returncode, h.short(res.stderr))):
        return
    big_size, small_size = os.path.getsize(core), os.path.getsize(small)
    t.check(small_size * 20 < big_size, "the shrunk core is %d of %d bytes" % (small_size,
                                                                             big_size))
    got = dump_core(t, small, *lib)
    for d in (got, doc):
        d.pop("core", None)
    t.eq(got, doc, "dump of the shrunk core (%d bytes) against the whole one (%d)" % (
        small_size, big_size))


@h.per_interpreter
@h.smoke
def test_core_equals_live_dump(t):
    fx, truth = start_tree(t)
    res = t.aprof("dump", "--pid", fx.pid, "--json", timeout=60)
    t.require_rc(res, 0, "aprof dump --pid --json")
    live = json.loads(res.stdout)
    check_tree_json(t, live, truth, "live dump")
    res = t.aprof("dump", "--pid", fx.pid, "--json", "--native", "--no-async", timeout=60)
    t.require_rc(res, 0, "aprof dump --pid --native --json")
    live_native = json.loads(res.stdout)
    if t.interp.root:
        core = kernel_core(t, fx, t.interp.root)
        res = t.aprof("dump", "--core", core)
        line = h.one_error_line(t, res, EXIT_MISSING_FILE, "a chroot's core without --lib-search")
        t.check("/usr/bin/python" in line and "--lib-search" in line,
                "the missing file's line should name the interpreter and --lib-search: %r" % line)
        doc = dump_core(t, core, "--lib-search", t.interp.root)
    else:
        core = gcore(t, fx.pid)
        doc = dump_core(t, core)
        t.check(fx.alive(), "the fixture died under gcore")
    check_tree_json(t, doc, truth, "dump --core")
    t.eq(doc.get("core"), core, "the core's path in the JSON")
    check_shrunk_core(t, core, doc, ["--lib-search", t.interp.root] if t.interp.root else [])
    t.eq(doc.get("python_version"), live.get("python_version"), "python_version")
    t.eq(doc.get("command", "").split()[:1], live.get("command", "").split()[:1],
         "the command's program")
    t.eq(threads_view(doc), threads_view(live), "threads: core against live")
    # Run states are not compared between two moments (a thread may wake in between); in the
    # core, a loop idle in its selector (its Python frames say so) must be in a system call
    # (its saved registers say so)
    for th in doc.get("threads", []):
        if (th.get("event_loop") or {}).get("state") == "idle":
            t.eq(th.get("state"), "sleeping", "the core's state of idle loop thread %r"
                 % th.get("name"))
    t.eq(tasks_view(doc), tasks_view(live), "tasks: core against live")
    t.eq(doc.get("loops"), live.get("loops"), "loops: core against live")
    # native frames (read from the core's own stacks and the files it maps), both unwinders
    lib = ["--lib-search", t.interp.root] if t.interp.root else []
    for unwinder in ("libunwind", "dw"):
        native = dump_core(t, core, "--native", "--no-async", "--unwinder", unwinder, *lib)
        t.eq(without_spinner(threads_view(native)), without_spinner(threads_view(live_native)),
             "threads with native frames (--unwinder %s): core against live" % unwinder)
        t.check(any(f.get("kind") == "native" for th in native.get("threads", [])
                    for f in th.get("frames", [])),
                "--native from the core (--unwinder %s): no native frame" % unwinder)
    # the text form names the core and prints the same tree
    res = t.aprof("dump", "--core", core, *(["--lib-search", t.interp.root] if t.interp.root else []))
    t.require_rc(res, 0, "aprof dump --core (text)")
    t.check(res.stdout.startswith("Core file %s of process %d: " % (core, truth["pid"])),
            "text dump's first line: %r" % res.stdout[:200])
    t.check('Task "t2-busy" [running]' in res.stdout, "text dump lacks the running task t2-busy")


def note_offsets(data):
    """(offset, size) of each PT_NOTE and PT_LOAD segment's data in an ELF64 core."""
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    notes, loads = [], []
    for i in range(phnum):
        ptype, _flags, off, _va, _pa, filesz = struct.unpack_from("<IIQQQQ", data, phoff + 56 * i)
        (notes if ptype == 4 else loads if ptype == 1 else []).append((off, filesz))
    return notes, loads


@h.once
def test_core_bad_inputs(t):
    fx, _ = start_tree(t)
    core = gcore(t, fx.pid)
    fx.kill()
    data = open(core, "rb").read()

    def expect(path, rc, what, *extra, needle=None):
        res = t.aprof("dump", "--core", path, *extra, timeout=120)
        line = h.one_error_line(t, res, rc, what)
        if needle:
            t.check(needle in line, "%s: %r lacks %r" % (what, line, needle))

    text = t.path("notes.txt")
    open(text, "w").write("not a core\n" * 100)
    expect(text, EXIT_BAD_INPUT, "a text file", needle="not a core file")
    expect(h.aprof_binary(), EXIT_BAD_INPUT, "an ELF executable", needle="not a core file")
    expect(t.path("absent.core"), EXIT_BAD_INPUT, "a missing file", needle="cannot open")
    cut = t.path("truncated.core")
    open(cut, "wb").write(data[:len(data) * 6 // 10])
    expect(cut, EXIT_BAD_INPUT, "a truncated core", needle="truncated")
    rng = t.rng
    notes, loads = note_offsets(data)
    bad = bytearray(data)
    for off, size in notes:
        bad[off:off + size] = bytes(rng.randrange(256) for _ in range(size))
    garbled = t.path("garbled-notes.core")
    open(garbled, "wb").write(bad)
    expect(garbled, EXIT_BAD_INPUT, "a core with garbled notes", needle="corrupt")
    res = t.aprof("dump", "--core", core, "--pid", fx.pid)
    h.one_error_line(t, res, EXIT_USAGE, "--core with --pid")
    res = t.aprof("dump", "--pid", fx.pid, "--lib-search", "/tmp")
    h.one_error_line(t, res, EXIT_USAGE, "--lib-search without --core")
    # Memory that lies: 400 random 4 KiB blocks of every core's segments overwritten with random
    # bytes, 12 cores. Any outcome but a crash, a hang or more than one line on stderr.
    flipped = t.path("flipped.core")
    outcomes = {}
    for round_ in range(12):
        bad = bytearray(data)
        for _ in range(400):
            off, size = rng.choice(loads)
            if size >= 4096:
                at = off + rng.randrange(size - 4095)
                bad[at:at + 4096] = rng.randbytes(4096)
        open(flipped, "wb").write(bad)
        res = t.aprof("dump", "--core", flipped, "--json", timeout=60)
        if res.rc not in APROF_EXIT_CODES or len(res.stderr.splitlines()) > 1:
            kept = t.path("flipped-%d.core" % round_)
            shutil.copy(flipped, kept)
            t.check(False, "flipped core %d (kept as %s): not one of aprof's exit codes, or "
                    "more than one line\n%s" % (round_, kept, res.describe()))
        outcomes[res.rc] = outcomes.get(res.rc, 0) + 1
    print("    flipped cores: exit codes %s" % outcomes)


@h.once
def test_core_not_python_and_other_build(t):
    sleeper = subprocess.Popen(["sleep", "600"])
    t.procs.append(sleeper)
    core = gcore(t, sleeper.pid)
    sleeper.kill()
    res = t.aprof("dump", "--core", core)
    h.one_error_line(t, res, EXIT_NOT_PYTHON, "a core of sleep(1)")
    # The interpreter file replaced by another build: named, with both build ids.
    debian = [i for i in h.interpreters() if i.label == "debian-3.11"]
    t.require(debian, "Debian's python3.11 is needed (scripts/setup.sh --tests installs it)")
    fx = t.start("async_tree_fixture.py", t.path("truth.json"), python=debian[0].path)
    fx.wait_json(t.path("truth.json"), timeout=30)
    core = gcore(t, fx.pid)
    fx.kill()
    other = [i for i in h.interpreters() if i.root is None and i.label != "debian-3.11"][0]
    res = t.aprof("dump", "--core", core, "--executable", os.path.realpath(other.exe))
    line = h.one_error_line(t, res, EXIT_MISSING_FILE, "--executable of another build")
    t.check("build id" in line and "/usr/bin/python3.11" in line, "the line should name the "
            "file and its build ids: %r" % line)
    copy = t.path("python3.11-copy")
    shutil.copy("/usr/bin/python3.11", copy)
    doc = dump_core(t, core, "--executable", copy)
    t.check(any(th.get("is_main") for th in doc.get("threads", [])),
            "--executable with a copy of the right file: no main thread in %s" % h.short(json.dumps(doc)))


if __name__ == "__main__":
    h.main()
