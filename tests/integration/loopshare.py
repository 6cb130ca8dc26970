"""Busy share of an event loop two ways, for fixtures/busy_loop.py: the fixture's own clock (time
outside its selector's select(), CLOCK_MONOTONIC) and aprof's samples (loop-thread time whose
innermost frame is not that select), plus the call and task edges of stitched stacks checked
against what the fixture declares it can do. Used by test_busy_loop.py and bench/busy_share.py.
Standard library only."""
import fnmatch
import json
import math

SPEEDSCOPE_UNITS = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6,
                    "nanoseconds": 1e-9, "none": 1.0}
IDLE_LEAVES = ("EpollSelector.select", "select", "timed_select",
               "run.<locals>.timed_select", "time_select.<locals>.timed_select")


def read_clock(path):
    """[(monotonic, seconds inside select so far, task steps so far, loop thread CPU seconds)]
    from the fixture."""
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4:
                try:
                    rows.append((float(parts[0]), float(parts[1]), int(parts[2]),
                                 float(parts[3])))
                except ValueError:
                    pass  # a line being written
    return rows


def _at(rows, t, col=1):
    """Column col (cumulative select time, or loop CPU time: 3) at t, interpolated between the
    fixture's 10 ms readings."""
    for r0, r1 in zip(rows, rows[1:]):
        if r0[0] <= t <= r1[0]:
            f = (t - r0[0]) / (r1[0] - r0[0]) if r1[0] > r0[0] else 0.0
            return r0[col] + (r1[col] - r0[col]) * f
    return None


def fixture_cpu_seconds(rows, start, end):
    """CPU time the loop thread used within [start, end] (its own thread CPU clock)."""
    c0, c1 = _at(rows, start, 3), _at(rows, end, 3)
    return None if c0 is None or c1 is None else c1 - c0


def fixture_busy_share(rows, start, end):
    """The loop's own busy share within [start, end] (None when the clock does not cover it)."""
    p0, p1 = _at(rows, start), _at(rows, end)
    if p0 is None or p1 is None or end <= start:
        return None
    return 1.0 - (p1 - p0) / (end - start)


def fixture_steps_per_s(rows, start, end):
    inside = [r for r in rows if start <= r[0] <= end]
    if len(inside) < 2:
        return None
    return (inside[-1][2] - inside[0][2]) / (inside[-1][0] - inside[0][0])


def loop_blocked_ratio(summary, tid):
    """The stall detector's busy share of the loop (summary loops[].loop_lag.blocked_ratio)."""
    for lp in summary.get("loops", []):
        if lp.get("thread") == tid:
            return lp.get("loop_lag", {}).get("blocked_ratio")
    return None


def loop_profile(doc, tid):
    """(names of shared frames, [(stack as frame indices, seconds)]) of thread tid's profiles."""
    names = [f["name"] for f in doc["shared"]["frames"]]
    samples = []
    for p in doc["profiles"]:
        if not p.get("name", "").startswith('Thread %d "' % tid):
            continue
        scale = SPEEDSCOPE_UNITS[p["unit"]]
        samples += [(s, w * scale) for s, w in zip(p["samples"], p["weights"])]
    return names, samples


def is_python(frame):
    """A Python frame or one of aprof's marks, not a native (C) frame of --native."""
    name, file = frame["name"], frame.get("file", "")
    return file.endswith(".py") or file.startswith("<frozen") or (
        name.startswith("<") and name.endswith(">") and not file)


def aprof_busy_share(doc, tid):
    """(busy share, seconds, entries, marked entries) of the loop thread in an aprof profile
    (an entry is one or more consecutive samples of one stack: folded_loop_counts counts
    samples):
    busy is every sample whose innermost Python frame is not the selector's select (marked
    samples, whose leaf could not be read, are busy: an idle loop's stack does not change).
    With --native, the C frames under select (epoll_wait) are part of the wait."""
    frames = doc["shared"]["frames"]
    _, samples = loop_profile(doc, tid)
    total = busy = 0.0
    marked = 0
    for stack, w in samples:
        total += w
        py = [i for i in stack if is_python(frames[i])]
        leaf = frames[py[-1]]["name"] if py else ""
        if any(frames[i]["name"] == "<unreadable>" for i in stack):
            marked += 1
        if leaf not in IDLE_LEAVES:
            busy += w
    return (busy / total if total else None), total, len(samples), marked


