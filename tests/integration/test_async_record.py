"""Async-aware recording: task-stitched stacks, the 'asyncio: awaiting' profile and the task
summary, against fixtures/async_cpu_fixture.py (which reports what it did)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def frame_names(doc, sample):
    frames = doc["shared"]["frames"]
    return [frames[i]["name"] for i in sample]


def record(t, *extra):
    truth_path, out, summary = t.path("truth.json"), t.path("out.json"), t.path("summary.json")
    res = t.aprof("record", "-o", out, "-s", summary, *extra, "--", t.py,
                  os.path.join(h.FIXTURES, "async_cpu_fixture.py"), truth_path, timeout=60)
    t.require_rc(res, 0, "aprof record (launch)")
    with open(truth_path) as f:
        truth = json.load(f)
    with open(summary) as f:
        summ = json.load(f)
    return truth, h.load_speedscope(t, out), summ, res


@h.per_interpreter
@h.smoke
def test_task_stitched_stacks(t):
    # every task by its own name: worker-7 among worker-0..9 (by default they are <task worker-*>)
    truth, doc, summ, res = record(t, "--exact-task-names")
    main = [p for p in doc["profiles"] if p["name"].endswith('"MainThread"')]
    t.require(main, "no MainThread profile")
    burn_weight = stitched = under_parent = 0.0
    for sample, weight in zip(main[0]["samples"], main[0]["weights"]):
        names = frame_names(doc, sample)
        if truth["cpu_function"] not in names:
            continue
        burn_weight += weight
        tasks = [n for n in names if n.startswith("<task ")]
        cpu_at = names.index(truth["cpu_function"])
        task_at = names.index("<task worker-7>") if "<task worker-7>" in names else -1
        if 0 <= task_at < cpu_at:
            stitched += weight
            parent_at = names.index("<task supervisor>") if "<task supervisor>" in names else -1
            if 0 <= parent_at < task_at and tasks[-1] == "<task worker-7>":
                under_parent += weight
    t.check(burn_weight > 0.5, "burn_cpu was hardly sampled: %.3f s" % burn_weight)
    t.check(stitched >= 0.95 * burn_weight,
            "only %.3f of %.3f s of burn_cpu sit under <task worker-7>" % (stitched, burn_weight))
    t.check(under_parent >= 0.95 * burn_weight,
            "only %.3f of %.3f s of burn_cpu sit under <task supervisor> > <task worker-7>"
            % (under_parent, burn_weight))

    # The awaiting profile: the sleeping workers' await chains, under the supervisor.
    # A snapshot can catch the supervisor's first step between creating its workers and
    # awaiting them in gather (3.14 lists a C task as soon as it is created): those workers are
    # then truly awaited by no one. At most one snapshot per worker can be that early; allow two
    # snapshot intervals' worth of each worker's awaiting time outside the supervisor.
    awaiting = [p for p in doc["profiles"] if p["name"] == "asyncio: awaiting"]
    if t.check(awaiting, "no 'asyncio: awaiting' profile"):
        weight, outside, examples = {}, {}, {}
        for sample, w in zip(awaiting[0]["samples"], awaiting[0]["weights"]):
            names = frame_names(doc, sample)
            for n in names:
                if n.startswith("<task worker-"):
                    weight[n] = weight.get(n, 0.0) + w
                    if not ("<task supervisor>" in names and
                            names.index("<task supervisor>") < names.index(n)):
                        outside[n] = outside.get(n, 0.0) + w
                        examples.setdefault(n, names)
        interval = 1.0 / 10  # --await-rate default
        for n, w_out in sorted(outside.items()):
            t.check(w_out <= 2 * interval + 0.01,
                    "%.3f of %.3f s of %s's awaiting stacks are not under its parent, e.g. %s"
                    % (w_out, weight[n], n, examples[n]))
        t.check(len(weight) >= 9, "awaiting profile shows only %s" % sorted(weight))

    # Task lifecycle against the fixture's own account.
    tasks = summ.get("tasks", {})
    # Launch mode: the first snapshot precedes `import asyncio`, so every task is created during
    # the recording, the main task included.
    created_truth = truth["created"]
    t.eq(tasks.get("created"), created_truth, "tasks created")
    t.eq(tasks.get("cancelled"), len(truth["cancelled"]), "tasks cancelled")
    t.check(tasks.get("finished", 0) >= len(truth["ephemeral"]),
            "finished %s < %d ephemeral tasks" % (tasks.get("finished"), len(truth["ephemeral"])))
    t.eq(tasks.get("max_alive"), truth["max_alive"], "most tasks alive at once")
    t.eq(tasks.get("seen"), created_truth, "tasks seen")
    sites = summ.get("await_sites", [])
    t.check(any(s["function"].endswith("worker") and s["file"] == truth["file"] for s in sites),
            "no await site in worker(): %s" % sites[:5])
    t.check(all(s["wait_s"] >= 0 and s["waits"] >= 1 for s in sites), "bad await sites")
    t.check("asyncio:" in res.stderr and "tasks seen" in res.stderr,
            "the summary does not mention tasks:\n" + res.stderr)


@h.once
def test_no_async_flag(t):
    _, doc, summ, _ = record(t, "--no-async")
    t.check(not any(p["name"] == "asyncio: awaiting" for p in doc["profiles"]),
            "--no-async still wrote an awaiting profile")
    t.check(not any(f["name"].startswith("<task ") for f in doc["shared"]["frames"]),
            "--no-async still stitched task frames")
    t.check("tasks" not in summ, "--no-async still summarised tasks")


if __name__ == "__main__":
    h.main()
