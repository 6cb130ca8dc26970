"""--subprocesses: one recording (or dump) of a process and all its descendants.

Ground truth comes from the targets themselves and from /proc, never from aprof:
- gunicorn with 3 uvicorn workers (Debian's python3.11) serving fixtures/workers_app.py under
  loopback load: each response names the worker that served it, /block answers with the
  handler's own clock around its blocking call, the master's children are read from /proc, and
  one worker is SIGKILLed mid-recording so that gunicorn starts another;
- `uvicorn --workers 2` (children started by multiprocessing's spawn: exec'd interpreters);
- a multiprocessing pool (fork) whose workers write their pids as they start, with a `sleep`
  child that is not Python;
- `aprof attach --subprocesses` in tmux over fixtures/async_workers.py (a parent and forked
  children with an event loop each): every process's tasks against the names each wrote;
- bad input: --native with --subprocesses, a pid that does not exist.
"""
import ast
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from tmux_driver import Tmux, check_restored  # noqa: E402

APP = os.path.join(h.FIXTURES, "workers_app.py")
DEBIAN = h.DEBIAN_PYTHON


def blocking_line():
    with open(APP) as f:
        for i, line in enumerate(f, 1):
            if "BLOCKING-LINE" in line and "time.sleep" in line:
                return i
    raise AssertionError("no BLOCKING-LINE in workers_app.py")


def require_modules(t, *mods):
    res = subprocess.run([DEBIAN, "-c", "import " + ", ".join(mods)], capture_output=True)
    t.require(res.returncode == 0, "%s needs %s for python3.11 (scripts/setup.sh --tests "
              "installs them): %s" % (t.name, ", ".join(mods), res.stderr.decode()[-300:]))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def children(pid):
    """pid's children, from every thread's /proc children file."""
    kids = set()
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return kids
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise h.Failure("timed out after %.0f s waiting for %s" % (timeout, what))


