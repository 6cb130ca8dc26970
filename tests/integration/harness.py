"""Integration-test harness for aprof (stdlib only; run by /usr/bin/python3).

- interpreters(): every CPython 3.10-3.13 under `pyenv root`/versions (newest patch of each minor)
  plus Debian's /usr/bin/python3.11 ("debian-3.11"), and with APROF_SID_ROOT (the Debian sid
  root of scripts/sid_root.sh) its stripped 3.13, 3.14 and 3.15 ("sid-3.13", ...), run
  chrooted (APROF_TEST_SID=0 leaves them out). APROF_TEST_PYTHONS="3.12,debian-3.11" restricts the run to those labels.
- A chrooted interpreter's path is a wrapper script that runs it in the root, passing host paths
  under the root as the paths inside it; the fixtures are copied into the root at their host
  path, and a test's temp dir is made inside the root: every path a test hands a fixture works
  unchanged.
- Ctx.start(): a fixture under an interpreter in the test's own temp dir; Fixture.wait_json()
  waits (bounded) for its ground-truth file. Every process a test starts is killed when the test
  ends and again at exit.
- Ctx.aprof(): runs $APROF with a timeout.
- A tiny runner: @per_interpreter / @once tests, soft checks collected with diffs, final line
  `N passed, N failed[, N skipped]`, exit status 1 on any failure.
  `python3 test_x.py [-k SUBSTRING]` runs only the tests whose name contains SUBSTRING.
"""
import ast
import atexit
import difflib
import glob
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

SOURCE_DIR = os.environ.get("APROF_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(SOURCE_DIR, "fixtures")
SUPPORTED_MINORS = ((3, 10), (3, 11), (3, 12), (3, 13))
DEBIAN_PYTHON = "/usr/bin/python3.11"
KEEP_TMP = bool(os.environ.get("APROF_KEEP_TMP"))


# ---------------------------------------------------------------- failures

class Failure(Exception):
    """Stops the current test: it failed."""


class Skip(Exception):
    """Stops the current test: it cannot run here (reason in the message)."""


def render(value):
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True).splitlines()


def diff_text(actual, expected, max_lines=60):
    lines = list(difflib.unified_diff(render(expected), render(actual), "expected", "actual",
                                      lineterm="", n=2))
    if len(lines) > max_lines:
        lines = lines[:max_lines] + ["... (%d more diff lines)" % (len(lines) - max_lines)]
    return "\n".join(lines)


def short(text, limit=2000):
    text = text if isinstance(text, str) else repr(text)
    if len(text) <= limit:
        return text
    return text[:limit] + "... (%d more chars)" % (len(text) - limit)


# ---------------------------------------------------------------- interpreters

class Interpreter:
    def __init__(self, label, path, version, root=None, exe=None):
        self.label = label          # "3.12.1", "debian-3.11" or "sid-3.15"
        self.path = path            # what to run (a chrooted interpreter: its wrapper)
        self.version = version      # platform.python_version() of the interpreter
        self.minor = tuple(int(x) for x in version.split(".")[:2])
        self.root = root            # the root it runs chrooted in, or None
        self.exe = exe or path      # its executable as the host sees it (/proc/PID/exe)

    def __repr__(self):
        return "Interpreter(%s, %s)" % (self.label, self.path)


def pyenv_root():
    if os.environ.get("PYENV_ROOT"):
        return os.environ["PYENV_ROOT"]
    for exe in (shutil.which("pyenv"), "/root/.pyenv/bin/pyenv"):
        if exe and os.access(exe, os.X_OK):
            try:
                out = subprocess.run([exe, "root"], capture_output=True, text=True, timeout=10)
                if out.returncode == 0 and out.stdout.strip():
                    return out.stdout.strip()
            except (OSError, subprocess.SubprocessError):
                pass
    return "/root/.pyenv"


