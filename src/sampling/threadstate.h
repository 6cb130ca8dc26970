/* What a thread was doing when sampled, beyond its stack: running, in a system call, or
 * sleeping, and whether it held the GIL. Used by --native and --gil to mark stacks and to
 * summarise a recording.
 *
 * Activity, from the run state read in /proc (t->state) and the system call the thread was in
 * (t->syscall, known from its registers with --native):
 *   running     R, in user space (or the syscall is unknown: without --native)
 *   in syscall  R, inside a system call (working in the kernel, or runnable)
 *   sleeping    S or D: waiting (always inside a system call or a page fault)
 */
#ifndef APROF_THREADSTATE_H
#define APROF_THREADSTATE_H

#include "sample.h"
#include "strtab.h"

#include <stddef.h>
#include <stdint.h>

typedef enum thread_activity {
    ACT_UNKNOWN = 0,
    ACT_RUNNING,
    ACT_SYSCALL,
    ACT_SLEEPING,
    ACT_COUNT
} thread_activity;

thread_activity threadstate_activity(const aprof_thread_sample *t);
const char *threadstate_activity_name(thread_activity a); /* "running", "in syscall", ... */

/* Interned names of the mark frames: "<running>", "<running, GIL>", "<sleeping>", ... */
typedef struct threadstate_marks {
    const char *name[ACT_COUNT][2]; /* [activity][holds the GIL] */
} threadstate_marks;

int threadstate_marks_init(threadstate_marks *m, strtab *st);

/* Put the FRAME_MARK frame naming t's activity (and ", GIL" when it held the GIL) at the root
 * of its stack, shifting the frames (and callback_frame) by one. A full stack loses its
 * innermost frame (TSF_TRUNCATED). */
void threadstate_prepend_mark(const threadstate_marks *m, aprof_thread_sample *t);

typedef struct threadstate_counts {
    uint64_t total;
    uint64_t activity[ACT_COUNT];
    uint64_t gil_known, gil_held;
} threadstate_counts;

void threadstate_count(threadstate_counts *c, const aprof_thread_sample *t);

/* "running 40.0%, in syscall 5.0%, sleeping 55.0%; GIL held 35.0%" ("" when nothing was
 * counted); the GIL part only when it was known. */
void threadstate_format(const threadstate_counts *c, char *buf, size_t len);

#endif
