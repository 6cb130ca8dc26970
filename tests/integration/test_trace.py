"""`aprof record --format trace` (Chrome trace events) against the fixtures' own truth:

- the stall fixture (fixtures/stall_fixture.py), which blocks its loop at known lines and times
  each block with its own clock: every block of the threshold or more is one stall slice on the
  loop's track with the blocking line, lasting what the fixture measured (within the stall's own
  uncertainty), inside a busy slice; every block, the short ones too, is covered by busy slices;
  the task "blocker" is running through each block; no stall where the fixture did not block;
- the asyncio task-tree fixture (fixtures/async_tree_fixture.py), whose truth is asyncio's own
  registries: every task is a task track with its name and id, pending tasks await at the kind
  and line the fixture built, the awaiting task of each is one the fixture made await it, the
  running task runs, finished tasks end as they did;
- the format itself: events well formed, slices of one thread nested, async begin/end pairs
  balanced and nested per task, segments of a task never overlapping, flows paired; each task's
  run samples equal the task-stitched samples of the same recording (its --folded file).
The speedscope app's import of a trace is tested in test_speedscope_app.py."""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

RATE = 1000.0
THRESHOLD = 0.1
SLACK = 0.002                # the fixture's clock brackets the blocking call, not the whole step
MAX_UNCERTAINTY = 0.025      # as test_stalls.py: samples missing for 50 ms around an end
MAX_UNCERTAINTY_310 = 0.040  # 3.10 marks most loop samples of this fixture (docs/limits.md)
LOOP_TID_BASE = 0x40000000


def ns(ts_us):
    """A trace time (microseconds, three decimals) as integer nanoseconds."""
    return int(round(float(ts_us) * 1000))


def trace_problems(doc):
    """What is wrong with a trace document, as a list of strings (empty: nothing)."""
    problems = []
    events = doc.get("traceEvents")
    if not isinstance(events, list) or not events:
        return ["no traceEvents list"]
    named = set()
    by_thread = collections.defaultdict(list)
    by_async = collections.defaultdict(list)
    flows = collections.defaultdict(list)
    for i, e in enumerate(events):
        where = "event %d %s" % (i, json.dumps(e)[:160])
        ph = e.get("ph")
        if not isinstance(ph, str) or not isinstance(e.get("name"), str) \
                or not isinstance(e.get("pid"), int) or not isinstance(e.get("tid"), int):
            problems.append("%s: ph, name, pid or tid missing or of the wrong type" % where)
            continue
        if ph == "M":
            if e["name"] == "thread_name":
                named.add((e["pid"], e["tid"]))
            continue
        if not isinstance(e.get("ts"), (int, float)) or e["ts"] < 0:
            problems.append("%s: bad ts" % where)
            continue
        if ph == "X":
            if not isinstance(e.get("dur"), (int, float)) or e["dur"] < 0:
                problems.append("%s: bad dur" % where)
                continue
            by_thread[(e["pid"], e["tid"])].append(("X", ns(e["ts"]), ns(e["ts"]) + ns(e["dur"]), e["name"]))
        elif ph in "BE":
            by_thread[(e["pid"], e["tid"])].append((ph, ns(e["ts"]), None, e["name"]))
        elif ph in "ben":
            if not isinstance(e.get("id"), str) or not e.get("cat"):
                problems.append("%s: async event without id or cat" % where)
                continue
            by_async[(e["cat"], e["id"])].append((ph, ns(e["ts"]), e["name"]))
        elif ph in "sf":
            flows[e.get("id")].append((ph, ns(e["ts"])))
        else:
            problems.append("%s: unexpected phase" % where)
    for key, evs in by_thread.items():
        if key not in named:
            problems.append("thread %s has slices but no thread_name" % (key,))
        stack = []
        # X slices: sorted by start, longer first; B/E: in file order (their nesting order)
        xs = sorted((s, -end, name) for kind, s, end, name in evs if kind == "X")
        for s, neg_end, name in xs:
            end = -neg_end
            while stack and stack[-1][1] <= s:
                stack.pop()
            if stack and end > stack[-1][1]:
                problems.append("thread %s: slice %r [%d, %d] overlaps %r [%d, %d] without nesting"
                                % (key, name, s, end, stack[-1][2], stack[-1][0], stack[-1][1]))
                break
            stack.append((s, end, name))
        opened, last = [], 0
        for kind, ts, _, name in evs:
            if kind not in "BE":
                continue
            if ts < last:
                problems.append("thread %s: time goes back at %r" % (key, name))
                break
            last = ts
            if kind == "B":
                opened.append(name)
            elif not opened or opened.pop() != name:
                problems.append("thread %s: E of %r does not close the innermost open slice" % (key, name))
                break
        if opened:
            problems.append("thread %s: %d slices never end" % (key, len(opened)))
    for key, evs in by_async.items():
        opened, last, seg_end = [], 0, 0
        for ph, ts, name in evs:
            if ts < last:
                problems.append("async %s: time goes back at %r" % (key, name))
                break
            last = ts
            if ph == "b":
                if len(opened) == 1 and ts < seg_end:
                    problems.append("async %s: segment %r begins before the previous one ended" % (key, name))
                opened.append((name, ts))
            elif ph == "e":
                if not opened or opened[-1][0] != name:
                    problems.append("async %s: e of %r does not close the innermost b" % (key, name))
                    break
                opened.pop()
                if len(opened) == 1:
                    seg_end = ts
            elif not opened:
                problems.append("async %s: instant %r outside the task's life" % (key, name))
        if opened:
            problems.append("async %s: %d b without e" % (key, len(opened)))
    for fid, evs in flows.items():
        if sorted(ph for ph, _ in evs) != ["f", "s"]:
            problems.append("flow %s: %s, expected one s and one f" % (fid, evs))
    return problems


