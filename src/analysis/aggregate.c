/* Aggregator: frame table, prefix tree of stacks, per-profile sample arrays.
 *
 * Its tables (hmap.h) map hashes to indices into plain arrays. Strings are
 * interned, so frames are hashed and compared by pointer. Each profile remembers the path of its
 * previous stack: consecutive samples of a thread usually share most of their frames, and only the
 * part below the first differing frame is looked up again.
 */
#include "aggregate.h"

#include "grow.h"
#include "hash.h"
#include "hmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- data ------------------------------------------------------------------------------------ */

typedef struct profile_impl {
    agg_profile pub;          /* first member: agg_profile * converts back to profile_impl * */
    const char *thread_name;  /* set for profiles created by agg_add_sample */
    aprof_frame *last_frames; /* the previous stack (normalised), outermost first */
    uint32_t *last_nodes;     /* its node path */
    uint32_t last_n, last_cap;
    point_store points;
    bool by_stack;            /* one point per distinct stack (agg_profile_by_stack) */
    hmap stack_map;           /* by-stack profiles: leaf node -> point index */
} profile_impl;

struct agg {
    strtab *strings;
    const char *empty;   /* "" */
    const char *unknown; /* name used for frames that come without one */

    aprof_frame *frames;
    size_t nframes, cap_frames;
    hmap frame_map;

    agg_node *nodes;
    size_t nnodes, cap_nodes;
    hmap node_map;
    uint32_t max_depth;

    profile_impl **profiles;
    size_t nprofiles, cap_profiles;
    hmap profile_map; /* (name, tid) */
    hmap thread_map;  /* tid, for agg_thread_profile */
    struct proc_label {
        pid_t pid;
        const char *label; /* interned */
    } *labels;        /* agg_process_label */
    size_t nlabels, cap_labels;
    point_spill spill; /* older points of every profile */
};

/* Largest index a table may hand out: AGG_ROOT is reserved and indices are stored + 1. */
#define AGG_MAX_INDEX (UINT32_MAX - 1)

agg *agg_new(strtab *strings)
{
    if (!strings) {
        errno = EINVAL;
        return NULL;
    }
    agg *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->strings = strings;
    point_spill_init(&a->spill);
    a->empty = strtab_intern_cstr(strings, "");
    a->unknown = strtab_intern_cstr(strings, "<unknown>");
    if (!a->empty || !a->unknown || hmap_init(&a->frame_map, 1024) < 0 ||
        hmap_init(&a->node_map, 4096) < 0 || hmap_init(&a->profile_map, 64) < 0 ||
        hmap_init(&a->thread_map, 64) < 0) {
        agg_free(a);
        errno = ENOMEM;
        return NULL;
    }
    return a;
}

void agg_free(agg *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nprofiles; i++) {
        profile_impl *p = a->profiles[i];
        point_store_free(&p->points);
        hmap_free(&p->stack_map);
        free(p->last_frames);
        free(p->last_nodes);
        free(p);
    }
    free(a->profiles);
    free(a->labels);
    free(a->frames);
    free(a->nodes);
    hmap_free(&a->frame_map);
    hmap_free(&a->node_map);
    hmap_free(&a->profile_map);
    hmap_free(&a->thread_map);
    point_spill_close(&a->spill);
    free(a);
}

/* ---- frames and nodes ------------------------------------------------------------------------ */

static aprof_frame normalise(const agg *a, const aprof_frame *f)
{
    aprof_frame n = *f;
    if (!n.name)
        n.name = a->unknown;
    if (!n.file)
        n.file = a->empty;
    if (n.line < 0)
        n.line = 0;
    return n;
}

static bool frame_eq(const aprof_frame *x, const aprof_frame *y)
{
    return x->name == y->name && x->file == y->file && x->line == y->line && x->kind == y->kind;
}

static uint32_t frame_hash(const aprof_frame *f)
{
    uint64_t k = hash_combine((uint64_t)(uintptr_t)f->name, (uint64_t)(uintptr_t)f->file);
    return hash32(k ^ (((uint64_t)(uint32_t)f->line << 8) | f->kind));
}

typedef struct frame_query {
    const agg *a;
    const aprof_frame *f;
} frame_query;

static bool frame_is(const void *ctx, uint32_t idx)
{
    const frame_query *q = ctx;
    return frame_eq(&q->a->frames[idx], q->f);
}

