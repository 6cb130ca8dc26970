/* Reading asyncio tasks out of a target (see asyncio_reader.h and docs/asyncio.md): the reader,
 * the snapshot buffers and lookup maps, the threads and loops, and
 * asyncio_snapshot(), which assembles a snapshot out of the other asyncio_*.c files. */
#include "asyncio_internal.h"

#include "clock.h"
#include "grow.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_REFRESH_NS 1000000000ull /* module/registry addresses are looked up again */

/* ---- maps over task arrays ---------------------------------------------------------------- */

typedef struct task_query {
    const async_task *tasks;
    uint64_t key;
} task_query;

static bool id_is(const void *ctx, uint32_t idx)
{
    const task_query *q = ctx;
    return q->tasks[idx].id == q->key;
}

static bool coro_is(const void *ctx, uint32_t idx)
{
    const task_query *q = ctx;
    return q->tasks[idx].coro == q->key;
}

uint32_t async_find_task(const async_snapshot *s, uint64_t id)
{
    task_query q = {s->tasks, id};
    uint32_t i = id ? hmap_find(&s->by_id, hash32(id), id_is, &q) : HMAP_NONE;
    return i == HMAP_NONE ? ASYNC_NO_INDEX : i;
}

uint32_t async_find_by_coro(const async_snapshot *s, uint64_t coro)
{
    task_query q = {s->tasks, coro};
    uint32_t i = coro ? hmap_find(&s->by_coro, hash32(coro), coro_is, &q) : HMAP_NONE;
    return i == HMAP_NONE ? ASYNC_NO_INDEX : i;
}

/* ---- snapshot buffers --------------------------------------------------------------------- */

void async_snapshot_init(async_snapshot *s)
{
    memset(s, 0, sizeof(*s));
}

void async_snapshot_free(async_snapshot *s)
{
    free(s->tasks);
    free(s->frames);
    free(s->edges);
    hmap_free(&s->by_id);
    hmap_free(&s->by_coro);
    memset(s, 0, sizeof(*s));
}

bool ar_grow(void **p, uint32_t *cap, uint32_t need, size_t elem, uint32_t limit)
{
    size_t c = *cap;
    if (!grow_array(p, &c, need, elem, 64, limit))
        return false;
    *cap = (uint32_t)c;
    return true;
}

/* ---- reader ------------------------------------------------------------------------------- */

asyncio_reader *asyncio_reader_new(const asyncio_target *t)
{
    asyncio_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->t = *t;
    r->L = &t->rt->layout;
    r->c.m = t->m;
    r->c.L = r->L;
    r->max_tasks = ASYNC_MAX_TASKS;
    r->names_cur = strtab_new();
    if (!r->names_cur || pagecache_init(&r->pc, (target_src){t->pid, t->core}, PC_SLOTS, PC_GROUP) != 0) {
        strtab_free(r->names_cur);
        free(r);
        return NULL;
    }
    return r;
}

void asyncio_reader_free(asyncio_reader *r)
{
    if (!r)
        return;
    free(r->recs);
    hmap_free(&r->rec_by_id);
    free(r->work);
    free(r->order);
    free(r->pairs);
    free(r->sort_tmp);
    free(r->color);
    free(r->stack);
    free(r->stack_edge);
    free(r->names);
    strtab_free(r->names_cur);
    strtab_free(r->names_old);
    pagecache_free(&r->pc);
    free(r);
}

uint64_t asyncio_reader_name_rotations(const asyncio_reader *r)
{
    return r->name_rotations;
}

void asyncio_reader_set_max_tasks(asyncio_reader *r, uint32_t max_tasks)
{
    r->max_tasks = max_tasks == 0 ? 1 : max_tasks > ASYNC_TASK_LIMIT ? ASYNC_TASK_LIMIT : max_tasks;
}

/* ---- threads ------------------------------------------------------------------------------ */

static thread_info *thread_by_ident(asyncio_reader *r, uint64_t ident)
{
    for (uint32_t i = 0; i < r->nthreads; i++)
        if (r->threads[i].thread_id == ident)
            return &r->threads[i];
    return NULL;
}

/* Threads from the sample (names, native ids) and from the thread states (3.13: which loop each
 * runs; 3.11+: native ids when there is no sample). */
