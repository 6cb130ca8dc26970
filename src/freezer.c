#include "freezer.h"

#include "proc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#define MAX_TIDS 8192

void freezer_init(freezer *f, pid_t pid)
{
    f->pid = pid;
    f->threads = NULL;
    f->n = f->cap = 0;
    f->last_errno = 0;
}

void freezer_free(freezer *f)
{
    freezer_resume(f);
    free(f->threads);
    f->threads = NULL;
    f->cap = 0;
}

/* Wait until tid is in the stop our PTRACE_INTERRUPT asked for. Other stops on the way
 * (signal-delivery-stops) are remembered and their signal re-injected on detach. */
static int wait_for_interrupt_stop(frozen_thread *t)
{
    for (int tries = 0; tries < 64; tries++) {
        int status;
        pid_t r = waitpid(t->tid, &status, __WALL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status))
            return -1;
        if (!WIFSTOPPED(status))
            continue;
        int sig = WSTOPSIG(status);
        int event = status >> 16;
        if (event == PTRACE_EVENT_STOP)
            return 0; /* interrupt stop (or group-stop: the thread is stopped either way) */
        if (sig != SIGTRAP)
            t->pending_signal = sig;
        /* A signal-delivery-stop: the thread is stopped, that is all we need. */
        return 0;
    }
    return -1;
}

int freezer_stop(freezer *f)
{
    pid_t tids[MAX_TIDS];
    int nt = proc_list_threads(f->pid, tids, MAX_TIDS);
    if (nt < 0) {
        f->last_errno = errno;
        return -1;
    }
    if ((size_t)nt > MAX_TIDS)
        nt = MAX_TIDS;
    if (f->cap < (size_t)nt) {
        frozen_thread *nf = realloc(f->threads, (size_t)nt * sizeof(*nf));
        if (!nf) {
            f->last_errno = ENOMEM;
            return -1;
        }
        f->threads = nf;
        f->cap = (size_t)nt;
    }
    f->n = 0;
    int first_err = 0;
    for (int i = 0; i < nt; i++) {
        frozen_thread *t = &f->threads[f->n];
        t->tid = tids[i];
        t->pending_signal = 0;
        if (ptrace(PTRACE_SEIZE, t->tid, NULL, NULL) != 0) {
            if (!first_err)
                first_err = errno;
            continue;
        }
        if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) != 0 || wait_for_interrupt_stop(t) != 0) {
            ptrace(PTRACE_DETACH, t->tid, NULL, NULL);
            continue;
        }
        f->n++;
    }
    if (f->n == 0) {
        f->last_errno = first_err ? first_err : ESRCH;
        errno = f->last_errno;
        return -1;
    }
    return (int)f->n;
}

void freezer_resume(freezer *f)
{
    for (size_t i = 0; i < f->n; i++) {
        frozen_thread *t = &f->threads[i];
        ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(intptr_t)t->pending_signal);
    }
    f->n = 0;
}
