#include "async_record.h"

#include "async_stitch.h"
#include "grow.h"
#include "hash.h"
#include "hmap.h"
#include "stalls.h"
#include "timeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_REFRESH_NS 10000000ull /* refresh early at most every 10 ms */
/* An early refresh is asked for by a sample whose loop runs a task the snapshot does not know
 * (looked for from MIN_REFRESH_NS / 2 after a snapshot), and taken at a later sample, at least
 * REFRESH_DELAY_NS on, never at the asking one. Why: a snapshot takes milliseconds (3 ms for
 * 2,000 tasks), in which no sample can be taken, and a target thread on aprof's CPU stands still
 * meanwhile (the sampler runs in real time) in the state the sample found. Taken at the asking
 * sample, that state is always a busy loop: the loop's busy time grew by every refresh while
 * aprof's samples could not see it, and a loop 35% busy by its own clock read 3 to 5 points
 * under (3.12, 15 refreshes a second). 5 ms on, a loop sharing aprof's CPU was still found busy
 * more often than not (1 to 3 points over); 20 ms on, no more often than by any other sample. */
#define REFRESH_DELAY_NS 20000000ull

typedef struct tracked {
    uint64_t id, coro;   /* id 1: carried over to the next snapshot (never a real address) */
    uint32_t site;       /* index + 1 of the await site it is suspended at, 0: none */
    bool done_counted;
    bool carried;        /* missing from the last snapshot, which may have missed it: carried
                          * over once (a second miss counts it as ended) */
} tracked;

/* The tasks of one snapshot, by id. */
typedef struct track_table {
    tracked *recs;
    size_t n, cap;
    hmap by_id;
} track_table;

struct async_record {
    session *s;
    agg *a;
    asyncio_reader *reader;
    async_snapshot snap;
    bool have_snap, active;
    bool baseline;       /* the first snapshot was taken: later tasks count as created */
    uint64_t interval_ns, last_snap_ns, gen;
    uint64_t refresh_asked_ns; /* when a sample asked for an early refresh; 0: none asked */
    async_task_stats stats;
    track_table cur, prev;
    async_await_site *sites;
    size_t nsites, cap_sites;
    hmap site_map;       /* (name, file, line) -> index in sites */
    uint32_t *order;     /* sites by wait time, for reporting */
    size_t norder;
    aprof_frame *buf;    /* scratch stack for the awaiting profile */
    bool exact_task_names;
    char awaiting_name[600]; /* the awaiting profile's name */
    task_timeline *timeline; /* record --format trace, else NULL */
    uint64_t sample_t, sample_w; /* the last observed sample's time and weight */
};

/* Empty t, with room for want records. */
static int table_reset(track_table *t, size_t want)
{
    if (!grow_array((void **)&t->recs, &t->cap, want, sizeof(*t->recs), 64, SIZE_MAX))
        return -1;
    t->n = 0;
    if (!t->by_id.cap)
        return hmap_init(&t->by_id, want * 2);
    hmap_clear(&t->by_id);
    return 0;
}

static void table_free(track_table *t)
{
    free(t->recs);
    hmap_free(&t->by_id);
}

typedef struct id_query {
    const track_table *t;
    uint64_t id;
} id_query;

static bool id_is(const void *ctx, uint32_t idx)
{
    const id_query *q = ctx;
    return q->t->recs[idx].id == q->id;
}

static tracked *table_find(const track_table *t, uint64_t id)
{
    id_query q = {t, id};
    uint32_t i = hmap_find(&t->by_id, hash32(id), id_is, &q);
    return i == HMAP_NONE ? NULL : &t->recs[i];
}

/* A new record for id (not in t yet); NULL when out of room. */
static tracked *table_insert(track_table *t, uint64_t id)
{
    if (t->n >= t->cap || hmap_insert(&t->by_id, hash32(id), (uint32_t)t->n) < 0)
        return NULL;
    tracked *r = &t->recs[t->n++];
    r->id = id;
    return r;
}

