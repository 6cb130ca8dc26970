/* Suspending a target's threads for the duration of one sample (--blocking, --native).
 *
 * Threads are attached with PTRACE_SEIZE and stopped with PTRACE_INTERRUPT, then detached after
 * the sample. SEIZE (unlike PTRACE_ATTACH) sends no SIGSTOP, so if aprof dies while threads are
 * stopped - even by SIGKILL - the kernel detaches them and they simply run on. A signal that
 * arrives for the target while it is stopped is handed back on detach.
 *
 * To keep the pause short, every thread is seized and interrupted first and only then waited
 * for, so they stop in parallel. A thread that does not stop within FREEZER_STOP_TIMEOUT_NS
 * (uninterruptible sleep) is left out of the sample; it stays attached until it stops, and is
 * detached by the next freezer call (or freezer_free), so no thread is ever left stopped.
 * Threads that exit meanwhile are skipped; their exit is collected, except the exit of our own
 * child's main thread, which is left for its parent code to reap.
 */
#ifndef APROF_FREEZER_H
#define APROF_FREEZER_H

#include "proc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FREEZER_STOP_TIMEOUT_NS 100000000ull /* 100 ms */

typedef struct frozen_thread {
    pid_t tid;
    int pending_signal; /* to re-inject on detach */
    char state;         /* /proc run state just before it was stopped (with `states`), else 0 */
    bool released;      /* already let go (freezer_release) */
} frozen_thread;

typedef struct freezer {
    pid_t pid;
    frozen_thread *threads; /* the stopped threads, sorted by tid */
    size_t n, cap;
    int last_errno;         /* EPERM when ptrace is not allowed, ESRCH process gone */
    proc_stat_cache *states;/* optional: read each thread's run state right before stopping it */
    /* optional: threads for which this returns true are not stopped */
    bool (*skip)(void *ud, pid_t tid);
    void *skip_ud;
    bool target_is_child;   /* the target is our child: never reap its main thread's exit */
    /* optional: called once every thread has been sent its interrupt, before waiting for the
     * stops (the sampler leaves real-time scheduling there: see sampler.c) */
    void (*on_interrupted)(void *ud);
    void *on_interrupted_ud;
    pid_t *lagging;         /* seized threads that did not stop in time */
    size_t nlagging, cap_lagging;
    uint64_t stop_ns;       /* how long the last freezer_stop took */
    uint64_t first_stop_ns; /* CLOCK_MONOTONIC of its first PTRACE_INTERRUPT */
    uint64_t calls;
} freezer;

void freezer_init(freezer *f, pid_t pid);
void freezer_free(freezer *f);

/* Stop every thread of the process (but those `skip` says not to). Returns the number stopped,
 * -1 if none could be (errno: EPERM no permission, ESRCH process gone). Threads that exit
 * meanwhile are skipped. */
int freezer_stop(freezer *f);

/* Stop the one thread tid (nothing else), waiting at most timeout_ns for it. 0 when it is
 * stopped (freezer_resume lets it go), else -1: errno EPERM/ESRCH, or EAGAIN when it did not
 * stop in time (it stays seized and is let go once it stops, as with freezer_stop). */
int freezer_stop_thread(freezer *f, pid_t tid, uint64_t timeout_ns);

/* Let every stopped thread run again. Always safe to call. */
void freezer_resume(freezer *f);

/* Detach the threads that did not stop in time (lagging) and have stopped since. Every
 * freezer call does this first; a caller that may not call the freezer again for long (the
 * default mode stops a thread only when its stack tears, and a stopped thread never tears) must
 * call it regularly, or such a thread stays stopped. Cheap when nothing lags. */
void freezer_settle(freezer *f);

/* Let one stopped thread run again now (the others stay stopped until freezer_resume). */
void freezer_release(freezer *f, pid_t tid);

/* The stopped thread tid, or NULL when it is not stopped. */
const frozen_thread *freezer_find(const freezer *f, pid_t tid);

/* Can we ptrace the process at all? Seizes and releases its main thread without stopping it.
 * 0, or an errno (EPERM, ESRCH). */
int freezer_probe(pid_t pid);

#endif
