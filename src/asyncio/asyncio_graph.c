/* Await analysis: what each task awaits and so who awaits whom (the awaited-by pairs), the
 * edges of that graph, its cycles, and the queries over it (root chains, the task of a thread,
 * whether an older chain still holds). */
#include "asyncio_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CALLBACKS 1024u               /* done callbacks looked at per future */
#define MAX_RESOLVE_DEPTH 16u             /* gather in gather in shield ... */
#define MAX_SLOTS 256u                    /* locals + stack slots of one frame */

/* ---- what a task waits on ----------------------------------------------------------------- */

static bool add_pair(asyncio_reader *r, uint32_t child, uint32_t parent)
{
    if (child == parent || child == ASYNC_NO_INDEX || parent == ASYNC_NO_INDEX)
        return true;
    if (!ar_grow((void **)&r->pairs, &r->cap_pairs, r->npairs + 1, sizeof(kv), UINT32_MAX / 32))
        return false;
    r->pairs[r->npairs++] = (kv){(uint64_t)child << 32 | parent, 0};
    return true;
}

/* The done callbacks of a future: callback0 and the (callback, context) tuples of the list. */
static uint32_t future_callbacks(asyncio_reader *r, uint64_t cb0, uint64_t cbs, uint64_t *out,
                                 uint32_t cap)
{
    uint32_t n = 0;
    if (mem_ptr_ok(cb0, true) && n < cap)
        out[n++] = cb0;
    uint64_t size = 0;
    if (!mem_ptr_ok(cbs, true) || !(ar_classify(r, cbs) & TC_LIST) ||
        pyobj_seq_size(&r->c, cbs, &size) < 0)
        return n;
    for (uint64_t i = 0; i < size && n < cap; i++) {
        uint64_t tup, cb;
        if (pyobj_seq_item(&r->c, cbs, i, &tup) < 0)
            break;
        if ((ar_classify(r, tup) & TC_TUPLE) ? pyobj_seq_item(&r->c, tup, 0, &cb) >= 0 : (cb = tup, true))
            if (mem_ptr_ok(cb, true))
                out[n++] = cb;
    }
    return n;
}

static uint32_t callbacks_of(asyncio_reader *r, uint64_t fut, uint32_t cls, uint64_t *out,
                             uint32_t cap)
{
    uint64_t cb0 = 0, cbs = 0;
    if (cls & TC_CLAYOUT) {
        if (!rd_ptr(r, fut + (uint64_t)r->L->asyncio.fut_callback0, &cb0) ||
            !rd_ptr(r, fut + (uint64_t)r->L->asyncio.fut_callbacks, &cbs))
            return 0;
    } else {
        ar_py_attr(r, fut, "_callbacks", &cbs);
    }
    return future_callbacks(r, cb0, cbs, out, cap);
}

/* A Python function's code is asyncio/tasks.py's shield.<locals>._outer_done_callback? */
static bool is_shield_callback(asyncio_reader *r, uint64_t func)
{
    uint64_t code;
    if (!rd_ptr(r, func + (uint64_t)r->L->func.code, &code))
        return false;
    code_info *ci = codecache_get(r->t.cc, r->c.m, code);
    if (!ci || ar_asyncio_file_of(r, ci->file) != AF_TASKS)
        return false;
    size_t n = strlen(ci->name);
    static const char tail[] = "_outer_done_callback";
    return n >= sizeof tail - 1 && strcmp(ci->name + n - (sizeof tail - 1), tail) == 0;
}

typedef struct resolver {
    asyncio_reader *r;
    async_snapshot *out;
    uint32_t parent;
    bool shield;       /* went through a shield's outer future */
    bool failed;
} resolver;

static void resolve(resolver *rv, uint64_t obj, uint32_t depth);

static bool resolve_item_cb(void *ud, uint64_t item)
{
    resolver *rv = ud;
    resolve(rv, item, 1);
    return rv->r->resolve_budget > 0;
}

/* Add awaited-by edges from every task that `obj` (something the parent task awaits) stands for:
 * the task itself, the children of a gather, the inner task of a shield. */