async_record *async_record_new(session *s, agg *a, double await_hz, bool exact_task_names)
{
    async_record *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->exact_task_names = exact_task_names;
    snprintf(r->awaiting_name, sizeof(r->awaiting_name), "%s", ASYNC_RECORD_AWAITING_PROFILE);
    r->s = s;
    r->a = a;
    r->interval_ns = (uint64_t)(1e9 / (await_hz > 0 ? await_hz : ASYNC_RECORD_DEFAULT_AWAIT_HZ));
    r->reader = session_asyncio_reader(s);
    r->buf = malloc(APROF_MAX_FRAMES * sizeof(*r->buf));
    async_snapshot_init(&r->snap);
    if (!r->reader || !r->buf || table_reset(&r->cur, 64) < 0 || table_reset(&r->prev, 64) < 0) {
        async_record_free(r);
        return NULL;
    }
    return r;
}

void async_record_set_agg(async_record *r, agg *a)
{
    r->a = a;
}

void async_record_set_timeline(async_record *r, task_timeline *tl)
{
    r->timeline = tl;
}

void async_record_set_profile_prefix(async_record *r, const char *prefix)
{
    snprintf(r->awaiting_name, sizeof(r->awaiting_name), "%s%s", prefix ? prefix : "",
             ASYNC_RECORD_AWAITING_PROFILE);
}

void async_record_free(async_record *r)
{
    if (!r)
        return;
    async_snapshot_free(&r->snap);
    asyncio_reader_free(r->reader);
    table_free(&r->cur);
    table_free(&r->prev);
    free(r->sites);
    hmap_free(&r->site_map);
    free(r->order);
    free(r->buf);
    free(r);
}

bool async_record_active(const async_record *r)
{
    return r->active;
}

/* ---- await sites ----------------------------------------------------------------------------- */

static uint32_t site_hash(const aprof_frame *f)
{
    uint64_t h = hash_combine((uint64_t)(uintptr_t)f->name, (uint64_t)(uintptr_t)f->file);
    return hash32(hash_combine(h, (uint64_t)(uint32_t)f->line));
}

typedef struct site_query {
    const async_record *r;
    const aprof_frame *f;
} site_query;

static bool site_is(const void *ctx, uint32_t idx)
{
    const site_query *q = ctx;
    const aprof_frame *g = &q->r->sites[idx].frame;
    return g->name == q->f->name && g->file == q->f->file && g->line == q->f->line;
}

/* Index + 1 of the site for frame f (created on first use), 0 when out of memory. */
static uint32_t site_of(async_record *r, const aprof_frame *f)
{
    uint32_t h = site_hash(f);
    site_query q = {r, f};
    uint32_t i = hmap_find(&r->site_map, h, site_is, &q);
    if (i != HMAP_NONE)
        return i + 1;
    if (!grow_array((void **)&r->sites, &r->cap_sites, r->nsites + 1, sizeof(*r->sites), 64,
                    SIZE_MAX))
        return 0;
    if (hmap_insert(&r->site_map, h, (uint32_t)r->nsites) < 0)
        return 0;
    r->sites[r->nsites] = (async_await_site){*f, 0, 0};
    return (uint32_t)++r->nsites;
}

/* ---- stacks through the task chain ----------------------------------------------------------- */

uint32_t async_record_stitch(async_record *r, const aprof_thread_sample *t, aprof_frame *out,
                             uint32_t cap)
{
    if (!r->have_snap)
        return 0;
    async_chain_check check = {asyncio_chain_still_valid, r->reader};
    uint32_t task;
    uint32_t n = async_stitch_thread(&r->snap, t, r->s->st, out, cap, &check, r->exact_task_names,
                                     &task);
    if (r->timeline && r->active)
        /* the task stitched in is the one the timeline says ran: the two always agree */
        timeline_thread_sample(r->timeline, r->s->src.pid, t->tid, n ? &r->snap : NULL, task,
                               r->sample_t, r->sample_w);
    return n;
}

const char *async_record_task_name(void *ud, pid_t pid, uint64_t coro)
{
    async_record *r = ud;
    (void)pid; /* the session's process: the only one this record reads */
    if (!r->have_snap)
        return NULL;
    uint32_t i = async_find_by_coro(&r->snap, coro);
    return i == ASYNC_NO_INDEX ? NULL : r->snap.tasks[i].name;
}

/* ---- lifecycle and the awaiting profile ------------------------------------------------------ */

/* Where a suspended task waits, for the per-site summary: the innermost frame of its coroutine
 * stack that is the program's own code (an `await asyncio.sleep()` in your function, rather than
 * the stdlib's sleep()), else the innermost frame. */
