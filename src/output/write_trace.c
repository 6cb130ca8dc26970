/* Chrome trace event JSON (the "JSON Object Format" of the Trace Event Format; opens in the
 * Perfetto UI, chrome://tracing and speedscope). docs/formats.md#trace-chrome-trace-events
 * describes the tracks.
 *
 * Tracks, per process:
 *  - one per event loop (a thread id above TRACE_LOOP_TID_BASE, named "event loop: ..."):
 *    complete events ("X") for its busy stretches, with its stalls nested inside them;
 *  - one per asyncio task: async events ("b"/"e", category asyncio.task, keyed by the task's
 *    id) for its life, with its run / await / ready / suspended segments nested inside, async
 *    instants ("n") when it was created and when it ended, and a flow ("s"/"f") from the task
 *    first seen awaiting it;
 *  - one per sampled thread: its stacks as nested begin/end events, a frame lasting from the
 *    first to the last consecutive sample that had it (task-stitched stacks where tasks ran).
 * Times are microseconds since the start of the earliest sample.
 */
#include "json.h"
#include "writers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_LOOP_TID_BASE 0x40000000 /* above any pid_max: loop tracks never meet a thread */
#define TASK_CAT "asyncio.task"

typedef struct trace_ctx {
    json_writer w;
    uint64_t origin;
    int64_t default_pid;
} trace_ctx;

static void ts_key(trace_ctx *c, const char *key, uint64_t t)
{
    json_key(&c->w, key);
    json_micros_ns(&c->w, t > c->origin ? t - c->origin : 0);
}

/* The common head of an event: {"ph":ph,"name":name,"pid":..,"tid":..,"ts":.. */
static void event_head(trace_ctx *c, const char *ph, const char *name, int64_t pid, int64_t tid,
                       uint64_t ts)
{
    json_begin_object(&c->w);
    json_kv_string(&c->w, "ph", ph);
    json_kv_string(&c->w, "name", name);
    json_kv_int(&c->w, "pid", pid);
    json_kv_int(&c->w, "tid", tid);
    ts_key(c, "ts", ts);
}

static void metadata(trace_ctx *c, const char *what, int64_t pid, int64_t tid, const char *name,
                     int sort_index)
{
    json_begin_object(&c->w);
    json_kv_string(&c->w, "ph", "M");
    json_kv_string(&c->w, "name", what);
    json_kv_int(&c->w, "pid", pid);
    json_kv_int(&c->w, "tid", tid);
    json_key(&c->w, "args");
    json_begin_object(&c->w);
    if (name)
        json_kv_string(&c->w, "name", name);
    else
        json_kv_int(&c->w, "sort_index", sort_index);
    json_end_object(&c->w);
    json_end_object(&c->w);
}

static int64_t pid_of(const trace_ctx *c, pid_t pid)
{
    return pid ? pid : c->default_pid;
}

static const char *base_name(const char *file)
{
    const char *s = file ? strrchr(file, '/') : NULL;
    return s ? s + 1 : (file ? file : "");
}

/* ---- thread tracks: sampled stacks -------------------------------------------------------------- */

static const char *frame_category(uint8_t kind)
{
    switch (kind) {
    case FRAME_NATIVE: return "native";
    case FRAME_TASK: return "task";
    case FRAME_MARK: return "mark";
    default: return "python";
    }
}

/* A frame of a thread's stack begins ("B") or ends ("E"). Begin and end events, written as the
 * stack changes, are in nesting order in the file (outer begins first, inner ends first), which
 * is what importers that sort by time and keep the file's order for equal times need. The name
 * is the frame as folded stacks write it: "function (file:line)". */
static void frame_event(trace_ctx *c, const agg *a, const char *ph, uint32_t frame, int64_t pid,
                        int64_t tid, uint64_t ts)
{
    const aprof_frame *f = agg_frame_at(a, frame);
    char name[1024];
    if (f->file && f->file[0])
        snprintf(name, sizeof(name), "%s (%s:%d)", f->name, f->file, (int)f->line);
    else
        snprintf(name, sizeof(name), "%s", f->name);
    event_head(c, ph, name, pid, tid, ts);
    json_kv_string(&c->w, "cat", frame_category(f->kind));
    json_end_object(&c->w);
}

/* Frames that are written alike are one slice (the frame table also tells frames apart by
 * flags that the name does not show; two slices of one name meeting at one time would be
 * ambiguous to importers). */
