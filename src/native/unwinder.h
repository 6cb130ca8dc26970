/* Native stack unwinding of a ptrace-stopped thread of the target, behind one small interface.
 *
 * Two implementations, chosen at run time: libunwind's remote unwinder (default) and libdw's
 * (elfutils). Both read the target through the same cached remote-memory reader (unwinder.c):
 * the thread's stack is copied in a few large process_vm_readv calls per sample, and pages of
 * read-only file mappings (.eh_frame, .eh_frame_hdr) are kept across samples until the target's
 * mappings change. Modules, unwind tables and symbols come from native_symbols.
 *
 * The caller must have the thread stopped (freezer.h) for the whole unwinder_unwind() call. Of
 * a core file (target_src.h) the registers are the ones it saved, the memory its own.
 */
#ifndef APROF_UNWINDER_H
#define APROF_UNWINDER_H

#include "native_symbols.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum unwinder_kind {
    UNWINDER_LIBUNWIND = 0, /* libunwind (remote address space, our accessors) */
    UNWINDER_DW = 1,        /* libdw (elfutils dwfl_attach_state, our callbacks) */
} unwinder_kind;

typedef struct unwind_frame {
    uint64_t pc;
    uint64_t sp;   /* stack pointer in this frame (0 when unknown) */
    bool exact;    /* pc is the instruction executing (innermost or interrupted by a signal),
                    * not a return address: symbolise pc itself, not pc - 1 */
} unwind_frame;

typedef struct unwind_info {
    bool complete;     /* the unwinder reached the outermost frame; false: cut by an error, a
                        * loop or the frame limit */
    long syscall;      /* syscall the thread was in when stopped (orig_rax), -1 in user space */
} unwind_info;

typedef struct unwinder_stats {
    uint64_t threads;      /* unwinder_unwind calls */
    uint64_t failures;     /* calls that returned -1 */
    uint64_t incomplete;   /* calls that stopped before the outermost frame */
    uint64_t frames;
    uint64_t read_syscalls;
    uint64_t page_hits, page_misses;
} unwinder_stats;

typedef struct unwinder unwinder;

/* NULL on failure (out of memory, or the unwinder could not attach its state). */
unwinder *unwinder_new(unwinder_kind kind, target_src src, native_symbols *ns);
void unwinder_free(unwinder *u);

/* "libunwind" / "dw" <-> kind. Returns false for an unknown name. */
bool unwinder_parse_kind(const char *name, unwinder_kind *out);
const char *unwinder_kind_name(unwinder_kind kind);

/* Forget the stack memory copied for the previous sample (call once per sample). */
void unwinder_begin_sample(unwinder *u);

/* Unwind stopped thread tid into frames (innermost first, at most max). Returns the count, or
 * -1 when not even the registers could be read (errno ESRCH: the thread is gone). */
int unwinder_unwind(unwinder *u, pid_t tid, unwind_frame *frames, uint32_t max,
                    unwind_info *info);

const unwinder_stats *unwinder_get_stats(unwinder *u);
unwinder_kind unwinder_get_kind(const unwinder *u);

#endif
