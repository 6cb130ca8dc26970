/* The unwinder front end: implementation choice, the thread's registers, and the cached reader
 * of the target's memory both implementations use. */
#include "unwinder_impl.h"

#include "core_file.h"
#include "grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#define STACK_FIRST_READ (16u * 1024u)
#define STACK_MAX_COPY (8u << 20)

bool unwinder_parse_kind(const char *name, unwinder_kind *out)
{
    if (strcmp(name, "libunwind") == 0) {
        *out = UNWINDER_LIBUNWIND;
        return true;
    }
    if (strcmp(name, "dw") == 0 || strcmp(name, "libdw") == 0) {
        *out = UNWINDER_DW;
        return true;
    }
    return false;
}

const char *unwinder_kind_name(unwinder_kind kind)
{
    return kind == UNWINDER_DW ? "dw" : "libunwind";
}

unwinder *unwinder_new(unwinder_kind kind, target_src src, native_symbols *ns)
{
    unwinder *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->kind = kind;
    u->pid = src.pid;
    u->src = src;
    u->ns = ns;
    u->ops = kind == UNWINDER_DW ? &unwind_libdw_ops : &unwind_libunwind_ops;
    u->gen = native_symbols_generation(ns);
    if (pagecache_init(&u->pages, src, UNW_PAGE_SLOTS, 1) != 0) {
        free(u);
        return NULL;
    }
    if (!(u->impl = u->ops->create(u))) {
        pagecache_free(&u->pages);
        free(u);
        return NULL;
    }
    return u;
}

void unwinder_free(unwinder *u)
{
    if (!u)
        return;
    u->ops->destroy(u->impl);
    pagecache_free(&u->pages);
    free(u->stk);
    free(u);
}

void unwinder_begin_sample(unwinder *u)
{
    u->stk_len = 0;
    u->stk_base = 0;
    u->tid = 0;
}

const unwinder_stats *unwinder_get_stats(unwinder *u)
{
    u->stats.page_hits = u->pages.stats.hits;
    u->stats.page_misses = u->pages.stats.misses;
    return &u->stats;
}

unwinder_kind unwinder_get_kind(const unwinder *u)
{
    return u->kind;
}

void unwinder_dwarf_regs(const struct user_regs_struct *r, uint64_t out[UNW_DWARF_NREGS])
{
    const uint64_t v[UNW_DWARF_NREGS] = {r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi,
                                         r->rbp, r->rsp, r->r8,  r->r9,  r->r10, r->r11,
                                         r->r12, r->r13, r->r14, r->r15, r->rip};
    memcpy(out, v, sizeof(v));
}

/* ------------------------------------------------------------------ memory */

static ssize_t read_remote(unwinder *u, uint64_t addr, void *dst, size_t len)
{
    struct iovec local = {dst, len};
    struct iovec remote = {(void *)(uintptr_t)addr, len};
    u->stats.read_syscalls++;
    return target_src_readv(&u->src, &local, 1, &remote);
}

/* Make the stack copy cover [addr, addr + len). The copy starts at the page of the stack
 * pointer and grows upwards (towards older frames) in doubling chunks, so a whole stack is
 * usually copied in two or three system calls. */
static int stack_read(unwinder *u, uint64_t addr, void *dst, size_t len)
{
    if (u->stk_len && addr >= u->stk_base && addr + len <= u->stk_base + u->stk_len) {
        memcpy(dst, u->stk + (addr - u->stk_base), len);
        return 0;
    }
    if (!u->stk_len) {
        uint64_t sp = u->regs.rsp;
        uint64_t base = (addr < sp ? addr : sp) & ~(uint64_t)(PAGECACHE_PAGE - 1);
        if (base < u->stk_lo)
            base = u->stk_lo;
        u->stk_base = base;
        u->stk_full = false;
    }
    if (addr < u->stk_base || u->stk_full)
        return -1;
    uint64_t need_end = addr + len;
    uint64_t have_end = u->stk_base + u->stk_len;
    size_t want = u->stk_len ? u->stk_len : STACK_FIRST_READ;
    uint64_t new_end = have_end + want;
    if (new_end < need_end)
        new_end = (need_end + PAGECACHE_PAGE - 1) & ~(uint64_t)(PAGECACHE_PAGE - 1);
    if (new_end > u->stk_hi)
        new_end = u->stk_hi;
    if (new_end - u->stk_base > STACK_MAX_COPY)
        new_end = u->stk_base + STACK_MAX_COPY;
    if (new_end < need_end)
        return -1;
    size_t total = (size_t)(new_end - u->stk_base);
    if (!grow_array((void **)&u->stk, &u->stk_cap, total, 1, STACK_FIRST_READ, SIZE_MAX))
        return -1;
    ssize_t got = read_remote(u, have_end, u->stk + u->stk_len, (size_t)(new_end - have_end));
    if (got <= 0) {
        u->stk_full = true;
        return -1;
    }
    u->stk_len += (size_t)got;
    if ((size_t)got < new_end - have_end)
        u->stk_full = true;
    if (addr + len > u->stk_base + u->stk_len)
        return -1;
    memcpy(dst, u->stk + (addr - u->stk_base), len);
    return 0;
}

