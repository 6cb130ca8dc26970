/* Reading another process's memory with process_vm_readv (or a core file's: target_src.h).
 *
 * All remote memory is hostile: any read may fail (unmapped, freed) or return bytes that were
 * being written at that moment. Callers check every return value; nothing here ever crashes on
 * a bad address.
 *
 * A small per-sample page cache (pagecache.h) turns the many small reads a stack walk makes
 * (frames next to each other in a data-stack chunk, object headers in one arena page) into few
 * syscalls. mem_begin_sample() invalidates it, so values never leak from one sample into the
 * next.
 */
#ifndef APROF_MEMORY_H
#define APROF_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagecache.h"

#define MEM_PAGE_SIZE PAGECACHE_PAGE
#define MEM_CACHE_PAGES 128u

typedef struct mem_stats {
    uint64_t syscalls; /* uncached reads (the cache counts its own) */
    uint64_t bytes;
    uint64_t failures;
} mem_stats;

typedef struct mem {
    target_src src;
    mem_stats stats;
    pagecache cache; /* MEM_CACHE_PAGES pages, one per miss */
} mem;

/* 0 on success, -1 with errno set (ENOMEM only) */
int mem_init(mem *m, target_src src);
void mem_free(mem *m);

/* Forget every cached page: the next reads see the target as it is now. */
void mem_begin_sample(mem *m);

/* Read len bytes at addr through the page cache. 0 on success, -1 if any byte could not be
 * read (errno: EFAULT for bad addresses, ESRCH when the process is gone, EPERM). */
int mem_read(mem *m, uint64_t addr, void *dst, size_t len);

/* One read (process_vm_readv), no cache. Returns bytes read (may be short), or -1. */
ssize_t mem_read_direct(mem *m, uint64_t addr, void *dst, size_t len);

/* Many ranges in one syscall (up to MEM_READV_BATCH; more take one syscall per that many,
 * in order). Returns total bytes read (the kernel stops at the first failing range), or -1. */
#define MEM_READV_BATCH 256 /* well below IOV_MAX (1024) */
ssize_t mem_readv(mem *m, const uint64_t *addrs, void *const *dsts, const size_t *lens, size_t n);

static inline int mem_read_u64(mem *m, uint64_t addr, uint64_t *out) { return mem_read(m, addr, out, 8); }
static inline int mem_read_u32(mem *m, uint64_t addr, uint32_t *out) { return mem_read(m, addr, out, 4); }

/* A plausible user-space pointer on x86-64: non-null, canonical lower half, 8-byte aligned
 * when `aligned` is set. */
static inline bool mem_ptr_ok(uint64_t p, bool aligned)
{
    if (p < 0x1000 || p >= 0x800000000000ull)
        return false;
    return !aligned || (p & 7) == 0;
}

#endif