static void resolve(resolver *rv, uint64_t obj, uint32_t depth)
{
    asyncio_reader *r = rv->r;
    if (depth > MAX_RESOLVE_DEPTH || !mem_ptr_ok(obj, true))
        return;
    if (!r->resolve_budget) {
        rv->failed = true;
        return;
    }
    r->resolve_budget--;
    uint32_t cls = ar_classify(r, obj);
    if (cls & TC_TASK) {
        if (!add_pair(r, async_find_task(rv->out, obj), rv->parent))
            rv->failed = true;
        return;
    }
    if (cls & TC_GATHER) {
        uint64_t children, n = 0;
        if (pyobj_getattr(&r->c, obj, "_children", &children) < 0 ||
            !(ar_classify(r, children) & TC_LIST) || pyobj_seq_size(&r->c, children, &n) < 0)
            return;
        for (uint64_t i = 0; i < n && r->resolve_budget; i++) {
            uint64_t child;
            if (pyobj_seq_item(&r->c, children, i, &child) < 0)
                break;
            resolve(rv, child, depth + 1);
        }
        return;
    }
    if (cls & TC_FUTURE) {
        /* shield(): outer's callback _outer_done_callback closes over `inner` */
        uint64_t cbs[16];
        uint32_t ncb = callbacks_of(r, obj, cls, cbs, 16);
        for (uint32_t i = 0; i < ncb; i++) {
            if (!(ar_classify(r, cbs[i]) & TC_FUNC) || !is_shield_callback(r, cbs[i]))
                continue;
            uint64_t closure, cells[8];
            size_t nc = 0;
            if (pyobj_func_closure(&r->c, cbs[i], &closure) < 0 || !closure ||
                pyobj_seq_items(&r->c, closure, cells, 8, &nc) < 0)
                continue;
            for (size_t k = 0; k < nc; k++) {
                uint64_t inner;
                if (pyobj_cell_get(&r->c, cells[k], &inner) >= 0 && inner != obj &&
                    (ar_classify(r, inner) & TC_FUTURE)) {
                    rv->shield = true;
                    resolve(rv, inner, depth + 1);
                }
            }
        }
    }
}

/* TaskGroup children: a done callback bound to the group, whose _parent_task awaits them. */
static void taskgroup_parent(asyncio_reader *r, async_snapshot *out, uint32_t child,
                             const task_work *w)
{
    uint64_t cbs[MAX_CALLBACKS];
    uint32_t n = future_callbacks(r, w->cb0, w->cbs, cbs, MAX_CALLBACKS);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t self, parent;
        if (!(ar_classify(r, cbs[i]) & TC_METHOD) ||
            pyobj_method_parts(&r->c, cbs[i], NULL, &self) < 0 ||
            !(ar_classify(r, self) & TC_TASKGROUP) || !ar_py_attr(r, self, "_parent_task", &parent))
            continue;
        add_pair(r, child, async_find_task(out, parent));
    }
}

/* Stack, wait kind and awaited-by edges of task i. */
void ar_analyse_task(asyncio_reader *r, async_snapshot *out, uint32_t i,
                     const aprof_sample *smp)
{
    async_task *t = &out->tasks[i];
    task_work *w = &r->work[i];
    chain *ch = &r->ch;
    ch->n = 0;
    t->frame_start = out->nframes;
    t->wait_id = w->waiter;
    t->raw_waiter = w->raw_waiter;
    if (t->flags & ATF_UNREADABLE)
        return;
    uint32_t first;
    const aprof_thread_sample *th =
        t->state == ATS_RUNNING ? ar_thread_running(smp, t->coro, &first) : NULL;
    if (th) {
        t->flags |= ATF_LIVE_STACK;
        for (uint32_t k = first; k < th->nframes; k++)
            if (!ar_add_frame(out, &th->frames[k])) {
                t->flags |= ATF_STACK_TRUNCATED;
                break;
            }
    } else if (t->state == ATS_PENDING || t->state == ATS_RUNNING) {
        ar_walk_chain(r, out, t, &r->work[i], ch);
    }
    t->nframes = out->nframes - t->frame_start;
    if (t->state != ATS_PENDING) {
        t->wait_kind = AWK_NONE;
    } else {
        uint32_t which = 0;
        uint8_t kind = ar_recognise_wait(r, out, ch, &which);
        resolver rv = {r, out, i, false, false};
        if (w->waiter)
            resolve(&rv, w->waiter, 0);
        if (kind == AWK_WAIT_FOR || kind == AWK_WAIT) {
            /* wait_for (3.10/3.11) awaits a private future: the awaited one is a local of its
             * frame; wait's futures are the set `fs` of _wait's frame. */
            uint64_t slots[MAX_SLOTS];
            uint32_t n = ar_gen_slots(r, ch->coro[which], slots, MAX_SLOTS);
            for (uint32_t k = 0; k < n; k++) {
                uint32_t cls = mem_ptr_ok(slots[k], true) ? ar_classify(r, slots[k]) : 0;
                if (kind == AWK_WAIT_FOR && (cls & TC_FUTURE) && slots[k] != w->waiter)
                    resolve(&rv, slots[k], 0);
                else if (kind == AWK_WAIT && (cls & TC_SET))
                    pyobj_set_iter(&r->c, slots[k], resolve_item_cb, &rv);
            }
        }
        if (kind == AWK_NONE && w->waiter) {
            uint32_t cls = ar_classify(r, w->waiter);
            kind = (cls & TC_TASK)     ? AWK_TASK
                   : (cls & TC_GATHER) ? AWK_GATHER
                   : rv.shield         ? AWK_SHIELD
                   : (cls & TC_FUTURE) ? AWK_FUTURE
                                       : AWK_OTHER;
        } else if (kind == AWK_NONE && ch->end) {
            kind = AWK_OTHER;
        }
        t->wait_kind = kind;
        if (rv.failed)
            t->flags |= ATF_PARTIAL;
    }
    if (t->state == ATS_PENDING || t->state == ATS_RUNNING)
        taskgroup_parent(r, out, i, w);
}

