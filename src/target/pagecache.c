#include "pagecache.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>

#define MAX_GROUP 16u

int pagecache_init(pagecache *c, target_src src, uint32_t slots, uint32_t group)
{
    memset(c, 0, sizeof(*c));
    /* Groups save process_vm_readv calls; a core is read with memcpy, and page by page only
     * the pages read are touched (tools/core_shrink.c keeps just those). */
    if (group == 0 || group > MAX_GROUP || (group & (group - 1)) || src.core)
        group = 1;
    uint32_t n = group;
    while (n < slots)
        n *= 2;
    c->src = src;
    c->slots = n;
    c->group = group;
    c->epoch = 1;
    c->pages = calloc(c->slots, sizeof(*c->pages));
    if (!c->pages) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

void pagecache_free(pagecache *c)
{
    if (c->pages)
        for (uint32_t i = 0; i < c->slots; i++)
            free(c->pages[i]);
    free(c->pages);
    c->pages = NULL;
}

void pagecache_forget(pagecache *c)
{
    c->epoch++;
}

static pagecache_page *slot_page(pagecache *c, uint32_t slot)
{
    if (!c->pages[slot])
        c->pages[slot] = malloc(sizeof(pagecache_page));
    return c->pages[slot];
}

/* One read (process_vm_readv for a live target) of n pages from remote address at into the cache's pages starting at
 * slot; bytes copied, or 0. */
static uint64_t read_pages(pagecache *c, uint64_t at, uint32_t slot, uint32_t n)
{
    struct iovec local[MAX_GROUP] = {{0}}, remote[MAX_GROUP] = {{0}};
    for (uint32_t k = 0; k < n; k++) {
        local[k] = (struct iovec){c->pages[slot + k]->data, PAGECACHE_PAGE};
        remote[k] = (struct iovec){(void *)(uintptr_t)(at + (uint64_t)k * PAGECACHE_PAGE),
                                   PAGECACHE_PAGE};
    }
    c->stats.syscalls++;
    ssize_t got = target_src_readv(&c->src, local, n, remote);
    if (got < 0) {
        c->stats.failures++;
        return 0;
    }
    c->stats.bytes += (uint64_t)got;
    if ((uint64_t)got < (uint64_t)n * PAGECACHE_PAGE)
        errno = EFAULT; /* stopped at an unreadable byte */
    return (uint64_t)got;
}

/* Read the aligned group of pages holding base (the kernel copies in order and stops at the
 * first byte it cannot read); the page at base (short at the end of a mapping), or NULL with
 * errno set. */
static const pagecache_page *load(pagecache *c, uint64_t base)
{
    c->stats.misses++;
    uint64_t gbase = base & ~((uint64_t)c->group * PAGECACHE_PAGE - 1);
    uint32_t gslot = (uint32_t)((gbase / PAGECACHE_PAGE) & (c->slots - 1));
    for (uint32_t k = 0; k < c->group; k++) {
        if (!slot_page(c, gslot + k)) {
            errno = ENOMEM;
            return NULL;
        }
        c->pages[gslot + k]->epoch = 0;
    }
    uint64_t got = read_pages(c, gbase, gslot, c->group);
    uint64_t at = base - gbase; /* where our page starts in the group */
    if (got < at && c->group > 1) {
        /* an earlier page of the group stopped the copy: ours on its own */
        gbase = base;
        gslot = (uint32_t)((base / PAGECACHE_PAGE) & (c->slots - 1));
        at = 0;
        got = read_pages(c, base, gslot, 1);
    }
    for (uint32_t k = 0; k < c->group && (uint64_t)k * PAGECACHE_PAGE < got; k++) {
        pagecache_page *q = c->pages[gslot + k];
        uint64_t have = got - (uint64_t)k * PAGECACHE_PAGE;
        q->base = gbase + (uint64_t)k * PAGECACHE_PAGE;
        q->len = have < PAGECACHE_PAGE ? (uint32_t)have : PAGECACHE_PAGE;
        q->epoch = c->epoch;
    }
    const pagecache_page *p = c->pages[(base / PAGECACHE_PAGE) & (c->slots - 1)];
    /* not reached: errno from the read (EFAULT, or ESRCH when the process is gone) */
    return got > at ? p : NULL;
}

int pagecache_read(pagecache *c, uint64_t addr, void *dst, size_t len)
{
    if (addr + len < addr) {
        errno = EFAULT;
        return -1;
    }
    uint8_t *out = dst;
    while (len > 0) {
        uint64_t base = addr & ~(uint64_t)(PAGECACHE_PAGE - 1);
        size_t off = (size_t)(addr - base);
        size_t chunk = PAGECACHE_PAGE - off < len ? PAGECACHE_PAGE - off : len;
        const uint8_t *hit = pagecache_peek(c, addr, chunk);
        if (!hit) {
            const pagecache_page *p = load(c, base);
            if (!p)
                return -1; /* errno from the read: EFAULT, ESRCH (gone), EPERM; or ENOMEM */
            if (p->len < off + chunk) {
                errno = EFAULT;
                return -1;
            }
            hit = p->data + off;
        }
        memcpy(out, hit, chunk);
        out += chunk;
        addr += chunk;
        len -= chunk;
    }
    return 0;
}