/* Index of the (normalised) frame, added on first use; AGG_ROOT on failure. */
static uint32_t intern_frame(agg *a, const aprof_frame *f)
{
    uint32_t h = frame_hash(f);
    frame_query q = {a, f};
    uint32_t found = hmap_find(&a->frame_map, h, frame_is, &q);
    if (found != HMAP_NONE)
        return found;
    if (a->nframes >= AGG_MAX_INDEX ||
        !grow_array((void **)&a->frames, &a->cap_frames, a->nframes + 1, sizeof(aprof_frame), 16,
                    SIZE_MAX) ||
        hmap_insert(&a->frame_map, h, (uint32_t)a->nframes) < 0)
        return AGG_ROOT;
    uint32_t idx = (uint32_t)a->nframes++;
    a->frames[idx] = *f;
    return idx;
}

typedef struct node_query {
    const agg *a;
    uint32_t parent, frame;
} node_query;

static bool node_is(const void *ctx, uint32_t idx)
{
    const node_query *q = ctx;
    const agg_node *n = &q->a->nodes[idx];
    return n->parent == q->parent && n->frame == q->frame;
}

static uint32_t intern_node(agg *a, uint32_t parent, uint32_t frame)
{
    uint32_t h = hash32(((uint64_t)parent << 32) | frame);
    node_query q = {a, parent, frame};
    uint32_t found = hmap_find(&a->node_map, h, node_is, &q);
    if (found != HMAP_NONE)
        return found;
    if (a->nnodes >= AGG_MAX_INDEX ||
        !grow_array((void **)&a->nodes, &a->cap_nodes, a->nnodes + 1, sizeof(agg_node), 16,
                    SIZE_MAX) ||
        hmap_insert(&a->node_map, h, (uint32_t)a->nnodes) < 0)
        return AGG_ROOT;
    uint32_t idx = (uint32_t)a->nnodes++;
    a->nodes[idx] = (agg_node){.parent = parent, .frame = frame};
    return idx;
}

/* ---- profiles -------------------------------------------------------------------------------- */

static uint32_t profile_hash(const char *name, pid_t tid)
{
    return hash32(hash_combine((uint64_t)(uintptr_t)name, (uint64_t)(uint32_t)tid));
}

typedef struct profile_query {
    const agg *a;
    const char *name; /* interned */
    pid_t tid;
} profile_query;

static bool profile_is(const void *ctx, uint32_t idx)
{
    const profile_query *q = ctx;
    const profile_impl *p = q->a->profiles[idx];
    return p->pub.name == q->name && p->pub.tid == q->tid;
}

static profile_impl *new_profile(agg *a, const char *name, pid_t tid, uint32_t h)
{
    if (a->nprofiles >= AGG_MAX_INDEX ||
        !grow_array((void **)&a->profiles, &a->cap_profiles, a->nprofiles + 1, sizeof(*a->profiles),
                    16, SIZE_MAX))
        return NULL;
    profile_impl *p = calloc(1, sizeof(*p));
    if (!p || hmap_insert(&a->profile_map, h, (uint32_t)a->nprofiles) < 0) {
        free(p);
        return NULL;
    }
    p->pub.name = name;
    p->pub.tid = tid;
    a->profiles[a->nprofiles++] = p;
    return p;
}

agg_profile *agg_profile_get(agg *a, const char *name, pid_t tid)
{
    if (!a || !name) {
        errno = EINVAL;
        return NULL;
    }
    const char *iname = strtab_intern_cstr(a->strings, name);
    if (!iname) {
        errno = ENOMEM;
        return NULL;
    }
    uint32_t h = profile_hash(iname, tid);
    profile_query q = {a, iname, tid};
    uint32_t found = hmap_find(&a->profile_map, h, profile_is, &q);
    if (found != HMAP_NONE)
        return &a->profiles[found]->pub;
    profile_impl *p = new_profile(a, iname, tid, h);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    return &p->pub;
}

size_t agg_profile_count(const agg *a)
{
    return a ? a->nprofiles : 0;
}

agg_profile *agg_profile_at(const agg *a, size_t i)
{
    return a && i < a->nprofiles ? &a->profiles[i]->pub : NULL;
}

/* ---- adding samples -------------------------------------------------------------------------- */

typedef struct point_query {
    profile_impl *p;
    uint32_t leaf;
} point_query;

static bool point_is(const void *ctx, uint32_t idx)
{
    const point_query *q = ctx;
    const agg_point *pt = point_store_mem(&q->p->points, idx);
    return pt && pt->node == q->leaf;
}

