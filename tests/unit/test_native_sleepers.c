/* native_sleepers (src/native/native_sleepers.c) on real sleeping threads of this process:
 * threads whose ids share a memo slot must each keep their remembered frames (CI once read
 * the main thread of a --native target without native frames every other sample: its tid and
 * another sleeping thread's hashed to the same slot and evicted each other). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "native_sleepers.h"
#include "proc.h"

#define MAX_THREADS 96
#define SLOTS 256 /* MEMO_SLOTS of native_sleepers.c */

static int pipe_fd[2];
static pid_t tids[MAX_THREADS];

static void *sleeper(void *arg)
{
    tids[(intptr_t)arg] = (pid_t)syscall(SYS_gettid);
    char c;
    (void)!read(pipe_fd[0], &c, 1); /* asleep in read() until the test ends */
    return NULL;
}

static bool asleep_in_syscall(proc_stat_cache *c, pid_t tid)
{
    proc_syscall sc;
    char st = proc_thread_state(c, tid);
    return (st == 'S' || st == 'D') && proc_thread_syscall_regs(c, tid, &sc) && sc.nr >= 0;
}

static void test_colliding_threads_keep_their_frames(void **state)
{
    (void)state;
    assert_int_equal(pipe(pipe_fd), 0);
    pthread_t th[MAX_THREADS];
    int a = -1, b = -1, n = 0;
    /* start sleepers until two share a slot (birthday bound: about 20 on average) */
    for (; n < MAX_THREADS && a < 0; n++) {
        assert_int_equal(pthread_create(&th[n], NULL, sleeper, (void *)(intptr_t)n), 0);
        while (!__atomic_load_n(&tids[n], __ATOMIC_SEQ_CST))
            usleep(100);
        for (int i = 0; i < n && a < 0; i++)
            if (hash32((uint64_t)(uint32_t)tids[i]) % SLOTS ==
                hash32((uint64_t)(uint32_t)tids[n]) % SLOTS) {
                a = i;
                b = n;
            }
    }
    if (a < 0)
        skip(); /* no collision among MAX_THREADS threads: very unlikely */
    proc_stat_cache *c = proc_stat_cache_new(getpid());
    assert_non_null(c);
    for (int tries = 0; tries < 2000 && !(asleep_in_syscall(c, tids[a]) &&
                                          asleep_in_syscall(c, tids[b])); tries++)
        usleep(1000);
    native_sleepers *z = native_sleepers_new();
    assert_non_null(z);
    /* first sample: neither is known, both are stopped and unwound, both remembered */
    native_sleepers_begin(z);
    assert_false(native_sleepers_skip(z, c, tids[a]));
    assert_false(native_sleepers_skip(z, c, tids[b]));
    proc_syscall sa, sb;
    assert_true(proc_thread_syscall_regs(c, tids[a], &sa));
    assert_true(proc_thread_syscall_regs(c, tids[b], &sb));
    unwind_frame fa[2] = {{0x1111, 0x10, true}, {0x2222, 0x20, false}};
    unwind_frame fb[3] = {{0x3333, 0x30, true}, {0x4444, 0x40, false}, {0x5555, 0x50, false}};
    native_sleepers_remember(z, tids[a], sa.nr, fa, 2, true);
    native_sleepers_remember(z, tids[b], sb.nr, fb, 3, true);
    /* later samples: both are left running and both get their own frames back */
    for (int round = 0; round < 3; round++) {
        native_sleepers_begin(z);
        assert_true(native_sleepers_skip(z, c, tids[a]));
        assert_true(native_sleepers_skip(z, c, tids[b]));
        unwind_frame out[8];
        bool complete;
        long nr;
        assert_int_equal(native_sleepers_frames(z, c, tids[a], out, 8, &complete, &nr), 2);
        assert_memory_equal(out, fa, sizeof fa);
        assert_int_equal(native_sleepers_frames(z, c, tids[b], out, 8, &complete, &nr), 3);
        assert_memory_equal(out, fb, sizeof fb);
    }
    native_sleepers_free(z);
    proc_stat_cache_free(c);
    char go[MAX_THREADS] = {0};
    (void)!write(pipe_fd[1], go, (size_t)n);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colliding_threads_keep_their_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
