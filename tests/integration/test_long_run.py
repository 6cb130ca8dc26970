"""Long recordings in bounded memory (docs/record.md#long-recordings-memory-and-file-size):
points past the newest block go to an unlinked temporary file and come back whole; with no
temporary directory they stay in memory; --time-resolution merges a thread's samples by stack
within windows and keeps the fixture's own split; tasks with asyncio's default names are one
`<task Task-*>` frame unless --exact-task-names."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CPU_SPLIT = os.path.join(h.FIXTURES, "cpu_split.py")


def spill_files(pid, tmpdir):
    """The aprof-points files aprof holds open in tmpdir (deleted: unlinked at creation)."""
    found = []
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith(os.path.join(tmpdir, "aprof-points-")):
                found.append(target)
    except OSError:
        pass
    return found


def split_run(t, tmpdir, resolution, seconds=4.0):
    """Record cpu_split (main thread alternating spin_a and spin_b every 2-6 ms, a sleeper
    thread) at 2 kHz with TMPDIR=tmpdir; returns (result, speedscope doc, folded rows, truth,
    spill files seen while it ran)."""
    out, folded, split = t.path("out.json"), t.path("out.txt"), t.path("split.json")
    env = dict(os.environ, TMPDIR=tmpdir)
    ratio = round(t.rng.uniform(0.25, 0.75), 2)
    proc = t.aprof_background("record", "-o", out, "--folded", folded, "--rate", 2000,
                              "--time-resolution", resolution, "--", t.py, CPU_SPLIT,
                              "--duration", seconds, "--ratio", ratio, "--out", split,
                              "--sleeper", env=env)
    seen = set()
    while proc.poll() is None:
        seen.update(spill_files(proc.pid, tmpdir))
        time.sleep(0.1)
    res = t.finish(proc, 60)
    t.require_rc(res, 0, "record --time-resolution %s" % resolution)
    doc = h.load_speedscope(t, out)
    with open(folded, encoding="utf-8") as f:
        rows = h.parse_collapsed(f.read())
    with open(split) as f:
        truth = json.load(f)
    return res, doc, rows, truth, seen


def check_split(t, doc, rows, truth, what):
    """spin_a's share of spin_a + spin_b, by speedscope weights and by folded counts, against
    the fixture's own clock."""
    main = h.merged_profile(doc, truth["threads"]["main"])
    t.require(main, "no profile of the main thread (%s)" % what)
    a, b = h.weight_with(doc, main, "spin_a"), h.weight_with(doc, main, "spin_b")
    na = sum(n for th, names, n in rows if "spin_a" in names)
    nb = sum(n for th, names, n in rows if "spin_b" in names)
    t.require(a + b > 0 and na + nb > 0, "no spin_a/spin_b samples (%s)" % what)
    tol = h.split_tolerance(truth["a"], na + nb)
    t.near(a / (a + b), truth["a"], tol, "speedscope share of spin_a, %s (fixture %.3f)"
           % (what, truth["a"]))
    t.near(na / (na + nb), truth["a"], tol, "folded share of spin_a, %s (fixture %.3f)"
           % (what, truth["a"]))
    return main, na + nb


@h.once
def test_points_spill_and_time_resolution(t):
    tmpdir = t.path("tmp")
    os.mkdir(tmpdir)
    res, doc, rows, truth, seen = split_run(t, tmpdir, 0.5)
    # Thousands of points a second in the main thread: blocks went to the temporary file,
    # unlinked at once, and nothing is left behind.
    t.check(seen and all(p.endswith("(deleted)") for p in seen),
            "no unlinked aprof-points file in TMPDIR while recording: %r" % sorted(seen))
    t.eq(os.listdir(tmpdir), [], "files left in TMPDIR")
    t.check("merged by stack within 0.5 s windows" in res.stderr,
            "the summary says how samples were merged:\n%s" % h.short(res.stderr))
    main, n = check_split(t, doc, rows, truth, "0.5 s windows")
    # Merged: at most one entry per distinct stack per window (the run is 4 s: 9 windows at
    # most), far fewer than the samples the folded stacks count.
    distinct = len({tuple(s) for s in main["samples"]})
    t.check(len(main["samples"]) <= 9 * distinct,
            "%d entries for %d distinct stacks in 0.5 s windows" % (len(main["samples"]), distinct))
    t.check(len(main["samples"]) * 5 < n, "%d entries for %d samples: not merged"
            % (len(main["samples"]), n))
    # The sleeper never changes stack: one entry per window.
    sleeper = h.merged_profile(doc, truth["threads"]["sleeper"])
    t.require(sleeper, "no sleeper profile")
    t.check(len(sleeper["samples"]) <= 9, "sleeper: %d entries" % len(sleeper["samples"]))
    # No time lost in merging: the main thread's weights cover at least the fixture's run.
    t.check(h.profile_seconds(main) >= 0.95 * truth["loop_seconds"],
            "the main thread covers %.3f s of a %.1f s run"
            % (h.profile_seconds(main), truth["loop_seconds"]))


@h.once
@h.smoke
def test_no_temporary_directory(t):
    # The temporary file cannot be made: its blocks stay in memory, the recording is whole.
    res, doc, rows, truth, seen = split_run(t, "/nonexistent/aprof-tmp", 0)
    t.eq(sorted(seen), [], "spill files")
    main, n = check_split(t, doc, rows, truth, "points kept in memory")
    t.check(len(main["samples"]) > 2048, "only %d points: the test did not need the file"
            % len(main["samples"]))


def task_frames(doc):
    return [f["name"] for f in doc["shared"]["frames"] if f["name"].startswith("<task ")]


@h.once
def test_default_task_names_grouped(t):
    ready = t.path("ready.json")
    fx = t.start("many_tasks_fixture.py", ready, "--tasks", 20, "--churn")
    fx.wait_json(ready, timeout=60)
    grouped, exact = t.path("grouped.json"), t.path("exact.json")
    res = t.aprof("record", "--pid", fx.pid, "--duration", 2, "-o", grouped, timeout=60)
    t.require_rc(res, 0, "record (default task names grouped)")
    res = t.aprof("record", "--pid", fx.pid, "--duration", 2, "--exact-task-names", "-o", exact,
                  timeout=60)
    t.require_rc(res, 0, "record --exact-task-names")
    g = task_frames(h.load_speedscope(t, grouped))
    e = task_frames(h.load_speedscope(t, exact))
    default = re.compile(r"<task Task-\d+>\Z")
    # The churner's unnamed tasks (asyncio names them Task-N) are one frame; its named
    # short-J tasks and the sleeping t-N tasks keep their names.
    t.check("<task Task-*>" in g, "no <task Task-*> frame: %r" % g[:20])
    t.eq([n for n in g if default.match(n)], [], "default-named task frames by default")
    t.check(any(n.startswith("<task short-") for n in g), "named tasks lost their names: %r" % g)
    t.check(any(n.startswith("<task t-") for n in g), "t-N tasks missing: %r" % g[:20])
    t.check(sum(1 for n in e if default.match(n)) >= 2,
            "--exact-task-names shows no Task-N frames: %r" % e[:20])
    t.check("<task Task-*>" not in e, "--exact-task-names still groups")


if __name__ == "__main__":
    h.main()
