"""`aprof dump`'s asyncio picture against fixtures that describe their own task trees.

fixtures/async_tree_fixture.py writes what asyncio itself says (every task in asyncio's
registries, names, states, the await chain through cr_await, task._fut_waiter) and what it knows
by construction (the kind of wait, who awaits whom); the dump must agree exactly, on every
interpreter, with C tasks and with pure-Python tasks. fixtures/many_tasks_fixture.py checks scale.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from asynctree import check_tree_json, start_tree  # noqa: E402

MANY = 10000
MANY_DEADLINE_S = 1.0
CHURN_DUMPS = 12


def dump_json(t, fx, *extra):
    res = t.aprof("dump", "--pid", fx.pid, "--json", *extra, timeout=60)
    t.require_rc(res, 0, "aprof dump --json %s" % " ".join(extra))
    try:
        doc = json.loads(res.stdout)
    except ValueError as e:
        raise h.Failure("dump --json output is not JSON (%s): %s" % (e, h.short(res.stdout)))
    t.eq(h.find_nulls(doc), [], "null values in dump --json")
    return doc, res


@h.per_interpreter
@h.smoke
def test_async_tree_json(t):
    fx, truth = start_tree(t)
    doc, _ = dump_json(t, fx)
    check_tree_json(t, doc, truth, "dump --json")
    doc, _ = dump_json(t, fx, "--blocking")
    check_tree_json(t, doc, truth, "dump --json --blocking")
    t.check(fx.alive(), "the fixture died during the dumps")


@h.per_interpreter
def test_async_python_tasks(t):
    fx, truth = start_tree(t, "--python-tasks")
    # every task of the main loop but "main" itself (created before the task factory was set)
    main_loop = [tt for tt in truth["tasks"] if tt["thread"] == truth["pid"] and tt["name"] != "main"]
    t.require(main_loop and all(tt["python_task"] for tt in main_loop),
              "the fixture did not create pure-Python tasks on its main loop")
    doc, _ = dump_json(t, fx)
    check_tree_json(t, doc, truth, "dump --json (pure-Python tasks)")


HEADER = re.compile(r'(?P<indent>(?:│   |    )*)(?P<lead>├── |└── |)Task "(?P<name>[^"]*)" '
                    r'(?:\(shown above\)|\[(?P<state>\w+)\](?: awaiting (?P<kind>[\w]+))?)')


CONTINUED = re.compile(r'\(continued: awaited by "(?P<name>[^"]*)"')


def parse_text_tree(text):
    """[(name, state, kind, parent name or None, stack lines)] from the asyncio part of a dump.
    A subtree cut for depth goes on under '(continued: awaited by "NAME" ...)'."""
    nodes, path, continued = [], [], None
    for line in text.splitlines():
        c = CONTINUED.match(line)
        if c:
            continued = c.group("name")
            continue
        m = HEADER.match(line)
        if m:
            depth = (len(m.group("indent")) + len(m.group("lead"))) // 4
            del path[depth:]
            parent = path[-1] if path else continued
            if depth == 0:
                continued = None
            nodes.append([m.group("name"), m.group("state"), m.group("kind") or "none", parent, []])
            path.append(m.group("name"))
        elif nodes and re.match(r"[│ ]+\S.* \(.*:\d+\)\Z", line):
            nodes[-1][4].append(line.strip(" │"))
    return nodes


@h.per_interpreter
def test_async_tree_text(t):
    fx, truth = start_tree(t)
    res = t.aprof("dump", "--pid", fx.pid, timeout=60)
    t.require_rc(res, 0, "aprof dump")
    text = res.stdout
    t.require("asyncio:" in text, "no asyncio part in the dump:\n%s" % h.short(text))
    for lp in truth["loops"]:
        t.check(re.search(r'^Event loop 0x[0-9a-f]+ on thread %d "%s"' % (lp["thread"], re.escape(
            lp["thread_name"])), text, re.M), "no 'Event loop ... on thread %d' line" % lp["thread"])
    nodes = parse_text_tree(text[text.index("asyncio:"):])
    names = {tt["id"]: tt["name"] for tt in truth["tasks"]}
    edges = sorted((n[0], n[3]) for n in nodes if n[3])
    expected = sorted((tt["name"], names[p]) for tt in truth["tasks"]
                      for p in tt["expected_awaited_by"])
    t.eq(edges, expected, "(task, awaited by) pairs of the text tree")
    shown = {n[0]: n for n in nodes if n[1]}
    for tt in truth["tasks"]:
        n = shown.get(tt["name"])
        if not t.check(n is not None, "task %r not in the text dump" % tt["name"]):
            continue
        t.eq((n[1], n[2]), (tt["state"], tt["expected_kind"]), "state and wait of %r" % tt["name"])
        t.eq(n[4], ["%s (%s:%d)" % (f["function"], f["file"], f["line"])
                    for f in tt["coroutine_stack"]], "coroutine stack of %r in the text" % tt["name"])
    t.check(re.search(r'^Await cycles:\n  "cycle-(a|b)" -> "cycle-(a|b)" -> "cycle-\1"$', text, re.M),
            "no await cycle line for cycle-a/cycle-b in:\n%s" % h.short(text[text.index("asyncio:"):], 4000))


@h.per_interpreter
def test_async_many_tasks(t):
    ready_path = t.path("ready.json")
    fx = t.start("many_tasks_fixture.py", ready_path, "--tasks", MANY, "--gather")
    ready = fx.wait_json(ready_path, timeout=60)
    doc, res = dump_json(t, fx)
    t.check(res.elapsed < MANY_DEADLINE_S, "dump of %d tasks took %.2f s (limit %.1f s)"
            % (ready["tasks"], res.elapsed, MANY_DEADLINE_S))
    tasks = doc.get("tasks", [])
    t.eq(len(tasks), ready["tasks"], "number of tasks")
    gatherer = [d["id"] for d in tasks if d.get("name") == "gatherer"]
    workers = [d for d in tasks if d.get("name", "").startswith("t-")]
    t.eq(sorted(d["name"] for d in workers), sorted("t-%d" % i for i in range(MANY)),
         "names of the worker tasks")
    bad = [d["name"] for d in workers
           if [f["function"] for f in d["coroutine_stack"]][-2:] != ["chain", "sleep"]
           or len(d["coroutine_stack"]) != ready["depth"] or d["awaited_by"] != gatherer
           or d["awaiting"]["kind"] != "sleep" or d["state"] != "pending"]
    t.eq(bad[:10], [], "workers without a %d-deep chain ending in sleep, pending, awaited by the "
         "gatherer (first 10)" % ready["depth"])


@h.once
def test_async_deep_tree_text(t):
    """An await tree deeper than the text tree is drawn: cut, continued, every edge still there."""
    ready_path = t.path("ready.json")
    n = 400
    fx = t.start("many_tasks_fixture.py", ready_path, "--tasks", n, "--chain", "--depth", 2)
    fx.wait_json(ready_path, timeout=60)
    doc, _ = dump_json(t, fx)
    by_id = {d["id"]: d["name"] for d in doc["tasks"]}
    t.eq(sorted((d["name"], [by_id.get(p) for p in d["awaited_by"]]) for d in doc["tasks"]
                if d["name"].startswith("t-")),
         sorted(("t-%d" % i, ["t-%d" % (i + 1)] if i + 1 < n else []) for i in range(n)),
         "awaited_by along the chain")
    res = t.aprof("dump", "--pid", fx.pid, timeout=60)
    t.require_rc(res, 0, "aprof dump")
    nodes = parse_text_tree(res.stdout[res.stdout.index("asyncio:"):])
    t.eq(sorted((nd[0], nd[3]) for nd in nodes if nd[0].startswith("t-") and nd[1]),
         sorted(("t-%d" % i, "t-%d" % (i + 1) if i + 1 < n else None) for i in range(n)),
         "(task, awaited by) in the text tree")
    t.check("(continued: awaited by" in res.stdout, "the deep tree was not cut and continued")


@h.per_interpreter
def test_async_churn(t):
    """Tasks created and finished while they are read: every dump must still succeed."""
    ready_path = t.path("ready.json")
    fx = t.start("many_tasks_fixture.py", ready_path, "--tasks", 200, "--churn")
    fx.wait_json(ready_path, timeout=60)
    for i in range(CHURN_DUMPS):
        doc, _ = dump_json(t, fx, *(("--blocking",) if i % 4 == 3 else ()))
        workers = [d for d in doc.get("tasks", []) if d.get("name", "").startswith("t-")]
        t.eq(len(workers), 200, "dump #%d: the 200 idle workers" % (i + 1))
        t.check(all(d["readable"] and d["complete"] and d["state"] == "pending" and
                    d["awaiting"]["kind"] == "sleep" for d in workers),
                "dump #%d: an idle worker unreadable, incomplete, not pending or not sleeping"
                % (i + 1))
    t.check(fx.alive(), "the fixture died during the dumps")


@h.once
def test_async_absent_and_disabled(t):
    # a target without asyncio
    truth_path = t.path("stack_truth.json")
    fx = t.start("stack_fixture.py", truth_path)
    fx.wait_json(truth_path)
    doc, _ = dump_json(t, fx)
    t.eq((doc.get("asyncio") or {}).get("status"), "not imported", "asyncio.status without asyncio")
    t.eq(doc.get("tasks"), [], "tasks without asyncio")
    # --no-async leaves the asyncio part out
    fx2, _ = start_tree(t)
    doc, _ = dump_json(t, fx2, "--no-async")
    t.eq([k for k in ("asyncio", "loops", "tasks", "await_cycles") if k in doc], [],
         "asyncio keys with --no-async")
    res = t.aprof("dump", "--pid", fx2.pid, "--no-async", timeout=60)
    t.require_rc(res, 0, "aprof dump --no-async")
    t.check("asyncio:" not in res.stdout and "Event loop" not in res.stdout,
            "asyncio part printed despite --no-async:\n%s" % h.short(res.stdout))


if __name__ == "__main__":
    h.main()