def pyenv_versions():
    """{(major, minor): (patch, version dir)} with the newest patch of each minor."""
    newest = {}
    for d in glob.glob(os.path.join(pyenv_root(), "versions", "*")):
        m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", os.path.basename(d))
        if not m:
            continue
        major, minor, patch = (int(x) for x in m.groups())
        if (major, minor) not in newest or patch > newest[(major, minor)][0]:
            newest[(major, minor)] = (patch, d)
    return newest


def pyenv_binary(version_dir, major, minor):
    for name in ("python%d.%d" % (major, minor), "python%d" % major, "python"):
        path = os.path.join(version_dir, "bin", name)
        if os.access(path, os.X_OK):
            return path
    return None


def query_version(path):
    try:
        out = subprocess.run([path, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


_interpreters = None
SID_PYTHONS = ("3.13", "3.14", "3.15")
_wrapper_dir = None


def chroot_wrapper(root, python):
    """A script that runs ROOT/usr/bin/PYTHON chrooted, host paths under ROOT passed as the
    paths inside it (exec: the target's pid is the script's)."""
    global _wrapper_dir
    if _wrapper_dir is None:
        _wrapper_dir = tempfile.mkdtemp(prefix="aprof-chroot-")
        atexit.register(shutil.rmtree, _wrapper_dir, True)
    path = os.path.join(_wrapper_dir, python)
    with open(path, "w") as f:
        f.write('#!/bin/sh\n'
                '# %s, run chrooted in %s\n'
                'root=%s\n'
                'for a; do\n'
                '    shift\n'
                '    case "$a" in "$root"/*) a="${a#"$root"}" ;; esac\n'
                '    set -- "$@" "$a"\n'
                'done\n'
                'exec chroot "$root" /usr/bin/%s "$@"\n' % (python, root, root, python))
    os.chmod(path, 0o755)
    return path


def sid_interpreters():
    """Debian sid's stripped 3.14 and 3.15, run chrooted in APROF_SID_ROOT; the fixtures are
    copied into the root at their host path."""
    root = os.environ.get("APROF_SID_ROOT")
    if os.environ.get("APROF_TEST_SID") == "0" or not root or \
            not os.path.isfile(os.path.join(root, ".aprof-ready")):
        return []
    inside = root + FIXTURES
    shutil.rmtree(inside, ignore_errors=True)
    shutil.copytree(FIXTURES, inside)
    found = []
    for minor in SID_PYTHONS:
        python = "python" + minor
        exe = os.path.join(root, "usr/bin", python)
        if not os.access(exe, os.X_OK):
            continue
        wrapper = chroot_wrapper(root, python)
        version = query_version(wrapper)
        if version:
            found.append(Interpreter("sid-" + minor, wrapper, version, root, exe))
    return found


def interpreters():
    """Supported target interpreters found on this machine (cached)."""
    global _interpreters
    if _interpreters is None:
        found = []
        for (major, minor), (_, d) in sorted(pyenv_versions().items()):
            path = pyenv_binary(d, major, minor)
            if (major, minor) in SUPPORTED_MINORS and path:
                version = query_version(path)
                if version:
                    found.append(Interpreter(os.path.basename(d), path, version))
        if os.access(DEBIAN_PYTHON, os.X_OK):
            version = query_version(DEBIAN_PYTHON)
            if version:
                found.append(Interpreter("debian-3.11", DEBIAN_PYTHON, version))
        found += sid_interpreters()
        wanted = os.environ.get("APROF_TEST_PYTHONS")
        if wanted:
            labels = set(x.strip() for x in wanted.split(","))
            found = [i for i in found if i.label in labels or "%d.%d" % i.minor in labels]
        _interpreters = found
    return _interpreters


def unsupported_interpreters():
    """pyenv interpreters outside 3.10-3.13 (newest patch per minor): {"3.9": path, ...}."""
    result = {}
    for (major, minor), (_, d) in sorted(pyenv_versions().items()):
        path = pyenv_binary(d, major, minor)
        if (major, minor) not in SUPPORTED_MINORS and path:
            result["%d.%d" % (major, minor)] = path
    return result


# ---------------------------------------------------------------- processes

_live = []  # every Popen any test started; killed at exit if still running


def _kill(proc):
    """SIGKILL a process we started and everything in the session we gave it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            try:
                proc.kill()
            except OSError:
                pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _kill_all():
    for proc in _live:
        _kill(proc)


atexit.register(_kill_all)


def _terminated(signum, _frame):
    sys.exit(128 + signum)  # runs atexit: kills fixtures


signal.signal(signal.SIGTERM, _terminated)


def spawn(argv, stdout, stderr, env=None, cwd=None):
    """Popen in a session of its own (so a whole tree can be killed), tracked for cleanup."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            env=env, cwd=cwd, start_new_session=True)
    _live.append(proc)
    return proc


def idlest_cpu(seconds=0.5):
    """Of the CPUs this process may use, the one with the most idle time over `seconds`."""
    def idle():
        with open("/proc/stat") as f:
            return {int(row[0][3:]): int(row[4]) + int(row[5]) for row in
                    (line.split() for line in f) if row[0].startswith("cpu") and row[0][3:]}
    before = idle()
    time.sleep(seconds)
    after = idle()
    allowed = os.sched_getaffinity(0)
    return max(sorted(allowed), key=lambda c: after.get(c, 0) - before.get(c, 0))


def process_tree(pid):
    """Text describing pid and every descendant: state, tracer, the kernel function it waits
    in, and each thread's state: what a timeout leaves to tell who hung (aprof, or a target
    that never exited)."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
        except (OSError, IndexError, ValueError):
            pass
    lines, todo, seen = [], [(pid, 0)], set()
    while todo and len(lines) < 60:
        p, depth = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            with open("/proc/%d/wchan" % p) as f:
                wchan = f.read().strip()
        except OSError:
            continue
        threads = " ".join("%s:%s%s" % (tid, st[0][:1], "/traced by %d" % tracer if tracer else "")
                           for tid, (st, tracer) in sorted(proc_state(p).items()))
        lines.append("%s%d %s  [wchan %s; threads %s]" % ("  " * depth, p, cmd[:100], wchan,
                                                          threads))
        todo.extend((c, depth + 1) for c in sorted(children.get(p, []), reverse=True))
    return "\n".join(lines)


def pin_threads(pid, cpu):
    """Move every thread of pid to one CPU (as `taskset -a -p`; threads it starts later
    inherit the affinity of the one that starts them)."""
    for task in glob.glob("/proc/%d/task/*" % pid):
        try:
            os.sched_setaffinity(int(os.path.basename(task)), {int(cpu)})
        except OSError:  # a thread that ended meanwhile
            pass


def proc_state(pid):
    """{tid: (state letter and word, TracerPid)} for every thread of pid, {} if it is gone."""
    result = {}
    for task in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(os.path.join(task, "status")) as f:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        result[int(os.path.basename(task))] = (fields.get("State", "?"),
                                               int(fields.get("TracerPid", "0")))
    return result


SPLIT_TOLERANCE = 0.03  # shares of the cpu_split fixture: at least this close


def split_samples(doc, profile):
    """How many samples of a speedscope profile have spin_a or spin_b on the stack."""
    names = [fr["name"] for fr in doc["shared"]["frames"]]
    return sum(1 for s in profile["samples"] if any(names[i] in ("spin_a", "spin_b") for i in s))


def split_tolerance(share, n):
    """SPLIT_TOLERANCE, or four standard errors of a share measured from n samples taken at
    random moments (Poisson sampling), when that is more."""
    return max(SPLIT_TOLERANCE, 4 * math.sqrt(max(share * (1 - share), 0.01) / max(n, 1)))


def thread_start_ticks(pid, tid):
    """The thread's start time in clock ticks since boot (with the tid, names one thread even
    when tids are reused), None if it is gone."""
    try:
        with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class Fixture:
    """A target process started by a test; its stdout/stderr go to files in the test's dir."""

    def __init__(self, ctx, argv, name):
        self.ctx = ctx
        self.argv = argv
        self.stdout_path = os.path.join(ctx.tmp, name + ".stdout")
        self.stderr_path = os.path.join(ctx.tmp, name + ".stderr")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = spawn(argv, out, err, cwd=ctx.tmp)
        self.pid = self.proc.pid

    def output(self):
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            try:
                with open(path, errors="replace") as f:
                    parts.append(f.read())
            except OSError:
                parts.append("")
        return parts

    def wait_json(self, path, timeout=20.0):
        """The JSON document the fixture writes to path (atomically), waiting at most timeout s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    return json.load(f)
            if self.proc.poll() is not None and not os.path.exists(path):
                out, err = self.output()
                raise Failure("fixture %s exited with %s before writing %s\nstdout: %s\nstderr: %s"
                              % (" ".join(self.argv), self.proc.returncode, path,
                                 short(out), short(err)))
            time.sleep(0.02)
        raise Failure("fixture %s did not write %s within %.0f s" % (" ".join(self.argv), path,
                                                                      timeout))

    def wait_file(self, path, timeout=20.0):
        """Wait (bounded) until the fixture creates path; fail if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return
            if not self.alive():
                raise Failure("fixture exited early: %s" % (self.output(),))
            time.sleep(0.02)
        raise Failure("fixture did not create %s" % path)

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        _kill(self.proc)


class Result:
    def __init__(self, argv, rc, stdout, stderr, elapsed):
        self.argv, self.rc, self.elapsed = argv, rc, elapsed
        self.stdout, self.stderr = stdout, stderr
        self.end = time.monotonic()  # CLOCK_MONOTONIC when aprof had exited, as in fixtures

    def describe(self):
        return "command: %s\nexit code: %s (%.2f s)\nstdout: %s\nstderr: %s%s" % (
            " ".join(self.argv), self.rc, self.elapsed, short(self.stdout), short(self.stderr),
            symbolized_backtrace(self.stderr))


def symbolized_backtrace(stderr):
    """aprof's crash report (src/cli/crash_report.c) prints the failing stack as "FILE(+0xOFF)"
    program counters: their functions and lines, from addr2line, so that a crash seen once in CI
    says where it happened."""
    if not isinstance(stderr, str) or "aprof: backtrace:" not in stderr:
        return ""
    out = []
    for line in stderr.split("aprof: backtrace:", 1)[1].splitlines():
        m = re.match(r"\s*(\S+?)\((\S*?)\+(0x[0-9a-f]+)\)", line)
        if not m:
            continue
        path, sym, off = m.groups()
        where = "%s+%s" % (sym, off) if sym else "?"
        if not sym and os.path.exists(path):
            try:
                # a return address: the call is the instruction before it
                pc = "0x%x" % max(0, int(off, 16) - 1)
                where = subprocess.run(["addr2line", "-f", "-i", "-C", "-p", "-e", path, pc],
                                       capture_output=True, text=True, timeout=30).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                pass
        out.append("  %s %s: %s" % (os.path.basename(path), off, where.replace("\n", " | ")))
    return "\nbacktrace, symbolized:\n" + "\n".join(out) if out else ""


def aprof_binary():
    path = os.environ.get("APROF")
    if not path and os.environ.get("APROF_BINARY_DIR"):
        path = os.path.join(os.environ["APROF_BINARY_DIR"], "aprof")
    if not path or not os.access(path, os.X_OK):
        raise Failure("aprof binary not found (APROF=%r)" % path)
    return path


# ---------------------------------------------------------------- test context

class Ctx:
    """What a test function receives: its interpreter, a temp dir, process helpers, checks."""

    def __init__(self, name, interp, rng):
        self.name = name
        self.interp = interp
        self.rng = rng
        # inside the root of a chrooted interpreter, so that its fixtures can write there
        self.tmp = tempfile.mkdtemp(prefix="aprof-it-",
                                    dir=interp.root + "/tmp" if interp and interp.root else None)
        os.chmod(self.tmp, 0o755)
        self.failures = []
        self.procs = []

    # -- processes
    @property
    def py(self):
        return self.interp.path

    def start(self, script, *args, python=None, name=None):
        """Start fixtures/SCRIPT (or, when script is None, just args) under an interpreter."""
        argv = [python or self.interp.path]
        argv += ([os.path.join(FIXTURES, script)] if script else []) + [str(a) for a in args]
        fx = Fixture(self, argv, name or "fixture%d" % len(self.procs))
        self.procs.append(fx.proc)
        return fx

    def path(self, name):
        return os.path.join(self.tmp, name)

    def aprof(self, *args, timeout=60.0, prefix=(), env=None):
        """Run aprof to completion; a timeout kills it (and what it launched) and fails the test."""
        argv = list(prefix) + [aprof_binary()] + [str(a) for a in args]
        start = time.monotonic()
        proc = spawn(argv, subprocess.PIPE, subprocess.PIPE, env=env, cwd=self.tmp)
        self.procs.append(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            tree = process_tree(proc.pid)
            _kill(proc)
            out, err = proc.communicate()
            res = Result(argv, None, out.decode("utf-8", "replace"),
                         err.decode("utf-8", "replace"), time.monotonic() - start)
            raise Failure("aprof did not finish within %.0f s\n%s\nprocesses then:\n%s" % (
                timeout, res.describe(), tree))
        return Result(argv, proc.returncode, out.decode("utf-8", "replace"),
                      err.decode("utf-8", "replace"), time.monotonic() - start)

    def aprof_background(self, *args, name="aprof", env=None):
        """Start aprof without waiting; stdout/stderr go to files NAME.stdout/.stderr."""
        argv = [aprof_binary()] + [str(a) for a in args]
        out_path, err_path = self.path(name + ".stdout"), self.path(name + ".stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = spawn(argv, out, err, env=env, cwd=self.tmp)
        proc.argv, proc.stdout_path, proc.stderr_path = argv, out_path, err_path
        proc.started = time.monotonic()
        self.procs.append(proc)
        return proc

    def finish(self, proc, timeout):
        """Wait for a background aprof; a Result, or a Failure (after killing it) on timeout."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tree = process_tree(proc.pid)
            _kill(proc)
            raise Failure("%s did not exit within %.0f s\nprocesses then:\n%s" % (
                " ".join(proc.argv), timeout, tree))
        with open(proc.stdout_path, errors="replace") as f:
            out = f.read()
        with open(proc.stderr_path, errors="replace") as f:
            err = f.read()
        return Result(proc.argv, proc.returncode, out, err, time.monotonic() - proc.started)

    def cleanup(self):
        for proc in self.procs:
            _kill(proc)
        if KEEP_TMP or self.failures:
            return self.tmp
        shutil.rmtree(self.tmp, ignore_errors=True)
        return None

    # -- checks (soft: collected, the test goes on) and requirements (stop the test)
    def check(self, cond, message):
        if not cond:
            self.failures.append(message)
        return bool(cond)

    def eq(self, actual, expected, what):
        if actual == expected:
            return True
        structured = isinstance(actual, (list, dict)) or isinstance(expected, (list, dict))
        multiline = isinstance(actual, str) and isinstance(expected, str) and \
            "\n" in actual + expected
        if structured or multiline:
            self.failures.append("%s differs:\n%s" % (what, diff_text(actual, expected)))
        else:
            self.failures.append("%s: expected %r, got %r" % (what, expected, actual))
        return False

    def near(self, actual, expected, tolerance, what):
        if expected is None:
            return self.check(False, "%s: no expected value (got %s)" % (what, actual))
        return self.check(actual is not None and abs(actual - expected) <= tolerance,
                          "%s: expected %.4f +- %.4f, got %s" % (what, expected, tolerance, actual))

    def require(self, cond, message):
        if not cond:
            raise Failure(message)

    def require_rc(self, res, rc, what="aprof"):
        if res.rc != rc:
            raise Failure("%s: expected exit code %s\n%s" % (what, rc, res.describe()))


# ---------------------------------------------------------------- output formats

SPEEDSCOPE_UNITS = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6,
                    "nanoseconds": 1e-9}
THREAD_PROFILE = re.compile(r'Thread (\d+) "(.*)"\Z')


def find_nulls(value, where="$"):
    """JSON paths of every null in a document."""
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in find_nulls(v, "%s.%s" % (where, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in find_nulls(v, "%s[%d]" % (where, i))]
    return []


def speedscope_problems(doc):
    """Everything wrong with a speedscope document as aprof promises to write it."""
    problems = []
    nulls = find_nulls(doc)
    if nulls:
        problems.append("null values at %s" % ", ".join(nulls[:10]))
    if not isinstance(doc, dict):
        return problems + ["document is not an object"]
    if doc.get("$schema") != "https://www.speedscope.app/file-format-schema.json":
        problems.append("$schema is %r" % doc.get("$schema"))
    if not str(doc.get("exporter", "")).startswith("aprof@"):
        problems.append("exporter %r does not start with 'aprof@'" % doc.get("exporter"))
    frames = (doc.get("shared") or {}).get("frames")
    if not isinstance(frames, list):
        return problems + ["shared.frames is not a list"]
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or not isinstance(fr.get("name"), str):
            problems.append("shared.frames[%d] has no string name: %r" % (i, fr))
        elif "line" in fr and not isinstance(fr["line"], int):
            problems.append("shared.frames[%d].line is not an integer: %r" % (i, fr))
    profiles = doc.get("profiles")
    if not isinstance(profiles, list) or not profiles:
        return problems + ["no profiles"]
    for p in profiles:
        name = p.get("name")
        if p.get("type") != "sampled":
            problems.append("profile %r: type %r, expected 'sampled'" % (name, p.get("type")))
            continue
        if p.get("unit") not in SPEEDSCOPE_UNITS:
            problems.append("profile %r: unit %r" % (name, p.get("unit")))
        samples, weights = p.get("samples"), p.get("weights")
        if not isinstance(samples, list) or not isinstance(weights, list) \
                or len(samples) != len(weights):
            problems.append("profile %r: samples and weights are not lists of equal length" % name)
            continue
        if not all(isinstance(w, (int, float)) and w >= 0 for w in weights):
            problems.append("profile %r: a weight is negative or not a number" % name)
        for s in samples:
            if not isinstance(s, list) or not all(isinstance(i, int) and 0 <= i < len(frames)
                                                  for i in s):
                problems.append("profile %r: sample %r has frame indices outside shared.frames"
                                % (name, short(s, 200)))
                break
        sv, ev = p.get("startValue"), p.get("endValue")
        if not isinstance(sv, (int, float)) or not isinstance(ev, (int, float)) or sv > ev:
            problems.append("profile %r: startValue %r / endValue %r" % (name, sv, ev))
    return problems


def load_speedscope(ctx, path):
    """Parse and validate a speedscope file; validation problems fail the test."""
    ctx.require(os.path.exists(path), "no output file %s" % path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise Failure("%s is not valid JSON (%s): %s" % (path, e, short(text, 500)))
    problems = speedscope_problems(doc)
    if problems:
        raise Failure("%s is not a valid aprof speedscope file:\n  %s"
                      % (path, "\n  ".join(problems)))
    return doc


def thread_profiles(doc):
    """{(tid, thread name): [profiles]} for every profile named `Thread TID "NAME"`."""
    result = {}
    for p in doc["profiles"]:
        m = THREAD_PROFILE.match(p.get("name", ""))
        if m:
            result.setdefault((int(m.group(1)), m.group(2)), []).append(p)
    return result


def profiles_of_tid(doc, tid):
    """Every thread profile of native thread id tid, whatever its thread name."""
    return [p for (t, _), found in thread_profiles(doc).items() if t == tid for p in found]


def merged_profile(doc, tid):
    """All samples of thread tid as one profile (weights in seconds), None if it has none.
    Tests of other properties use this, so a thread split over several profiles (checked
    where that is the point) does not hide them."""
    found = profiles_of_tid(doc, tid)
    if not found:
        return None
    return {"name": " + ".join(p["name"] for p in found), "unit": "seconds",
            "samples": [s for p in found for s in p["samples"]],
            "weights": [w * SPEEDSCOPE_UNITS[p["unit"]] for p in found for w in p["weights"]]}


def profile_seconds(profile):
    return sum(profile["weights"]) * SPEEDSCOPE_UNITS[profile["unit"]]


def weight_with(doc, profile, function):
    """Seconds of a profile's samples that have FUNCTION (frame name) anywhere on the stack."""
    names = [fr["name"] for fr in doc["shared"]["frames"]]
    scale = SPEEDSCOPE_UNITS[profile["unit"]]
    return sum(w for s, w in zip(profile["samples"], profile["weights"])
               if any(names[i] == function for i in s)) * scale


def code_object_name(node, minor):
    """The name of the code object CPython compiles an AST node into, or None when the node
    runs in its parent's frame. Lambdas and generator expressions always get their own code
    object; list, set and dict comprehensions do before 3.12 (PEP 709 inlines them)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name
    if isinstance(node, ast.Lambda):
        return "<lambda>"
    if isinstance(node, ast.GeneratorExp):
        return "<genexpr>"
    if minor < (3, 12):
        for kind, name in ((ast.ListComp, "<listcomp>"), (ast.SetComp, "<setcomp>"),
                           (ast.DictComp, "<dictcomp>")):
            if isinstance(node, kind):
                return name
    return None


def source_functions(path, minor):
    """{function name as aprof reports it (qualname on 3.11+, name on 3.10): [(first, last)]}
    for every code object in a Python source file (functions, lambdas, comprehensions that
    have their own frame), from its AST."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    result = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            name = code_object_name(child, minor)
            if name is not None:
                qualname = prefix + name
                shown = qualname if minor >= (3, 11) else name
                result.setdefault(shown, []).append((child.lineno, child.end_lineno))
                visit(child, qualname + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)
    visit(tree, "")
    return result


def frame_fits_source(name, line, functions):
    """Whether a reported (function, line) can be real: the line lies in that function, or for
    <module> outside every function body."""
    if name == "<module>":
        return not any(first < line <= last for ranges in functions.values()
                       for first, last in ranges)
    return any(first <= line <= last for first, last in functions.get(name, ()))


def sampled_window(summary_path):
    """[start, end] in CLOCK_MONOTONIC seconds of what aprof sampled, from its --summary file."""
    with open(summary_path) as f:
        doc = json.load(f)
    start = float(doc["start_monotonic_s"])
    return start, start + float(doc["duration_s"])


def window_split(timeline, start, end):
    """spin_a's share of spin_a+spin_b time within [start, end], from cpu_split's --timeline."""
    a = b = 0.0
    for t0, t1, t2 in timeline:
        a += max(0.0, min(t1, end) - max(t0, start))
        b += max(0.0, min(t2, end) - max(t1, start))
    return a / (a + b) if a + b > 0 else None


COLLAPSED_FRAME = re.compile(r"(.*) \((.*):(\d+)\)\Z")


def parse_collapsed(text):
    """[(thread, [frame names outermost first], count)] from folded-stack lines."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            raise Failure("malformed collapsed line: %r" % line)
        parts = stack.split(";")
        names = []
        for part in parts[1:]:
            m = COLLAPSED_FRAME.match(part)
            names.append(m.group(1) if m else part)
        rows.append((parts[0], names, int(count)))
    return rows


def one_error_line(ctx, res, rc, what):
    """The documented error shape: exit code rc and exactly one stderr line "aprof: ..."."""
    lines = res.stderr.splitlines()
    one_line = len(lines) == 1 and lines[0].startswith("aprof: ")
    ctx.check(res.rc == rc and one_line, "%s: expected exit code %d and exactly one stderr line "
              "starting with 'aprof: '\n%s" % (what, rc, res.describe()))
    return lines[0] if lines else ""


# ---------------------------------------------------------------- runner

_tests = []
# APROF_TEST_SMOKE=1: the sanitizer run (scripts/test.sh), which runs only @smoke tests
SMOKE = os.environ.get("APROF_TEST_SMOKE") == "1"


def per_interpreter(fn):
    """Run fn(ctx) once for every supported interpreter."""
    _tests.append((fn, True))
    return fn


def representative(fn):
    """Run fn(ctx) on three interpreters that stand for the three ways aprof finds its way in a
    target: the oldest pyenv build (symbols and aprof's own layout tables), Debian's stripped
    python3.11 (no symbols: found by scanning) and the newest interpreter of all (sid's 3.15
    where present: CPython's own debug offsets). For tests of what aprof builds on the readers
    (output formats, the TUI, options, the stall detector's thresholds), whose readers the
    per-interpreter tests already check on every interpreter."""
    _tests.append((fn, "representative"))
    return fn


def representatives(interps):
    if not interps:
        return []
    version = lambda i: tuple(int(x) for x in re.findall(r"\d+", i.version))
    pyenv = [i for i in interps if not i.label.startswith(("debian", "sid"))]
    picked = [min(pyenv or interps, key=version)]
    picked += [i for i in interps if i.label.startswith("debian")][:1]
    picked.append(max(interps, key=lambda i: (version(i), i.label.startswith("sid"))))
    return [i for k, i in enumerate(picked) if i not in picked[:k]]


def once(fn):
    """Run fn(ctx) once; ctx.interp is the newest supported interpreter."""
    _tests.append((fn, False))
    return fn


def smoke(fn):
    """Mark fn as its file's test for the sanitizer run (APROF_TEST_SMOKE=1 runs only these, on
    each interpreter it is run on): scripts/test.sh runs them against the ASan +
    UBSan build of aprof."""
    fn.smoke = True
    return fn


def main():
    args = sys.argv[1:]
    pattern = args[args.index("-k") + 1] if "-k" in args[:-1] else None
    seed = int(os.environ.get("APROF_TEST_SEED") or time.time_ns() % 1000000)
    interps = interpreters()
    print("interpreters: %s" % ", ".join("%s (%s)" % (i.label, i.path) for i in interps))
    print("aprof: %s   seed: %d (set APROF_TEST_SEED to repeat)" % (os.environ.get("APROF"), seed))
    sys.stdout.flush()
    passed = failed = skipped = 0
    if not interps:
        print("FAIL no supported interpreter (3.10-3.13) found")
        failed += 1
    for fn, every in _tests:
        if SMOKE and not getattr(fn, "smoke", False):
            continue
        chosen = (interps if every is True else representatives(interps)
                  if every == "representative" else [newest(interps)] if interps else [])
        for interp in chosen:
            name = "%s[%s]" % (fn.__name__, interp.label) if every else fn.__name__
            if pattern and pattern not in name:
                continue
            ctx = Ctx(name, interp, random.Random("%d:%s" % (seed, name)))
            start = time.monotonic()
            skip_reason = None
            try:
                fn(ctx)
            except Skip as e:
                skip_reason = str(e)
            except Failure as e:
                ctx.failures.append(str(e))
            except Exception:
                ctx.failures.append("exception:\n" + traceback.format_exc())
            finally:
                kept = ctx.cleanup()
            took = time.monotonic() - start
            if ctx.failures:
                failed += 1
                print("FAIL %s (%.1f s)%s" % (name, took, "  [files: %s]" % kept if kept else ""))
                for msg in ctx.failures:
                    print("    " + msg.replace("\n", "\n    "))
            elif skip_reason is not None:
                skipped += 1
                print("SKIP %s: %s" % (name, skip_reason))
            else:
                passed += 1
                print("PASS %s (%.1f s)" % (name, took))
            sys.stdout.flush()
    summary = "%d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary)
    sys.exit(1 if failed else 0)


def newest(interps):
    """The pyenv interpreter of the highest version (Debian's only if nothing else)."""
    pyenv = [i for i in interps if not i.label.startswith(("debian", "sid"))]
    return max(pyenv or interps, key=lambda i: tuple(int(x) for x in re.findall(r"\d+", i.version)))