def folded_loop_counts(rows, tid):
    """(samples, marked samples) of thread tid in folded stacks (parse_collapsed rows): the
    speedscope file merges consecutive samples of one stack, the folded stacks count them."""
    prefix = 'Thread %d "' % tid
    n = sum(c for thread, _, c in rows if thread.startswith(prefix))
    marked = sum(c for thread, names, c in rows
                 if thread.startswith(prefix) and "<unreadable>" in names)
    return n, marked


def binomial_sigma(p, n):
    """Standard error of a share p measured from n independent samples."""
    return math.sqrt(max(p * (1 - p), 1e-4) / n) if n else float("inf")


def _short(name):
    return name.rsplit(".", 1)[-1] if not name.startswith("<") else name


def _frame_info(doc):
    return [(f["name"], f.get("file", ""), f.get("line", 0)) for f in doc["shared"]["frames"]]


def impossible_edges(doc, tid, edges):
    """Samples of thread tid that hold an edge the fixture cannot make: [(seconds, reason)] and
    the number of samples checked. Rules, from the fixture's declarations (busy_loop.py):
      - a frame of the fixture calls only what its line declares (by short function name);
      - `<task NAME>` comes only under the line that awaits tasks named like NAME (or under no
        frame of the fixture, for root tasks) and is followed by the coroutine such tasks run;
      - a fixture coroutine that tasks run starts right after its `<task>` frame, or (stacks not
        stitched) after a frame outside the fixture."""
    fixture = edges["file"]
    calls = edges["calls"]
    tasks = edges["tasks"]
    info = _frame_info(doc)
    task_fns = {v["function"] for v in tasks.values()}
    bad, checked = [], 0
    for p in doc["profiles"]:
        if not p.get("name", "").startswith('Thread %d "' % tid):
            continue
        for stack in p["samples"]:
            checked += 1
            stack = [i for i in stack if is_python(doc["shared"]["frames"][i])]
            reason = None
            for k in range(len(stack)):
                name, file, line = info[stack[k]]
                prev = info[stack[k - 1]] if k else None
                if name.startswith("<task ") and name.endswith(">"):
                    tname = name[6:-1]
                    spec = next((v for pat, v in sorted(tasks.items(), key=lambda kv: "*" in kv[0])
                                 if fnmatch.fnmatchcase(tname, pat)), None)
                    if spec is None and tname == "?":  # a name aprof could not read
                        continue
                    if spec is None:
                        reason = "unknown task %s" % name
                        break
                    nxt = info[stack[k + 1]] if k + 1 < len(stack) else None
                    if nxt and _short(nxt[0]) != spec["function"] and not nxt[0].startswith("<"):
                        reason = "%s runs %s" % (name, nxt[0])
                        break
                    if prev and prev[1] == fixture:
                        ok = any(_short(prev[0]) == a["function"] and prev[2] == a["line"]
                                 for a in spec["awaited_at"])
                        if not ok:
                            reason = "%s under %s:%d" % (name, prev[0], prev[2])
                            break
                    continue
                if prev is None or prev[1] != fixture:
                    if (file == fixture and prev and prev[0].startswith("<task ")
                            and _short(name) not in task_fns):
                        reason = "%s starts %s" % (prev[0], name)
                        break
                    continue
                allowed = calls.get(_short(prev[0]), {}).get(str(prev[2]), [])
                if _short(name) not in allowed and not name.startswith("<unreadable"):
                    reason = "%s:%d -> %s" % (prev[0], prev[2], name)
                    break
            if reason:
                bad.append(reason)
    return bad, checked


def load_edges(path):
    with open(path) as f:
        return json.load(f)
