/* One batched read of many remote ranges: a builder for a single mem_readv call.
 *
 * Ranges are added in order (rb_add returns each one's index), read with one process_vm_readv
 * (rb_read), then asked about one by one (rb_copied). The kernel copies the ranges in order and
 * stops at the first it cannot read, so the copied ranges are always a prefix: a range copied
 * completely means every range before it was too.
 *
 * Fixed capacity, no allocation: a batch lives on the caller's stack (hot path).
 */
#ifndef APROF_READ_BATCH_H
#define APROF_READ_BATCH_H

#include "memory.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Most ranges in one batch: sized for the stack walker's snapshot read (7 fixed ranges, the
 * PREFETCH_MAX (62) prefetched frames copied twice and the PREFETCH_CODES (24) code
 * fingerprints). Within mem_readv's ranges per syscall, so that a batch is one syscall. */
#define READ_BATCH_MAX 155
_Static_assert(READ_BATCH_MAX <= MEM_READV_BATCH, "a batch is read with one syscall");

/* The index of a range never added: rb_copied() says false for it. */
#define READ_BATCH_NONE SIZE_MAX

typedef struct read_batch {
    size_t n;      /* ranges added */
    size_t copied; /* after rb_read: how many ranges, from the first, were copied completely */
    uint64_t addrs[READ_BATCH_MAX];
    void *dsts[READ_BATCH_MAX];
    size_t lens[READ_BATCH_MAX];
} read_batch;

static inline void rb_init(read_batch *b)
{
    b->n = 0;
    b->copied = 0;
}

/* The index the next rb_add will return: ranges are numbered 0, 1, 2... in the order added. */
static inline size_t rb_next(const read_batch *b)
{
    return b->n;
}

/* Add the range [addr, addr + len) to be copied into dst. Returns its index, or READ_BATCH_NONE
 * when the batch is full (the range is then never read and never reported copied). */
static inline size_t rb_add(read_batch *b, uint64_t addr, void *dst, size_t len)
{
    if (b->n >= READ_BATCH_MAX)
        return READ_BATCH_NONE;
    b->addrs[b->n] = addr;
    b->dsts[b->n] = dst;
    b->lens[b->n] = len;
    return b->n++;
}

/* Read every range added, in order, with one mem_readv. Returns the bytes read (the kernel stops
 * at the first range it cannot read), or -1; either way rb_copied() then tells what arrived. */
ssize_t rb_read(read_batch *b, mem *m);

/* Was range i copied completely by rb_read (and so every range before it)? */
static inline bool rb_copied(const read_batch *b, size_t i)
{
    return i < b->copied;
}

/* Of the `count` ranges added one after another from index `first`, how many were copied
 * completely (they are the first ones of the run). */
static inline size_t rb_copied_count(const read_batch *b, size_t first, size_t count)
{
    if (first >= b->copied)
        return 0;
    return b->copied - first < count ? b->copied - first : count;
}

#endif