static const aprof_frame *await_site_frame(const async_snapshot *s, const async_task *t)
{
    for (uint32_t k = t->nframes; k-- > 0;) {
        const aprof_frame *f = &s->frames[t->frame_start + k];
        if (stall_is_own_code(f->file))
            return f;
    }
    return &s->frames[t->frame_start + t->nframes - 1];
}

static void account(async_record *r, uint64_t now, uint64_t weight)
{
    const async_snapshot *s = &r->snap;
    r->gen++;
    if (table_reset(&r->cur, s->ntasks + r->prev.n) < 0)
        return;
    /* A snapshot that may have missed tasks (a registry read torn or cut short) cannot tell
     * which ended: those of the previous snapshot it does not list are carried over, to be
     * judged by the next one, not counted as finished now and as new tasks when seen again
     * (once: a table that stays cut short must not keep every task ever seen). */
    bool partial = (s->flags & (ASF_TASKS_TRUNCATED | ASF_REGISTRY_ERROR)) != 0;
    agg_profile *awaiting = NULL;
    uint64_t alive = 0;
    pid_t pid = r->s->src.pid;
    if (r->timeline)
        timeline_snapshot_begin(r->timeline, pid, now);
    for (uint32_t i = 0; i < s->ntasks; i++) {
        const async_task *t = &s->tasks[i];
        if (t->flags & ATF_UNREADABLE) {
            /* listed but not read this time (torn): still there, whatever it was */
            tracked *old = table_find(&r->prev, t->id);
            tracked *tr = old && old->id > 1 ? table_insert(&r->cur, t->id) : NULL;
            if (tr) {
                *tr = *old;
                old->id = 1;
            }
            continue;
        }
        if (r->timeline)
            timeline_snapshot_task(r->timeline, pid, s, i,
                                   t->state == ATS_PENDING && t->nframes ? await_site_frame(s, t)
                                                                         : NULL,
                                   r->baseline, now);
        tracked *old = table_find(&r->prev, t->id);
        if (old && old->coro != t->coro) /* the address now holds another task */
            old = NULL;
        tracked *tr = table_insert(&r->cur, t->id);
        if (!tr)
            continue;
        *tr = old ? *old : (tracked){t->id, t->coro, 0, false, false};
        tr->carried = false;
        if (old)
            old->id = 1; /* carried over: not "disappeared" (1 is never a real address) */
        else {
            r->stats.seen++;
            if (r->baseline)
                r->stats.created++;
        }
        if (t->state == ATS_DONE || t->state == ATS_CANCELLED) {
            if (!tr->done_counted) {
                r->stats.finished++;
                r->stats.cancelled += t->state == ATS_CANCELLED;
                tr->done_counted = true;
            }
            tr->site = 0;
            continue;
        }
        alive++;
        if (t->state != ATS_PENDING || t->nframes == 0) {
            tr->site = 0;
            continue;
        }
        uint32_t site = site_of(r, await_site_frame(s, t));
        if (site) {
            r->sites[site - 1].wait_ns += weight;
            r->sites[site - 1].waits += tr->site != site;
        }
        tr->site = site;
        if (!awaiting) {
            /* Many tasks at one instant have no time order: one point per distinct await
             * chain keeps its memory to what is distinct however long the recording. */
            awaiting = agg_profile_get(r->a, r->awaiting_name, 0);
            if (awaiting && !awaiting->npoints)
                agg_profile_by_stack(r->a, awaiting);
        }
        if (awaiting) {
            uint32_t n = 0;
            async_stitch_chain(s, i, r->s->st, r->buf, &n, APROF_MAX_FRAMES, r->exact_task_names);
            for (uint32_t f = 0; f < t->nframes && n < APROF_MAX_FRAMES; f++)
                r->buf[n++] = s->frames[t->frame_start + f];
            agg_profile_add(r->a, awaiting, r->buf, n, now, weight);
        }
    }
    if (r->timeline) {
        timeline_snapshot_edges(r->timeline, pid, s, now);
        /* a snapshot that may have missed tasks cannot tell which ended */
        if (!(s->flags & (ASF_TASKS_TRUNCATED | ASF_REGISTRY_ERROR)))
            timeline_snapshot_end(r->timeline, pid, now);
    }
    if (alive > r->stats.max_alive)
        r->stats.max_alive = alive;
    r->baseline = true;
    /* Tasks of the previous snapshot that are gone have finished (or were collected). 3.14+
     * unlinks a task when it is done, so how it ended is read from the task object if it is
     * still alive. */
    for (size_t k = 0; k < r->prev.n; k++) {
        tracked *p = &r->prev.recs[k];
        if (p->id > 1 && partial && !p->carried && !table_find(&r->cur, p->id)) {
            tracked *tr = table_insert(&r->cur, p->id);
            if (tr) {
                *tr = *p;
                tr->carried = true;
                continue;
            }
        }
        if (p->id > 1 && !p->done_counted) {
            r->stats.finished++;
            r->stats.cancelled += asyncio_task_outcome(r->reader, p->id, p->coro) == ATS_CANCELLED;
        }
    }
    track_table tmp = r->prev;
    r->prev = r->cur;
    r->cur = tmp;
}

