"""The asyncio task-tree fixture (fixtures/async_tree_fixture.py) and the check of a dump's
JSON against the truth it writes: shared by test_async_dump.py and test_core.py."""
import harness as h


def start_tree(t, *args, truth_name="tree_truth.json"):
    truth_path = t.path(truth_name)
    fx = t.start("async_tree_fixture.py", truth_path, *args)
    truth = fx.wait_json(truth_path, timeout=30)
    return fx, truth


def view_of_truth(truth):
    """{task name: what the dump must say}, with task ids replaced by names."""
    names = {tt["id"]: tt["name"] for tt in truth["tasks"]}
    return {tt["name"]: {
        "state": tt["state"], "thread": tt["thread"], "coroutine_stack": tt["coroutine_stack"],
        "awaiting": {"kind": tt["expected_kind"], "id": tt["awaiting_id"]},
        "awaited_by": sorted(names[i] for i in tt["expected_awaited_by"]),
    } for tt in truth["tasks"]}


def view_of_dump(doc, truth):
    names = {tt["id"]: tt["name"] for tt in truth["tasks"]}
    view = {}
    for d in doc.get("tasks", []):
        name = names.get(d.get("id"), "<unexpected task %s %r>" % (d.get("id"), d.get("name")))
        if d.get("name") != names.get(d.get("id")):
            name += " (dump says %r)" % d.get("name")
        aw = d.get("awaiting") or {}
        view[name] = {
            "state": d.get("state"), "thread": d.get("thread"),
            "coroutine_stack": [{k: f.get(k) for k in ("function", "file", "line")}
                                for f in d.get("coroutine_stack", [])],
            "awaiting": {"kind": aw.get("kind"), "id": aw.get("id", 0)},
            "awaited_by": sorted(names.get(i, str(i)) for i in d.get("awaited_by", [])),
        }
    return view


def check_tree_json(t, doc, truth, what):
    t.eq(doc.get("pid"), truth["pid"], "%s: pid" % what)
    expected, actual = view_of_truth(truth), view_of_dump(doc, truth)
    t.eq(sorted(actual), sorted(expected), "%s: the set of tasks" % what)
    for name in sorted(set(expected) & set(actual)):
        t.eq(actual[name], expected[name], "%s: task %r" % (what, name))
    # awaits is the reverse of awaited_by
    by_id = {d["id"]: d for d in doc.get("tasks", [])}
    for d in doc.get("tasks", []):
        for parent in d.get("awaited_by", []):
            t.check(d["id"] in by_id.get(parent, {}).get("awaits", []),
                    "%s: %r is awaited by %s but that task's 'awaits' lacks it"
                    % (what, d.get("name"), parent))
    # loops: thread, thread name, running task, number of tasks
    loops = {lp.get("id"): lp for lp in doc.get("loops", [])}
    t.eq(sorted(loops), sorted(lp["id"] for lp in truth["loops"]), "%s: loop ids" % what)
    for lp in truth["loops"]:
        got = loops.get(lp["id"], {})
        t.eq({k: got.get(k) for k in ("thread", "thread_name", "running_task", "ntasks")},
             {"thread": lp["thread"], "thread_name": lp["thread_name"],
              "running_task": lp["running_task"], "ntasks": lp["tasks"]},
             "%s: loop of thread %r" % (what, lp["thread_name"]))
    t.eq(sorted(sorted(c) for c in doc.get("await_cycles", [])), sorted(truth["cycles"]),
         "%s: await cycles" % what)
    t.eq((doc.get("asyncio") or {}).get("complete"), True, "%s: asyncio.complete" % what)
