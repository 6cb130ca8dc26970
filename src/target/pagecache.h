/* The one cache of remote memory pages. Direct-mapped, pages allocated as first used; a miss
 * reads the aligned group of `group` pages around the page in one process_vm_readv (a snapshot
 * of thousands of small objects reads them a few pages at a time). pagecache_forget() drops
 * everything at once (a new sample, a new task snapshot, mappings that changed), so bytes never
 * outlive the moment they stand for.
 *
 * Three users: mem_read (each sample's small reads, 128 pages), the asyncio reader (a
 * snapshot's objects, 4096 pages in groups of 4) and the native unwinders (read-only file
 * pages: code and unwind tables, 1024 pages). */
#ifndef APROF_PAGECACHE_H
#define APROF_PAGECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "target_src.h"

#define PAGECACHE_PAGE 4096u

typedef struct pagecache_page {
    uint64_t base;  /* remote page address */
    uint64_t epoch; /* valid while equal to the cache's */
    uint32_t len;   /* bytes valid from base (a page next to an unmapped one may be short) */
    uint8_t data[PAGECACHE_PAGE];
} pagecache_page;

typedef struct pagecache_stats {
    uint64_t hits, misses, syscalls, bytes, failures;
} pagecache_stats;

typedef struct pagecache {
    target_src src;
    uint32_t slots;  /* a power of two, at least group */
    uint32_t group;  /* pages read per miss, a power of two */
    uint64_t epoch;
    pagecache_page **pages; /* slots entries, NULL until used */
    pagecache_stats stats;
} pagecache;

/* 0, or -1 (ENOMEM). slots is rounded up to a power of two (a mask, not a division, picks a
 * page's slot on the hot path). */
int pagecache_init(pagecache *c, target_src src, uint32_t slots, uint32_t group);
void pagecache_free(pagecache *c);
/* Forget every page: the next reads see the target as it is now. */
void pagecache_forget(pagecache *c);
/* Copy len bytes at addr through the cache. 0, or -1 when any byte cannot be read. */
int pagecache_read(pagecache *c, uint64_t addr, void *dst, size_t len);

/* The fast path: the cached bytes at addr when [addr, addr + len) lies in one page that is
 * cached and valid, else NULL (then call pagecache_read). */
static inline const uint8_t *pagecache_peek(pagecache *c, uint64_t addr, size_t len)
{
    size_t off = (size_t)(addr & (PAGECACHE_PAGE - 1));
    if (off + len > PAGECACHE_PAGE)
        return NULL;
    const pagecache_page *p = c->pages[(addr / PAGECACHE_PAGE) & (c->slots - 1)];
    if (!p || p->epoch != c->epoch || p->base != addr - off || p->len < off + len)
        return NULL;
    c->stats.hits++;
    return p->data + off;
}

#endif