/* Does a loop thread run a coroutine the snapshot does not know (a task created since)? */
static bool unknown_running_task(const async_record *r, const aprof_sample *s)
{
    for (uint32_t i = 0; i < s->nthreads; i++) {
        const aprof_thread_sample *t = &s->threads[i];
        if (t->loop == LOOP_NONE || t->callback_frame < 0 || (t->flags & TSF_TORN))
            continue;
        uint64_t owner = t->owners[t->callback_frame];
        if (owner && async_find_by_coro(&r->snap, owner) == ASYNC_NO_INDEX &&
            async_task_of_thread(&r->snap, t, NULL) == ASYNC_NO_INDEX)
            return true;
    }
    return false;
}

void async_record_observe(async_record *r, const aprof_sample *s)
{
    uint64_t now = s->t_ns;
    r->sample_t = now;
    r->sample_w = s->weight_ns;
    bool due = !r->have_snap || now - r->last_snap_ns >= r->interval_ns;
    if (!due && r->refresh_asked_ns)
        due = now - r->last_snap_ns >= MIN_REFRESH_NS &&
              now - r->refresh_asked_ns >= REFRESH_DELAY_NS;
    else if (!due && r->active && now - r->last_snap_ns >= MIN_REFRESH_NS / 2 &&
             unknown_running_task(r, s))
        r->refresh_asked_ns = now;
    if (!due)
        return;
    r->refresh_asked_ns = 0;
    uint64_t weight = r->have_snap ? now - r->last_snap_ns : r->interval_ns;
    if (asyncio_snapshot(r->reader, s, &r->snap) < 0)
        return;
    r->have_snap = true;
    r->last_snap_ns = now;
    if (r->snap.flags & (ASF_NO_ASYNCIO | ASF_UNSUPPORTED)) {
        r->baseline = true; /* no task exists yet: every task seen from now on is new */
        return;
    }
    r->active = true;
    account(r, now, weight);
}

const async_task_stats *async_record_task_stats(const async_record *r)
{
    return &r->stats;
}

uint64_t async_record_snapshots(const async_record *r)
{
    return r->gen;
}

static const async_await_site *sort_base;

static int by_wait_desc(const void *a, const void *b)
{
    const async_await_site *x = &sort_base[*(const uint32_t *)a];
    const async_await_site *y = &sort_base[*(const uint32_t *)b];
    return (x->wait_ns < y->wait_ns) - (x->wait_ns > y->wait_ns);
}

/* The sites in order of wait time; the sites array itself keeps its order (tasks refer to it). */
static void sort_sites(async_record *r)
{
    uint32_t *o = realloc(r->order, (r->nsites ? r->nsites : 1) * sizeof(*o));
    if (!o)
        return;
    r->order = o;
    for (size_t i = 0; i < r->nsites; i++)
        o[i] = (uint32_t)i;
    sort_base = r->sites;
    qsort(o, r->nsites, sizeof(*o), by_wait_desc);
    r->norder = r->nsites;
}

size_t async_record_site_count(const async_record *r)
{
    return r->nsites;
}

const async_await_site *async_record_site_at(async_record *r, size_t i)
{
    if (i == 0 || r->norder != r->nsites)
        sort_sites(r);
    return i < r->norder ? &r->sites[r->order[i]] : NULL;
}
