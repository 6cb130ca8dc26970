/* The freezer (src/target/freezer.c) against a real process that cannot stop in time: a process
 * blocked in vfork() (the kernel waits for the vfork child killably: a ptrace interrupt does
 * not end that wait). A stop asked for then lags; once the vfork child exits, the process
 * reaches its ptrace stop, and only the freezer can let it go again. Ground truth: the kernel's
 * run state of the process in /proc (t: stopped by a tracer) and its tracer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "freezer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VFORK_CHILD_US 150000 /* how long the target stays blocked in vfork */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The run state letter and TracerPid of pid, from /proc. */
static char state_of(pid_t pid, int *tracer)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    char st = 0;
    *tracer = -1;
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "State:", 6) == 0)
            sscanf(line + 6, " %c", &st);
        else if (strncmp(line, "TracerPid:", 10) == 0)
            *tracer = atoi(line + 10);
    }
    fclose(f);
    return st;
}

/* A target that tells us (a byte on the pipe) it is about to vfork, whose vfork child sleeps
 * VFORK_CHILD_US, and that then spins until killed. */
static pid_t start_target(void)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (write(fds[1], "v", 1) != 1)
            _exit(2);
        pid_t c = vfork();
        if (c == 0) {
            usleep(VFORK_CHILD_US);
            _exit(0);
        }
        for (volatile unsigned long n = 0;; n++)
            ;
    }
    close(fds[1]);
    char b;
    assert_int_equal(read(fds[0], &b, 1), 1);
    close(fds[0]);
    sleep_ms(20); /* it is in vfork now */
    return pid;
}

static void stop_target(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    while (waitpid(-1, NULL, WNOHANG | __WALL) > 0) /* the vfork child */
        ;
}

static void lagging_thread_is_let_go_by_settle(void **state)
{
    (void)state;
    pid_t pid = start_target();
    freezer f;
    freezer_init(&f, pid);
    int rc = freezer_stop_thread(&f, pid, 5000000ull /* 5 ms */);
    if (rc == -1 && f.last_errno == EPERM) {
        freezer_free(&f);
        stop_target(pid);
        skip(); /* no ptrace here */
    }
    assert_int_equal(rc, -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(f.nlagging, 1);
    /* The vfork child exits; the target returns from vfork into its interrupt stop. */
    int tracer = 0;
    char st = 0;
    for (int i = 0; i < 100 && st != 't'; i++) {
        sleep_ms(10);
        st = state_of(pid, &tracer);
    }
    assert_int_equal(st, 't');           /* stopped by us, and nothing else would resume it */
    assert_int_equal(tracer, (int)getpid());
    freezer_settle(&f);
    assert_int_equal(f.nlagging, 0);
    st = state_of(pid, &tracer);
    assert_true(st == 'R' || st == 'S');
    assert_int_equal(tracer, 0);
    freezer_free(&f);
    stop_target(pid);
}

static void settle_without_lagging_is_a_no_op(void **state)
{
    (void)state;
    freezer f;
    freezer_init(&f, getpid());
    freezer_settle(&f);
    assert_int_equal(f.nlagging, 0);
    freezer_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lagging_thread_is_let_go_by_settle),
        cmocka_unit_test(settle_without_lagging_is_a_no_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
