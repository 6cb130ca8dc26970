#include "memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

int mem_init(mem *m, target_src src)
{
    memset(m, 0, sizeof(*m));
    m->src = src;
    return pagecache_init(&m->cache, src, MEM_CACHE_PAGES, 1);
}

void mem_free(mem *m)
{
    pagecache_free(&m->cache);
}

void mem_begin_sample(mem *m)
{
    pagecache_forget(&m->cache);
}

ssize_t mem_read_direct(mem *m, uint64_t addr, void *dst, size_t len)
{
    struct iovec local = {dst, len};
    struct iovec remote = {(void *)(uintptr_t)addr, len};
    m->stats.syscalls++;
    ssize_t n = target_src_readv(&m->src, &local, 1, &remote);
    if (n < 0) {
        m->stats.failures++;
        return -1;
    }
    m->stats.bytes += (uint64_t)n;
    return n;
}

ssize_t mem_readv(mem *m, const uint64_t *addrs, void *const *dsts, const size_t *lens, size_t n)
{
    enum { BATCH = MEM_READV_BATCH };
    ssize_t total = 0;
    for (size_t i = 0; i < n; i += BATCH) {
        struct iovec local[BATCH], remote[BATCH];
        size_t k = n - i < BATCH ? n - i : BATCH;
        size_t want = 0;
        for (size_t j = 0; j < k; j++) {
            local[j].iov_base = dsts[i + j];
            local[j].iov_len = lens[i + j];
            remote[j].iov_base = (void *)(uintptr_t)addrs[i + j];
            remote[j].iov_len = lens[i + j];
            want += lens[i + j];
        }
        m->stats.syscalls++;
        ssize_t got = target_src_readv(&m->src, local, k, remote);
        if (got < 0) {
            m->stats.failures++;
            return total ? total : -1;
        }
        m->stats.bytes += (uint64_t)got;
        total += got;
        if ((size_t)got != want)
            break;
    }
    return total;
}

int mem_read(mem *m, uint64_t addr, void *dst, size_t len)
{
    if (len == 0)
        return 0;
    if (addr + len < addr || !mem_ptr_ok(addr, false)) {
        errno = EFAULT;
        return -1;
    }
    /* Large reads bypass the cache: they are rarely re-read and would evict useful pages. */
    if (len > 2 * MEM_PAGE_SIZE) {
        ssize_t n = mem_read_direct(m, addr, dst, len);
        if (n != (ssize_t)len) {
            if (n >= 0)
                errno = EFAULT;
            return -1;
        }
        return 0;
    }
    return pagecache_read(&m->cache, addr, dst, len);
}