/* The point for a sample of stack `leaf`: merged into the previous one (thread profiles, same
 * stack) or into its stack's point (by-stack profiles), else a new one. */
static int add_point(agg *a, profile_impl *p, uint32_t leaf, uint64_t t_ns, uint64_t weight_ns)
{
    agg_point *pt = NULL;
    uint32_t h = p->by_stack ? hash32(leaf) : 0;
    if (p->by_stack) {
        point_query q = {p, leaf};
        uint32_t i = hmap_find(&p->stack_map, h, point_is, &q);
        pt = i == HMAP_NONE ? NULL : point_store_mem(&p->points, i);
    } else if (p->pub.tid != 0) {
        pt = point_store_last(&p->points);
        if (pt && (pt->node != leaf || pt->t_ns > t_ns || pt->count == UINT32_MAX))
            pt = NULL;
    }
    if (pt) {
        pt->count++;
        pt->weight_ns += weight_ns;
        if (t_ns > pt->t_ns)
            pt->t_ns = t_ns;
        return 0;
    }
    size_t idx = point_store_count(&p->points);
    if (p->by_stack && (idx >= AGG_MAX_INDEX || hmap_insert(&p->stack_map, h, (uint32_t)idx) < 0))
        return -1;
    agg_point np = {.node = leaf, .count = 1, .t_ns = t_ns, .weight_ns = weight_ns};
    if (point_store_append(&p->points, &a->spill, &np) < 0)
        return -1; /* a by-stack entry left in stack_map finds no point: point_is says no */
    p->pub.npoints++;
    return 0;
}

int agg_profile_by_stack(agg *a, agg_profile *pub)
{
    profile_impl *p = (profile_impl *)pub;
    if (!a || !p || pub->npoints || pub->tid) {
        errno = EINVAL;
        return -1;
    }
    if (p->by_stack)
        return 0;
    if (hmap_init(&p->stack_map, 256) < 0) {
        errno = ENOMEM;
        return -1;
    }
    p->by_stack = true;
    p->points.keep_in_memory = true;
    return 0;
}

int agg_profile_add(agg *a, agg_profile *pub, const aprof_frame *frames, uint32_t n,
                    uint64_t t_ns, uint64_t weight_ns)
{
    if (!a || !pub || (n && !frames)) {
        errno = EINVAL;
        return -1;
    }
    profile_impl *p = (profile_impl *)pub;
    if (n > p->last_cap) {
        size_t cap = p->last_cap;
        if (!grow_array((void **)&p->last_frames, &cap, n, sizeof(aprof_frame), 16, SIZE_MAX))
            goto nomem;
        cap = p->last_cap;
        if (!grow_array((void **)&p->last_nodes, &cap, n, sizeof(uint32_t), 16, SIZE_MAX))
            goto nomem;
        p->last_cap = (uint32_t)cap;
    }

    /* Reuse the path of the previous stack for the frames both share. */
    uint32_t k = 0;
    while (k < n && k < p->last_n) {
        aprof_frame f = normalise(a, &frames[k]);
        if (!frame_eq(&f, &p->last_frames[k]))
            break;
        k++;
    }
    uint32_t parent = k ? p->last_nodes[k - 1] : AGG_ROOT;
    for (uint32_t i = k; i < n; i++) {
        aprof_frame f = normalise(a, &frames[i]);
        uint32_t fi = intern_frame(a, &f);
        uint32_t node = fi == AGG_ROOT ? AGG_ROOT : intern_node(a, parent, fi);
        if (node == AGG_ROOT) {
            p->last_n = i; /* the cache stays a valid prefix */
            goto nomem;
        }
        p->last_frames[i] = f;
        p->last_nodes[i] = node;
        parent = node;
    }
    p->last_n = n;
    if (n > a->max_depth)
        a->max_depth = n;

    uint32_t leaf = n ? p->last_nodes[n - 1] : AGG_ROOT;
    if (add_point(a, p, leaf, t_ns, weight_ns) < 0)
        goto nomem;
    pub->nsamples++;
    pub->total_ns += weight_ns;

    /* Node statistics describe the threads only: synthetic profiles re-present thread samples
     * (or tasks) and would count the same time twice. */
    if (pub->tid != 0 && n) {
        for (uint32_t i = 0; i < n; i++) {
            agg_node *nd = &a->nodes[p->last_nodes[i]];
            nd->total_ns += weight_ns;
            nd->total_count++;
        }
        agg_node *lf = &a->nodes[leaf];
        lf->self_ns += weight_ns;
        lf->self_count++;
    }
    return 0;
nomem:
    errno = ENOMEM;
    return -1;
}

