#include "hmap.h"

#include <stdlib.h>
#include <string.h>

int hmap_init(hmap *m, size_t cap)
{
    size_t c = 8;
    while (c < cap)
        c *= 2;
    m->slots = calloc(c, sizeof(*m->slots));
    m->cap = m->slots ? c : 0;
    m->count = 0;
    return m->slots ? 0 : -1;
}

void hmap_free(hmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

void hmap_clear(hmap *m)
{
    if (m->slots)
        memset(m->slots, 0, m->cap * sizeof(*m->slots));
    m->count = 0;
}

static void place(hmap_slot *slots, size_t cap, hmap_slot s)
{
    size_t j = s.hash & (cap - 1);
    while (slots[j].idx1)
        j = (j + 1) & (cap - 1);
    slots[j] = s;
}

int hmap_insert(hmap *m, uint32_t hash, uint32_t idx)
{
    if (!m->cap && hmap_init(m, 8) != 0)
        return -1;
    if ((m->count + 1) * 4 > m->cap * 3) {
        size_t ncap = m->cap * 2;
        hmap_slot *ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].idx1)
                place(ns, ncap, m->slots[i]);
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    place(m->slots, m->cap, (hmap_slot){hash, idx + 1});
    m->count++;
    return 0;
}