static bool same_frame(const agg *a, uint32_t x, uint32_t y)
{
    if (x == y)
        return true;
    const aprof_frame *f = agg_frame_at(a, x), *g = agg_frame_at(a, y);
    return f->name == g->name && f->file == g->file && f->line == g->line && f->kind == g->kind;
}

/* One thread's points as nested slices. open[] holds the frames of the stack in progress. A gap
 * of more than gap_ns between samples closes the whole stack. */
static bool write_thread(trace_ctx *c, const agg *a, const agg_profile *p, uint64_t gap_ns,
                         uint32_t *stack, uint32_t *open, uint32_t max_depth)
{
    int64_t pid = pid_of(c, p->pid), tid = p->tid;
    uint32_t nopen = 0;
    uint64_t prev_end = 0;
    agg_point_iter it;
    agg_point pt;
    size_t seen = 0;
    agg_point_iter_init(&it, a, p, 0);
    while (agg_point_iter_next(&it, &pt)) {
        seen++;
        uint64_t start = pt.t_ns > pt.weight_ns ? pt.t_ns - pt.weight_ns : 0;
        if (start < prev_end)
            start = prev_end;
        uint32_t depth = pt.node == AGG_ROOT ? 0 : agg_stack_frames(a, pt.node, stack, max_depth);
        uint32_t common = 0;
        if (start <= prev_end + gap_ns)
            while (common < nopen && common < depth && same_frame(a, open[common], stack[common]))
                common++;
        bool closed = nopen > common;
        while (nopen > common) {
            nopen--;
            frame_event(c, a, "E", open[nopen], pid, tid, prev_end);
        }
        /* A frame that ends where one of the same name begins reads as an empty frame to
         * speedscope (it opens the new one first): the new frames begin 1 ns later. */
        if (closed && start <= prev_end)
            start = prev_end + 1;
        for (uint32_t d = common; d < depth; d++) {
            open[d] = stack[d];
            frame_event(c, a, "B", stack[d], pid, tid, start);
        }
        nopen = depth;
        prev_end = pt.t_ns > start ? pt.t_ns : start;
    }
    while (nopen > 0) {
        nopen--;
        frame_event(c, a, "E", open[nopen], pid, tid, prev_end);
    }
    return seen == p->npoints;
}

/* ---- loop tracks: busy stretches and stalls ------------------------------------------------------ */

typedef struct loop_key {
    pid_t pid, tid;
} loop_key;

static const char *thread_name_of(const agg *a, pid_t pid, pid_t tid)
{
    for (size_t i = 0; i < agg_profile_count(a); i++) {
        const agg_profile *p = agg_profile_at(a, i);
        if (p->tid == tid && (!pid || !p->pid || p->pid == pid))
            return agg_profile_thread_name(p);
    }
    return NULL;
}

static void stall_event_out(trace_ctx *c, const stall_event *e, int64_t pid, int64_t tid,
                            uint64_t start, uint64_t end)
{
    char name[512];
    snprintf(name, sizeof(name), "stall: %s (%s:%d)", e->culprit.name ? e->culprit.name : "?",
             base_name(e->culprit.file), (int)e->culprit.line);
    event_head(c, "X", name, pid, tid, start);
    json_key(&c->w, "dur");
    json_micros_ns(&c->w, end > start ? end - start : 0);
    json_kv_string(&c->w, "cat", "asyncio.stall");
    json_key(&c->w, "args");
    json_begin_object(&c->w);
    json_kv_string(&c->w, "function", e->culprit.name);
    json_kv_string(&c->w, "file", e->culprit.file);
    json_kv_int(&c->w, "line", e->culprit.line);
    json_kv_double(&c->w, "duration_ms", (double)(e->end_ns - e->start_ns) / 1e6);
    json_kv_double(&c->w, "uncertainty_ms", (double)e->uncertainty_ns / 1e6);
    json_kv_string(&c->w, "impact", e->impact == STALL_CRITICAL ? "critical" : "warning");
    if (e->task)
        json_kv_string(&c->w, "task", e->task);
    if (e->callback)
        json_kv_string(&c->w, "callback", e->callback);
    json_kv_uint(&c->w, "samples", e->samples);
    json_kv_double(&c->w, "gc_share", e->samples ? (double)e->gc_samples / e->samples : 0.0);
    json_key(&c->w, "clipped");
    json_bool(&c->w, e->clipped);
    json_end_object(&c->w);
    json_end_object(&c->w);
}