typedef struct thread_query {
    const agg *a;
    pid_t pid, tid;
} thread_query;

static bool thread_is(const void *ctx, uint32_t idx)
{
    const thread_query *q = ctx;
    const agg_profile *p = &q->a->profiles[idx]->pub;
    /* a reused thread id in another process is another thread */
    return p->tid == q->tid && (p->pid == q->pid || !p->pid || !q->pid);
}

const char *agg_profile_thread_name(const agg_profile *p)
{
    return p && p->tid ? ((const profile_impl *)p)->thread_name : NULL;
}

const char *agg_process_label_of(const agg *a, pid_t pid)
{
    for (size_t i = 0; a && pid && i < a->nlabels; i++)
        if (a->labels[i].pid == pid)
            return a->labels[i].label;
    return NULL;
}

/* A thread profile's display name. */
static void thread_profile_name(const agg *a, pid_t pid, pid_t tid, const char *tname, char *buf,
                                size_t len)
{
    const char *label = agg_process_label_of(a, pid);
    if (label)
        snprintf(buf, len, "Process %d \"%s\": Thread %d \"%s\"", (int)pid, label, (int)tid,
                 tname);
    else
        snprintf(buf, len, "Thread %d \"%s\"", (int)tid, tname);
}

int agg_process_label(agg *a, pid_t pid, const char *label)
{
    const char *il = strtab_intern_cstr(a->strings, label ? label : "");
    if (!il) {
        errno = ENOMEM;
        return -1;
    }
    size_t i = 0;
    while (i < a->nlabels && a->labels[i].pid != pid)
        i++;
    if (i == a->nlabels) {
        if (!grow_array((void **)&a->labels, &a->cap_labels, i + 1, sizeof(*a->labels), 16,
                        SIZE_MAX)) {
            errno = ENOMEM;
            return -1;
        }
        a->nlabels++;
    }
    a->labels[i].pid = pid;
    a->labels[i].label = il;
    /* rename the process's existing thread profiles */
    char buf[1024];
    for (size_t k = 0; k < a->nprofiles; k++) {
        profile_impl *p = a->profiles[k];
        if (!p->pub.tid || p->pub.pid != pid)
            continue;
        thread_profile_name(a, pid, p->pub.tid, p->thread_name, buf, sizeof(buf));
        const char *iname = strtab_intern_cstr(a->strings, buf);
        if (iname)
            p->pub.name = iname;
    }
    return 0;
}

