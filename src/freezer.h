/* Suspending a target's threads for the duration of one sample (--blocking, --native).
 *
 * Threads are attached with PTRACE_SEIZE and stopped with PTRACE_INTERRUPT, then detached after
 * the sample. SEIZE (unlike PTRACE_ATTACH) sends no SIGSTOP, so if aprof dies while threads are
 * stopped - even by SIGKILL - the kernel detaches them and they simply run on. A signal that
 * arrives for the target while it is stopped is handed back on detach. */
#ifndef APROF_FREEZER_H
#define APROF_FREEZER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct frozen_thread {
    pid_t tid;
    int pending_signal; /* to re-inject on detach */
} frozen_thread;

typedef struct freezer {
    pid_t pid;
    frozen_thread *threads;
    size_t n, cap;
    int last_errno;     /* EPERM when ptrace is not allowed */
} freezer;

void freezer_init(freezer *f, pid_t pid);
void freezer_free(freezer *f);

/* Stop every thread of the process. Returns the number stopped, -1 if none could be (errno:
 * EPERM no permission, ESRCH process gone). Threads that exit meanwhile are skipped. */
int freezer_stop(freezer *f);

/* Let every stopped thread run again. Always safe to call. */
void freezer_resume(freezer *f);

#endif