static void write_loop(trace_ctx *c, const agg *a, const task_timeline *tl,
                       const stall_detector *sd, loop_key k, int sort_index)
{
    int64_t pid = pid_of(c, k.pid), tid = (int64_t)TRACE_LOOP_TID_BASE + k.tid;
    const char *tname = thread_name_of(a, k.pid, k.tid);
    char name[300];
    snprintf(name, sizeof(name), "event loop: %s (tid %d)", tname ? tname : "?", (int)k.tid);
    metadata(c, "thread_name", pid, tid, name, 0);
    metadata(c, "thread_sort_index", pid, tid, NULL, sort_index);
    size_t nb = tl ? timeline_busy_count(tl) : 0, ns = sd ? stall_count(sd) : 0;
    size_t bi = 0;
    const tl_busy *cur = NULL; /* the busy stretch the next stall may lie in */
    for (size_t si = 0;; si++) {
        const stall_event *e = NULL;
        while (si < ns && (e = stall_at(sd, si)) && (e->tid != k.tid || (k.pid && e->pid != k.pid)))
            e = NULL, si++;
        /* busy stretches that begin before this stall (all of them after the last stall) */
        while (bi < nb) {
            const tl_busy *b = timeline_busy_at(tl, bi);
            if (b->tid != k.tid || (k.pid && b->pid != k.pid)) {
                bi++;
                continue;
            }
            if (e && b->start_ns > e->start_ns)
                break;
            event_head(c, "X", "busy", pid, tid, b->start_ns);
            json_key(&c->w, "dur");
            json_micros_ns(&c->w, b->end_ns - b->start_ns);
            json_kv_string(&c->w, "cat", "asyncio.loop");
            json_end_object(&c->w);
            cur = b;
            bi++;
        }
        if (!e)
            break;
        uint64_t s0 = e->start_ns, s1 = e->end_ns;
        if (cur && s0 < cur->end_ns) { /* nested in its busy stretch, as slices must be */
            if (s0 < cur->start_ns)
                s0 = cur->start_ns;
            if (s1 > cur->end_ns)
                s1 = cur->end_ns;
        }
        stall_event_out(c, e, pid, tid, s0, s1);
    }
}

/* Every (pid, tid) with busy stretches or stalls, in order of first appearance. */
static size_t loop_keys(const task_timeline *tl, const stall_detector *sd, loop_key *out,
                        size_t max)
{
    size_t n = 0;
    size_t nb = tl ? timeline_busy_count(tl) : 0, ns = sd ? stall_count(sd) : 0;
    for (size_t i = 0; i < nb + ns; i++) {
        loop_key k;
        if (i < nb)
            k = (loop_key){timeline_busy_at(tl, i)->pid, timeline_busy_at(tl, i)->tid};
        else
            k = (loop_key){stall_at(sd, i - nb)->pid, stall_at(sd, i - nb)->tid};
        size_t j = 0;
        while (j < n && (out[j].pid != k.pid || out[j].tid != k.tid))
            j++;
        if (j == n && n < max)
            out[n++] = k;
    }
    return n;
}

/* ---- task tracks ------------------------------------------------------------------------------------ */

static void task_id(char *buf, size_t len, size_t index)
{
    snprintf(buf, len, "0x%zx", index + 1);
}

static void async_event(trace_ctx *c, const char *ph, const char *name, const char *id,
                        int64_t pid, int64_t tid, uint64_t ts)
{
    event_head(c, ph, name, pid, tid, ts);
    json_kv_string(&c->w, "cat", TASK_CAT);
    json_kv_string(&c->w, "id", id);
}

static const char *end_name(uint8_t end)
{
    switch (end) {
    case TL_DONE: return "done";
    case TL_CANCELLED: return "cancelled";
    default: return "finished";
    }
}

static void seg_name(const tl_seg *g, char *buf, size_t len)
{
    switch (g->kind) {
    case TL_RUN: snprintf(buf, len, "run"); break;
    case TL_AWAIT:
        snprintf(buf, len, "await %s: %s (%s:%d)", async_wait_kind_name(g->wait_kind),
                 g->site_name ? g->site_name : "?", base_name(g->site_file), (int)g->site_line);
        break;
    case TL_READY: snprintf(buf, len, "ready"); break;
    default: snprintf(buf, len, "suspended"); break;
    }
}

