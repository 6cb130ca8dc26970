#include "tui_profile.h"

#include "grow.h"
#include "hash.h"

#include "tui_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void tui_prof_init(tui_prof *p)
{
    memset(p, 0, sizeof(*p));
}

void tui_prof_free(tui_prof *p)
{
    free(p->stat);
    free(p->cursor);
    free(p->prev_leaf);
    free(p->taken);
    free(p->depth);
    free(p->func);
    free(p->recursive);
    free(p->match);
    free(p->frame_func);
    free(p->funcs);
    hmap_free(&p->fmap);
    memset(p, 0, sizeof(*p));
}

static void reset_stats(tui_prof *p)
{
    if (p->stat)
        memset(p->stat, 0, p->nstat * sizeof(*p->stat));
    for (size_t i = 0; i < p->nprof; i++) {
        p->cursor[i] = 0;
        p->prev_leaf[i] = AGG_ROOT;
        p->taken[i] = (agg_point){0};
    }
    p->total_ns = p->matched_ns = p->samples = 0;
}

void tui_prof_clear(tui_prof *p)
{
    pid_t tid = p->tid;
    uint64_t from = p->from_ns;
    char filter[TUI_FILTER_MAX];
    memcpy(filter, p->filter, sizeof(filter));
    tui_prof_free(p);
    p->tid = tid;
    p->from_ns = from;
    memcpy(p->filter, filter, sizeof(filter));
}

void tui_prof_select(tui_prof *p, pid_t tid, const char *filter, uint64_t from_ns)
{
    const char *f = filter ? filter : "";
    if (strncmp(p->filter, f, TUI_FILTER_MAX - 1) != 0) {
        snprintf(p->filter, sizeof(p->filter), "%s", f);
        /* node match flags depend on the filter: recompute the node caches */
        p->nstat = 0;
    }
    p->tid = tid;
    p->from_ns = from_ns;
    reset_stats(p);
}

/* ---- caches ----------------------------------------------------------------------------------- */

typedef struct func_query {
    const tui_prof *p;
    const aprof_frame *f;
} func_query;

static bool func_is(const void *ctx, uint32_t idx)
{
    const func_query *q = ctx;
    const tui_func *fn = &q->p->funcs[idx];
    return fn->name == q->f->name && fn->file == q->f->file;
}

/* The index of frame f's function (name, file), added on first use; -1 out of memory. */
static int64_t func_id(tui_prof *p, const aprof_frame *f)
{
    uint32_t h = hash32(hash_combine((uint64_t)(uintptr_t)f->name, (uint64_t)(uintptr_t)f->file));
    func_query q = {p, f};
    uint32_t found = hmap_find(&p->fmap, h, func_is, &q);
    if (found != HMAP_NONE)
        return found;
    if (!grow_array((void **)&p->funcs, &p->cap_funcs, p->nfuncs + 1, sizeof(*p->funcs), 64,
                    SIZE_MAX) ||
        hmap_insert(&p->fmap, h, (uint32_t)p->nfuncs) < 0)
        return -1;
    p->funcs[p->nfuncs] = (tui_func){f->name, f->file};
    return (int64_t)p->nfuncs++;
}

static bool frame_matches(const aprof_frame *f, const char *filter)
{
    return tui_contains(f->name, filter) || tui_contains(f->file, filter);
}

