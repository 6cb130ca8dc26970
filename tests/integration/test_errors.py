"""Every bad input: one stderr line "aprof: ..." and its documented exit code (src/cli/exitcodes.h)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

EXIT_USAGE, EXIT_NO_PROCESS, EXIT_NOT_PYTHON, EXIT_UNSUPPORTED = 2, 3, 4, 5
EXIT_PERMISSION, EXIT_OUTPUT, EXIT_LAUNCH = 6, 7, 8
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# A target any interpreter (2.7 included) can run: writes argv[1] once running, then sleeps.
# the ready file appears whole (written aside, then renamed): wait_json must never see it empty
SLEEPER = ("import os, sys, time\nopen(sys.argv[1] + '.tmp', 'w').write('{}')\n"
           "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\nwhile True: time.sleep(0.05)\n")


def start_sleeper(t, python, name="target"):
    ready = t.path(name + ".ready")
    fx = t.start(None, "-c", SLEEPER, ready, python=python, name=name)
    fx.wait_json(ready)
    return fx


def dead_pid():
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@h.once
def test_no_such_process(t):
    pid = dead_pid()
    for args in (["dump", "--pid", pid], ["record", "--pid", pid, "-o", t.path("x.json")]):
        h.one_error_line(t, t.aprof(*args, timeout=20), EXIT_NO_PROCESS,
                         "aprof %s (no such pid)" % args[0])


@h.once
def test_not_python(t):
    fx = t.start(None, "100", python="/bin/sleep", name="sleep")
    for args in (["dump", "--pid", fx.pid], ["record", "--pid", fx.pid, "--duration", 1,
                                             "-o", t.path("x.json")]):
        h.one_error_line(t, t.aprof(*args, timeout=20), EXIT_NOT_PYTHON,
                         "aprof %s on `sleep 100`" % args[0])
    t.check(fx.alive(), "`sleep 100` died")


@h.once
def test_unsupported_version(t):
    found = h.unsupported_interpreters()
    chosen = [v for v in ("3.9", "2.7") if v in found]
    if not chosen:
        raise h.Skip("no pyenv 3.9 or 2.7 found (have: %s)" % ", ".join(sorted(found)))
    for version in chosen:
        fx = start_sleeper(t, found[version], name="py" + version)
        for sub in ("dump", "record"):
            args = [sub, "--pid", fx.pid] + (["-o", t.path("x.json"), "--duration", 1]
                                             if sub == "record" else [])
            line = h.one_error_line(t, t.aprof(*args, timeout=20), EXIT_UNSUPPORTED,
                                    "aprof %s on Python %s" % (sub, version))
            t.check(version in line and "3.10" in line,
                    "message should name the version found (%s) and 3.10: %r" % (version, line))
        t.check(fx.alive(), "the Python %s target died" % version)


@h.once
def test_permission_denied(t):
    probe = t.aprof("--version", prefix=NOBODY, timeout=10)
    if probe.rc != 0:
        raise h.Skip("cannot run aprof as nobody via setpriv:\n%s" % probe.describe())
    pythons = [h.DEBIAN_PYTHON] if os.access(h.DEBIAN_PYTHON, os.X_OK) else []
    pythons.append(t.py)
    for python in pythons:
        fx = start_sleeper(t, python, name=os.path.basename(python))
        line = h.one_error_line(t, t.aprof("dump", "--pid", fx.pid, prefix=NOBODY, timeout=20),
                                EXIT_PERMISSION, "aprof dump as nobody on root's %s" % python)
        t.check("CAP_SYS_PTRACE" in line, "message should explain CAP_SYS_PTRACE: %r" % line)
        t.check(fx.alive(), "the target died")


@h.once
@h.smoke
def test_unwritable_output(t):
    heartbeat = t.path("heartbeat")
    ready = t.path("ready.json")
    fx = t.start("cpu_split.py", "--duration", 60, "--ready", ready, "--heartbeat", heartbeat)
    fx.wait_json(ready)
    for out in ("/nonexistent-aprof-dir/out.json", "/proc/version"):
        res = t.aprof("record", "--pid", fx.pid, "--duration", 1, "-o", out, timeout=20)
        h.one_error_line(t, res, EXIT_OUTPUT, "record -o %s" % out)
    t.require(fx.alive(), "the target died")
    states = h.proc_state(fx.pid)
    t.check(all(state[0] not in "tT" and tracer == 0 for state, tracer in states.values()),
            "target threads after the failed record: %r" % states)
    before = read_counter(heartbeat)
    time.sleep(0.3)
    t.check(read_counter(heartbeat) > before, "the target made no progress after the error")


def read_counter(path):
    with open(path) as f:
        text = f.read().strip()
    return int(text) if text else 0


@h.once
def test_bad_option_values(t):
    fx = start_sleeper(t, t.py)
    pid, out = str(fx.pid), t.path("x.json")
    cases = [
        ["record", "--pid", pid, "-o", out, "--rate", "0"],
        ["record", "--pid", pid, "-o", out, "--rate", "abc"],
        ["record", "--pid", pid, "-o", out, "--rate", "-5"],
        ["record", "--pid", pid, "-o", out, "--duration", "-1"],
        ["record", "--pid", pid, "-o", out, "--duration", "abc"],
        ["record", "--pid", pid, "-o", out, "--mode", "gpu"],
        ["record", "--pid", pid, "-o", out, "--format", "svg"],
        ["record", "--pid", pid, "-o", out, "--no-such-option"],
        ["record", "-o", out],
        ["dump", "--pid", pid, "--no-such-option"],
        ["dump"],
        ["dump", "--pid"],
        ["dump", "--pid", "abc"],
        ["no-such-command"],
    ]
    for args in cases:
        h.one_error_line(t, t.aprof(*args, timeout=20), EXIT_USAGE, "aprof " + " ".join(args))
    t.check(not os.path.exists(out), "a rejected command line still wrote %s" % out)
    t.check(fx.alive(), "the target died")


@h.once
def test_launch_failure(t):
    not_executable = t.path("not-executable.sh")
    with open(not_executable, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(not_executable, 0o644)
    for cmd in ("/nonexistent/command", not_executable):
        res = t.aprof("record", "-o", t.path("x.json"), "--", cmd, timeout=20)
        h.one_error_line(t, res, EXIT_LAUNCH, "record -- %s" % cmd)


# A busy target: writes argv[1] once running, then computes.
SPINNER = ("import os, sys\nopen(sys.argv[1] + '.tmp', 'w').write('{}')\n"
           "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\nn = 0\nwhile True: n += 1\n")


@h.once
def test_crash_report(t):
    """aprof dying of a fatal signal (as a heap check's abort would make it) says so in one line,
    prints its stack (symbolized here by addr2line, as every failing test's description is), and
    leaves no thread of the target stopped: the kernel lets them go."""
    ready = t.path("spin.ready")
    fx = t.start(None, "-c", SPINNER, ready, name="spinner")
    fx.wait_json(ready)
    for sig, mode in ((11, "--blocking"), (6, "--native")):
        proc = t.aprof_background("record", "--pid", fx.pid, "--rate", 1000, mode,
                                  "-o", t.path("crash.json"), name="crash-%d" % sig)
        time.sleep(1.5)
        t.require(proc.poll() is None, "aprof record %s ended early" % mode)
        os.kill(proc.pid, sig)
        res = t.finish(proc, timeout=30)
        t.eq(res.rc, -sig, "aprof's fate after signal %d" % sig)
        t.check(("aprof: internal error: fatal signal %d " % sig) in res.stderr,
                "no crash line on stderr:\n%s" % res.describe())
        trace = h.symbolized_backtrace(res.stderr)
        t.check("cmd_record at " in trace and "main at " in trace and "src/cli/" in trace,
                "the crash's stack is not symbolized to aprof's functions:\n%s" % res.describe())
        time.sleep(0.3)
        stopped = [tid for tid, (state, _) in h.proc_state(fx.pid).items() if state[:1] in "tT"]
        t.check(not stopped, "threads %s of the target left stopped" % stopped)
        t.check(fx.alive(), "the target died with aprof")


if __name__ == "__main__":
    h.main()