def load(port, seconds, paths, served):
    """Request paths round robin from a few threads; served[pid] counts the answers."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(i):
        n = i
        while time.monotonic() < deadline:
            try:
                body = get(port, paths[n % len(paths)], timeout=5)
                with lock:
                    pid = int(body.split()[0])
                    served[pid] = served.get(pid, 0) + 1
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.02)
            n += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    return threads


def summary_procs(summary):
    return {p["pid"]: p for p in summary["processes"]}


def profile_pids(doc):
    """pid of every thread profile named `Process PID "...": Thread ...`."""
    pids = {}
    for p in doc["profiles"]:
        if p["name"].startswith("Process "):
            pid = int(p["name"].split()[1])
            pids[pid] = pids.get(pid, 0) + len(p["samples"])
    return pids


@h.once
def test_gunicorn_uvicorn_workers(t):
    require_modules(t, "gunicorn", "uvicorn", "starlette")
    port = free_port()
    fx = t.start(None, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", 3,
                 "-b", "127.0.0.1:%d" % port, "--chdir", h.FIXTURES, "--graceful-timeout", 1,
                 "workers_app:app", python=DEBIAN, name="gunicorn")
    master = fx.pid
    wait_for("gunicorn to answer", lambda: _answers(port), 30)
    before = wait_for("3 gunicorn workers", lambda: (lambda k: k if len(k) == 3 else None)(
        children(master)), 30)
    out, summary_path = t.path("out.json"), t.path("summary.json")
    rec = t.aprof_background("record", "--pid", master, "--subprocesses", "-d", 9, "--rate", 500,
                             "-o", out, "--summary", summary_path)
    time.sleep(1.5)
    served = {}
    threads = load(port, 6.5, ["/", "/cpu", "/"], served)
    time.sleep(1.0)
    body = get(port, "/block", timeout=10).split()
    blocker, own_s = int(body[0]), float(body[2]) - float(body[1])
    victim = sorted(before - {blocker})[0]
    time.sleep(0.5)
    os.kill(victim, signal.SIGKILL)  # gunicorn starts another worker
    after = wait_for("gunicorn to replace worker %d" % victim,
                     lambda: (lambda k: k if len(k) == 3 and victim not in k else None)(
                         children(master)), 8)
    for th in threads:
        th.join()
    res = t.finish(rec, 40)
    t.require_rc(res, 0, "record --subprocesses (gunicorn)")
    with open(summary_path) as f:
        summary = json.load(f)
    procs = summary_procs(summary)
    new = sorted(after - before)
    t.require(len(new) == 1, "one new worker expected: before %s, after %s" % (before, after))
    everyone = {master} | before | after
    for pid in sorted(everyone):
        p = procs.get(pid)
        t.check(p and p["status"] == "sampled" and p["samples"] > 0,
                "process %d (%s) not sampled: %s" % (pid, cmdline(pid), p))
    t.check(procs.get(victim, {}).get("exited") is True, "killed worker %d not reported exited: %s"
            % (victim, procs.get(victim)))
    t.check(procs.get(new[0], {}).get("joined_s", 0) > 1.0,
            "the restarted worker should join mid-recording: %s" % procs.get(new[0]))
    doc = h.load_speedscope(t, out)
    in_file = profile_pids(doc)
    for pid in sorted(everyone):
        t.check(in_file.get(pid, 0) > 0, "no profile of process %d in the speedscope file (%s)"
                % (pid, sorted(in_file)))
    t.check(set(in_file) <= everyone, "profiles of processes that are not gunicorn's: %s"
            % sorted(set(in_file) - everyone))
    # The stall: in the worker that served /block, at the blocking line, as long as the handler's
    # own clock says (within the sampling uncertainty aprof reports, plus 20 ms).
    line = blocking_line()
    stalls = [s for s in summary["stalls"] if s["culprit"]["line"] == line
              and s["culprit"]["file"].endswith("workers_app.py")]
    t.require(len(stalls) == 1, "one stall at workers_app.py:%d expected, got %s (all: %s)"
              % (line, stalls, [(s["pid"], s["culprit"]) for s in summary["stalls"]]))
    s = stalls[0]
    t.eq(s["pid"], blocker, "the stalled worker")
    t.eq(s["culprit"]["function"], "block", "the stall's culprit function")
    t.near(float(s["duration_s"]), own_s, float(s["uncertainty_s"]) + 0.02,
           "stall duration against the handler's own clock")
    loops = {(lp["pid"], lp["thread"]) for lp in summary["loops"]}
    for pid in sorted(before | after):
        t.check((pid, pid) in loops, "no event loop reported for worker %d: %s" % (pid, loops))
    t.check(re.search(r"process %d thread %d" % (blocker, blocker), res.stderr) is not None,
            "summary lines do not name the stalled worker's process:\n%s" % h.short(res.stderr))
    t.check(fx.alive(), "gunicorn died")
    t.check(sum(served.values()) > 50, "too little load was served: %s" % served)


def _answers(port):
    try:
        return get(port, "/pid", timeout=2)
    except (OSError, http.client.HTTPException):
        return None


@h.once
def test_uvicorn_workers_spawned(t):
    """uvicorn --workers: children made by multiprocessing's spawn (fork + exec of python)."""
    require_modules(t, "uvicorn", "starlette")
    port = free_port()
    fx = t.start(None, "-m", "uvicorn", "--workers", 2, "--port", port, "--app-dir", h.FIXTURES,
                 "workers_app:app", python=DEBIAN, name="uvicorn")
    wait_for("uvicorn to answer", lambda: _answers(port), 30)

    def workers():
        w = {k for k in children(fx.pid) if "spawn_main" in cmdline(k)}
        return w if len(w) == 2 else None

    spawned = wait_for("2 uvicorn workers", workers, 30)
    out, summary_path = t.path("out.json"), t.path("summary.json")
    served = {}
    threads = load(port, 4, ["/", "/cpu"], served)
    res = t.aprof("record", "--pid", fx.pid, "--subprocesses", "-d", 3, "--rate", 500, "-o", out,
                  "--summary", summary_path, timeout=60)
    for th in threads:
        th.join()
    t.require_rc(res, 0, "record --subprocesses (uvicorn --workers 2)")
    with open(summary_path) as f:
        procs = summary_procs(json.load(f))
    for pid in sorted({fx.pid} | spawned):
        p = procs.get(pid)
        t.check(p and p["status"] == "sampled" and p["samples"] > 0,
                "process %d (%s) not sampled: %s" % (pid, cmdline(pid), p))
    in_file = profile_pids(h.load_speedscope(t, out))
    for pid in sorted(spawned):
        t.check(in_file.get(pid, 0) > 0, "no profile of worker %d (%s)" % (pid, sorted(in_file)))


