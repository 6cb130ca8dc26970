#include "async_record.h"

#include "async_stitch.h"
#include "stalls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_REFRESH_NS 10000000ull /* refresh early at most every 10 ms */

typedef struct tracked {
    uint64_t id, coro;   /* id 0: empty slot */
    uint32_t site;       /* index + 1 of the await site it is suspended at, 0: none */
    bool done_counted;
} tracked;

typedef struct track_table {
    tracked *slots;
    size_t cap;          /* power of two */
} track_table;

struct async_record {
    session *s;
    agg *a;
    asyncio_reader *reader;
    async_snapshot snap;
    bool have_snap, active;
    bool baseline;       /* the first snapshot was taken: later tasks count as created */
    uint64_t interval_ns, last_snap_ns, gen;
    async_task_stats stats;
    track_table cur, prev;
    async_await_site *sites;
    size_t nsites, cap_sites;
    uint32_t *site_map;  /* index + 1, open addressing */
    uint32_t *order;     /* sites by wait time, for reporting */
    size_t norder;
    size_t site_map_cap;
    aprof_frame *buf;    /* scratch stack for the awaiting profile */
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int table_init(track_table *t, size_t want)
{
    size_t cap = 64;
    while (cap < want * 2)
        cap *= 2;
    tracked *s = calloc(cap, sizeof(*s));
    if (!s)
        return -1;
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

static tracked *table_find(const track_table *t, uint64_t id)
{
    if (!t->slots)
        return NULL;
    for (size_t i = mix(id) & (t->cap - 1), n = 0; n < t->cap; n++, i = (i + 1) & (t->cap - 1)) {
        if (t->slots[i].id == id)
            return &t->slots[i];
        if (!t->slots[i].id)
            return NULL;
    }
    return NULL;
}

static tracked *table_insert(track_table *t, uint64_t id)
{
    for (size_t i = mix(id) & (t->cap - 1), n = 0; n < t->cap; n++, i = (i + 1) & (t->cap - 1))
        if (!t->slots[i].id || t->slots[i].id == id) {
            t->slots[i].id = id;
            return &t->slots[i];
        }
    return NULL;
}

async_record *async_record_new(session *s, agg *a, double await_hz)
{
    async_record *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->s = s;
    r->a = a;
    r->interval_ns = (uint64_t)(1e9 / (await_hz > 0 ? await_hz : ASYNC_RECORD_DEFAULT_AWAIT_HZ));
    r->reader = session_asyncio_reader(s);
    r->buf = malloc(APROF_MAX_FRAMES * sizeof(*r->buf));
    async_snapshot_init(&r->snap);
    if (!r->reader || !r->buf || table_init(&r->cur, 64) < 0 || table_init(&r->prev, 64) < 0) {
        async_record_free(r);
        return NULL;
    }
    return r;
}

void async_record_free(async_record *r)
{
    if (!r)
        return;
    async_snapshot_free(&r->snap);
    asyncio_reader_free(r->reader);
    free(r->cur.slots);
    free(r->prev.slots);
    free(r->sites);
    free(r->site_map);
    free(r->order);
    free(r->buf);
    free(r);
}

bool async_record_active(const async_record *r)
{
    return r->active;
}

/* ---- await sites ----------------------------------------------------------------------------- */

static uint64_t site_hash(const aprof_frame *f)
{
    return mix((uint64_t)(uintptr_t)f->name ^ mix((uint64_t)(uintptr_t)f->file) ^
               (uint64_t)(uint32_t)f->line * 0x9e3779b97f4a7c15ull);
}

static int site_map_grow(async_record *r)
{
    size_t cap = r->site_map_cap ? r->site_map_cap * 2 : 256;
    uint32_t *m = calloc(cap, sizeof(*m));
    if (!m)
        return -1;
    for (size_t k = 0; k < r->nsites; k++) {
        size_t i = site_hash(&r->sites[k].frame) & (cap - 1);
        while (m[i])
            i = (i + 1) & (cap - 1);
        m[i] = (uint32_t)k + 1;
    }
    free(r->site_map);
    r->site_map = m;
    r->site_map_cap = cap;
    return 0;
}

/* Index + 1 of the site for frame f (created on first use), 0 when out of memory. */
static uint32_t site_of(async_record *r, const aprof_frame *f)
{
    if ((r->nsites + 1) * 2 > r->site_map_cap && site_map_grow(r) < 0)
        return 0;
    size_t mask = r->site_map_cap - 1;
    size_t i = site_hash(f) & mask;
    for (; r->site_map[i]; i = (i + 1) & mask) {
        const aprof_frame *g = &r->sites[r->site_map[i] - 1].frame;
        if (g->name == f->name && g->file == f->file && g->line == f->line)
            return r->site_map[i];
    }
    if (r->nsites == r->cap_sites) {
        size_t ncap = r->cap_sites ? r->cap_sites * 2 : 64;
        async_await_site *ns = realloc(r->sites, ncap * sizeof(*ns));
        if (!ns)
            return 0;
        r->sites = ns;
        r->cap_sites = ncap;
    }
    r->sites[r->nsites] = (async_await_site){*f, 0, 0};
    r->site_map[i] = (uint32_t)++r->nsites;
    return r->site_map[i];
}

/* ---- stacks through the task chain ----------------------------------------------------------- */

uint32_t async_record_stitch(async_record *r, const aprof_thread_sample *t, aprof_frame *out,
                             uint32_t cap)
{
    if (!r->have_snap)
        return 0;
    async_chain_check check = {asyncio_chain_still_valid, r->reader};
    return async_stitch_thread(&r->snap, t, r->s->st, out, cap, &check);
}

const char *async_record_task_name(void *ud, uint64_t coro)
{
    async_record *r = ud;
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
    if (table_init(&r->cur, s->ntasks) < 0)
        return;
    agg_profile *awaiting = NULL;
    uint64_t alive = 0;
    for (uint32_t i = 0; i < s->ntasks; i++) {
        const async_task *t = &s->tasks[i];
        if (t->flags & ATF_UNREADABLE)
            continue;
        tracked *old = table_find(&r->prev, t->id);
        if (old && old->coro != t->coro) /* the address now holds another task */
            old = NULL;
        tracked *tr = table_insert(&r->cur, t->id);
        if (!tr)
            continue;
        *tr = old ? *old : (tracked){t->id, t->coro, 0, false};
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
        if (!awaiting)
            awaiting = agg_profile_get(r->a, ASYNC_RECORD_AWAITING_PROFILE, 0);
        if (awaiting) {
            uint32_t n = 0;
            async_stitch_chain(s, i, r->s->st, r->buf, &n, APROF_MAX_FRAMES);
            for (uint32_t f = 0; f < t->nframes && n < APROF_MAX_FRAMES; f++)
                r->buf[n++] = s->frames[t->frame_start + f];
            agg_profile_add(r->a, awaiting, r->buf, n, now, weight);
        }
    }
    if (alive > r->stats.max_alive)
        r->stats.max_alive = alive;
    r->baseline = true;
    /* Tasks of the previous snapshot that are gone have finished (or were collected). */
    for (size_t k = 0; k < r->prev.cap; k++) {
        tracked *p = &r->prev.slots[k];
        if (p->id > 1 && !p->done_counted)
            r->stats.finished++;
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
    bool due = !r->have_snap || now - r->last_snap_ns >= r->interval_ns;
    if (!due && r->active && now - r->last_snap_ns >= MIN_REFRESH_NS)
        due = unknown_running_task(r, s);
    if (!due)
        return;
    uint64_t weight = r->have_snap ? now - r->last_snap_ns : r->interval_ns;
    if (asyncio_snapshot(r->reader, s, &r->snap) < 0)
        return;
    r->have_snap = true;
    r->last_snap_ns = now;
    if (r->snap.flags & ASF_NO_ASYNCIO) {
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
