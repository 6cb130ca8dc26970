#include "timeline.h"

#include "grow.h"
#include "hash.h"
#include "hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A loop thread's last sample: which task it ran (index + 1, 0 none) and when. */
typedef struct tl_thread {
    pid_t pid, tid;
    uint64_t last_t;
    uint32_t task1;
} tl_thread;

struct task_timeline {
    strtab *st;
    tl_task *tasks;
    size_t ntasks, cap_tasks;
    tl_seg *segs;
    size_t nsegs, cap_segs;
    tl_busy *busy;
    size_t nbusy, cap_busy;
    tl_thread *threads;
    size_t nthreads, cap_threads;
    hmap by_addr;        /* (pid, addr) -> the latest task at that address */
    hmap by_thread;      /* (pid, tid) -> threads[] */
    uint32_t *alive;     /* indices of tasks not ended yet */
    size_t nalive, cap_alive;
    uint32_t gen;        /* snapshot generation (all processes) */
    uint64_t dropped;
};

task_timeline *timeline_new(strtab *st)
{
    task_timeline *tl = calloc(1, sizeof(*tl));
    if (!tl)
        return NULL;
    tl->st = st;
    if (hmap_init(&tl->by_addr, 256) < 0 || hmap_init(&tl->by_thread, 64) < 0) {
        timeline_free(tl);
        return NULL;
    }
    return tl;
}

void timeline_free(task_timeline *tl)
{
    if (!tl)
        return;
    free(tl->tasks);
    free(tl->segs);
    free(tl->busy);
    free(tl->threads);
    free(tl->alive);
    hmap_free(&tl->by_addr);
    hmap_free(&tl->by_thread);
    free(tl);
}

void timeline_loop_busy(void *ud, pid_t pid, pid_t tid, uint64_t start_ns, uint64_t end_ns)
{
    task_timeline *tl = ud;
    if (!grow_array((void **)&tl->busy, &tl->cap_busy, tl->nbusy + 1, sizeof(*tl->busy), 256,
                    TIMELINE_MAX_BUSY)) {
        tl->dropped++;
        return;
    }
    tl->busy[tl->nbusy++] = (tl_busy){start_ns, end_ns > start_ns ? end_ns : start_ns, pid, tid};
}

/* ---- tasks ------------------------------------------------------------------------------------ */

typedef struct addr_query {
    const task_timeline *tl;
    pid_t pid;
    uint64_t addr;
} addr_query;

static bool addr_is(const void *ctx, uint32_t idx)
{
    const addr_query *q = ctx;
    return q->tl->tasks[idx].pid == q->pid && q->tl->tasks[idx].addr == q->addr;
}

static uint32_t addr_hash(pid_t pid, uint64_t addr)
{
    return hash32(hash_combine((uint64_t)pid, addr));
}

/* The task last seen at this address, if it is the one with this coroutine (ended or not). */
static uint32_t find_task(const task_timeline *tl, pid_t pid, uint64_t addr, uint64_t coro)
{
    addr_query q = {tl, pid, addr};
    uint32_t i = hmap_find(&tl->by_addr, addr_hash(pid, addr), addr_is, &q);
    if (i == HMAP_NONE)
        return TIMELINE_NONE;
    return tl->tasks[i].coro == coro ? i : TIMELINE_NONE;
}

static uint32_t new_task(task_timeline *tl, pid_t pid, const async_snapshot *s, uint32_t i,
                         bool baseline, uint64_t now)
{
    const async_task *at = &s->tasks[i];
    if (tl->ntasks >= TIMELINE_MAX_TASKS ||
        !grow_array((void **)&tl->tasks, &tl->cap_tasks, tl->ntasks + 1, sizeof(*tl->tasks), 256,
                    TIMELINE_MAX_TASKS) ||
        !grow_array((void **)&tl->alive, &tl->cap_alive, tl->nalive + 1, sizeof(*tl->alive), 256,
                    TIMELINE_MAX_TASKS)) {
        tl->dropped++;
        return TIMELINE_NONE;
    }
    uint32_t idx = (uint32_t)tl->ntasks;
    addr_query q = {tl, pid, at->id};
    if (hmap_set(&tl->by_addr, addr_hash(pid, at->id), addr_is, &q, idx) < 0) {
        tl->dropped++;
        return TIMELINE_NONE;
    }
    const char *name = strtab_intern_cstr(tl->st, at->name ? at->name : "");
    tl->tasks[tl->ntasks++] = (tl_task){
        .addr = at->id, .coro = at->coro, .name = name ? name : "",
        .coro_name = at->nframes ? s->frames[at->frame_start].name : NULL,
        .pid = pid, .tid = at->tid, .first_ns = now, .last_seen_ns = now,
        .parent = TIMELINE_NONE, .head = TIMELINE_NONE, .tail = TIMELINE_NONE,
        .created = baseline,
    };
    tl->alive[tl->nalive++] = idx;
    return idx;
}