/* ---- edges and cycles --------------------------------------------------------------------- */

/* LSD radix sort of n records on the low `bits` bits of their keys, 8 bits a pass (passes where
 * every key has the same digit are skipped). tmp: n records of scratch. */
void ar_radix_sort(kv *a, kv *tmp, uint32_t n, unsigned bits)
{
    kv *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < bits && n > 1; shift += 8) {
        uint32_t count[257] = {0};
        for (uint32_t i = 0; i < n; i++)
            count[((src[i].key >> shift) & 255) + 1]++;
        if (count[((src[0].key >> shift) & 255) + 1] == n)
            continue;
        for (int d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (uint32_t i = 0; i < n; i++)
            dst[count[(src[i].key >> shift) & 255]++] = src[i];
        kv *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, (size_t)n * sizeof(kv));
}

static unsigned bits_for(uint32_t n)
{
    unsigned b = 1;
    while (b < 32 && (n >> b))
        b++;
    return b;
}

bool ar_sort_scratch(asyncio_reader *r, uint32_t n)
{
    return ar_grow((void **)&r->sort_tmp, &r->cap_sort_tmp, n, sizeof(kv), UINT32_MAX / 32);
}

/* Sort the (child, parent) pairs, drop duplicates, and lay them out as each task's awaited-by
 * list, then (sorted by parent) as each task's awaits list. */
bool ar_build_edges(asyncio_reader *r, async_snapshot *out)
{
    unsigned nb = bits_for(out->ntasks);
    if (!ar_sort_scratch(r, r->npairs))
        return false;
    ar_radix_sort(r->pairs, r->sort_tmp, r->npairs, 32 + nb);
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->npairs; i++)
        if (n == 0 || r->pairs[i].key != r->pairs[n - 1].key)
            r->pairs[n++] = r->pairs[i];
    r->npairs = n;
    if (!ar_grow((void **)&out->edges, &out->cap_edges, 2 * n + out->ntasks + 1, sizeof(uint32_t),
                 UINT32_MAX / 8))
        return false;
    out->nedges = 0;
    for (uint32_t i = 0; i < out->ntasks; i++) {
        out->tasks[i].by_start = out->tasks[i].awaits_start = 0;
        out->tasks[i].nby = out->tasks[i].nawaits = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t child = (uint32_t)(r->pairs[i].key >> 32), parent = (uint32_t)r->pairs[i].key;
        async_task *c = &out->tasks[child];
        if (c->nby == 0)
            c->by_start = out->nedges;
        c->nby++;
        out->edges[out->nedges++] = parent;
        r->pairs[i].key = (uint64_t)parent << 32 | child;
    }
    ar_radix_sort(r->pairs, r->sort_tmp, n, 32 + nb);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t parent = (uint32_t)(r->pairs[i].key >> 32), child = (uint32_t)r->pairs[i].key;
        async_task *p = &out->tasks[parent];
        if (p->nawaits == 0)
            p->awaits_start = out->nedges;
        p->nawaits++;
        out->edges[out->nedges++] = child;
    }
    return true;
}

/* Depth-first search over "awaits" edges; every edge back into the current path closes a cycle,
 * which is recorded (at most ASYNC_MAX_CYCLES) and not followed. */