def pool_truth(path):
    with open(path) as f:
        truth = json.load(f)
    with open(path + ".workers") as f:
        rows = [line.split() for line in f if line.strip()]
    truth["workers"] = [int(r[0]) for r in rows]
    truth["started"] = {int(r[0]): float(r[1]) for r in rows}
    if os.path.exists(path + ".end"):
        with open(path + ".end") as f:
            truth["end"] = float(f.read())
    return truth


def mp_functions():
    with open(os.path.join(h.FIXTURES, "mp_pool.py")) as f:
        tree = ast.parse(f.read())
    return {n.name: n.lineno for n in tree.body if isinstance(n, ast.FunctionDef)}


@h.once
def test_multiprocessing_pool(t):
    truth_path, out, summary_path = t.path("pool.json"), t.path("out.txt"), t.path("summary.json")
    res = t.aprof("record", "--subprocesses", "--rate", 500, "-f", "collapsed", "-o", out,
                  "--summary", summary_path, "--", t.py, os.path.join(h.FIXTURES, "mp_pool.py"),
                  "--out", truth_path, "--duration", 3, timeout=90)
    t.require_rc(res, 0, "record --subprocesses -- mp_pool.py")
    truth = pool_truth(truth_path)
    with open(summary_path) as f:
        summary = json.load(f)
    procs = summary_procs(summary)
    t.eq(summary["target"]["pid"], truth["parent"], "the summary's target")
    sleeper = procs.get(truth["sleeper"])
    t.check(sleeper and sleeper["status"] == "skipped" and sleeper["reason"] == "not Python"
            and sleeper["command"].startswith("sleep "), "the sleep child: %s" % sleeper)
    # Listed once as what it became. subprocess forks, then execs `sleep`: a rescan can find
    # the fork while it is still a copy of its Python parent. If it was sampled then, that entry
    # stays (sampled, then left alive: it exec'd); one that left before a single sample is
    # replaced by the skipped one.
    entries = [p for p in summary["processes"] if p["pid"] == truth["sleeper"]]
    t.eq(sum(1 for p in entries if p["status"] == "skipped"), 1, "the sleep child is skipped once")
    t.check(all(p["status"] == "skipped" or (p["samples"] > 0 and p.get("left_s") is not None
                                             and not p["exited"]) for p in entries),
            "the sleep child's other entries are not a fork sampled before its exec: %s" % entries)
    # A pool worker lives about a second (100 tasks of ~8 ms), far longer than a rescan (50 ms),
    # unless the pool replaced a worker just before it shut down (one started 30 ms before the
    # end was missed in CI): those that had 0.3 s before the pool's end must be sampled.
    t.require("end" in truth, "the fixture did not write its end time")
    lived = [pid for pid in truth["workers"] if truth["end"] - truth["started"][pid] >= 0.3]
    for pid in [truth["parent"]] + lived:
        p = procs.get(pid)
        t.check(p and p["status"] == "sampled" and p["samples"] > 0,
                "process %d not sampled: %s" % (pid, p))
    # Each worker's time is in its own process's profiles, in crunch.
    with open(out) as f:
        stacks = h.parse_collapsed(f.read())
    crunch_by_pid = {}
    for thread, names, count in stacks:
        if thread.startswith("Process ") and "crunch" in names:
            pid = int(thread.split()[1])
            crunch_by_pid[pid] = crunch_by_pid.get(pid, 0) + count
    t.check(truth["parent"] not in crunch_by_pid, "crunch sampled in the parent, which never "
            "runs it")
    busy = [pid for pid in lived if crunch_by_pid.get(pid, 0) > 0]
    t.check(len(busy) >= len(lived) * 3 // 4,
            "crunch found in only %d of %d workers: %s" % (len(busy), len(lived), crunch_by_pid))
    m = re.search(r"processes: (\d+) sampled, 1 skipped", res.stderr)
    forks = sum(1 for p in entries if p["status"] == "sampled")  # (the sleeper before its exec)
    t.check(m and 1 + len(lived) <= int(m.group(1)) <= 1 + len(truth["workers"]) + forks,
            "summary:\n%s" % h.short(res.stderr))


