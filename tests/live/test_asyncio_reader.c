/* The asyncio_reader API (what recording builds on) against a live fixture: for every CPython
 * 3.10-3.13 under pyenv (the newest of each minor) and Debian's python3.11
 * (tests/common/interpreters.c finds them), start
 * fixtures/async_tree_fixture.py and check the lookups (by id, by coroutine), the awaited-by
 * chain to a root (also through a cycle), the running task of a thread, the task cap, buffer
 * reuse across snapshots, and that a reader on a process without asyncio says so. The snapshot's
 * content itself is compared with the fixture's ground truth by
 * tests/integration/test_async_dump.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "asyncio_reader.h"
#include "interpreters.h"
#include "session.h"

/* The newest pyenv interpreter of each minor, then Debian's. */
static test_interp found[TEST_MAX_INTERPRETERS];
static const test_interp *targets[TEST_MAX_INTERPRETERS];
static size_t ntargets;
static char source_dir[1024];

static void find_targets(void)
{
    const char *src = getenv("APROF_SOURCE_DIR");
    snprintf(source_dir, sizeof source_dir, "%s", src ? src : ".");
    size_t n = test_find_interpreters(found, TEST_MAX_INTERPRETERS);
    for (int minor = TEST_PY_MIN_MINOR; minor <= TEST_PY_MAX_MINOR; minor++) {
        const test_interp *t = test_interp_pyenv_minor(found, n, minor);
        if (t)
            targets[ntargets++] = t;
    }
    for (size_t i = 0; i < n; i++)
        if (!found[i].pyenv)
            targets[ntargets++] = &found[i];
}

