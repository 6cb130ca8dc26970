"""Driving `aprof attach` in a private tmux server (send-keys, capture-pane), for the TUI
tests (test_tui.py, test_subprocesses.py)."""
import os
import shlex
import shutil
import subprocess
import time

import harness as h


class Tmux:
    """One private tmux server (own socket) running `aprof attach` in a wrapper shell that
    prints the exit code when aprof ends and then keeps the pane open."""

    def __init__(self, t, pid, width=120, height=40, env=None, extra=()):
        if not shutil.which("tmux"):
            raise h.Skip("tmux is not installed")
        self.t = t
        n = len(getattr(t, "tmux_servers", []))
        self.sock = t.path("tmux%d.sock" % n)  # a fresh server each time: no shutdown races
        self.rc_path = t.path("aprof%d.rc" % n)
        argv = [h.aprof_binary(), "attach", "--pid", str(pid)] + [str(a) for a in extra]
        envs = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in (env or {}).items())
        # the wrapper survives the Ctrl-C that tmux sends to the whole foreground group
        script = "trap : INT; %s %s; rc=$?; echo $rc > %s; echo RC=$rc; sleep 600" % (
            "env " + envs if envs else "", " ".join(shlex.quote(a) for a in argv),
            shlex.quote(self.rc_path))
        self.run("-f", "/dev/null", "new-session", "-d", "-x", str(width), "-y", str(height),
                 "-s", "aprof", "-c", t.tmp, "sh", "-c", script)
        t.tmux_servers = getattr(t, "tmux_servers", []) + [self]

    def run(self, *args, check=True):
        res = subprocess.run(["tmux", "-S", self.sock] + list(args), capture_output=True,
                             text=True, timeout=20)
        if check and res.returncode != 0:
            raise h.Failure("tmux %s failed: %s" % (" ".join(args), res.stderr.strip()))
        return res.stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "aprof", *keys)

    def screen(self, escapes=False):
        return self.run("capture-pane", "-p", "-t", "aprof", *(["-e"] if escapes else []))

    def wait_for(self, pred, timeout=15.0, what="screen condition"):
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if pred(text):
                return text
            time.sleep(0.2)
        raise h.Failure("timed out waiting for %s; the screen was:\n%s" % (what, text))

    def aprof_pid(self):
        """The aprof process: the child of the wrapper shell of the pane."""
        shell = int(self.run("display-message", "-p", "-t", "aprof", "#{pane_pid}").strip())
        for task in os.listdir("/proc/%d/task" % shell):
            with open("/proc/%d/task/%s/children" % (shell, task)) as f:
                for child in f.read().split():
                    with open("/proc/%s/cmdline" % child, "rb") as c:
                        if b"attach" in c.read():
                            return int(child)
        raise h.Failure("no aprof process under the tmux pane")

    def wait_rc(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.rc_path):
                with open(self.rc_path) as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            time.sleep(0.1)
        raise h.Failure("aprof did not exit within %.0f s; the screen was:\n%s"
                        % (timeout, self.screen()))

    def kill(self):
        self.run("kill-server", check=False)


def with_tmux(fn):
    """Kill the test's tmux servers however the test ends."""
    def wrapper(t):
        try:
            fn(t)
        finally:
            for srv in getattr(t, "tmux_servers", []):
                srv.kill()
    wrapper.__name__ = fn.__name__
    return wrapper


def check_target_running(t, fx):
    """Alive, and not left stopped or traced by aprof."""
    time.sleep(0.3)
    t.check(fx.alive(), "the target died when aprof quit")
    for tid, (state, tracer) in h.proc_state(fx.pid).items():
        t.check(not state.startswith(("T", "t")) and tracer == 0,
                "thread %d of the target left %s / traced by %d" % (tid, state, tracer))


def check_restored(t, tmux, rc_expected=0):
    rc = tmux.wait_rc()
    t.eq(rc, rc_expected, "aprof exit code")
    text = tmux.wait_for(lambda s: "RC=" in s, 5, "the wrapper's RC line")
    t.check("aprof attach  pid" not in text,
            "the TUI is still on the screen after aprof exited (terminal not restored):\n" + text)