agg_profile *agg_thread_profile(agg *a, pid_t pid, pid_t tid, const char *thread_name)
{
    if (!a) {
        errno = EINVAL;
        return NULL;
    }
    const char *tname = thread_name ? strtab_intern_cstr(a->strings, thread_name) : a->empty;
    if (!tname) {
        errno = ENOMEM;
        return NULL;
    }
    uint32_t h = hash32((uint64_t)(uint32_t)tid);
    thread_query q = {a, pid, tid};
    uint32_t found = hmap_find(&a->thread_map, h, thread_is, &q);
    profile_impl *p = found != HMAP_NONE ? a->profiles[found] : NULL;
    char buf[1024];
    thread_profile_name(a, pid, tid, tname, buf, sizeof(buf));
    if (p) {
        if (p->thread_name != tname) {
            /* The thread got (another) name, e.g. `threading` registered it after its first
             * sample: one profile per thread, named by the newest name. */
            const char *iname = strtab_intern_cstr(a->strings, buf);
            if (!iname) {
                errno = ENOMEM;
                return NULL;
            }
            p->thread_name = tname;
            p->pub.name = iname;
        }
        return &p->pub;
    }
    agg_profile *pub = agg_profile_get(a, buf, tid);
    if (!pub)
        return NULL;
    p = (profile_impl *)pub;
    size_t idx = 0;
    while (a->profiles[idx] != p)
        idx++;
    if (hmap_insert(&a->thread_map, h, (uint32_t)idx) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    p->thread_name = tname;
    p->pub.pid = pid;
    return &p->pub;
}

int agg_add_sample(agg *a, const aprof_sample *s)
{
    if (!a || !s || (s->nthreads && !s->threads)) {
        errno = EINVAL;
        return -1;
    }
    int rc = 0;
    for (uint32_t t = 0; t < s->nthreads; t++) {
        const aprof_thread_sample *th = &s->threads[t];
        if ((th->flags & TSF_TORN) && !(th->flags & TSF_PARTIAL))
            continue;
        agg_profile *p = agg_thread_profile(a, s->pid, th->tid, th->name);
        if (!p) {
            rc = -1;
            continue;
        }
        uint32_t n = th->nframes;
        if (n > th->cap_frames) /* a reader bug must not become an out-of-bounds read */
            n = th->cap_frames;
        if (agg_profile_add(a, p, th->frames, n, s->t_ns, s->weight_ns) < 0)
            rc = -1;
    }
    if (rc < 0)
        errno = ENOMEM;
    return rc;
}

/* ---- reading --------------------------------------------------------------------------------- */

void agg_point_iter_init(agg_point_iter *it, const agg *a, const agg_profile *p, size_t first)
{
    static const point_store empty;
    const point_store *ps = p ? &((const profile_impl *)p)->points : &empty;
    point_iter_init(&it->it, ps, a ? &a->spill : NULL, first);
}

bool agg_point_iter_next(agg_point_iter *it, agg_point *out)
{
    return it->it.sp && point_iter_next(&it->it, out);
}

bool agg_point_get(const agg *a, const agg_profile *p, size_t i, agg_point *out)
{
    return a && p && point_store_get(&((const profile_impl *)p)->points, &a->spill, i, out);
}

int agg_profile_leaf_totals(const agg *a, const agg_profile *p, uint64_t *count, uint64_t *weight)
{
    if (!a || !p || !count || !weight) {
        errno = EINVAL;
        return -1;
    }
    size_t nn = a->nnodes;
    memset(count, 0, (nn + 1) * sizeof(*count));
    memset(weight, 0, (nn + 1) * sizeof(*weight));
    agg_point_iter it;
    agg_point pt;
    size_t seen = 0;
    agg_point_iter_init(&it, a, p, 0);
    for (; agg_point_iter_next(&it, &pt); seen++) {
        size_t k = pt.node < nn ? pt.node : nn;
        count[k] += pt.count;
        weight[k] += pt.weight_ns;
    }
    if (seen != p->npoints) {
        errno = EIO;
        return -1;
    }
    return 0;
}

bool agg_spill_failed(const agg *a)
{
    return a && a->spill.blocks_in_memory > 0;
}

size_t agg_frame_count(const agg *a)
{
    return a ? a->nframes : 0;
}

const aprof_frame *agg_frame_at(const agg *a, uint32_t i)
{
    return a && i < a->nframes ? &a->frames[i] : NULL;
}

size_t agg_node_count(const agg *a)
{
    return a ? a->nnodes : 0;
}

const agg_node *agg_node_at(const agg *a, uint32_t i)
{
    return a && i < a->nnodes ? &a->nodes[i] : NULL;
}

uint32_t agg_max_depth(const agg *a)
{
    return a ? a->max_depth : 0;
}

uint32_t agg_stack_frames(const agg *a, uint32_t leaf, uint32_t *out, uint32_t max)
{
    if (!a || leaf >= a->nnodes || (max && !out))
        return 0;
    /* A parent always has a smaller index than its child, so both walks end. */
    uint32_t depth = 0;
    for (uint32_t n = leaf; n != AGG_ROOT; n = a->nodes[n].parent)
        depth++;
    uint32_t keep = depth < max ? depth : max;
    uint32_t skip = depth - keep, n = leaf;
    for (uint32_t i = 0; i < skip; i++)
        n = a->nodes[n].parent;
    for (uint32_t i = keep; i > 0; i--) {
        out[i - 1] = a->nodes[n].frame;
        n = a->nodes[n].parent;
    }
    return keep;
}

/* ---- top functions --------------------------------------------------------------------------- */

typedef struct func_acc {
    const char *name, *file;
    uint64_t self_ns, total_ns;
    uint32_t self_count, total_count;
} func_acc;

static int cmp_func(const void *x, const void *y)
{
    const func_acc *a = x, *b = y;
    if (a->self_ns != b->self_ns)
        return a->self_ns < b->self_ns ? 1 : -1;
    if (a->total_ns != b->total_ns)
        return a->total_ns < b->total_ns ? 1 : -1;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->file, b->file);
}

typedef struct func_query {
    const func_acc *funcs;
    const aprof_frame *f;
} func_query;

