#include "freezer.h"

#include "grow.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TIDS 8192

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may contain anything */
    int ppid = 0;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return 0;
    return (pid_t)ppid;
}

void freezer_init(freezer *f, pid_t pid)
{
    memset(f, 0, sizeof(*f));
    f->pid = pid;
    f->target_is_child = parent_of(pid) == getpid();
}

/* Detach lagging threads that have stopped since; forget those that are gone. */
static void settle_lagging(freezer *f)
{
    size_t keep = 0;
    for (size_t i = 0; i < f->nlagging; i++) {
        pid_t tid = f->lagging[i];
        /* PTRACE_DETACH works on a tracee in any ptrace-stop, whether or not its stop was
         * collected by waitpid; ESRCH means still running (or gone). */
        if (ptrace(PTRACE_DETACH, tid, NULL, NULL) == 0)
            continue;
        if (kill(tid, 0) != 0 && errno == ESRCH)
            continue;
        f->lagging[keep++] = tid;
    }
    f->nlagging = keep;
}

void freezer_settle(freezer *f)
{
    if (f->nlagging)
        settle_lagging(f);
}

void freezer_free(freezer *f)
{
    freezer_resume(f);
    /* Give threads that did not stop in time a moment to do so, then leave the rest to the
     * kernel: it detaches every tracee when aprof exits. */
    for (int round = 0; f->nlagging && round < 100; round++) {
        settle_lagging(f);
        if (f->nlagging)
            usleep(1000);
    }
    free(f->threads);
    free(f->lagging);
    f->threads = NULL;
    f->lagging = NULL;
    f->cap = f->cap_lagging = f->nlagging = 0;
}

static bool is_lagging(const freezer *f, pid_t tid)
{
    for (size_t i = 0; i < f->nlagging; i++)
        if (f->lagging[i] == tid)
            return true;
    return false;
}

static void add_lagging(freezer *f, pid_t tid)
{
    if (!grow_array((void **)&f->lagging, &f->cap_lagging, f->nlagging + 1, sizeof(*f->lagging),
                    16, SIZE_MAX))
        return; /* cannot track it: the kernel detaches it when aprof exits */
    f->lagging[f->nlagging++] = tid;
}

typedef enum wait_result { W_PENDING, W_STOPPED, W_GONE } wait_result;

/* Has tid reached a stop? Never blocks. Signal-delivery stops are remembered, their signal
 * re-injected on detach; the interrupt stop itself is a PTRACE_EVENT_STOP (or a group stop). */
static wait_result poll_stop(freezer *f, frozen_thread *t)
{
    int status = 0;
    if (t->tid == f->pid && f->target_is_child) {
        /* Peek first: the exit status of our own child belongs to the code that launched it. */
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)t->tid, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL) != 0)
            return errno == EINTR ? W_PENDING : W_GONE;
        if (si.si_pid == 0)
            return W_PENDING;
        if (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
            return W_GONE;
    }
    pid_t r = waitpid(t->tid, &status, __WALL | WNOHANG);
    if (r == 0)
        return W_PENDING;
    if (r < 0)
        return errno == EINTR ? W_PENDING : W_GONE;
    if (WIFEXITED(status) || WIFSIGNALED(status))
        return W_GONE;
    if (!WIFSTOPPED(status))
        return W_PENDING;
    int sig = WSTOPSIG(status);
    if ((status >> 16) != PTRACE_EVENT_STOP && sig != SIGTRAP)
        t->pending_signal = sig;
    return W_STOPPED;
}

/* Wait for the first `seized` threads of f->threads to stop (st[i]: W_STOPPED, W_GONE, or
 * W_PENDING when still running after `timeout_ns` from t0). */
static void collect_stops(freezer *f, size_t seized, uint8_t *st, uint64_t t0, uint64_t timeout_ns)
{
    /* Most stops arrive within microseconds; sleeping threads are woken by the interrupt. Poll
     * without blocking so that one stuck thread cannot hold up the rest. */
    size_t pending = seized;
    memset(st, W_PENDING, seized);
    while (pending) {
        for (size_t i = 0; i < seized; i++) {
            if (st[i] != W_PENDING)
                continue;
            st[i] = (uint8_t)poll_stop(f, &f->threads[i]);
            if (st[i] != W_PENDING)
                pending--;
        }
        if (!pending)
            break;
        uint64_t el = now_ns() - t0;
        if (el >= timeout_ns)
            break;
        /* A thread on another CPU stops within microseconds of the interrupt; one that shares
         * our CPU needs it: yield for a while before sleeping (a sleep costs at least the timer
         * slack, 50 us by default). */
        if (el < 300000) {
            sched_yield();
        } else {
            struct timespec ts = {0, el < 5000000 ? 20000 : 200000};
            nanosleep(&ts, NULL);
        }
    }
}