static int extend_caches(tui_prof *p, const agg *a)
{
    size_t nf = agg_frame_count(a), nn = agg_node_count(a);
    if (nf > p->nframes) {
        size_t cap = p->cap_frames;
        if (!grow_array((void **)&p->frame_func, &cap, nf, sizeof(uint32_t), 64, SIZE_MAX))
            return -1;
        p->cap_frames = cap;
        for (size_t i = p->nframes; i < nf; i++) {
            int64_t id = func_id(p, agg_frame_at(a, (uint32_t)i));
            if (id < 0)
                return -1;
            p->frame_func[i] = (uint32_t)id;
            p->nframes = i + 1;
        }
    }
    if (nn > p->cap_nodes) {
        size_t c1 = p->cap_nodes, c2 = c1, c3 = c1, c4 = c1, c5 = c1;
        if (!grow_array((void **)&p->stat, &c1, nn, sizeof(*p->stat), 64, SIZE_MAX) ||
            !grow_array((void **)&p->depth, &c2, nn, sizeof(uint32_t), 64, SIZE_MAX) ||
            !grow_array((void **)&p->func, &c3, nn, sizeof(uint32_t), 64, SIZE_MAX) ||
            !grow_array((void **)&p->recursive, &c4, nn, 1, 64, SIZE_MAX) ||
            !grow_array((void **)&p->match, &c5, nn, 1, 64, SIZE_MAX))
            return -1;
        p->cap_nodes = c1;
    }
    /* Parents have smaller indices than their children: one pass in index order. Depth,
     * function and recursion never change for a node; they are recomputed only with the match
     * flag after a filter change (nstat = 0), which is cheap. */
    for (size_t n = p->nstat; n < nn; n++) {
        const agg_node *nd = agg_node_at(a, (uint32_t)n);
        uint32_t par = nd->parent;
        bool has_par = par != AGG_ROOT && par < n;
        p->depth[n] = has_par ? p->depth[par] + 1 : 1;
        p->func[n] = nd->frame < p->nframes ? p->frame_func[nd->frame] : 0;
        uint8_t rec = 0;
        uint32_t steps = 0;
        for (uint32_t q = has_par ? par : AGG_ROOT; q != AGG_ROOT && q < n && steps < 100000;
             q = agg_node_at(a, q)->parent, steps++) {
            if (p->func[q] == p->func[n]) {
                rec = 1;
                break;
            }
        }
        p->recursive[n] = rec;
        bool m = !p->filter[0] || frame_matches(agg_frame_at(a, nd->frame), p->filter) ||
                 (has_par && p->match[par]);
        p->match[n] = m;
        memset(&p->stat[n], 0, sizeof(p->stat[n]));
    }
    p->nstat = nn;
    size_t np = agg_profile_count(a);
    if (np > p->nprof) {
        size_t c1 = p->nprof, c2 = p->nprof, c3 = p->nprof;
        if (!grow_array((void **)&p->cursor, &c1, np, sizeof(size_t), 64, SIZE_MAX) ||
            !grow_array((void **)&p->prev_leaf, &c2, np, sizeof(uint32_t), 64, SIZE_MAX) ||
            !grow_array((void **)&p->taken, &c3, np, sizeof(agg_point), 64, SIZE_MAX))
            return -1;
        for (size_t i = p->nprof; i < np; i++) {
            p->cursor[i] = 0;
            p->prev_leaf[i] = AGG_ROOT;
            p->taken[i] = (agg_point){0};
        }
        p->nprof = np;
    }
    return 0;
}

/* ---- accumulation ----------------------------------------------------------------------------- */