bool ar_find_cycles(asyncio_reader *r, async_snapshot *out)
{
    uint32_t n = out->ntasks;
    if (n == 0)
        return true;
    if (!ar_grow((void **)&r->color, &r->cap_dfs, n, 1, UINT32_MAX / 8))
        return false;
    uint32_t cap = r->cap_dfs;
    uint32_t *st = realloc(r->stack, (size_t)cap * sizeof(uint32_t));
    if (!st)
        return false;
    r->stack = st;
    uint32_t *se = realloc(r->stack_edge, (size_t)cap * sizeof(uint32_t));
    if (!se)
        return false;
    r->stack_edge = se;
    memset(r->color, 0, n);
    enum { WHITE = 0, GRAY = 1, BLACK = 2 };
    for (uint32_t root = 0; root < n; root++) {
        if (r->color[root] != WHITE)
            continue;
        uint32_t sp = 0;
        r->stack[sp] = root;
        r->stack_edge[sp++] = 0;
        r->color[root] = GRAY;
        while (sp) {
            uint32_t v = r->stack[sp - 1];
            const async_task *tv = &out->tasks[v];
            if (r->stack_edge[sp - 1] >= tv->nawaits) {
                r->color[v] = BLACK;
                sp--;
                continue;
            }
            uint32_t c = out->edges[tv->awaits_start + r->stack_edge[sp - 1]++];
            if (r->color[c] == WHITE) {
                r->color[c] = GRAY;
                r->stack[sp] = c;
                r->stack_edge[sp++] = 0;
            } else if (r->color[c] == GRAY && out->ncycles < ASYNC_MAX_CYCLES) {
                uint32_t k = sp;
                while (k > 0 && r->stack[k - 1] != c)
                    k--;
                if (k == 0)
                    continue;
                uint32_t len = sp - (k - 1);
                if (!ar_grow((void **)&out->edges, &out->cap_edges, out->nedges + len,
                             sizeof(uint32_t), UINT32_MAX / 8))
                    return false;
                out->cycle_start[out->ncycles] = out->nedges;
                out->cycle_len[out->ncycles++] = len;
                for (uint32_t j = k - 1; j < sp; j++) {
                    out->edges[out->nedges++] = r->stack[j];
                    out->tasks[r->stack[j]].flags |= ATF_IN_CYCLE;
                }
            }
        }
    }
    return true;
}

uint32_t async_root_chain(const async_snapshot *s, uint32_t i, uint32_t *out, uint32_t cap)
{
    uint32_t n = 0;
    while (i < s->ntasks && n < cap) {
        for (uint32_t k = 0; k < n; k++)
            if (out[k] == i)
                return n; /* a cycle */
        out[n++] = i;
        const async_task *t = &s->tasks[i];
        i = t->nby ? s->edges[t->by_start] : ASYNC_NO_INDEX;
    }
    return n;
}

uint32_t async_task_of_thread(const async_snapshot *s, const aprof_thread_sample *t,
                              uint32_t *frame_index)
{
    for (uint32_t k = t->nframes; k-- > 0;) {
        if (!t->owners[k])
            continue;
        uint32_t i = async_find_by_coro(s, t->owners[k]);
        if (i != ASYNC_NO_INDEX) {
            if (frame_index)
                *frame_index = k;
            return i;
        }
    }
    return ASYNC_NO_INDEX;
}

uint32_t asyncio_chain_still_valid(void *ud, const async_snapshot *s, const uint32_t *links,
                                   uint32_t n)
{
    asyncio_reader *r = ud;
    const py_layout *L = r->L;
    enum { MAXN = 64 };
    if (n > MAXN)
        n = MAXN;
    loff offs[3] = {L->asyncio.task_coro, L->asyncio.task_name, L->asyncio.task_fut_waiter};
    loff lo = offs[0], hi = offs[0];
    for (int k = 1; k < 3; k++) {
        lo = offs[k] < lo ? offs[k] : lo;
        hi = offs[k] > hi ? offs[k] : hi;
    }
    size_t span = (size_t)(hi - lo) + 8;
    if (lo < 0 || span > 64)
        return 0;
    uint8_t buf[MAXN][64];
    uint64_t addrs[MAXN];
    void *dsts[MAXN];
    size_t lens[MAXN], m = 0;
    for (uint32_t k = 0; k < n; k++) {
        const async_task *t = &s->tasks[links[k]];
        if (t->flags & ATF_PY_TASK)
            continue; /* fields in its __dict__: not rechecked */
        addrs[m] = t->id + (uint64_t)lo;
        dsts[m] = buf[k];
        lens[m++] = span;
    }
    ssize_t got = m ? mem_readv(r->c.m, addrs, dsts, lens, m) : 0;
    size_t done = got > 0 ? (size_t)got / span : 0; /* ranges read whole, in order */
    size_t seen = 0;
    for (uint32_t k = 0; k < n; k++) {
        const async_task *t = &s->tasks[links[k]];
        if (t->flags & ATF_PY_TASK)
            continue;
        if (seen++ >= done)
            return k;
        const uint8_t *b = buf[k];
        if (ld64(b, offs[0] - lo) != t->coro || ld64(b, offs[1] - lo) != t->name_obj)
            return k;
        if (k > 0 && ld64(b, offs[2] - lo) != t->raw_waiter)
            return k;
    }
    return n;
}