static int by_tid(const void *a, const void *b)
{
    const frozen_thread *x = a, *y = b;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

int freezer_stop(freezer *f)
{
    uint64_t t0 = now_ns();
    f->n = 0;
    if (f->nlagging)
        settle_lagging(f);
    pid_t tids[MAX_TIDS];
    int nt = proc_list_threads(f->pid, tids, MAX_TIDS);
    if (nt < 0) {
        f->last_errno = errno;
        return -1;
    }
    if (nt > MAX_TIDS)
        nt = MAX_TIDS;
    /* The run-state reader keeps a descriptor per thread: let those of exited threads go. */
    if (f->states && f->calls++ % 32 == 0)
        proc_stat_cache_prune(f->states, tids, (size_t)nt);
    if (!grow_array((void **)&f->threads, &f->cap, (size_t)nt, sizeof(*f->threads), 16, MAX_TIDS)) {
        f->last_errno = ENOMEM;
        errno = ENOMEM;
        return -1;
    }
    /* Seize and interrupt everything first, so the threads stop in parallel. */
    int first_err = 0;
    size_t seized = 0;
    for (int i = 0; i < nt; i++) {
        if (is_lagging(f, tids[i]) || (f->skip && f->skip(f->skip_ud, tids[i])))
            continue;
        frozen_thread *t = &f->threads[seized];
        t->tid = tids[i];
        t->pending_signal = 0;
        t->released = false;
        t->state = f->states ? proc_thread_state(f->states, t->tid) : 0;
        if (ptrace(PTRACE_SEIZE, t->tid, NULL, NULL) != 0) {
            if (!first_err)
                first_err = errno;
            continue;
        }
        if (!seized)
            f->first_stop_ns = now_ns();
        if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) != 0) {
            /* Only fails when the thread is gone; a seized thread that exits is reaped by the
             * waits below, or by the kernel. */
            ptrace(PTRACE_DETACH, t->tid, NULL, NULL);
            continue;
        }
        seized++;
    }
    if (f->on_interrupted)
        f->on_interrupted(f->on_interrupted_ud);
    uint8_t st[MAX_TIDS];
    collect_stops(f, seized, st, t0, FREEZER_STOP_TIMEOUT_NS);
    /* Keep the stopped ones, in place. */
    size_t n = 0;
    for (size_t i = 0; i < seized; i++) {
        if (st[i] == W_STOPPED)
            f->threads[n++] = f->threads[i];
        else if (st[i] == W_PENDING)
            add_lagging(f, f->threads[i].tid);
    }
    f->n = n;
    qsort(f->threads, f->n, sizeof(*f->threads), by_tid);
    f->stop_ns = now_ns() - t0;
    if (seized == 0 && !first_err && nt > 0)
        return 0; /* every thread was skipped: nothing to stop */
    if (f->n == 0) {
        f->last_errno = first_err ? first_err : ESRCH;
        errno = f->last_errno;
        return -1;
    }
    return (int)f->n;
}

int freezer_stop_thread(freezer *f, pid_t tid, uint64_t timeout_ns)
{
    uint64_t t0 = now_ns();
    f->n = 0;
    if (f->nlagging)
        settle_lagging(f);
    if (is_lagging(f, tid)) {
        errno = EAGAIN; /* still seized from an earlier try: it has not stopped since */
        return -1;
    }
    if (!grow_array((void **)&f->threads, &f->cap, 1, sizeof(*f->threads), 16, MAX_TIDS)) {
        errno = ENOMEM;
        return -1;
    }
    frozen_thread *t = &f->threads[0];
    *t = (frozen_thread){.tid = tid};
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0) {
        f->last_errno = errno;
        return -1;
    }
    f->first_stop_ns = now_ns();
    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) != 0) {
        int e = errno;
        ptrace(PTRACE_DETACH, tid, NULL, NULL);
        errno = e;
        return -1;
    }
    if (f->on_interrupted)
        f->on_interrupted(f->on_interrupted_ud);
    uint8_t st;
    collect_stops(f, 1, &st, t0, timeout_ns);
    f->stop_ns = now_ns() - t0;
    if (st == W_STOPPED) {
        f->n = 1;
        return 0;
    }
    if (st == W_PENDING)
        add_lagging(f, tid); /* detached once it stops (next call, or freezer_free) */
    errno = st == W_PENDING ? EAGAIN : ESRCH;
    return -1;
}

void freezer_resume(freezer *f)
{
    for (size_t i = 0; i < f->n; i++) {
        frozen_thread *t = &f->threads[i];
        if (!t->released)
            ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(intptr_t)t->pending_signal);
    }
    f->n = 0;
}

static frozen_thread *find(const freezer *f, pid_t tid)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->threads[mid].tid == tid)
            return &f->threads[mid];
        if (f->threads[mid].tid < tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void freezer_release(freezer *f, pid_t tid)
{
    frozen_thread *t = find(f, tid);
    if (t && !t->released) {
        ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(intptr_t)t->pending_signal);
        t->released = true;
    }
}

const frozen_thread *freezer_find(const freezer *f, pid_t tid)
{
    return find(f, tid);
}

int freezer_probe(pid_t pid)
{
    if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0)
        return errno;
    /* A seized thread that was never stopped cannot be detached with PTRACE_DETACH (it needs a
     * stopped tracee): stop it briefly, then detach. */
    freezer f;
    freezer_init(&f, pid);
    frozen_thread t = {pid, 0, 0, false};
    int rc = 0;
    if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) != 0) {
        rc = errno;
    } else {
        uint64_t t0 = now_ns();
        wait_result w;
        while ((w = poll_stop(&f, &t)) == W_PENDING && now_ns() - t0 < FREEZER_STOP_TIMEOUT_NS) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
        if (w == W_STOPPED)
            ptrace(PTRACE_DETACH, pid, NULL, (void *)(intptr_t)t.pending_signal);
        else if (w == W_PENDING)
            add_lagging(&f, pid);
        else
            rc = ESRCH;
    }
    freezer_free(&f);
    return rc;
}
