"""`aprof dump` against fixtures/stack_fixture.py, whose threads describe their own stacks."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

DUMPS = 5
INNERMOST_CHECKED = 6  # text dump: these many innermost frames per thread, in order


def start_stack_fixture(t):
    truth_path = t.path("truth.json")
    fx = t.start("stack_fixture.py", truth_path)
    truth = fx.wait_json(truth_path)
    time.sleep(0.2)  # the main thread writes the truth just before its first sleep
    return fx, truth


def frame_view(frames):
    return [{k: f.get(k) for k in ("function", "file", "line")} for f in frames]


def thread_label(tt):
    return 'thread %d "%s"' % (tt["native_id"], tt["name"])


@h.per_interpreter
@h.smoke
def test_dump_json_matches_truth(t):
    fx, truth = start_stack_fixture(t)
    outputs = []
    for _ in range(DUMPS):
        res = t.aprof("dump", "--pid", fx.pid, "--json", timeout=30)
        t.require_rc(res, 0, "aprof dump --json")
        outputs.append(res.stdout)
    try:
        doc = json.loads(outputs[0])
    except ValueError as e:
        raise h.Failure("dump --json output is not JSON (%s): %s" % (e, h.short(outputs[0])))
    t.eq(h.find_nulls(doc), [], "null values in dump --json")
    t.eq(doc.get("pid"), fx.pid, "pid")
    t.eq(doc.get("python_version"), truth["python_version"], "python_version")
    threads = doc.get("threads")
    t.require(isinstance(threads, list), "threads is not a list: %s" % h.short(outputs[0], 300))

    main = [tt["native_id"] for tt in truth["threads"] if tt["is_main"]]
    others = sorted(tt["native_id"] for tt in truth["threads"] if not tt["is_main"])
    t.eq([th.get("tid") for th in threads], main + others,
         "thread tids in dump order (main first, then by tid)")
    by_tid = {th.get("tid"): th for th in threads}
    for tt in truth["threads"]:
        th = by_tid.get(tt["native_id"])
        if not t.check(th is not None, "%s missing from the dump" % thread_label(tt)):
            continue
        t.eq(th.get("name"), tt["name"], "name of %s" % thread_label(tt))
        t.eq(th.get("is_main"), tt["is_main"], "is_main of %s" % thread_label(tt))
        frames = th.get("frames") or []
        t.eq(len(frames), len(tt["frames"]), "number of frames of %s" % thread_label(tt))
        t.eq(frame_view(frames), tt["frames"], "frames of %s (outermost first)" % thread_label(tt))
    # The fixture's threads wake every 50 ms for a few microseconds (more on a loaded machine,
    # waiting for a CPU): a dump can find one runnable. Everything but that /proc state must be
    # the same from one dump to the next.
    def without_state(text):
        d = json.loads(text)
        for th in d.get("threads", []):
            t.check(th.pop("state", None) in ("sleeping", "running"),
                    "state of thread %s" % th.get("tid"))
        return json.dumps(d, sort_keys=True)
    for i in range(1, DUMPS):
        t.eq(without_state(outputs[i]), without_state(outputs[0]),
             "dump #%d compared with dump #1 (target idle; thread states aside)" % (i + 1))


def frame_line_pattern(frame):
    return re.compile(r"\s+%s \((?:.*/)?%s:%d\)\s*\Z" % (
        re.escape(frame["function"]), re.escape(os.path.basename(frame["file"])), frame["line"]))


@h.per_interpreter
def test_dump_text(t):
    fx, truth = start_stack_fixture(t)
    res = t.aprof("dump", "--pid", fx.pid, timeout=30)
    t.require_rc(res, 0, "aprof dump")
    lines = res.stdout.splitlines()
    t.check(any(re.match(r"\s*Process %d\b" % fx.pid, line) for line in lines),
            "no 'Process %d' line in:\n%s" % (fx.pid, h.short(res.stdout)))
    t.check(any(re.match(r"\s*Python %s\b" % re.escape(truth["python_version"]), line)
                for line in lines),
            "no 'Python %s' line in:\n%s" % (truth["python_version"], h.short(res.stdout)))
    headers = {}
    for i, line in enumerate(lines):
        m = re.match(r'\s*Thread (\d+) "(.*?)"(.*)\Z', line)
        if m:
            headers[int(m.group(1))] = (i, m.group(2), m.group(3))
    for tt in truth["threads"]:
        if not t.check(tt["native_id"] in headers, "no header line 'Thread %d \"%s\"' in:\n%s"
                       % (tt["native_id"], tt["name"], h.short(res.stdout))):
            continue
        index, name, rest = headers[tt["native_id"]]
        t.eq(name, tt["name"], "thread name in the header of %s" % thread_label(tt))
        t.eq("(main)" in rest, tt["is_main"], "'(main)' in header %r" % lines[index])
        shown = lines[index + 1:index + 1 + INNERMOST_CHECKED]
        expected = list(reversed(tt["frames"]))[:INNERMOST_CHECKED]
        matches = [bool(frame_line_pattern(f).match(line)) for f, line in zip(expected, shown)]
        t.check(len(shown) == len(expected) and all(matches),
                "innermost frames of %s: expected (innermost first)\n%s\ngot\n%s" % (
                    thread_label(tt),
                    "\n".join("    %s (%s:%d)" % (f["function"], os.path.basename(f["file"]),
                                                  f["line"]) for f in expected),
                    "\n".join(shown)))


if __name__ == "__main__":
    h.main()