static void read_threads(asyncio_reader *r, const aprof_sample *smp)
{
    r->nthreads = 0;
    for (uint32_t i = 0; smp && i < smp->nthreads && r->nthreads < MAX_THREADS; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        r->threads[r->nthreads++] = (thread_info){t->py_thread_id, t->tid, 0,
                                                  t->name ? t->name : "", t->is_main};
    }
    const py_layout *L = r->L;
    uint64_t interp = pyruntime_first_interp(r->t.rt, r->c.m), ts = 0;
    if (!interp || !rd_ptr(r, interp + (uint64_t)L->interp.threads_head, &ts))
        return;
    for (uint32_t guard = 0; ts && guard < MAX_THREADS; guard++) {
        uint64_t ident = 0, next = 0, loop = 0, native = 0;
        if (!mem_ptr_ok(ts, true) || !rd_ptr(r, ts + (uint64_t)L->tstate.thread_id, &ident) ||
            !rd_ptr(r, ts + (uint64_t)L->tstate.next, &next))
            break;
        if (L->tstate.native_thread_id != LAYOUT_ABSENT)
            rd_ptr(r, ts + (uint64_t)L->tstate.native_thread_id, &native);
        if (L->tstate.asyncio_running_loop != LAYOUT_ABSENT)
            rd_ptr(r, ts + (uint64_t)L->tstate.asyncio_running_loop, &loop);
        /* 3.14+: the task a thread's loop runs now is in its thread state (the running task
         * is only meaningful while a loop runs) */
        uint64_t task = 0;
        if (loop && L->tstate.asyncio_running_task != LAYOUT_ABSENT && r->ncur < MAX_CURRENT &&
            rd_ptr(r, ts + (uint64_t)L->tstate.asyncio_running_task, &task) && task &&
            mem_ptr_ok(task, true))
            r->cur[r->ncur++] = (current_pair){loop, task};
        thread_info *ti = thread_by_ident(r, ident);
        if (!ti && r->nthreads < MAX_THREADS) {
            ti = &r->threads[r->nthreads++];
            *ti = (thread_info){ident, (pid_t)native, 0, "", false};
        }
        if (ti) {
            ti->running_loop = loop;
            if (!ti->tid)
                ti->tid = (pid_t)native;
        }
        ts = next;
    }
}

/* ---- loops -------------------------------------------------------------------------------- */

static uint32_t loop_index(async_snapshot *out, uint64_t loop)
{
    for (uint32_t i = 0; i < out->nloops; i++)
        if (out->loops[i].id == loop)
            return i;
    if (out->nloops >= ASYNC_MAX_LOOPS)
        return ASYNC_NO_INDEX;
    out->loops[out->nloops] = (async_loop){loop, 0, 0, "", ASYNC_NO_INDEX, 0};
    return out->nloops++;
}

/* The thread whose live stack contains frames of coroutine `coro`: *first gets the outermost
 * such frame. */
const aprof_thread_sample *ar_thread_running(const aprof_sample *smp, uint64_t coro,
                                             uint32_t *first)
{
    for (uint32_t i = 0; smp && coro && i < smp->nthreads; i++) {
        const aprof_thread_sample *t = &smp->threads[i];
        if (t->flags & TSF_TORN)
            continue;
        for (uint32_t k = 0; k < t->nframes; k++) {
            if (t->owners[k] == coro) {
                *first = k;
                return t;
            }
        }
    }
    return NULL;
}

static void map_loop_threads(asyncio_reader *r, async_snapshot *out, const aprof_sample *smp)
{
    for (uint32_t li = 0; li < out->nloops; li++) {
        async_loop *l = &out->loops[li];
        uint64_t ident = 0;
        for (uint32_t i = 0; i < r->nthreads && !ident; i++)
            if (r->threads[i].running_loop == l->id)
                ident = r->threads[i].thread_id;
        if (!ident) {
            /* BaseEventLoop.run_forever keeps threading.get_ident() in loop._thread_id */
            uint64_t v;
            int64_t n;
            if (pyobj_getattr(&r->c, l->id, "_thread_id", &v) >= 0 &&
                (ar_classify(r, v) & TC_INT) && pyobj_int_value(&r->c, v, &n) >= 0)
                ident = (uint64_t)n;
        }
        if (!ident) {
            /* a loop whose task runs now: the thread whose stack holds that task's frames */
            for (uint32_t i = 0; i < r->ncur && !ident; i++) {
                if (r->cur[i].loop != l->id)
                    continue;
                uint32_t k = r->nrecs;
                for (uint32_t j = 0; j < r->nrecs; j++)
                    if (r->recs[j].t.id == r->cur[i].task)
                        k = j;
                uint32_t first;
                const aprof_thread_sample *t =
                    k < r->nrecs ? ar_thread_running(smp, r->recs[k].t.coro, &first) : NULL;
                if (t)
                    ident = t->py_thread_id;
            }
        }
        l->py_thread_id = ident;
        thread_info *ti = ident ? thread_by_ident(r, ident) : NULL;
        if (ti) {
            l->tid = ti->tid;
            l->thread_name = ti->name ? ti->name : "";
        }
    }
}

