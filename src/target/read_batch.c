/* One batched read of many remote ranges (read_batch.h): the read itself, and which ranges it
 * copied completely. */
#include "read_batch.h"

ssize_t rb_read(read_batch *b, mem *m)
{
    ssize_t got = mem_readv(m, b->addrs, b->dsts, b->lens, b->n);
    b->copied = 0;
    if (got < 0)
        return got;
    /* The kernel copies the ranges in order and stops at the first it cannot read. */
    size_t done = 0;
    while (b->copied < b->n && done + b->lens[b->copied] <= (size_t)got)
        done += b->lens[b->copied++];
    return got;
}