static bool func_is(const void *ctx, uint32_t idx)
{
    const func_query *q = ctx;
    return q->funcs[idx].name == q->f->name && q->funcs[idx].file == q->f->file;
}

size_t agg_top_functions(const agg *a, agg_top_entry *out, size_t max)
{
    if (!a || !out || max == 0 || a->nnodes == 0)
        return 0;
    size_t nf = a->nframes, nn = a->nnodes, count = 0;
    uint32_t *func_of = malloc(nf * sizeof(uint32_t));
    func_acc *funcs = calloc(nf, sizeof(func_acc));
    uint32_t *active = calloc(nf, sizeof(uint32_t));
    uint32_t *child_start = calloc(nn + 2, sizeof(uint32_t));
    uint32_t *children = malloc(nn * sizeof(uint32_t));
    uint32_t *stack = malloc(nn * sizeof(uint32_t));
    uint32_t *next = malloc(nn * sizeof(uint32_t));
    hmap fmap = {0};
    size_t nfuncs = 0;
    if (!func_of || !funcs || !active || !child_start || !children || !stack || !next ||
        hmap_init(&fmap, 64) < 0)
        goto out;

    /* Functions: frames merged by (name, file). */
    for (size_t i = 0; i < nf; i++) {
        const aprof_frame *f = &a->frames[i];
        uint32_t h = hash32(hash_combine((uint64_t)(uintptr_t)f->name, (uint64_t)(uintptr_t)f->file));
        func_query q = {funcs, f};
        uint32_t id = hmap_find(&fmap, h, func_is, &q);
        if (id == HMAP_NONE) {
            if (hmap_insert(&fmap, h, (uint32_t)nfuncs) < 0)
                goto out;
            id = (uint32_t)nfuncs++;
            funcs[id].name = f->name;
            funcs[id].file = f->file;
        }
        func_of[i] = id;
    }

    /* Children lists (index nn stands for the root), then a depth-first walk that counts a node's
     * total only where its function is not already on the path: recursion is counted once. */
    for (size_t i = 0; i < nn; i++) {
        uint32_t par = a->nodes[i].parent == AGG_ROOT ? (uint32_t)nn : a->nodes[i].parent;
        child_start[par + 1]++;
    }
    for (size_t i = 1; i <= nn + 1; i++)
        child_start[i] += child_start[i - 1];
    for (size_t i = 0; i < nn; i++) /* fill cursors; `next` is reused by the walk below */
        next[i] = child_start[i];
    {
        uint32_t root_fill = child_start[nn];
        for (size_t i = 0; i < nn; i++) {
            uint32_t par = a->nodes[i].parent;
            uint32_t pos = par == AGG_ROOT ? root_fill++ : next[par]++;
            children[pos] = (uint32_t)i;
        }
    }
    for (uint32_t r = child_start[nn]; r < child_start[nn + 1]; r++) {
        size_t sp = 0;
        stack[sp] = children[r];
        next[sp] = UINT32_MAX; /* not entered yet */
        sp = 1;
        while (sp > 0) {
            uint32_t node = stack[sp - 1];
            const agg_node *nd = &a->nodes[node];
            uint32_t fid = func_of[nd->frame];
            if (next[sp - 1] == UINT32_MAX) { /* enter */
                func_acc *f = &funcs[fid];
                f->self_ns += nd->self_ns;
                f->self_count += nd->self_count;
                if (active[fid]++ == 0) {
                    f->total_ns += nd->total_ns;
                    f->total_count += nd->total_count;
                }
                next[sp - 1] = child_start[node];
            }
            if (next[sp - 1] < child_start[node + 1]) {
                uint32_t c = children[next[sp - 1]++];
                stack[sp] = c;
                next[sp] = UINT32_MAX;
                sp++;
            } else { /* leave */
                active[fid]--;
                sp--;
            }
        }
    }

    qsort(funcs, nfuncs, sizeof(func_acc), cmp_func);
    for (size_t i = 0; i < nfuncs && count < max; i++) {
        if (funcs[i].total_count == 0)
            continue; /* only seen in synthetic profiles */
        out[count++] = (agg_top_entry){funcs[i].name, funcs[i].file, funcs[i].self_ns,
                                       funcs[i].total_ns, funcs[i].self_count,
                                       funcs[i].total_count};
    }
out:
    free(func_of);
    free(funcs);
    free(active);
    free(child_start);
    free(children);
    free(stack);
    free(next);
    hmap_free(&fmap);
    return count;
}
