/* What the two unwinder implementations share (internal to unwinders/). */
#ifndef APROF_UNWINDER_IMPL_H
#define APROF_UNWINDER_IMPL_H

#include "pagecache.h"
#include "unwinder.h"

#include <stddef.h>
#include <sys/user.h>

#define UNW_PAGE_SLOTS 1024u /* cache of read-only file pages (4 MB) */

typedef struct unwinder_ops {
    const char *name;
    void *(*create)(unwinder *u);
    void (*destroy)(void *impl);
    /* Unwind u->tid (registers in u->regs) into frames; returns the count, sets *complete. */
    int (*unwind)(void *impl, unwinder *u, unwind_frame *frames, uint32_t max, bool *complete);
} unwinder_ops;

struct unwinder {
    unwinder_kind kind;
    pid_t pid;
    target_src src;        /* a core: registers and memory from it */
    native_symbols *ns;
    const unwinder_ops *ops;
    void *impl;
    uint64_t gen;                  /* native_symbols generation the caches were built for */
    /* the thread being unwound */
    pid_t tid;
    struct user_regs_struct regs;
    /* copy of its stack: [stk_base, stk_base + stk_len), within [stk_lo, stk_hi) */
    uint8_t *stk;
    size_t stk_len, stk_cap;
    uint64_t stk_base, stk_lo, stk_hi;
    bool stk_full;                 /* nothing more can be read above stk_base + stk_len */
    pagecache pages;               /* read-only file pages (UNW_PAGE_SLOTS) */
    unwinder_stats stats;
};

/* Read len bytes of the target at addr through the caches. 0, or -1 when unreadable. */
int unwinder_read(unwinder *u, uint64_t addr, void *dst, size_t len);

/* The register file in DWARF numbering (x86-64: rax rdx rcx rbx rsi rdi rbp rsp r8-r15, then
 * the return address column 16 = rip), which is also libunwind's UNW_X86_64_* numbering. */
#define UNW_DWARF_NREGS 17
void unwinder_dwarf_regs(const struct user_regs_struct *r, uint64_t out[UNW_DWARF_NREGS]);

extern const unwinder_ops unwind_libunwind_ops;
extern const unwinder_ops unwind_libdw_ops;

#endif