static tl_seg *tail_of(task_timeline *tl, const tl_task *t)
{
    return t->tail == TIMELINE_NONE ? NULL : &tl->segs[t->tail];
}

static tl_seg *add_seg(task_timeline *tl, tl_task *t, uint8_t kind, uint64_t start, uint64_t end)
{
    if (!grow_array((void **)&tl->segs, &tl->cap_segs, tl->nsegs + 1, sizeof(*tl->segs), 256,
                    TIMELINE_MAX_SEGS)) {
        tl->dropped++;
        return NULL;
    }
    uint32_t k = (uint32_t)tl->nsegs++;
    tl->segs[k] = (tl_seg){.start_ns = start, .end_ns = end >= start ? end : start, .kind = kind,
                           .next = TIMELINE_NONE};
    if (t->tail == TIMELINE_NONE)
        t->head = k;
    else
        tl->segs[t->tail].next = k;
    t->tail = k;
    return &tl->segs[k];
}

static bool same_site(const tl_seg *g, uint8_t kind, const aprof_frame *site, uint8_t wait_kind)
{
    if (g->kind != kind)
        return false;
    if (kind != TL_AWAIT)
        return true;
    return g->wait_kind == wait_kind && g->site_name == site->name &&
           g->site_file == site->file && g->site_line == site->line;
}

void timeline_snapshot_begin(task_timeline *tl, pid_t pid, uint64_t now)
{
    (void)pid;
    (void)now;
    tl->gen++;
}

void timeline_snapshot_task(task_timeline *tl, pid_t pid, const async_snapshot *s, uint32_t i,
                            const aprof_frame *site, bool baseline, uint64_t now)
{
    const async_task *at = &s->tasks[i];
    if (at->flags & ATF_UNREADABLE)
        return;
    uint32_t k = find_task(tl, pid, at->id, at->coro);
    if (k == TIMELINE_NONE && (k = new_task(tl, pid, s, i, baseline, now)) == TIMELINE_NONE)
        return;
    tl_task *t = &tl->tasks[k];
    if (t->end == TL_DONE || t->end == TL_CANCELLED)
        return; /* seen done before: asyncio keeps finished tasks listed until they are freed */
    if (t->end == TL_GONE) {
        /* missed by a snapshot, listed again: it had not ended */
        if (!grow_array((void **)&tl->alive, &tl->cap_alive, tl->nalive + 1, sizeof(*tl->alive),
                        256, TIMELINE_MAX_TASKS)) {
            tl->dropped++;
            return;
        }
        t->end = TL_ALIVE;
        t->end_ns = 0;
        tl->alive[tl->nalive++] = k;
    }
    t->gen = tl->gen;
    t->last_seen_ns = now;
    if (at->tid)
        t->tid = at->tid;
    tl_seg *tail = tail_of(tl, t);
    uint64_t after = tail ? tail->end_ns : now; /* where what the snapshot shows can begin */
    if (at->state == ATS_DONE || at->state == ATS_CANCELLED) {
        t->end = at->state == ATS_DONE ? TL_DONE : TL_CANCELLED;
        t->end_ns = after > t->first_ns ? after : t->first_ns;
        return;
    }
    if (at->state != ATS_PENDING)
        return; /* running: its samples tell */
    uint8_t kind = site && at->wait_kind != AWK_NONE ? TL_AWAIT : TL_READY;
    if (kind == TL_AWAIT && !site->name)
        kind = TL_READY;
    if (tail && tail->kind != TL_RUN && same_site(tail, kind, site, at->wait_kind)) {
        if (now > tail->end_ns)
            tail->end_ns = now;
        return;
    }
    uint64_t start = after < now ? after : now;
    if (tail && tail->kind != TL_RUN && now > tail->end_ns) {
        /* it changed between the last snapshot and this one without a sampled run: half-way */
        start = tail->end_ns + (now - tail->end_ns) / 2;
        tail->end_ns = start;
    }
    tl_seg *g = add_seg(tl, t, kind, start, now);
    if (g && kind == TL_AWAIT) {
        g->site_name = site->name;
        g->site_file = site->file;
        g->site_line = site->line;
        g->wait_kind = at->wait_kind;
    }
}

void timeline_snapshot_edges(task_timeline *tl, pid_t pid, const async_snapshot *s,
                             uint64_t now)
{
    for (uint32_t i = 0; i < s->ntasks; i++) {
        const async_task *child = &s->tasks[i];
        if (!child->nby || (child->flags & ATF_UNREADABLE))
            continue;
        uint32_t c = find_task(tl, pid, child->id, child->coro);
        if (c == TIMELINE_NONE || tl->tasks[c].parent != TIMELINE_NONE)
            continue;
        uint32_t pi = s->edges[child->by_start];
        if (pi >= s->ntasks)
            continue;
        const async_task *parent = &s->tasks[pi];
        uint32_t p = find_task(tl, pid, parent->id, parent->coro);
        if (p == TIMELINE_NONE || p == c)
            continue;
        tl->tasks[c].parent = p;
        tl->tasks[c].parent_ns = now;
    }
}

