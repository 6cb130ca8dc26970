"""`aprof attach`, the live TUI, driven in tmux (send-keys, capture-pane) against fixtures:
the stall fixture's blocking lines in the Stalls view, the task fixture's task names in the
Tasks view, `w` writing a valid speedscope file, quitting with q / Ctrl-C / SIGTERM (exit 0,
terminal restored, target still running and not stopped), the target exiting (said so, last
data kept), 80x24 and resizing, NO_COLOR. Ground truth comes from the fixtures themselves."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from tmux_driver import Tmux, check_restored, check_target_running, with_tmux  # noqa: E402,F401

THRESHOLD = 0.1  # aprof's default --stall-threshold


def fits(t, text, width, height, what):
    lines = text.split("\n")
    t.check(all(len(line) <= width for line in lines),
            "%s: a line is wider than %d columns:\n%s" % (what, width, text))
    t.check(len(lines) <= height + 1, "%s: more than %d lines" % (what, height))


def start_task_fixture(t):
    truth_path = t.path("tasks.json")
    fx = t.start("async_tree_fixture.py", truth_path)
    return fx, fx.wait_json(truth_path, timeout=40)


# ---------------------------------------------------------------- tests

@h.representative
@with_tmux
def test_stalls_view_shows_blocking_lines(t):
    truth_path, ready = t.path("truth.json"), t.path("ready")
    fx = t.start("stall_fixture.py", truth_path, ready, "--cycles", 2)
    fx.wait_file(ready)
    tmux = Tmux(t, fx.pid)
    tmux.wait_for(lambda s: "aprof attach  pid %d" % fx.pid in s, 10, "the header")
    tmux.keys("3")
    truth = fx.wait_json(truth_path, timeout=60)
    # the target exited: the TUI says so and keeps the last data until q
    text = tmux.wait_for(lambda s: "process %d exited" % fx.pid in s, 10, "the exit message")
    time.sleep(0.5)
    text = tmux.screen()
    blocks = [b for b in truth["blocks"] if b["duration"] >= THRESHOLD]
    t.check(blocks, "the fixture recorded no blocks over the threshold")
    base = os.path.basename(blocks[0]["file"]) if blocks else ""
    rows = [line for line in text.split("\n") if re.search(r"\b(critical|warning)\b", line)]
    for b in blocks:
        where = "%s:%d)" % (base, b["line"])
        found = [r for r in rows if where in r]
        t.check(found, "the %s block (line %d, %.0f ms) is not in the Stalls view:\n%s"
                % (b["kind"], b["line"], b["duration"] * 1e3, text))
        for r in found:
            impact = "critical" if b["duration"] >= 2 * THRESHOLD else "warning"
            t.check(impact in r, "stall row for line %d: expected %s: %r" % (b["line"], impact, r))
    t.check(len(rows) == len(blocks), "%d stall rows in the Stalls view for %d blocks:\n%s"
            % (len(rows), len(blocks), text))
    # The task: the stall detector names the task of the callback run's first sample; when a
    # sample lands in another task's step that reused the same Handle address just before the
    # block (rare, under load), that task is named instead. Most rows must name "blocker".
    named = [r for r in rows if " blocker " in r]
    t.check(len(named) * 2 > len(rows), "most stall rows should name the task 'blocker':\n%s"
            % "\n".join(rows))
    small = [b["line"] for b in truth["blocks"] if b["duration"] < THRESHOLD]
    for line in small:
        t.check("%s:%d)" % (base, line) not in text, "a block under the threshold (line %d) is "
                "shown as a stall" % line)
    # Enter opens the full stack of the selected (newest) stall
    tmux.keys("Enter")
    stack = tmux.wait_for(lambda s: "innermost frame first" in s, 5, "the stall's stack")
    t.check(re.search(r"\* .*%s:\d+\)" % re.escape(base), stack),
            "the stack popup does not mark the culprit frame:\n" + stack)
    tmux.keys("Escape")
    # c: one row per culprit line, with the fixture's own count and total for each line
    tmux.keys("c")
    grouped = tmux.wait_for(lambda s: "COUNT" in s and "TOTAL" in s, 5, "the by-line view")
    lines = {}
    for b in blocks:
        n, total = lines.get(b["line"], (0, 0.0))
        lines[b["line"]] = (n + 1, total + b["duration"])
    grows = [r for r in grouped.split("\n") if re.search(r"\b(critical|warning)\b", r)]
    t.eq(len(grows), len(lines), "rows in the by-line view (one per blocking line)")
    for line, (n, total) in lines.items():
        found = [r for r in grows if "%s:%d)" % (base, line) in r]
        t.require(found, "line %d is not in the by-line view:\n%s" % (line, grouped))
        m = re.match(r"\s*(\d+)\s+([0-9.]+)(ms|s)\s", found[0])
        t.require(m, "cannot read count and total of %r" % found[0])
        t.eq(int(m.group(1)), n, "stalls at line %d" % line)
        shown = float(m.group(2)) / (1e3 if m.group(3) == "ms" else 1)
        # each stall's duration is measured to within the sampling gaps at its ends (1 kHz)
        t.near(shown, total, 0.02 * n + 0.01 * total, "total stalled at line %d" % line)
    tmux.keys("q")
    check_restored(t, tmux)


@h.representative
@h.smoke
@with_tmux
def test_tasks_view_shows_task_names(t):
    fx, truth = start_task_fixture(t)
    live = sorted(x["name"] for x in truth["tasks"] if x["state"] in ("pending", "running"))
    t.require(live, "the task fixture lists no live task")
    tmux = Tmux(t, fx.pid, 120, 60)
    tmux.wait_for(lambda s: "aprof attach  pid %d" % fx.pid in s, 10, "the header")
    tmux.keys("2")
    pattern = re.compile(r"^(pending|running|done|cancelled|unknown)\s+[^\w<]*([\w<>.\-]+)")

    def shown(text):
        return {m.group(2): m.group(1) for m in map(pattern.match, text.split("\n")) if m}
    seen = {}
    text = tmux.wait_for(lambda s: len(shown(s)) > 0, 10, "task rows")
    seen.update(shown(text))
    for _ in range(5):  # page down through the whole list
        tmux.keys("NPage")
        time.sleep(0.4)
        seen.update(shown(tmux.screen()))
    missing = [n for n in live if n not in seen]
    t.check(not missing, "live tasks missing from the Tasks view: %s\nseen: %s"
            % (missing, sorted(seen)))
    extra = sorted(set(seen) - set(live))
    t.check(not extra, "tasks shown that the fixture does not have alive: %s" % extra)
    for x in truth["tasks"]:
        if x["name"] in seen and x["state"] in ("pending", "running"):
            t.eq(seen[x["name"]], x["state"], "state of task %s" % x["name"])
    tmux.keys("Home")
    tmux.wait_for(lambda s: "tasks %d alive" % len(live) in s, 10,
                  "'tasks %d alive' in the header" % len(live))
    tmux.keys("q")
    check_restored(t, tmux)
    check_target_running(t, fx)


@h.once
@with_tmux
def test_write_speedscope(t):
    fx, truth = start_task_fixture(t)
    tmux = Tmux(t, fx.pid)
    tmux.wait_for(lambda s: re.search(r"samples (\d{3,}|\d+\.\d+k)", s), 15, "some samples")
    tmux.keys("w")
    text = tmux.wait_for(lambda s: "wrote " in s or "cannot write" in s, 10, "the write message")
    m = re.search(r"wrote (\S+\.json)", text)
    t.require(m, "no 'wrote PATH' message:\n" + text)
    path = m.group(1)
    t.eq(os.path.dirname(path), os.path.realpath(t.tmp), "directory of the written file")
    doc = h.load_speedscope(t, path)
    main = h.merged_profile(doc, fx.pid)
    t.require(main, "no profile of the main thread %d in %s" % (fx.pid, path))
    # An idle thread's consecutive samples of one stack are one entry: count time, not entries.
    # The header showed 100 samples or more at 1 kHz before the file was written.
    t.check(h.profile_seconds(main) > 0.05, "the main thread's samples cover only %.3f s"
            % h.profile_seconds(main))
    names = {fr["name"] for fr in doc["shared"]["frames"]}
    busy = [n for n in names if n.endswith("spin_blocking")]
    t.check(busy, "the busy task's function spin_blocking is not in the written profile")
    tmux.keys("q")
    check_restored(t, tmux)
    check_target_running(t, fx)


@h.once
@with_tmux
def test_small_terminal_views_and_resize(t):
    truth_path, ready = t.path("truth.json"), t.path("ready")
    fx = t.start("stall_fixture.py", truth_path, ready, "--cycles", 30)
    fx.wait_file(ready)
    tmux = Tmux(t, fx.pid, 80, 24)
    text = tmux.wait_for(lambda s: "Blocker.run" in s, 15, "Blocker.run in the Top view")
    fits(t, text, 80, 24, "Top at 80x24")
    t.check(re.search(r"OWN%.*TOTAL%.*CALLS.*FUNCTION", text), "Top column headings:\n" + text)
    for key, marker in (("2", "AWAITING"), ("3", "CULPRIT"), ("4", "CALL TREE"), ("1", "OWN%")):
        tmux.keys(key)
        text = tmux.wait_for(lambda s, m=marker: m in s, 5, "view %s" % key)
        fits(t, text, 80, 24, "view %s at 80x24" % key)
        t.check(text.split("\n")[0].startswith(" aprof attach  pid %d" % fx.pid),
                "header missing in view %s:\n%s" % (key, text))
    tmux.keys("Tab")  # 1 -> 2
    tmux.wait_for(lambda s: "AWAITING" in s, 5, "Tab to the Tasks view")
    tmux.keys("?")
    tmux.wait_for(lambda s: "any key closes this help" in s, 5, "the help")
    tmux.keys("x")
    tmux.wait_for(lambda s: "any key closes this help" not in s, 5, "the help closing")
    # sort keys and the filter in Top
    tmux.keys("1")
    tmux.keys("/")
    for ch in "Blocker":
        tmux.keys(ch)
    tmux.keys("Enter")
    text = tmux.wait_for(lambda s: 'filter "Blocker"' in s, 5, "the filter")
    rows = [line for line in text.split("\n")[5:-1] if re.match(r"\s+\d+\.\d", line)]
    # the filter is case-insensitive: "<task blocker>" (a task-stitched frame) matches too
    t.check(rows and all("blocker" in r.lower() for r in rows), "filtered Top rows:\n" + text)
    # resize: the layout follows
    tmux.run("resize-window", "-t", "aprof", "-x", "110", "-y", "30")
    text = tmux.wait_for(lambda s: len(s.split("\n")[0]) > 85, 5, "the header at 110 columns")
    fits(t, text, 110, 30, "after resize")
    tmux.keys("p")
    tmux.wait_for(lambda s: "PAUSED" in s, 5, "PAUSED")
    tmux.keys("q")
    check_restored(t, tmux)
    check_target_running(t, fx)


@h.once
@with_tmux
def test_quit_by_ctrl_c_and_sigterm(t):
    fx, _ = start_task_fixture(t)
    for how in ("ctrl-c", "sigterm"):
        tmux = Tmux(t, fx.pid, 100, 30)
        tmux.wait_for(lambda s: "aprof attach  pid %d" % fx.pid in s, 10, "the header")
        if how == "ctrl-c":
            tmux.keys("C-c")
        else:
            os.kill(tmux.aprof_pid(), signal.SIGTERM)
        check_restored(t, tmux)
        tmux.kill()
        check_target_running(t, fx)


@h.once
@with_tmux
def test_no_color(t):
    fx, _ = start_task_fixture(t)
    colored = Tmux(t, fx.pid, 100, 30)
    colored.wait_for(lambda s: "aprof attach" in s, 10, "the header")
    time.sleep(0.5)
    sgr = re.compile(r"\x1b\[([0-9;]*)m")

    def colour_codes(text):
        """SGR parameters that set a foreground or background colour."""
        found = []
        for params in sgr.findall(text):
            codes = [int(p) for p in params.split(";") if p.isdigit()]
            found += [c for c in codes if 30 <= c <= 38 or 40 <= c <= 48 or 90 <= c <= 107]
        return found
    t.check(colour_codes(colored.screen(escapes=True)), "no colours without NO_COLOR")
    colored.keys("q")
    colored.wait_rc()
    colored.kill()
    plain = Tmux(t, fx.pid, 100, 30, env={"NO_COLOR": "1"})
    plain.wait_for(lambda s: "aprof attach" in s, 10, "the header")
    time.sleep(0.5)
    text = plain.screen(escapes=True)
    t.check(sgr.search(text), "no attributes at all with NO_COLOR (reverse video expected)")
    t.check(not colour_codes(text), "colours despite NO_COLOR: %r" % colour_codes(text)[:5])
    plain.keys("q")
    check_restored(t, plain)


@h.once
def test_attach_errors(t):
    res = t.aprof("attach")
    h.one_error_line(t, res, 2, "attach without --pid")
    res = t.aprof("attach", "--pid", "abc")
    h.one_error_line(t, res, 2, "attach --pid abc")
    res = t.aprof("attach", "--pid", "999999999")
    h.one_error_line(t, res, 3, "attach to a process that does not exist")
    fx, _ = start_task_fixture(t)
    # not a terminal: one clear line, exit 2, the target untouched
    res = t.aprof("attach", "--pid", fx.pid)
    line = h.one_error_line(t, res, 2, "attach without a terminal")
    t.check("terminal" in line, "the error does not say a terminal is needed: %r" % line)
    check_target_running(t, fx)
    res = t.aprof("attach", "--help")
    t.check(res.rc == 0 and "--pid" in res.stdout and "--native" in res.stdout,
            "attach --help:\n" + res.describe())


if __name__ == "__main__":
    h.main()
