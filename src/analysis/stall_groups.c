#include "stall_groups.h"

#include "hash.h"
#include "hmap.h"

#include <stdlib.h>

typedef struct group_query {
    const stall_group *groups;
    const aprof_frame *f;
} group_query;

static bool group_is(const void *ctx, uint32_t idx)
{
    const group_query *q = ctx;
    const aprof_frame *g = &q->groups[idx].culprit;
    /* interned strings: pointers compare */
    return g->name == q->f->name && g->file == q->f->file && g->line == q->f->line;
}

static int by_total(const void *a, const void *b)
{
    const stall_group *x = a, *y = b;
    if (x->total_ns != y->total_ns)
        return x->total_ns < y->total_ns ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return (x->longest > y->longest) - (x->longest < y->longest);
}

size_t stall_group_by_culprit(const stall_event *events, const uint32_t *idx, size_t n,
                              stall_group **out)
{
    *out = NULL;
    if (!events || n == 0)
        return 0;
    stall_group *g = calloc(n, sizeof(*g));
    hmap map = {0};
    if (!g || hmap_init(&map, 2 * n) < 0) {
        free(g);
        return 0;
    }
    size_t ng = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t i = idx ? idx[k] : (uint32_t)k;
        const stall_event *e = &events[i];
        uint32_t h = hash32(hash_combine(hash_combine((uint64_t)(uintptr_t)e->culprit.name,
                                                      (uint64_t)(uintptr_t)e->culprit.file),
                                         (uint64_t)(uint32_t)e->culprit.line));
        group_query q = {g, &e->culprit};
        uint32_t at = hmap_find(&map, h, group_is, &q);
        if (at == HMAP_NONE) {
            if (hmap_insert(&map, h, (uint32_t)ng) < 0) {
                free(g);
                hmap_free(&map);
                return 0;
            }
            at = (uint32_t)ng++;
            g[at].culprit = e->culprit;
            g[at].longest = i;
        }
        stall_group *s = &g[at];
        uint64_t d = e->end_ns > e->start_ns ? e->end_ns - e->start_ns : 0;
        s->count++;
        s->total_ns += d;
        if (d > s->max_ns) {
            s->max_ns = d;
            s->longest = i;
        }
        if (e->impact > s->worst_impact)
            s->worst_impact = e->impact;
        s->clipped += e->clipped;
    }
    hmap_free(&map);
    qsort(g, ng, sizeof(*g), by_total);
    *out = g;
    return ng;
}