static void write_task(trace_ctx *c, const task_timeline *tl, size_t i, uint64_t rec_end)
{
    const tl_task *t = timeline_task_at(tl, i);
    int64_t pid = pid_of(c, t->pid), tid = t->tid ? t->tid : pid;
    char id[32], name[600];
    task_id(id, sizeof(id), i);
    uint64_t start = t->first_ns, end = t->end != TL_ALIVE ? t->end_ns : rec_end;
    for (uint32_t k = t->head; k != TIMELINE_NONE; k = timeline_seg_at(tl, k)->next) {
        const tl_seg *g = timeline_seg_at(tl, k);
        if (g->start_ns < start)
            start = g->start_ns;
        if (g->end_ns > end)
            end = g->end_ns;
    }
    if (t->last_seen_ns > end)
        end = t->last_seen_ns;
    async_event(c, "b", t->name, id, pid, tid, start);
    json_key(&c->w, "args");
    json_begin_object(&c->w);
    char addr[32];
    snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)t->addr);
    json_kv_string(&c->w, "task", addr);
    if (t->coro_name)
        json_kv_string(&c->w, "coroutine", t->coro_name);
    json_key(&c->w, "created_while_recorded");
    json_bool(&c->w, t->created);
    json_kv_string(&c->w, "end", t->end == TL_ALIVE ? "alive" : end_name(t->end));
    if (t->parent != TIMELINE_NONE) {
        char pidbuf[32];
        task_id(pidbuf, sizeof(pidbuf), t->parent);
        json_kv_string(&c->w, "awaited_by", timeline_task_at(tl, t->parent)->name);
        json_kv_string(&c->w, "awaited_by_id", pidbuf);
    }
    json_kv_double(&c->w, "run_ms", (double)t->run_ns / 1e6);
    json_kv_uint(&c->w, "run_samples", t->run_samples);
    json_end_object(&c->w);
    json_end_object(&c->w);
    if (t->created) {
        async_event(c, "n", "created", id, pid, tid, start);
        json_end_object(&c->w);
    }
    for (uint32_t k = t->head; k != TIMELINE_NONE; k = timeline_seg_at(tl, k)->next) {
        const tl_seg *g = timeline_seg_at(tl, k);
        seg_name(g, name, sizeof(name));
        async_event(c, "b", name, id, pid, tid, g->start_ns);
        if (g->kind == TL_RUN) {
            json_key(&c->w, "args");
            json_begin_object(&c->w);
            json_kv_uint(&c->w, "samples", g->samples);
            json_kv_double(&c->w, "sampled_ms", (double)g->sampled_ns / 1e6);
            json_end_object(&c->w);
        } else if (g->kind == TL_AWAIT) {
            json_key(&c->w, "args");
            json_begin_object(&c->w);
            json_kv_string(&c->w, "kind", async_wait_kind_name(g->wait_kind));
            json_kv_string(&c->w, "function", g->site_name);
            json_kv_string(&c->w, "file", g->site_file);
            json_kv_int(&c->w, "line", g->site_line);
            json_end_object(&c->w);
        }
        json_end_object(&c->w);
        async_event(c, "e", name, id, pid, tid, g->end_ns);
        json_end_object(&c->w);
    }
    if (t->end != TL_ALIVE) {
        async_event(c, "n", end_name(t->end), id, pid, tid, end);
        json_end_object(&c->w);
    }
    async_event(c, "e", t->name, id, pid, tid, end);
    json_end_object(&c->w);
    if (t->parent != TIMELINE_NONE) {
        /* who awaits it: an arrow from the awaiting task's loop thread to this task's */
        const tl_task *p = timeline_task_at(tl, t->parent);
        event_head(c, "s", "awaited by", pid, p->tid ? p->tid : pid, t->parent_ns);
        json_kv_string(&c->w, "cat", "asyncio.await");
        json_kv_string(&c->w, "id", id);
        json_end_object(&c->w);
        event_head(c, "f", "awaited by", pid, tid, t->parent_ns);
        json_kv_string(&c->w, "cat", "asyncio.await");
        json_kv_string(&c->w, "id", id);
        json_kv_string(&c->w, "bp", "e");
        json_end_object(&c->w);
    }
}

/* ---- the file ------------------------------------------------------------------------------------- */

#define MAX_LOOPS 256
#define MAX_PIDS 4096