void timeline_snapshot_end(task_timeline *tl, pid_t pid, uint64_t now)
{
    (void)now;
    size_t keep = 0;
    for (size_t k = 0; k < tl->nalive; k++) {
        tl_task *t = &tl->tasks[tl->alive[k]];
        if (t->end == TL_ALIVE && t->pid == pid && t->gen != tl->gen) {
            /* gone since its last sighting: it ended after its last segment */
            const tl_seg *tail = tail_of(tl, t);
            t->end = TL_GONE;
            t->end_ns = tail && tail->end_ns > t->last_seen_ns ? tail->end_ns : t->last_seen_ns;
        }
        if (t->end == TL_ALIVE)
            tl->alive[keep++] = tl->alive[k];
    }
    tl->nalive = keep;
}

/* ---- samples ---------------------------------------------------------------------------------- */

typedef struct thread_query {
    const task_timeline *tl;
    pid_t pid, tid;
} thread_query;

static bool thread_is(const void *ctx, uint32_t idx)
{
    const thread_query *q = ctx;
    return q->tl->threads[idx].pid == q->pid && q->tl->threads[idx].tid == q->tid;
}

static tl_thread *thread_of(task_timeline *tl, pid_t pid, pid_t tid)
{
    thread_query q = {tl, pid, tid};
    uint32_t h = hash32(hash_combine((uint64_t)pid, (uint64_t)tid));
    uint32_t i = hmap_find(&tl->by_thread, h, thread_is, &q);
    if (i != HMAP_NONE)
        return &tl->threads[i];
    if (!grow_array((void **)&tl->threads, &tl->cap_threads, tl->nthreads + 1, sizeof(*tl->threads),
                    256, 1u << 20) ||
        hmap_insert(&tl->by_thread, h, (uint32_t)tl->nthreads) < 0)
        return NULL;
    tl_thread *th = &tl->threads[tl->nthreads++];
    *th = (tl_thread){pid, tid, 0, 0};
    return th;
}

void timeline_thread_sample(task_timeline *tl, pid_t pid, pid_t tid, const async_snapshot *s,
                            uint32_t i, uint64_t t_ns, uint64_t weight_ns)
{
    tl_thread *th = thread_of(tl, pid, tid);
    if (!th)
        return;
    uint32_t k = TIMELINE_NONE;
    if (s && i < s->ntasks)
        k = find_task(tl, pid, s->tasks[i].id, s->tasks[i].coro);
    if (k != TIMELINE_NONE) {
        tl_task *t = &tl->tasks[k];
        tl_seg *tail = tail_of(tl, t);
        t->last_seen_ns = t_ns;
        t->run_ns += weight_ns;
        t->run_samples++;
        if (tail && tail->kind == TL_RUN && th->task1 == k + 1 && tail->end_ns == th->last_t) {
            tail->end_ns = t_ns; /* the same run goes on */
            tail->sampled_ns += weight_ns;
            tail->samples++;
        } else {
            uint64_t start = t_ns > weight_ns ? t_ns - weight_ns : 0;
            if (tail && start < tail->end_ns)
                start = tail->end_ns;
            if (tail && tail->kind != TL_RUN && start > tail->end_ns)
                tail->end_ns = start; /* it waited there until this run */
            else if (tail && tail->kind == TL_RUN && start > tail->end_ns)
                add_seg(tl, t, TL_SUSPENDED, tail->end_ns, start);
            tl_seg *g = add_seg(tl, t, TL_RUN, start, t_ns > start ? t_ns : start);
            if (g) {
                g->sampled_ns = weight_ns;
                g->samples = 1;
            }
        }
    }
    th->last_t = t_ns;
    th->task1 = k == TIMELINE_NONE ? 0 : k + 1;
}

/* ---- read access ------------------------------------------------------------------------------ */

size_t timeline_task_count(const task_timeline *tl)
{
    return tl->ntasks;
}

const tl_task *timeline_task_at(const task_timeline *tl, size_t i)
{
    return i < tl->ntasks ? &tl->tasks[i] : NULL;
}

const tl_seg *timeline_seg_at(const task_timeline *tl, uint32_t i)
{
    return i < tl->nsegs ? &tl->segs[i] : NULL;
}

size_t timeline_busy_count(const task_timeline *tl)
{
    return tl->nbusy;
}

const tl_busy *timeline_busy_at(const task_timeline *tl, size_t i)
{
    return i < tl->nbusy ? &tl->busy[i] : NULL;
}

uint64_t timeline_dropped(const task_timeline *tl)
{
    return tl->dropped;
}