static bool loop_main(asyncio_reader *r, const async_loop *l)
{
    thread_info *ti = l->py_thread_id ? thread_by_ident(r, l->py_thread_id) : NULL;
    return ti && ti->is_main;
}

/* Main thread's loop first, then loops with a known thread by tid, then the rest by address. */
static int loop_order(const void *a, const void *b, void *ud)
{
    const async_loop *x = a, *y = b;
    bool mx = loop_main(ud, x), my = loop_main(ud, y);
    if (mx != my)
        return mx ? -1 : 1;
    if ((x->tid == 0) != (y->tid == 0))
        return x->tid ? -1 : 1;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* ---- the snapshot ------------------------------------------------------------------------- */

static void reset_snapshot(async_snapshot *out)
{
    out->flags = 0;
    out->ntasks = out->nframes = out->nedges = out->nloops = out->ncycles = 0;
    out->unreadable = 0;
    out->cost_ns = 0;
}

/* Once the current name table holds ASYNC_NAMES_ROTATE names, it becomes the old one and the
 * one before is freed: names read by a snapshot before the previous rotation go. The name
 * cache points into the tables: it starts over. */
static void rotate_names(asyncio_reader *r)
{
    if (strtab_count(r->names_cur) < ASYNC_NAMES_ROTATE)
        return;
    strtab *fresh = strtab_new();
    if (!fresh)
        return; /* keep growing rather than fail */
    strtab_free(r->names_old);
    r->names_old = r->names_cur;
    r->names_cur = fresh;
    if (r->names)
        memset(r->names, 0, (size_t)(r->names_mask + 1) * sizeof(*r->names));
    r->nnames = 0;
    r->name_rotations++;
}

int asyncio_snapshot(asyncio_reader *r, const aprof_sample *threads, async_snapshot *out)
{
    uint64_t t0 = aprof_now_ns();
    rotate_names(r);
    reset_snapshot(out);
    mem_begin_sample(r->c.m);
    pagecache_forget(&r->pc);
    if (!r->have_registries || t0 - r->refreshed_ns > REGISTRY_REFRESH_NS || !ar_registries_valid(r)) {
        r->refreshed_ns = t0;
        if (!ar_refresh_registries(r)) {
            out->flags |= ASF_NO_ASYNCIO;
            if (!target_src_alive(&r->pc.src)) {
                errno = ESRCH;
                return -1;
            }
            out->cost_ns = aprof_now_ns() - t0;
            return 0;
        }
    }
    /* 3.14+ without the offsets of its _asyncio image: its C tasks cannot be found, and a
     * list without them would be wrong */
    if (r->L->facts.task_registry == TASK_REGISTRY_THREAD_LISTS && !r->asyncio_offsets) {
        out->flags |= ASF_UNSUPPORTED;
        out->cost_ns = aprof_now_ns() - t0;
        return 0;
    }
    if (ar_collect_tasks(r, out) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (!target_src_alive(&r->pc.src)) {
        errno = ESRCH;
        return -1;
    }
    r->ncur = 0;
    if (r->current)
        pyobj_dict_iter(&r->c, r->current, ar_current_cb, r);
    read_threads(r, threads);

    for (uint32_t i = 0; i < r->nrecs; i++) {
        ar_read_task(r, &r->recs[i]);
        async_task *t = &r->recs[i].t;
        if (t->flags & ATF_UNREADABLE)
            continue;
        t->loop_index = loop_index(out, t->loop);
    }
    map_loop_threads(r, out, threads);
    /* order loops, then renumber the tasks' loop indices */
    uint64_t ids[ASYNC_MAX_LOOPS];
    for (uint32_t i = 0; i < out->nloops; i++)
        ids[i] = out->loops[i].id;
    if (out->nloops > 1)
        qsort_r(out->loops, out->nloops, sizeof(async_loop), loop_order, r);
    uint32_t remap[ASYNC_MAX_LOOPS];
    for (uint32_t i = 0; i < out->nloops; i++)
        for (uint32_t j = 0; j < out->nloops; j++)
            if (out->loops[j].id == ids[i])
                remap[i] = j;
    for (uint32_t i = 0; i < r->nrecs; i++) {
        async_task *t = &r->recs[i].t;
        if (t->loop_index != ASYNC_NO_INDEX) {
            t->loop_index = remap[t->loop_index];
            t->tid = out->loops[t->loop_index].tid;
            out->loops[t->loop_index].ntasks++;
        }
    }
    /* sort an index, not the records */
    if (!ar_grow((void **)&r->order, &r->cap_order, r->nrecs, sizeof(kv), ASYNC_TASK_LIMIT)) {
        errno = ENOMEM;
        return -1;
    }
    for (uint32_t i = 0; i < r->nrecs; i++) {
        /* by loop (unknown last), then by address */
        uint64_t li = r->recs[i].t.loop_index < ASYNC_MAX_LOOPS ? r->recs[i].t.loop_index
                                                                : ASYNC_MAX_LOOPS;
        r->order[i] = (kv){li << 44 | (r->recs[i].t.id >> 3), i};
    }
    if (!ar_sort_scratch(r, r->nrecs)) {
        errno = ENOMEM;
        return -1;
    }
    ar_radix_sort(r->order, r->sort_tmp, r->nrecs, 44 + 9);

    /* publish tasks, build the lookup maps */
    if (!ar_grow((void **)&out->tasks, &out->cap_tasks, r->nrecs, sizeof(async_task),
                 ASYNC_TASK_LIMIT) ||
        !ar_grow((void **)&r->work, &r->cap_work, r->nrecs, sizeof(task_work), ASYNC_TASK_LIMIT)) {
        errno = ENOMEM;
        return -1;
    }
    hmap_clear(&out->by_id);
    hmap_clear(&out->by_coro);
    out->ntasks = r->nrecs;
    for (uint32_t i = 0; i < r->nrecs; i++) {
        out->tasks[i] = r->recs[r->order[i].val].t;
        r->work[i] = r->recs[r->order[i].val].w;
        bool ok = !out->tasks[i].id ||
                  hmap_insert(&out->by_id, hash32(out->tasks[i].id), i) == 0;
        if (ok && out->tasks[i].coro && async_find_by_coro(out, out->tasks[i].coro) == ASYNC_NO_INDEX)
            ok = hmap_insert(&out->by_coro, hash32(out->tasks[i].coro), i) == 0;
        if (!ok) {
            out->ntasks = 0;
            errno = ENOMEM;
            return -1;
        }
        if (out->tasks[i].flags & ATF_UNREADABLE)
            out->unreadable++;
    }
    for (uint32_t i = 0; i < r->ncur; i++) {
        uint32_t li = ASYNC_NO_INDEX;
        for (uint32_t j = 0; j < out->nloops; j++)
            if (out->loops[j].id == r->cur[i].loop)
                li = j;
        uint32_t ti = async_find_task(out, r->cur[i].task);
        if (li != ASYNC_NO_INDEX && ti != ASYNC_NO_INDEX && out->tasks[ti].state == ATS_RUNNING)
            out->loops[li].running_task = ti;
    }

    r->npairs = 0;
    /* Await edges cost about one visit per edge; a budget keeps pathological graphs (many
     * tasks each awaiting the same huge gather) linear. */
    r->resolve_budget = 16ull * out->ntasks + 100000;
    for (uint32_t i = 0; i < out->ntasks; i++)
        ar_analyse_task(r, out, i, threads);
    ar_recheck_tasks(r, out);
    if (!ar_build_edges(r, out) || !ar_find_cycles(r, out)) {
        errno = ENOMEM;
        return -1;
    }
    out->cost_ns = aprof_now_ns() - t0;
    return (int)out->ntasks;
}