int unwinder_read(unwinder *u, uint64_t addr, void *dst, size_t len)
{
    if (len == 0)
        return 0;
    if (addr < 0x1000 || addr + len < addr)
        return -1;
    /* Fast path: the stack copy. */
    if (u->stk_len && addr >= u->stk_base && addr + len <= u->stk_base + u->stk_len) {
        memcpy(dst, u->stk + (addr - u->stk_base), len);
        return 0;
    }
    if (addr >= u->stk_lo && addr + len <= u->stk_hi)
        return stack_read(u, addr, dst, len);
    /* Read-only file mappings (code, .eh_frame) do not change: cache their pages (until the
     * mappings change: unwinder_unwind forgets them then). */
    const uint8_t *hit = pagecache_peek(&u->pages, addr, len);
    if (hit) {
        memcpy(dst, hit, len);
        return 0;
    }
    const native_map *m = native_symbols_map_at(u->ns, addr);
    if (m && m->path && !(m->prot & NATIVE_PROT_W) && addr + len <= m->end)
        return pagecache_read(&u->pages, addr, dst, len);
    ssize_t got = read_remote(u, addr, dst, len);
    return got == (ssize_t)len ? 0 : -1;
}

/* ------------------------------------------------------------------ unwinding */

/* A core's NT_PRSTATUS registers are the kernel's user_regs_struct, in its order. */
_Static_assert(sizeof(((core_thread *)0)->regs) == sizeof(struct user_regs_struct),
               "core registers are a user_regs_struct");

static bool read_registers(unwinder *u, pid_t tid)
{
    if (!u->src.core)
        return ptrace(PTRACE_GETREGS, tid, NULL, &u->regs) == 0;
    const core_thread *ct = core_thread_of(u->src.core, tid);
    if (!ct) {
        errno = ESRCH;
        return false;
    }
    memcpy(&u->regs, ct->regs, sizeof(u->regs));
    return true;
}

int unwinder_unwind(unwinder *u, pid_t tid, unwind_frame *frames, uint32_t max, unwind_info *info)
{
    info->complete = false;
    info->syscall = -1;
    u->stats.threads++;
    if (!read_registers(u, tid)) {
        u->stats.failures++;
        return -1;
    }
    info->syscall = (long)u->regs.orig_rax;
    uint64_t gen = native_symbols_generation(u->ns);
    if (gen != u->gen) {
        u->gen = gen; /* the mappings changed: cached pages may be other code now */
        pagecache_forget(&u->pages);
    }
    u->tid = tid;
    u->stk_len = 0;
    u->stk_base = 0;
    /* Bounds of the stack copy: the mapping holding the stack pointer (a thread's stack is one
     * mapping; its guard page below is a separate one). */
    const native_map *sm = native_symbols_map_find(u->ns, u->regs.rsp);
    if (sm && !sm->path) {
        u->stk_lo = sm->start;
        u->stk_hi = sm->end;
    } else {
        u->stk_lo = u->regs.rsp & ~(uint64_t)(PAGECACHE_PAGE - 1);
        u->stk_hi = u->stk_lo + STACK_FIRST_READ; /* unknown: copy a little, read the rest */
    }
    bool complete = false;
    int n = max ? u->ops->unwind(u->impl, u, frames, max, &complete) : 0;
    if (n < 0) {
        u->stats.failures++;
        return -1;
    }
    info->complete = complete;
    if (!complete)
        u->stats.incomplete++;
    u->stats.frames += (uint64_t)n;
    return n;
}