@h.once
def test_dump_subprocesses(t):
    truth_path = t.path("pool.json")
    fx = t.start("mp_pool.py", "--out", truth_path, "--duration", 20, name="pool")
    truth = fx.wait_json(truth_path)
    res = t.aprof("dump", "--pid", fx.pid, "--subprocesses", "--json", timeout=60)
    t.require_rc(res, 0, "dump --subprocesses --json")
    doc = json.loads(res.stdout)
    t.eq(doc["pid"], fx.pid, "dump's root")
    dumped = {p["pid"]: p for p in doc["processes"]}
    t.check(fx.pid in dumped, "the parent was not dumped: %s" % sorted(dumped))
    kids = children(fx.pid)
    workers = {k for k in kids if k != truth["sleeper"]}
    t.check(workers & set(dumped), "no pool worker dumped (children %s, dumped %s)"
            % (sorted(kids), sorted(dumped)))
    main = [th for th in dumped[fx.pid]["threads"] if th["is_main"]]
    t.check(main and any(f["function"] == "main" and f["file"].endswith("mp_pool.py")
                         for f in main[0]["frames"]), "the parent's main thread: %s" % main)
    skipped = {s["pid"]: s for s in doc["skipped"]}
    t.eq(skipped.get(truth["sleeper"], {}).get("reason"), "not Python", "the sleep child")
    text = t.aprof("dump", "--pid", fx.pid, "--subprocesses", timeout=60)
    t.require_rc(text, 0, "dump --subprocesses")
    t.check("Process %d: " % fx.pid in text.stdout and "Not dumped:" in text.stdout
            and "(not Python)" in text.stdout, "text dump:\n%s" % h.short(text.stdout))