int write_trace(const agg *a, const task_timeline *tl, const stall_detector *sd,
                const trace_meta *m, FILE *out)
{
    if (!a || !m || !out) {
        errno = EINVAL;
        return -1;
    }
    trace_ctx *c = calloc(1, sizeof(*c));
    uint32_t max_depth = agg_max_depth(a) ? agg_max_depth(a) : 1;
    uint32_t *stack = malloc(max_depth * sizeof(*stack));
    uint32_t *open = malloc(max_depth * sizeof(*open));
    loop_key *loops = malloc(MAX_LOOPS * sizeof(*loops));
    pid_t *pids = malloc(MAX_PIDS * sizeof(*pids));
    if (!c || !stack || !open || !loops || !pids) {
        free(c), free(stack), free(open), free(loops), free(pids);
        errno = ENOMEM;
        return -1;
    }
    c->default_pid = m->pid;
    c->origin = m->start_ns;
    for (size_t i = 0; i < agg_profile_count(a); i++) {
        const agg_profile *p = agg_profile_at(a, i);
        agg_point pt;
        if (p->tid && p->npoints && agg_point_get(a, p, 0, &pt)) {
            uint64_t s = pt.t_ns > pt.weight_ns ? pt.t_ns - pt.weight_ns : 0;
            if (s < c->origin)
                c->origin = s;
        }
    }
    json_init(&c->w, out);
    json_begin_object(&c->w);
    json_kv_string(&c->w, "displayTimeUnit", "ms");
    json_key(&c->w, "otherData");
    json_begin_object(&c->w);
    json_kv_string(&c->w, "name", m->name);
    json_kv_string(&c->w, "exporter", m->exporter);
    /* ts 0 on the target's own CLOCK_MONOTONIC (Python's time.monotonic()) */
    json_kv_uint(&c->w, "origin_monotonic_ns", c->origin);
    json_kv_uint(&c->w, "dropped_timeline_entries", tl ? timeline_dropped(tl) : 0);
    json_end_object(&c->w);
    json_key(&c->w, "traceEvents");
    json_begin_array(&c->w);

    /* processes: the target's, and every other one a profile names */
    size_t npids = 0;
    pids[npids++] = (pid_t)m->pid;
    for (size_t i = 0; i < agg_profile_count(a); i++) {
        pid_t pid = agg_profile_at(a, i)->pid;
        size_t j = 0;
        while (j < npids && pids[j] != pid)
            j++;
        if (pid && j == npids && npids < MAX_PIDS)
            pids[npids++] = pid;
    }
    for (size_t i = 0; i < npids; i++) {
        const char *label = agg_process_label_of(a, pids[i]);
        char name[1300];
        if (label)
            snprintf(name, sizeof(name), "%s (pid %d)", label, (int)pids[i]);
        else
            snprintf(name, sizeof(name), "%s", m->process_name ? m->process_name : "python");
        metadata(c, "process_name", pids[i], 0, name, 0);
    }

    size_t nloops = loop_keys(tl, sd, loops, MAX_LOOPS);
    for (size_t i = 0; i < nloops; i++)
        write_loop(c, a, tl, sd, loops[i], -1000 + (int)i);
    for (size_t i = 0; tl && i < timeline_task_count(tl); i++)
        write_task(c, tl, i, m->end_ns);

    bool complete = true;
    uint64_t gap = m->rate > 0 ? (uint64_t)(3e9 / m->rate) : 3000000;
    int sort = 0;
    for (size_t i = 0; i < agg_profile_count(a); i++) {
        const agg_profile *p = agg_profile_at(a, i);
        if (!p->tid)
            continue; /* synthetic profiles have no time order: the tracks above show them */
        const char *tn = agg_profile_thread_name(p);
        char name[300];
        snprintf(name, sizeof(name), "%s (tid %d)", tn ? tn : "thread", (int)p->tid);
        metadata(c, "thread_name", pid_of(c, p->pid), p->tid, name, 0);
        metadata(c, "thread_sort_index", pid_of(c, p->pid), p->tid, NULL, sort++);
        complete &= write_thread(c, a, p, gap, stack, open, max_depth);
    }
    json_end_array(&c->w);
    json_end_object(&c->w);
    int rc = json_finish(&c->w);
    if (rc == 0 && (!complete || agg_spill_failed(a))) {
        errno = EIO;
        rc = -1;
    }
    int e = errno;
    free(c), free(stack), free(open), free(loops), free(pids);
    errno = e;
    return rc;
}
