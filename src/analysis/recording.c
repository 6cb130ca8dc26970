#include "recording.h"

#include "grow.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

void recording_free(recording *r)
{
    for (size_t i = 0; i < r->nfunctions; i++) {
        free(r->functions[i].name);
        free(r->functions[i].file);
    }
    for (size_t i = 0; i < r->nculprits; i++) {
        free(r->culprits[i].function);
        free(r->culprits[i].file);
    }
    free(r->functions);
    free(r->culprits);
    free(r->nodes);
    hmap_free(&r->node_map);
    free(r->path);
    memset(r, 0, sizeof(*r));
}

typedef struct node_query {
    const recording *r;
    uint32_t parent, fn;
} node_query;

static bool node_is(const void *ctx, uint32_t idx)
{
    const node_query *q = ctx;
    return q->r->nodes[idx].parent == q->parent && q->r->nodes[idx].fn == q->fn;
}

/* The child fn of parent, made on first use; REC_ROOT when the tree is full. */
static uint32_t child(recording *r, uint32_t parent, uint32_t fn)
{
    node_query q = {r, parent, fn};
    uint32_t h = hash32(hash_combine(parent, fn));
    uint32_t i = hmap_find(&r->node_map, h, node_is, &q);
    if (i != HMAP_NONE)
        return i;
    if (r->nnodes >= REC_MAX_NODES || (!r->node_map.cap && hmap_init(&r->node_map, 1024) < 0))
        return REC_ROOT;
    if (!grow_array((void **)&r->nodes, &r->cap_nodes, r->nnodes + 1, sizeof(*r->nodes), 1024,
                    REC_MAX_NODES))
        return REC_ROOT;
    if (hmap_insert(&r->node_map, h, (uint32_t)r->nnodes) < 0)
        return REC_ROOT;
    r->nodes[r->nnodes] = (rec_node){parent, fn, 0, 0};
    return (uint32_t)r->nnodes++;
}

void recording_tree_add(recording *r, const uint32_t *fns, size_t n, double w)
{
    uint32_t at = REC_ROOT;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = child(r, at, fns[i]);
        if (c == REC_ROOT) {
            r->tree_truncated = true;
            return;
        }
        r->nodes[c].total_s += w;
        if (i + 1 == n)
            r->nodes[c].self_s += w;
        at = c;
    }
}
