/* The one hash table of aprof: open addressing with linear probing, mapping a 32-bit hash to
 * the index of a record the caller keeps in its own array. The caller says what equal means
 * (hmap_find's eq, inlined where it is a known static function), so the same table serves
 * frames, stack nodes, tasks, threads... Records are never removed one by one: a table is
 * cleared or freed whole. The load stays under 3/4, so a probe always ends at an empty slot. */
#ifndef APROF_HMAP_H
#define APROF_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HMAP_NONE UINT32_MAX

typedef struct hmap_slot {
    uint32_t hash;
    uint32_t idx1; /* record index + 1; 0: empty */
} hmap_slot;

typedef struct hmap {
    hmap_slot *slots;
    size_t cap; /* a power of two, 0 before hmap_init */
    size_t count;
} hmap;

/* cap: initial slots, rounded up to a power of two (at least 8). 0, or -1 out of memory. */
int hmap_init(hmap *m, size_t cap);
void hmap_free(hmap *m);
/* Forget every record, keeping the slots. */
void hmap_clear(hmap *m);
/* Record idx under hash h (no check for an equal record: look it up first). 0, or -1 when
 * out of memory (the table is unchanged then). */
int hmap_insert(hmap *m, uint32_t hash, uint32_t idx);

/* The index of the record under hash h for which eq(ctx, index) holds; HMAP_NONE if none. */
static inline uint32_t hmap_find(const hmap *m, uint32_t h,
                                 bool (*eq)(const void *ctx, uint32_t idx), const void *ctx)
{
    if (!m->cap)
        return HMAP_NONE;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const hmap_slot *s = &m->slots[i];
        if (!s->idx1)
            return HMAP_NONE;
        if (s->hash == h && eq(ctx, s->idx1 - 1))
            return s->idx1 - 1;
    }
}

/* Make the record for which eq holds under hash h be idx from now on (a key whose record moved
 * to a newer one), or insert idx when there is none. 0, or -1 when out of memory. */
static inline int hmap_set(hmap *m, uint32_t h, bool (*eq)(const void *ctx, uint32_t idx),
                           const void *ctx, uint32_t idx)
{
    if (m->cap) {
        size_t mask = m->cap - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
            hmap_slot *s = &m->slots[i];
            if (!s->idx1)
                break;
            if (s->hash == h && eq(ctx, s->idx1 - 1)) {
                s->idx1 = idx + 1;
                return 0;
            }
        }
    }
    return hmap_insert(m, h, idx);
}

#endif
