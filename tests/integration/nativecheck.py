"""Checking `--native` stacks against fixtures/native_fixture.py's own account of its threads:
which Python frames make which C call, and the C functions below it. Used by test_native.py
(the interpreters of the harness) and test_sid_pythons.py (Debian sid's, chrooted)."""
import json
import os
import re
import time

EVAL = "_PyEval_EvalFrameDefault"
UNMERGED = "<unmerged>"
UNWINDERS = ("libunwind", "dw")
LIBC_UNNAMED = re.compile(r"^libc\.so\.6\+0x[0-9a-f]+$")


def norm(name):
    """C function names without symbol versions and glibc's internal prefixes, so that
    "__select", "select@GLIBC_2.2.5" and "__GI___select" all read "select"."""
    name = name.split("@", 1)[0]
    if name.startswith("__GI_"):
        name = name[5:]
    return name.lstrip("_")


# ---------------------------------------------------------------- checking one stack

def is_python(frame):
    return frame["kind"] == "python"


def is_subsequence(small, big):
    it = iter(big)
    return all(x in it for x in small)


def check_call(frames, python, native, leaf=None, exact=True):
    """None when `frames` (outermost first; dicts with name, kind) shows the Python stack
    `python` (outermost first) making a C call that has the C functions `native` (in that
    order) below its innermost frame with only native frames in between, ending in `leaf`;
    else why not. exact=False: `record` puts the asyncio view into stacks (task frames, the
    coroutines awaiting a task): then `python` need only be a subsequence of the Python frames,
    ending with the same innermost one."""
    names = [f["name"] for f in frames]
    if any(n == EVAL or n.startswith(EVAL + ".") for n in names):
        return "an evaluation-loop frame is left in the stack"
    if UNMERGED in names:
        return "the stack is marked unmerged"
    py_idx = [i for i, f in enumerate(frames) if is_python(f)]
    got = [frames[i]["name"] for i in py_idx]
    if got != python and (exact or not got or got[-1] != python[-1]
                          or not is_subsequence(python, got)):
        return "Python frames %s, expected %s" % (got, python)
    below = frames[py_idx[-1] + 1:] if py_idx else frames
    if any(f["kind"] != "native" for f in below):
        return "non-native frames below the innermost Python frame: %s" % [
            f["name"] for f in below]
    want = [norm(n) for n in native]
    seen = [norm(f["name"]) for f in below]
    pos = 0
    for n in seen:
        if pos < len(want) and n == want[pos]:
            pos += 1
    if pos < len(want):
        return "C functions %s not below %s (native frames there: %s)" % (
            want, python[-1], [f["name"] for f in below])
    # glibc 2.41+ (Debian sid) enters system calls through internal functions that a stripped
    # libc does not name (__syscall_cancel and below): the leaf is its innermost named function.
    named = list(below)
    while len(named) > 1 and LIBC_UNNAMED.match(named[-1]["name"]):
        named.pop()
    if leaf and named and norm(named[-1]["name"]) != norm(leaf):
        return "innermost C function %s, expected %s" % (named[-1]["name"], leaf)
    return None


def check_callback(frames, entry, exact=True):
    """The ctypes thread inside compare_items: Python -> C (qsort_r) -> Python -> C."""
    also = entry["also"]
    names = [f["name"] for f in frames]
    outer = entry["python"]
    try:
        loop = max(i for i, f in enumerate(frames) if is_python(f) and f["name"] == outer[-1])
        cb = max(i for i, f in enumerate(frames) if is_python(f) and f["name"] == also["function"])
    except ValueError:
        return "no %s and %s frames" % (outer[-1], also["function"])
    if not loop < cb:
        return "%s is not called from %s: %s" % (also["function"], outer[-1], names)
    between = frames[loop + 1:cb]
    if any(f["kind"] != "native" for f in between):
        return "Python frames between %s and %s: %s" % (outer[-1], also["function"], names)
    if norm(also["via"]) not in [norm(f["name"]) for f in between]:
        return "%s not between %s and %s: %s" % (also["via"], outer[-1], also["function"],
                                                   [f["name"] for f in between])
    return check_call(frames, also["python"], also["native"], exact=exact)


def dump_stacks(t, pid, unwinder):
    res = t.aprof("dump", "--native", "--json", "--no-async", "--unwinder", unwinder,
                  "--pid", pid, timeout=60)
    t.require_rc(res, 0, "dump --native")
    doc = json.loads(res.stdout)
    stacks = {}
    for th in doc["threads"]:
        stacks[th["tid"]] = [{"name": f["function"], "file": f["file"], "line": f["line"],
                              "kind": f.get("kind", "python")} for f in th["frames"]]
    return stacks


def check_stripped_names(t, natives, interpreter):
    """A stripped interpreter's frames name the executable, without lines, and its .dynsym
    names where they exist."""
    exe = os.path.realpath(interpreter)
    mine = [f for f in natives if os.path.realpath(f["file"] or "/") == exe]
    t.check(mine and all(f["line"] == 0 for f in mine),
            "stripped interpreter: its frames should name the executable, without lines: %s"
            % mine[:5])
    named = [f for f in mine if not re.search(r"\+0x[0-9a-f]+$", f["name"])]
    t.check(any(f["name"] == "PyEval_EvalCode" for f in named),
            "stripped interpreter: no .dynsym names (PyEval_EvalCode) among %s" % mine[:8])


def check_merged_dumps(t, pid, truth, unwinder, what=""):
    """Dumps of the native fixture until every thread has shown its expected merged stack
    (each is caught in its C call within 30 dumps)."""
    threads = truth["threads"]
    pending = {name: [] for name in threads}
    pending["ctypes-thread/callback"] = []
    for attempt in range(30):
        stacks = dump_stacks(t, pid, unwinder)
        for name, entry in threads.items():
            frames = stacks.get(entry["native_id"])
            t.require(frames is not None, "%sthread %s (%d) missing from the dump" % (
                what, name, entry["native_id"]))
            leaf = entry.get("leaf")
            checks = [(name, lambda f, e=entry, leaf=leaf: check_call(f, e["python"],
                                                                      e["native"], leaf))]
            if name == "ctypes-thread":
                checks.append(("ctypes-thread/callback", lambda f, e=entry: check_callback(f, e)))
            for key, fn in checks:
                if key in pending:
                    why = fn(frames)
                    if why is None:
                        del pending[key]
                    else:
                        pending[key].append(why)
        if not pending:
            break
        # A random pause: at a fixed one, dumps can keep landing at the same phase of the
        # ctypes thread's 60 ms cycle (20 ms in usleep, then ~40 ms in its Python callback)
        # and never see it in usleep (seen on sid's interpreters, whose dumps take longer).
        time.sleep(t.rng.uniform(0.02, 0.09))
    for key, whys in pending.items():
        t.check(False, "%s%s: no dump (of %d) showed the expected merged stack; reasons: %s"
                % (what, key, attempt + 1, sorted(set(whys))[:6]))
