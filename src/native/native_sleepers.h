/* Native stacks of threads asleep in a system call, without stopping them (--native).
 *
 * A thread blocked in a system call cannot change its user stack or registers until it
 * returns, and stopping it ends the call early: an event loop's epoll_wait returns EINTR and is
 * retried with its timeout rounded up to a whole millisecond, so a loop sampled often would idle
 * longer than it does on its own. So a sleeping thread is stopped (and unwound) once per place it
 * sleeps; while it sleeps in the same system call at the same stack and instruction pointers
 * (/proc/TID/syscall), later samples reuse those frames and leave it running. Its CPU time
 * (/proc/TID/schedstat), unchanged before and after the Python read, proves it did not run in
 * between, so its Python stack and the remembered native frames are of one moment.
 */
#ifndef APROF_NATIVE_SLEEPERS_H
#define APROF_NATIVE_SLEEPERS_H

#include "proc.h"
#include "unwinder.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct native_sleepers native_sleepers;

native_sleepers *native_sleepers_new(void);
void native_sleepers_free(native_sleepers *z);

/* A new sample begins: forget the previous one's lists. */
void native_sleepers_begin(native_sleepers *z);

/* Before the stop. True when tid sleeps in a system call whose native stack is remembered: it
 * is to be left running (its CPU time is noted). False otherwise; if it sleeps in a system call,
 * where is noted, so that its frames can be remembered once it is unwound. */
bool native_sleepers_skip(native_sleepers *z, proc_stat_cache *c, pid_t tid);

/* After unwinding a stopped thread: remember its frames if it was found asleep in that same
 * system call before the stop. */
void native_sleepers_remember(native_sleepers *z, pid_t tid, long syscall, const unwind_frame *f,
                              int n, bool complete);

/* After the Python read, for a thread left running by native_sleepers_skip: copies its
 * remembered frames to out (room for max) and returns their number; -2 when it ran since and
 * its frames cannot be vouched for; -1 when it was not left running. */
int native_sleepers_frames(native_sleepers *z, proc_stat_cache *c, pid_t tid, unwind_frame *out,
                           int max, bool *complete, long *syscall);

typedef struct native_sleepers_stats {
    uint64_t reused;  /* thread stacks taken from memory: stops saved */
    uint64_t woke;    /* left running, but ran during the read: no native frames that sample */
} native_sleepers_stats;
native_sleepers_stats native_sleepers_get_stats(const native_sleepers *z);

#endif