def load_trace(t, path):
    with open(path) as f:
        doc = json.load(f)
    problems = trace_problems(doc)
    t.check(not problems, "trace %s: %s" % (path, problems[:5]))
    return doc


def tasks_of(doc):
    """{id: {"name", "args", "segments": [(name, start_ns, end_ns, args)], "instants": [name]}}"""
    tasks = {}
    for e in doc["traceEvents"]:
        if e.get("cat") != "asyncio.task":
            continue
        task = tasks.setdefault(e["id"], {"segments": [], "instants": [], "open": []})
        if e["ph"] == "b":
            if "name" not in task:
                task.update(name=e["name"], args=e.get("args", {}), start=ns(e["ts"]))
            else:
                task["open"].append((e["name"], ns(e["ts"]), e.get("args", {})))
        elif e["ph"] == "e" and task["open"]:
            name, start, args = task["open"].pop()
            task["segments"].append((name, start, ns(e["ts"]), args))
        elif e["ph"] == "e":
            task["end"] = ns(e["ts"])
        elif e["ph"] == "n":
            task["instants"].append(e["name"])
    return tasks


def covered(intervals, start, end):
    """How much of [start, end] the intervals cover (they do not overlap)."""
    return sum(max(0, min(e, end) - max(s, start)) for s, e in intervals)


def record_trace(t, args, out, extra=()):
    res = t.aprof("record", "--rate", RATE, "-f", "trace", "-o", out, "--exact-task-names",
                  *extra, *args, timeout=120)
    t.require_rc(res, 0, "aprof record -f trace")
    return res