static size_t first_at_or_after(const agg *a, const agg_profile *pr, uint64_t t)
{
    size_t lo = 0, hi = pr->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        agg_point pt;
        if (!agg_point_get(a, pr, mid, &pt))
            return pr->npoints; /* unreadable: nothing selected rather than a wrong window */
        if (pt.t_ns < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void count_calls(tui_prof *p, const agg *a, uint32_t cur, uint32_t prev)
{
    uint32_t da = cur == AGG_ROOT ? 0 : p->depth[cur];
    uint32_t db = prev == AGG_ROOT || prev >= p->nstat ? 0 : p->depth[prev];
    if (db == 0)
        prev = AGG_ROOT;
    while (da > db) {
        p->stat[cur].calls++;
        cur = agg_node_at(a, cur)->parent;
        da--;
    }
    while (db > da) {
        prev = agg_node_at(a, prev)->parent;
        db--;
    }
    while (cur != prev && cur != AGG_ROOT && prev != AGG_ROOT) {
        p->stat[cur].calls++;
        cur = agg_node_at(a, cur)->parent;
        prev = agg_node_at(a, prev)->parent;
    }
}

/* Add a point's samples to the statistics; the leaf to remember as the previous one. */
static uint32_t take(tui_prof *p, const agg *a, const agg_point *pt, uint32_t prev, bool new_point)
{
    p->total_ns += pt->weight_ns;
    p->samples += pt->count;
    uint32_t leaf = pt->node;
    if (leaf == AGG_ROOT || leaf >= p->nstat)
        return AGG_ROOT;
    if (p->match[leaf]) {
        p->matched_ns += pt->weight_ns;
        p->stat[leaf].self_ns += pt->weight_ns;
        p->stat[leaf].self_n += pt->count;
        for (uint32_t n = leaf; n != AGG_ROOT; n = agg_node_at(a, n)->parent) {
            p->stat[n].total_ns += pt->weight_ns;
            p->stat[n].total_n += pt->count;
        }
        if (new_point)
            count_calls(p, a, leaf, prev);
    }
    return leaf;
}

int tui_prof_update(tui_prof *p, const agg *a)
{
    if (!a)
        return 0;
    if (extend_caches(p, a) < 0) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < p->nprof && i < agg_profile_count(a); i++) {
        const agg_profile *pr = agg_profile_at(a, i);
        if (!pr || pr->tid == 0 || (p->tid && pr->tid != p->tid))
            continue;
        size_t k = p->cursor[i];
        agg_point pt;
        /* The last point seen may have grown since: take what was added to it. */
        if (k > 0 && agg_point_get(a, pr, k - 1, &pt) && pt.t_ns >= p->from_ns &&
            pt.weight_ns > p->taken[i].weight_ns) {
            agg_point more = pt;
            more.weight_ns -= p->taken[i].weight_ns;
            more.count -= pt.count >= p->taken[i].count ? p->taken[i].count : pt.count;
            take(p, a, &more, AGG_ROOT, false);
            p->taken[i] = pt;
        }
        if (k == 0 && p->from_ns)
            k = first_at_or_after(a, pr, p->from_ns);
        agg_point_iter it;
        agg_point_iter_init(&it, a, pr, k);
        for (; agg_point_iter_next(&it, &pt); k++) {
            p->taken[i] = pt;
            if (pt.t_ns < p->from_ns)
                continue;
            p->prev_leaf[i] = take(p, a, &pt, p->prev_leaf[i], true);
        }
        p->cursor[i] = k;
    }
    return 0;
}

/* ---- Top ---------------------------------------------------------------------------------------- */

const char *tui_top_key_name(tui_top_key k)
{
    switch (k) {
    case TUI_TOP_SELF: return "own";
    case TUI_TOP_TOTAL: return "total";
    case TUI_TOP_CALLS: return "calls";
    case TUI_TOP_NAME: return "name";
    default: return "?";
    }
}

size_t tui_top_build(const tui_prof *p, const agg *a, tui_top_row **rows, size_t *cap)
{
    size_t nf = p->nfuncs;
    if (nf == 0 || !a)
        return 0;
    /* the line shown per function: the node with most self time, else with most total time */
    struct best { uint64_t self_ns, total_ns; int self_line, total_line; } *best =
        calloc(nf, sizeof(*best));
    if (!best || !grow_array((void **)rows, cap, nf, sizeof(**rows), 64, SIZE_MAX)) {
        free(best);
        return 0;
    }
    tui_top_row *r = *rows;
    memset(r, 0, nf * sizeof(*r));
    for (size_t n = 0; n < p->nstat; n++) {
        const tui_node_stat *s = &p->stat[n];
        if (!s->total_n)
            continue;
        uint32_t f = p->func[n];
        const aprof_frame *fr = agg_frame_at(a, agg_node_at(a, (uint32_t)n)->frame);
        tui_top_row *row = &r[f];
        if (!row->name) {
            row->name = p->funcs[f].name;
            row->file = p->funcs[f].file;
            row->kind = fr->kind;
        }
        row->self_ns += s->self_ns;
        row->self_n += s->self_n;
        row->calls += s->calls;
        if (!p->recursive[n]) {
            row->total_ns += s->total_ns;
            row->total_n += s->total_n;
        }
        struct best *b = &best[f];
        if (s->self_ns > b->self_ns) {
            b->self_ns = s->self_ns;
            b->self_line = fr->line;
        }
        if (s->total_ns > b->total_ns || !b->total_ns) {
            b->total_ns = s->total_ns;
            b->total_line = fr->line;
        }
    }
    for (size_t f = 0; f < nf; f++)
        r[f].line = best[f].self_ns ? best[f].self_line : best[f].total_line;
    free(best);
    size_t out = 0;
    for (size_t f = 0; f < nf; f++) {
        if (!r[f].name || !r[f].total_n)
            continue;
        if (p->filter[0] && !tui_contains(r[f].name, p->filter) &&
            !tui_contains(r[f].file, p->filter))
            continue;
        r[out++] = r[f];
    }
    return out;
}

static int cmp_u64_desc(uint64_t x, uint64_t y)
{
    return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_top(const void *x, const void *y, void *ctx)
{
    const tui_top_row *a = x, *b = y;
    tui_top_key key = (tui_top_key)(intptr_t)ctx;
    int c = 0;
    switch (key) {
    case TUI_TOP_SELF: c = cmp_u64_desc(a->self_ns, b->self_ns); break;
    case TUI_TOP_TOTAL: c = cmp_u64_desc(a->total_ns, b->total_ns); break;
    case TUI_TOP_CALLS: c = cmp_u64_desc(a->calls, b->calls); break;
    default: break;
    }
    if (!c && key != TUI_TOP_NAME)
        c = cmp_u64_desc(a->self_ns + a->total_ns, b->self_ns + b->total_ns);
    if (!c)
        c = strcmp(a->name ? a->name : "", b->name ? b->name : "");
    if (!c)
        c = strcmp(a->file ? a->file : "", b->file ? b->file : "");
    return c;
}

void tui_top_sort(tui_top_row *rows, size_t n, tui_top_key key, bool reverse)
{
    if (n < 2)
        return;
    qsort_r(rows, n, sizeof(*rows), cmp_top, (void *)(intptr_t)key);
    if (reverse)
        for (size_t i = 0, j = n - 1; i < j; i++, j--) {
            tui_top_row t = rows[i];
            rows[i] = rows[j];
            rows[j] = t;
        }
}

/* ---- Tree --------------------------------------------------------------------------------------- */

void tui_tree_state_free(tui_tree_state *ts)
{
    free(ts->mark);
    memset(ts, 0, sizeof(*ts));
}

void tui_tree_state_clear(tui_tree_state *ts)
{
    if (ts->mark)
        memset(ts->mark, 0, ts->cap);
    ts->nzoom = 0;
}

int tui_tree_set(tui_tree_state *ts, uint32_t node, bool expanded)
{
    if (node == AGG_ROOT)
        return 0;
    if (!grow_array((void **)&ts->mark, &ts->cap, (size_t)node + 1, 1, 64, SIZE_MAX))
        return -1;
    ts->mark[node] = expanded ? 1 : 2;
    return 0;
}

void tui_tree_zoom_in(tui_tree_state *ts, uint32_t node)
{
    if (node == AGG_ROOT)
        return;
    if (ts->nzoom > 0 && ts->zoom[ts->nzoom - 1] == node)
        return;
    if (ts->nzoom == TUI_TREE_MAX_ZOOM) {
        memmove(ts->zoom, ts->zoom + 1, (TUI_TREE_MAX_ZOOM - 1) * sizeof(ts->zoom[0]));
        ts->nzoom--;
    }
    ts->zoom[ts->nzoom++] = node;
}

void tui_tree_zoom_out(tui_tree_state *ts)
{
    if (ts->nzoom > 0)
        ts->nzoom--;
}

static int cmp_child(const void *x, const void *y, void *ctx)
{
    const tui_node_stat *st = ctx;
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    int c = cmp_u64_desc(st[a].total_ns, st[b].total_ns);
    return c ? c : (a > b) - (a < b);
}

static bool is_expanded(const tui_prof *p, const tui_tree_state *ts, uint32_t n)
{
    uint8_t m = n < ts->cap && ts->mark ? ts->mark[n] : 0;
    if (m)
        return m == 1;
    return p->total_ns && p->stat[n].total_ns * 100 >= p->total_ns * TUI_TREE_AUTO_EXPAND_PCT;
}

size_t tui_tree_build(const tui_prof *p, const agg *a, const tui_tree_state *ts,
                      tui_tree_row **rows, size_t *cap)
{
    size_t nn = p->nstat;
    if (nn == 0 || !a)
        return 0;
    /* children lists of the nodes with time in the selection; index nn is the root */
    uint32_t *start = calloc(nn + 2, sizeof(uint32_t));
    uint32_t *kids = malloc(nn * sizeof(uint32_t));
    uint32_t *fill = malloc((nn + 1) * sizeof(uint32_t));
    struct item { uint32_t node, depth; } *stack = malloc((nn + 1) * sizeof(*stack));
    size_t nrows = 0;
    if (!start || !kids || !fill || !stack)
        goto out;
    for (size_t n = 0; n < nn; n++) {
        if (!p->stat[n].total_n)
            continue;
        uint32_t par = agg_node_at(a, (uint32_t)n)->parent;
        start[(par == AGG_ROOT || par >= nn ? nn : par) + 1]++;
    }
    for (size_t i = 1; i <= nn + 1; i++)
        start[i] += start[i - 1];
    memcpy(fill, start, (nn + 1) * sizeof(uint32_t));
    for (size_t n = 0; n < nn; n++) {
        if (!p->stat[n].total_n)
            continue;
        uint32_t par = agg_node_at(a, (uint32_t)n)->parent;
        kids[fill[par == AGG_ROOT || par >= nn ? nn : par]++] = (uint32_t)n;
    }
    for (size_t i = 0; i <= nn; i++)
        if (start[i + 1] - start[i] > 1)
            qsort_r(kids + start[i], start[i + 1] - start[i], sizeof(uint32_t), cmp_child,
                    p->stat);

    size_t sp = 0;
    uint32_t zoom = ts && ts->nzoom > 0 ? ts->zoom[ts->nzoom - 1] : AGG_ROOT;
    if (zoom != AGG_ROOT && zoom < nn) {
        stack[sp++] = (struct item){zoom, 0};
    } else {
        for (uint32_t k = start[nn + 1]; k > start[nn]; k--)
            stack[sp++] = (struct item){kids[k - 1], 0};
    }
    while (sp > 0) {
        struct item it = stack[--sp];
        uint32_t n = it.node;
        if (!grow_array((void **)rows, cap, nrows + 1, sizeof(**rows), 64, SIZE_MAX))
            break;
        bool has = start[n + 1] > start[n];
        bool zoom_root = n == zoom;
        bool exp = has && (zoom_root || !ts || is_expanded(p, ts, n));
        (*rows)[nrows++] = (tui_tree_row){
            .node = n, .depth = it.depth, .has_children = has, .expanded = exp,
            .frame = *agg_frame_at(a, agg_node_at(a, n)->frame),
            .self_ns = p->stat[n].self_ns, .total_ns = p->stat[n].total_ns,
        };
        if (!exp)
            continue;
        /* the stack never holds more than one entry per node: each node is pushed once */
        for (uint32_t k = start[n + 1]; k > start[n] && sp <= nn; k--)
            stack[sp++] = (struct item){kids[k - 1], it.depth + 1};
    }
out:
    free(start);
    free(kids);
    free(fill);
    free(stack);
    return nrows;
}
