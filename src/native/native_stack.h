/* One native sample (--native): stop the target's threads, unwind their native stacks, read
 * their Python stacks, let them run again, then symbolise and merge (native_merge.h).
 *
 * Only what must see a consistent target happens while it is stopped: the Python stack walk
 * (all threads stopped, so that they agree), then per thread its registers and the stack memory
 * its unwinder needs; each thread is let go as soon as it is unwound, threads without Python
 * right after the walk. Symbolisation and merging happen after the threads run again.
 *
 * A thread asleep in a system call is stopped once per place it sleeps, and its native frames
 * are reused while it sleeps there (native_sleepers.h): stopping it would end its wait early.
 *
 * Threads that had no Python thread state in a sample (pure C threads, like a BLAS pool) are not
 * stopped in the following samples; the list is rebuilt from a full stop every
 * NATIVE_FULL_STOP_NS, so a C thread that starts running Python is stopped again soon.
 */
#ifndef APROF_NATIVE_STACK_H
#define APROF_NATIVE_STACK_H

#include "freezer.h"
#include "native_merge.h"
#include "native_sleepers.h"
#include "native_symbols.h"
#include "proc.h"
#include "sample.h"
#include "strtab.h"
#include "unwinder.h"

#include <stdbool.h>
#include <stdint.h>

#define NATIVE_MAX_FRAMES 1024 /* native frames unwound per thread */
#define NATIVE_FULL_STOP_NS 1000000000ull

typedef struct native_stack_stats {
    uint64_t samples;           /* native_stack_sample calls */
    uint64_t freeze_failures;   /* samples taken without stopping the target */
    uint64_t thread_stacks;     /* Python threads given a native stack */
    uint64_t merged;            /* ... merged in call order */
    uint64_t unmerged;          /* ... where the two stacks disagreed (MERGE_UNMERGED) */
    uint64_t not_stopped;       /* Python threads that were not stopped (new, or exiting) */
    uint64_t unwind_failures;   /* threads whose registers could not be read */
    uint64_t stopped_ns_total;  /* time the target spent stopped, summed over samples */
    uint64_t stopped_ns_max;
    uint64_t threads_skipped;   /* thread stops saved: threads known to have no Python */
    uint64_t sleepers_woke;     /* left running asleep in a syscall, but woke during the read:
                                 * Python frames only that sample */
} native_stack_stats;

/* Reads the Python stacks into out while the target is stopped; returns the thread count or -1
 * (errno). */
typedef int (*native_python_reader)(void *ud, aprof_sample *out);

typedef struct native_stack {
    pid_t pid;
    target_src src;             /* a core file: nothing to stop, registers from the core */
    strtab *st;
    native_symbols *syms;
    unwinder *uw;
    freezer fz;
    /* per-sample unwinding results, one slot per thread of the sample */
    unwind_frame *frames;       /* every thread's frames, one after the other */
    size_t used_frames, cap_frames;
    struct native_slot {
        int32_t n;              /* frames; -1 unwinding failed, -2 the thread was not stopped,
                                 * -3 left running asleep and woke during the read */
        size_t first;           /* index of its first frame in frames */
        bool complete;
        long syscall;
    } *slots;
    uint32_t cap_slots;
    /* merge scratch */
    merge_native *mn;
    aprof_frame *mframes;
    uint64_t *mowners;
    int32_t *pyidx;
    uint32_t cap_merge;
    aprof_frame unmerged_mark;
    pid_t *no_python;           /* sorted tids of threads without Python (not stopped) */
    size_t n_no_python, cap_no_python;
    uint64_t last_full_stop_ns;
    native_sleepers *sleepers;  /* threads asleep in a syscall: not stopped again */
    proc_stat_cache *states;    /* this sample's run-state reader (NULL: sleepers are stopped) */
    bool full;                  /* this sample stops threads without Python too */
    native_stack_stats stats;
    int last_freeze_errno;
} native_stack;

/* Prepare native sampling of a process, or of a core file. Returns 0, or an errno: EPERM/EACCES
 * when the process may not be ptraced, ESRCH when it is gone, ENOMEM. */
int native_stack_open(native_stack **out, target_src src, strtab *st, unwinder_kind kind);
void native_stack_close(native_stack *ns);
/* --redact: native frames' files under home directories as ~/... (native_symbols.h). */
void native_stack_redact_paths(native_stack *ns);

/* Take one sample. `states`: when non-NULL, each thread's run state is read from /proc right
 * before it is stopped (t->state). Returns what `read_python` returned. Thread samples get
 * their merged stack, t->syscall from their registers, and callback_frame moved along with the
 * frame it indexes. */
int native_stack_sample(native_stack *ns, aprof_sample *out, native_python_reader read_python,
                        void *ud, proc_stat_cache *states);

#endif