@h.representative
def test_trace_stalls_busy_and_tasks_match_the_fixture(t):
    truth_path, ready = t.path("truth.json"), t.path("ready")
    fx = t.start("stall_fixture.py", truth_path, ready, "--cycles", 1)
    fx.wait_file(ready)
    out, folded = t.path("stall.trace.json"), t.path("stall.folded.txt")
    record_trace(t, ["--pid", fx.pid], out, ("--folded", folded))
    truth = fx.wait_json(truth_path)
    doc = load_trace(t, out)
    origin = int(doc["otherData"]["origin_monotonic_ns"])

    def mono(ts_ns):
        return (origin + ts_ns) / 1e9

    loop_tid = LOOP_TID_BASE + fx.pid  # the stall fixture's loop runs in its main thread
    loop = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["tid"] == loop_tid]
    busy = sorted((mono(ns(e["ts"])), mono(ns(e["ts"]) + ns(e["dur"])))
                  for e in loop if e["name"] == "busy")
    stalls = [e for e in loop if e.get("cat") == "asyncio.stall"]
    t.require(busy, "no busy slices on the loop track (tid %d)" % loop_tid)
    names = [e["args"]["name"] for e in doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name" and e["tid"] == loop_tid]
    t.eq(names, ["event loop: MainThread (tid %d)" % fx.pid], "the loop track's name")
    bound = MAX_UNCERTAINTY_310 if t.interp.version.startswith("3.10") else MAX_UNCERTAINTY
    tasks = tasks_of(doc)
    blocker = [k for k in tasks.values() if k.get("name") == "blocker"]
    t.require(len(blocker) == 1, "expected one task track named 'blocker', got %d" % len(blocker))
    runs = [(mono(s), mono(e)) for name, s, e, _ in blocker[0]["segments"] if name == "run"]
    blocks = truth["blocks"]
    t.check(blocks, "the fixture recorded no blocks")
    for b in blocks:
        b0, b1 = b["start"], b["start"] + b["duration"]
        what = "%s block at line %d (%.1f ms)" % (b["kind"], b["line"], b["duration"] * 1e3)
        # busy slices cover the block, short ones included, but for the boundary estimates
        t.check(covered(busy, b0, b1) >= b["duration"] - bound,
                "%s: busy slices cover only %.1f ms" % (what, covered(busy, b0, b1) * 1e3))
        found = [s for s in stalls
                 if mono(ns(s["ts"])) < b1 and b0 < mono(ns(s["ts"]) + ns(s["dur"]))]
        if b["duration"] < THRESHOLD:
            t.check(not found, "%s is a stall slice: %s" % (what, found))
            continue
        if not t.check(len(found) == 1, "%s: expected one stall slice, got %d" % (what, len(found))):
            continue
        s = found[0]
        args = s["args"]
        t.eq((args["file"], args["line"]), (b["file"], b["line"]), "%s: culprit line" % what)
        t.eq(s["name"], "stall: %s (%s:%d)" % (args["function"], os.path.basename(b["file"]), b["line"]),
             "%s: slice name" % what)
        unc = args["uncertainty_ms"] / 1e3
        t.check(0 < unc <= bound, "%s: uncertainty %.4f s" % (what, unc))
        t.near(args["duration_ms"] / 1e3, b["duration"], unc + SLACK, "%s: duration" % what)
        t.near(ns(s["dur"]) / 1e9, b["duration"], unc + SLACK, "%s: slice length" % what)
        t.eq(args.get("task"), "blocker", "%s: task" % what)
        s0, s1 = mono(ns(s["ts"])), mono(ns(s["ts"]) + ns(s["dur"]))
        t.check(any(p <= s0 and s1 <= q for p, q in busy), "%s: the stall slice lies in no busy slice" % what)
        # the task that blocked was running: its run segments cover the block
        t.check(covered(runs, b0, b1) >= b["duration"] - 2 * bound,
                "%s: the blocker task's run segments cover only %.1f ms"
                % (what, covered(runs, b0, b1) * 1e3))
    for s in stalls:
        s0 = mono(ns(s["ts"]))
        t.check(any(b["start"] - 0.05 < s0 < b["start"] + b["duration"] and b["duration"] >= THRESHOLD
                    for b in blocks), "a stall slice that matches no block: %s" % json.dumps(s)[:300])
    # every task's run samples are the stitched samples of that task in the same recording
    with open(folded) as f:
        rows = h.parse_collapsed(f.read())
    stitched = collections.Counter()
    for thread, frames, count in rows:
        if not thread.startswith("Thread "):
            continue
        inner = [f for f in frames if f.startswith("<task ")]
        if inner:
            stitched[inner[-1][len("<task "):-1]] += count
    ran = collections.Counter()
    for k in tasks.values():
        ran[k["name"]] += k["args"].get("run_samples", 0)
    ran = +ran
    t.check(stitched["blocker"] > 0, "no stitched samples of the blocker task")
    t.eq(dict(ran), dict(stitched), "run samples per task name against the stitched profile")
    for k in tasks.values():
        seg_samples = sum(a.get("samples", 0) for name, _, _, a in k["segments"] if name == "run")
        t.eq(seg_samples, k["args"]["run_samples"], "task %s: samples of its run segments" % k["name"])


def innermost_own_frame(stack, fixture):
    own = [f for f in stack if f["file"] == fixture]
    return own[-1] if own else (stack[-1] if stack else None)


@h.representative
@h.smoke
def test_trace_task_tracks_match_asyncio(t):
    import asynctree
    fx, truth = asynctree.start_tree(t)
    out = t.path("tree.trace.json")
    record_trace(t, ["--pid", fx.pid, "--duration", 1.5], out)
    doc = load_trace(t, out)
    tasks = tasks_of(doc)
    by_addr = {}
    for tid_, k in tasks.items():
        by_addr.setdefault(int(k["args"]["task"], 16), []).append(k)
    names = {tt["id"]: tt["name"] for tt in truth["tasks"]}
    t.eq(sorted((hex(a), k[0]["name"]) for a, k in by_addr.items()),
         sorted((hex(tt["id"]), tt["name"]) for tt in truth["tasks"]), "task tracks (id, name)")
    id_of_track = {tid_: k for tid_, k in tasks.items()}
    fixture = truth["fixture"]
    sites_checked = 0
    for tt in truth["tasks"]:
        k = (by_addr.get(tt["id"]) or [None])[0]
        if not k:
            continue
        what = "task %r" % tt["name"]
        t.eq(len(by_addr[tt["id"]]), 1, "%s: one track" % what)
        state = tt["state"]
        if state in ("done", "cancelled"):
            t.eq(k["args"]["end"], state, "%s: end" % what)
            t.check(state in k["instants"], "%s: no %r mark: %s" % (what, state, k["instants"]))
            continue
        t.eq(k["args"]["end"], "alive", "%s: end" % what)
        if state == "running":
            t.check(k["args"]["run_samples"] > 0 and any(s[0] == "run" for s in k["segments"]),
                    "%s runs its loop thread but has no run segment: %s" % (what, k["segments"][:3]))
        elif tt["expected_kind"] not in (None, "none"):
            awaits = [s for s in k["segments"] if s[0].startswith("await ")]
            sites_checked += 1
            if t.check(awaits, "%s: no await segment: %s" % (what, k["segments"][:3])):
                site = innermost_own_frame(tt["coroutine_stack"], fixture)
                args = awaits[-1][3]
                t.eq((args["kind"], args["function"], args["line"]),
                     (tt["expected_kind"], site["function"], site["line"]), "%s: await site" % what)
        parent = k["args"].get("awaited_by")
        expected = sorted(names[i] for i in tt["expected_awaited_by"])
        if expected:
            t.check(parent in expected, "%s: awaited by %r, expected one of %s" % (what, parent, expected))
            pk = id_of_track.get(k["args"].get("awaited_by_id"))
            t.check(pk is not None and pk["name"] == parent,
                    "%s: awaited_by_id does not name the track of %r" % (what, parent))
        else:
            t.eq(parent, None, "%s: awaited by" % what)
    # the fixture builds over a dozen kinds of waits (asynctree.py)
    t.check(sites_checked >= 12, "only %d tasks had an await site to check" % sites_checked)


if __name__ == "__main__":
    h.main()