/* Start python SCRIPT ARG...; wait (at most 30 s) until `wait_for` exists. */
static pid_t start_fixture(const char *python, const char *script, const char *arg,
                           const char *wait_for)
{
    unlink(wait_for);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave it running */
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execl(python, python, script, arg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000 && pid > 0; i++) {
        if (access(wait_for, F_OK) == 0)
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static uint32_t by_name(const async_snapshot *s, const char *name)
{
    for (uint32_t i = 0; i < s->ntasks; i++)
        if (strcmp(s->tasks[i].name, name) == 0)
            return i;
    return ASYNC_NO_INDEX;
}

static void check_root_chain(const async_snapshot *s, const char *from, const char *const *want,
                             uint32_t nwant)
{
    uint32_t i = by_name(s, from), chain[16];
    assert_int_not_equal(i, ASYNC_NO_INDEX);
    uint32_t n = async_root_chain(s, i, chain, 16);
    assert_int_equal(n, nwant);
    for (uint32_t k = 0; k < n; k++)
        assert_string_equal(s->tasks[chain[k]].name, want[k]);
}

static void check_target(const test_interp *t)
{
    char script[1400], truth[256];
    snprintf(script, sizeof script, "%s/fixtures/async_tree_fixture.py", source_dir);
    snprintf(truth, sizeof truth, "/tmp/aprof-unit-asyncio-%d.json", (int)getpid());
    pid_t pid = start_fixture(t->python, script, truth, truth);
    assert_true(pid > 0);
    unlink(truth);
    session s;
    assert_int_equal(session_open(&s, pid, NULL), APROF_OK);
    aprof_sample smp;
    sample_init(&smp);
    async_snapshot snap;
    async_snapshot_init(&snap);
    asyncio_reader *r = session_asyncio_reader(&s);
    assert_non_null(r);

    uint32_t first_ntasks = 0, first_nframes = 0;
    for (int round = 0; round < 3; round++) {
        sample_reset(&smp);
        assert_true(session_sample(&s, &smp) > 0);
        int n = asyncio_snapshot(r, &smp, &snap);
        assert_true(n > 20);
        assert_int_equal((uint32_t)n, snap.ntasks);
        assert_int_equal(snap.flags & ~0u, 0);
        assert_int_equal(snap.nloops, 2);
        if (round == 0) {
            first_ntasks = snap.ntasks;
            first_nframes = snap.nframes;
        } else {
            /* buffers reused, the (idle) picture unchanged */
            assert_int_equal(snap.ntasks, first_ntasks);
            assert_int_equal(snap.nframes, first_nframes);
        }
    }
    /* lookups */
    for (uint32_t i = 0; i < snap.ntasks; i++) {
        const async_task *tk = &snap.tasks[i];
        assert_int_equal(async_find_task(&snap, tk->id), i);
        if (tk->state == ATS_PENDING || tk->state == ATS_RUNNING)
            assert_int_equal(async_find_by_coro(&snap, tk->coro), i);
        assert_true(tk->name && tk->name[0]);
        assert_int_not_equal(tk->loop_index, ASYNC_NO_INDEX);
        assert_int_equal(tk->tid, snap.loops[tk->loop_index].tid);
    }
    assert_int_equal(async_find_task(&snap, 8), ASYNC_NO_INDEX);
    assert_int_equal(async_find_by_coro(&snap, 0), ASYNC_NO_INDEX);

    /* awaited-by chains to a root */
    static const char *const gather[] = {"g-a", "gatherer"};
    check_root_chain(&snap, "g-a", gather, 2);
    static const char *const two[] = {"t2-child-1", "t2-main"};
    check_root_chain(&snap, "t2-child-1", two, 2);
    static const char *const alone[] = {"main"};
    check_root_chain(&snap, "main", alone, 1);
    static const char *const cyc[] = {"cycle-a", "cycle-b"};
    check_root_chain(&snap, "cycle-a", cyc, 2); /* stops before going round again */
    if (t->minor != 10) {
        static const char *const tg[] = {"tg-leaf2", "tg-inner", "tg-outer"};
        check_root_chain(&snap, "tg-leaf2", tg, 3);
    }
    uint32_t cap_one[1];
    assert_int_equal(async_root_chain(&snap, by_name(&snap, "g-a"), cap_one, 1), 1);
    assert_int_equal(async_root_chain(&snap, ASYNC_NO_INDEX, cap_one, 1), 0);

    /* the running task of each thread */
    uint32_t busy = by_name(&snap, "t2-busy");
    assert_int_not_equal(busy, ASYNC_NO_INDEX);
    assert_int_equal(snap.tasks[busy].state, ATS_RUNNING);
    assert_true(snap.tasks[busy].flags & ATF_LIVE_STACK);
    bool seen_busy = false;
    for (uint32_t i = 0; i < smp.nthreads; i++) {
        const aprof_thread_sample *th = &smp.threads[i];
        uint32_t fi = 0, ti = async_task_of_thread(&snap, th, &fi);
        if (strcmp(th->name, "loop-thread-2") == 0) {
            assert_int_equal(ti, busy);
            assert_int_equal(th->owners[fi], snap.tasks[busy].coro);
            assert_int_equal(snap.loops[snap.tasks[busy].loop_index].tid, th->tid);
            assert_int_equal(snap.loops[snap.tasks[busy].loop_index].running_task, busy);
            seen_busy = true;
        } else {
            assert_int_equal(ti, ASYNC_NO_INDEX); /* the main loop is idle */
        }
    }
    assert_true(seen_busy);

    /* cycles */
    assert_int_equal(snap.ncycles, 1);
    assert_int_equal(snap.cycle_len[0], 2);

    /* the cap */
    asyncio_reader_set_max_tasks(r, 5);
    assert_int_equal(asyncio_snapshot(r, &smp, &snap), 5);
    assert_true(snap.flags & ASF_TASKS_TRUNCATED);
    asyncio_reader_set_max_tasks(r, 0); /* means 1 */
    assert_int_equal(asyncio_snapshot(r, &smp, &snap), 1);

    asyncio_reader_free(r);
    async_snapshot_free(&snap);
    sample_free(&smp);
    session_close(&s);
    stop(pid);
    print_message("%s (%s): asyncio_reader API checks passed\n", t->label, t->python);
}

static void test_api_on_every_interpreter(void **state)
{
    (void)state;
    assert_true(ntargets > 0);
    for (size_t i = 0; i < ntargets; i++)
        check_target(targets[i]);
}

/* A Python process without asyncio: ASF_NO_ASYNCIO, no tasks, not an error. After it exits: -1. */
static void test_no_asyncio(void **state)
{
    (void)state;
    assert_true(ntargets > 0);
    char flag[256], code[512];
    snprintf(flag, sizeof flag, "/tmp/aprof-unit-noasync-%d", (int)getpid());
    snprintf(code, sizeof code, "import time; open('%s', 'w').close(); time.sleep(60)", flag);
    unlink(flag);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(targets[0]->python, targets[0]->python, "-c", code, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000 && access(flag, F_OK) != 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    unlink(flag);
    session s;
    assert_int_equal(session_open(&s, pid, NULL), APROF_OK);
    asyncio_reader *r = session_asyncio_reader(&s);
    async_snapshot snap;
    async_snapshot_init(&snap);
    assert_int_equal(asyncio_snapshot(r, NULL, &snap), 0);
    assert_true(snap.flags & ASF_NO_ASYNCIO);
    assert_int_equal(snap.ntasks, 0);
    stop(pid);
    assert_int_equal(asyncio_snapshot(r, NULL, &snap), -1);
    asyncio_reader_free(r);
    async_snapshot_free(&snap);
    session_close(&s);
}

/* A program that names every task differently (fixture below: about 2,000 live tasks replaced
 * every ~50 ms, "n-COUNTER"): the reader keeps task names in a table of its own that starts
 * over (ASYNC_NAMES_ROTATE), so the session's string table does not grow with them, and every
 * name of every snapshot is still one the program gave (under ASan: still readable memory). */
static const char churn_names_code[] =
    "import asyncio, sys\n"
    "async def one():\n"
    "    await asyncio.sleep(0.05)\n"
    "async def main():\n"
    "    n = 0\n"
    "    live = set()\n"
    "    open(sys.argv[1], 'w').close()\n"
    "    while True:\n"
    "        while len(live) < 2000:\n"
    "            n += 1\n"
    "            t = asyncio.create_task(one(), name='n-%d' % n)\n"
    "            live.add(t)\n"
    "            t.add_done_callback(live.discard)\n"
    "        await asyncio.sleep(0.005)\n"
    "asyncio.run(main())\n";

static bool digits_after(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || !name[n])
        return false;
    for (const char *p = name + n; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* "n-N" as the program names them, or "Task-N": main(), and on 3.10 every task for a moment
 * (asyncio.create_task names a task only after creating it with its default name). */
static bool well_formed(const char *name)
{
    return digits_after(name, "n-") || digits_after(name, "Task-");
}

static void test_task_names_rotate(void **state)
{
    (void)state;
    assert_true(ntargets > 0);
    char flag[256];
    snprintf(flag, sizeof flag, "/tmp/aprof-unit-names-%d", (int)getpid());
    unlink(flag);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(targets[0]->python, targets[0]->python, "-c", churn_names_code, flag, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000 && access(flag, F_OK) != 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    unlink(flag);
    session s;
    assert_int_equal(session_open(&s, pid, NULL), APROF_OK);
    asyncio_reader *r = session_asyncio_reader(&s);
    assert_non_null(r);
    async_snapshot snap[2];
    async_snapshot_init(&snap[0]);
    async_snapshot_init(&snap[1]);
    size_t strings_before = 0;
    uint64_t names_read = 0;
    for (int k = 0; k < 400 && asyncio_reader_name_rotations(r) < 2; k++) {
        async_snapshot *cur = &snap[k % 2], *prev = &snap[(k + 1) % 2];
        assert_true(asyncio_snapshot(r, NULL, cur) >= 0);
        names_read += cur->ntasks;
        if (k == 0)
            strings_before = strtab_count(s.st);
        for (uint32_t i = 0; i < cur->ntasks; i++)
            if (!(cur->tasks[i].flags & (ATF_UNREADABLE | ATF_PARTIAL)) &&
                !well_formed(cur->tasks[i].name))
                fail_msg("snapshot %d: task %#llx named '%s' (state %d, flags %#x)", k,
                         (unsigned long long)cur->tasks[i].id, cur->tasks[i].name,
                         (int)cur->tasks[i].state, (unsigned)cur->tasks[i].flags);
        /* the snapshot before stays readable after a rotation (one generation is kept) */
        for (uint32_t i = 0; k > 0 && i < prev->ntasks; i++)
            if (!(prev->tasks[i].flags & (ATF_UNREADABLE | ATF_PARTIAL)))
                assert_true(well_formed(prev->tasks[i].name));
        struct timespec ts = {0, 40 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(asyncio_reader_name_rotations(r) >= 2);
    assert_true(names_read > 2 * ASYNC_NAMES_ROTATE);
    /* code and thread names only: no task name went to the session's table */
    assert_true(strtab_count(s.st) < strings_before + 100);
    stop(pid);
    asyncio_reader_free(r);
    async_snapshot_free(&snap[0]);
    async_snapshot_free(&snap[1]);
    session_close(&s);
}

static void test_names(void **state)
{
    (void)state;
    for (int k = 0; k < AWK_COUNT_; k++)
        assert_true(strcmp(async_wait_kind_name((uint8_t)k), "") != 0);
    assert_string_equal(async_wait_kind_name(AWK_COUNT_), "unknown");
    assert_string_equal(async_wait_kind_name(AWK_TASKGROUP), "taskgroup");
    assert_string_equal(async_task_state_name(ATS_CANCELLED), "cancelled");
    assert_string_equal(async_task_state_name(200), "unknown");
}

int main(void)
{
    find_targets();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_api_on_every_interpreter),
        cmocka_unit_test(test_no_asyncio),
        cmocka_unit_test(test_task_names_rotate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