def async_workers_truth(fx, outdir, n, timeout=30):
    """{pid: {"role", "tasks"}} once every process of fixtures/async_workers.py has written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [f for f in os.listdir(outdir) if f.endswith(".json")]
        if len(files) >= n:
            truth = {}
            for name in files:
                with open(os.path.join(outdir, name)) as f:
                    d = json.load(f)
                truth[d["pid"]] = d
            return truth
        t_alive = fx.alive()
        if not t_alive:
            raise h.Failure("async_workers.py exited: %s" % (fx.output(),))
        time.sleep(0.05)
    raise h.Failure("async_workers.py did not start its %d processes" % n)


def workers_blocking_line():
    with open(os.path.join(h.FIXTURES, "async_workers.py")) as f:
        for i, line in enumerate(f, 1):
            if "BLOCKING-LINE" in line and "time.sleep" in line:
                return i
    raise AssertionError("no BLOCKING-LINE")


@h.once
def test_attach_subprocesses(t):
    """The TUI over a parent and two forked children: the header counts the processes, the
    Tasks view shows each process's own tasks (n steps through them), the Stalls view names the
    blocking child's pid and line, `w` writes per-process profiles; q leaves them all running."""
    outdir = t.path("workers")
    os.mkdir(outdir)
    fx = t.start("async_workers.py", "--out", outdir, "--children", 2, "--duration", 120,
                 name="workers")
    truth = async_workers_truth(fx, outdir, 3)
    tmux = Tmux(t, fx.pid, extra=("--subprocesses",))
    try:
        tmux.wait_for(lambda s: "3 processes" in s, 20, "the header to count 3 processes")
        tmux.keys("2")
        seen = {}
        for _ in range(3):
            text = tmux.wait_for(lambda s: "TASKS OF PROCESS" in s and "-w0" in s, 15,
                                 "a process's tasks")
            m = re.search(r"TASKS OF PROCESS (\d+)", text)
            pid = int(m.group(1))
            seen[pid] = {n for n in truth.get(pid, {}).get("tasks", []) if n in text}
            others = [n for p, d in truth.items() if p != pid for n in d["tasks"] if n in text]
            t.check(not others, "process %d's Tasks view shows tasks of other processes: %s"
                    % (pid, others))
            tmux.keys("n")
            tmux.wait_for(lambda s, pid=pid: "TASKS OF PROCESS %d " % pid not in s, 10,
                          "n to show the next process")
        t.eq(sorted(seen), sorted(truth), "processes whose tasks the Tasks view showed")
        for pid, names in seen.items():
            t.eq(sorted(names), sorted(truth[pid]["tasks"]), "tasks shown for process %d" % pid)
        blocker = [p for p, d in truth.items() if d["role"] == "child0"][0]
        tmux.keys("3")
        line = workers_blocking_line()
        text = tmux.wait_for(lambda s: "async_workers.py:%d" % line in s, 20,
                             "the child's stall in the Stalls view")
        rows = [r for r in text.splitlines() if "async_workers.py:%d" % line in r]
        t.check(all(" %d " % blocker in r for r in rows),
                "stall rows should name process %d:\n%s" % (blocker, "\n".join(rows)))
        tmux.keys("w")
        tmux.wait_for(lambda s: "wrote" in s, 10, "w to write a file")
        written = [f for f in os.listdir(t.tmp) if f.startswith("aprof-%d-" % fx.pid)]
        t.require(len(written) == 1, "files written by w: %s" % os.listdir(t.tmp))
        in_file = profile_pids(h.load_speedscope(t, os.path.join(t.tmp, written[0])))
        t.eq(sorted(in_file), sorted(truth), "processes in the file w wrote")
        tmux.keys("q")
        check_restored(t, tmux)
    finally:
        tmux.kill()
    for pid in truth:
        for tid, (state, tracer) in h.proc_state(pid).items():
            t.check(not state.startswith(("T", "t")) and tracer == 0,
                    "thread %d of process %d left %s / traced by %d" % (tid, pid, state, tracer))
    t.check(fx.alive(), "the parent died")


@h.once
@h.smoke
def test_subprocesses_bad_input(t):
    for cmd in (["record", "-d", 1], ["attach"]):
        res = t.aprof(*cmd, "--pid", os.getpid(), "--subprocesses", "--native")
        h.one_error_line(t, res, 2, "%s --native with --subprocesses" % cmd[0])
    dead = subprocess.Popen(["true"])
    dead.wait()
    for cmd in (["record", "-d", 1], ["dump"]):
        res = t.aprof(*cmd, "--pid", dead.pid, "--subprocesses")
        h.one_error_line(t, res, 3, "%s --subprocesses of a pid that does not exist" % cmd[0])
    # A process tree with no Python at all: the root's reason, exit 4.
    sh = t.start(None, "-c", "sleep 30 & sleep 30; wait", python="/bin/sh", name="sh")
    wait_for("the shell's children", lambda: len(children(sh.pid)) >= 2, 10)
    res = t.aprof("record", "--pid", sh.pid, "--subprocesses", "-d", 1, "-o", t.path("none.json"))
    t.eq(res.rc, 4, "record --subprocesses of a tree without Python: exit code (stderr: %s)"
         % res.stderr.strip())
    res = t.aprof("dump", "--pid", sh.pid, "--subprocesses")
    h.one_error_line(t, res, 4, "dump --subprocesses of a tree without Python")


if __name__ == "__main__":
    h.main()
