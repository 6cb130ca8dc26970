/* The per-thread /proc reader (proc_stat_cache, src/target/proc.c) across a reused thread id.
 * A process that starts thousands of threads a second wraps the kernel's pid counter within
 * seconds, and a new thread gets the id of one that exited. The cache keeps descriptors open by
 * thread id: those of the exited thread must not stand for the new one (they read nothing, and
 * the new thread's state, system call and CPU time were lost until aprof exited).
 *
 * The reuse is made to happen: /proc/sys/kernel/ns_last_pid set to the exited thread's id minus
 * one makes the kernel give that id to the next thread (root only; skipped otherwise). Ground
 * truth: the thread's own gettid() and /proc/self/task/TID/stat read afresh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct worker {
    atomic_int tid;
    atomic_bool quit;
    bool spin; /* spin (running) rather than sleep on the pipe */
    int fd;    /* read end of a pipe: the sleeping worker waits on it */
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    atomic_store(&w->tid, (int)syscall(SYS_gettid));
    if (w->spin) {
        while (!atomic_load(&w->quit))
            ;
    } else {
        char b;
        while (read(w->fd, &b, 1) < 0 && errno == EINTR)
            ;
    }
    return NULL;
}

static pid_t start(worker *w, pthread_t *th)
{
    assert_int_equal(pthread_create(th, NULL, work, w), 0);
    while (!atomic_load(&w->tid))
        usleep(100);
    return (pid_t)atomic_load(&w->tid);
}

/* The kernel's own state letter of a thread of ours, read afresh. */
static char fresh_state(pid_t tid)
{
    char path[96], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' ? rp[2] : 0;
}

static bool set_last_pid(pid_t last)
{
    int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
    if (fd < 0)
        return false;
    char b[32];
    int n = snprintf(b, sizeof(b), "%d", (int)last);
    bool ok = write(fd, b, (size_t)n) == n;
    close(fd);
    return ok;
}

static void reused_thread_id_reads_the_new_thread(void **state)
{
    (void)state;
    proc_stat_cache *c = proc_stat_cache_new(getpid());
    assert_non_null(c);
    bool reused = false;
    /* Another process may take the id between our write and our thread start: try again. */
    for (int attempt = 0; attempt < 20 && !reused; attempt++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        worker a = {.fd = fds[0]};
        pthread_t ta;
        pid_t old = start(&a, &ta);
        /* The cache opens its descriptors for the first thread. */
        char st = 0;
        for (int i = 0; i < 200 && st != 'S'; i++) {
            usleep(1000);
            st = proc_thread_state(c, old);
        }
        assert_int_equal(st, 'S');
        uint64_t cpu = 0;
        assert_true(proc_thread_cpu_ns(c, old, &cpu));
        proc_syscall sc;
        assert_true(proc_thread_syscall_regs(c, old, &sc));
        assert_int_equal(write(fds[1], "x", 1), 1);
        pthread_join(ta, NULL);
        close(fds[0]);
        close(fds[1]);
        if (!set_last_pid(old - 1)) {
            proc_stat_cache_free(c);
            skip(); /* not root: the id cannot be chosen */
        }
        worker b = {.spin = true};
        pthread_t tb;
        pid_t now = start(&b, &tb);
        if (now == old) {
            reused = true;
            /* the new thread spins: the kernel says R, and so must the cache */
            assert_int_equal(fresh_state(now), 'R');
            assert_int_equal(proc_thread_state(c, now), 'R');
            uint64_t cpu1 = 0, cpu2 = 0;
            assert_true(proc_thread_cpu_ns(c, now, &cpu1));
            usleep(20000);
            assert_true(proc_thread_cpu_ns(c, now, &cpu2));
            assert_true(cpu2 > cpu1); /* its CPU time, not the exited thread's */
            assert_true(proc_thread_syscall_regs(c, now, &sc));
            assert_int_equal(sc.nr, -1); /* running, not in the old thread's read() */
        }
        atomic_store(&b.quit, true);
        pthread_join(tb, NULL);
    }
    proc_stat_cache_free(c);
    if (!reused)
        skip(); /* the id was always taken by another process first */
}

static void exited_thread_reads_nothing(void **state)
{
    (void)state;
    proc_stat_cache *c = proc_stat_cache_new(getpid());
    assert_non_null(c);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    worker a = {.fd = fds[0]};
    pthread_t ta;
    pid_t tid = start(&a, &ta);
    assert_true(proc_thread_state(c, tid) != 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    pthread_join(ta, NULL);
    close(fds[0]);
    close(fds[1]);
    uint64_t cpu;
    proc_syscall sc;
    assert_int_equal(proc_thread_state(c, tid), 0);
    assert_false(proc_thread_cpu_ns(c, tid, &cpu));
    assert_false(proc_thread_syscall_regs(c, tid, &sc));
    proc_stat_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reused_thread_id_reads_the_new_thread),
        cmocka_unit_test(exited_thread_reads_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
