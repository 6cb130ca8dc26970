/* The task timeline (src/analysis/timeline.c) on synthetic snapshots and samples: await
 * segments extended and split, runs from consecutive samples, the gap between runs, ends (done,
 * gone, a missed task listed again), a reused address, parents, and the loop's busy stretches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "timeline.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000000ull
#define PID 42
#define TID 43

typedef struct fx {
    strtab *st;
    task_timeline *tl;
    async_snapshot snap;
    async_task tasks[4];
    aprof_frame frames[4];
    uint32_t edges[4];
    aprof_frame site_a, site_b;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->st = strtab_new();
    f->tl = timeline_new(f->st);
    const char *file = strtab_intern_cstr(f->st, "/srv/app.py");
    f->frames[0] = (aprof_frame){strtab_intern_cstr(f->st, "worker"), file, 10, FRAME_PYTHON, 0, 9};
    f->frames[1] = (aprof_frame){strtab_intern_cstr(f->st, "parent"), file, 30, FRAME_PYTHON, 0, 29};
    f->site_a = (aprof_frame){f->frames[0].name, file, 12, FRAME_PYTHON, 0, 9};
    f->site_b = (aprof_frame){f->frames[0].name, file, 15, FRAME_PYTHON, 0, 9};
    f->snap.tasks = f->tasks;
    f->snap.frames = f->frames;
    f->snap.edges = f->edges;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    timeline_free(f->tl);
    strtab_free(f->st);
    free(f);
    return 0;
}

/* Task slot i of the fixture's snapshot: id, coroutine, state, what it waits on. */
static void set_task(fx *f, uint32_t i, uint64_t id, uint64_t coro, uint8_t state, uint8_t wait)
{
    f->tasks[i] = (async_task){.id = id, .coro = coro, .name = i ? "parent" : "worker",
                               .state = state, .wait_kind = wait, .tid = TID,
                               .frame_start = i, .nframes = 1};
}

static void snapshot(fx *f, uint32_t ntasks, const aprof_frame *site0, uint64_t now, bool baseline)
{
    f->snap.ntasks = ntasks;
    timeline_snapshot_begin(f->tl, PID, now);
    for (uint32_t i = 0; i < ntasks; i++)
        timeline_snapshot_task(f->tl, PID, &f->snap, i, i == 0 ? site0 : NULL, baseline, now);
    timeline_snapshot_edges(f->tl, PID, &f->snap, now);
    timeline_snapshot_end(f->tl, PID, now);
}

static void sample(fx *f, uint32_t task, uint64_t t, uint64_t w)
{
    timeline_thread_sample(f->tl, PID, TID, task == UINT32_MAX ? NULL : &f->snap, task, t, w);
}

/* The segments of task k, as kinds and times in ms (start, end). */
static size_t segs(fx *f, size_t k, uint8_t *kinds, uint64_t (*times)[2], size_t max)
{
    const tl_task *t = timeline_task_at(f->tl, k);
    size_t n = 0;
    for (uint32_t i = t->head; i != TIMELINE_NONE && n < max; i = timeline_seg_at(f->tl, i)->next) {
        const tl_seg *g = timeline_seg_at(f->tl, i);
        kinds[n] = g->kind;
        times[n][0] = g->start_ns / MS;
        times[n][1] = g->end_ns / MS;
        n++;
    }
    return n;
}

static void test_awaits_runs_and_gaps(void **state)
{
    fx *f = *state;
    set_task(f, 0, 0x1000, 0x2000, ATS_PENDING, AWK_SLEEP);
    snapshot(f, 1, &f->site_a, 100 * MS, false);
    snapshot(f, 1, &f->site_a, 200 * MS, true);   /* same site: the segment grows */
    sample(f, 0, 250 * MS, 1 * MS);                /* runs 249..250 */
    sample(f, 0, 251 * MS, 1 * MS);                /* the same run */
    sample(f, UINT32_MAX, 252 * MS, 1 * MS);       /* its thread runs no task */
    sample(f, 0, 260 * MS, 1 * MS);                /* runs again: suspended in between */
    snapshot(f, 1, &f->site_b, 300 * MS, true);    /* awaits elsewhere from its run's end */
    snapshot(f, 1, &f->site_a, 400 * MS, true);    /* changed unseen: split half-way */
    assert_int_equal(timeline_task_count(f->tl), 1);
    uint8_t kinds[8];
    uint64_t times[8][2];
    size_t n = segs(f, 0, kinds, times, 8);
    assert_int_equal(n, 6);
    uint8_t want_kinds[] = {TL_AWAIT, TL_RUN, TL_SUSPENDED, TL_RUN, TL_AWAIT, TL_AWAIT};
    uint64_t want_times[][2] = {{100, 249}, {249, 251}, {251, 259}, {259, 260}, {260, 350}, {350, 400}};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kinds[i], want_kinds[i]);
        assert_int_equal(times[i][0], want_times[i][0]);
        assert_int_equal(times[i][1], want_times[i][1]);
    }
    const tl_task *t = timeline_task_at(f->tl, 0);
    assert_int_equal(t->run_samples, 3);
    assert_int_equal(t->run_ns, 3 * MS);
    assert_int_equal(timeline_seg_at(f->tl, t->head)->site_line, 12);
    assert_false(t->created); /* listed by its process's first snapshot */
    assert_int_equal(t->end, TL_ALIVE);
}

static void test_ends_and_reused_address(void **state)
{
    fx *f = *state;
    set_task(f, 0, 0x1000, 0x2000, ATS_PENDING, AWK_SLEEP);
    snapshot(f, 1, &f->site_a, 100 * MS, false);
    sample(f, 0, 150 * MS, 1 * MS);
    snapshot(f, 0, NULL, 200 * MS, true);          /* gone: ended after its last sighting */
    const tl_task *t = timeline_task_at(f->tl, 0);
    assert_int_equal(t->end, TL_GONE);
    assert_int_equal(t->end_ns, 150 * MS);
    snapshot(f, 1, &f->site_a, 300 * MS, true);    /* listed again: it had not ended */
    t = timeline_task_at(f->tl, 0);
    assert_int_equal(timeline_task_count(f->tl), 1);
    assert_int_equal(t->end, TL_ALIVE);
    /* the address now holds another task (another coroutine): a new track, created */
    set_task(f, 0, 0x1000, 0x3000, ATS_DONE, AWK_NONE);
    snapshot(f, 1, NULL, 400 * MS, true);
    snapshot(f, 1, NULL, 500 * MS, true);          /* still listed done: no third track */
    assert_int_equal(timeline_task_count(f->tl), 2);
    assert_int_equal(timeline_task_at(f->tl, 0)->end, TL_GONE);
    const tl_task *u = timeline_task_at(f->tl, 1);
    assert_int_equal(u->end, TL_DONE);
    assert_true(u->created);
    assert_int_equal(u->first_ns, 400 * MS);
}

static void test_parent_and_busy(void **state)
{
    fx *f = *state;
    set_task(f, 0, 0x1000, 0x2000, ATS_PENDING, AWK_SLEEP);
    set_task(f, 1, 0x5000, 0x6000, ATS_PENDING, AWK_TASK);
    f->tasks[0].by_start = 0;
    f->tasks[0].nby = 1;
    f->edges[0] = 1; /* task 1 awaits task 0 */
    snapshot(f, 2, &f->site_a, 100 * MS, false);
    const tl_task *child = timeline_task_at(f->tl, 0);
    assert_int_equal(child->parent, 1);
    assert_int_equal(child->parent_ns, 100 * MS);
    assert_int_equal(timeline_task_at(f->tl, 1)->parent, TIMELINE_NONE);
    assert_string_equal(child->coro_name, "worker");
    timeline_loop_busy(f->tl, PID, TID, 10 * MS, 12 * MS);
    timeline_loop_busy(f->tl, PID, TID, 20 * MS, 19 * MS); /* clamped, never negative */
    assert_int_equal(timeline_busy_count(f->tl), 2);
    assert_int_equal(timeline_busy_at(f->tl, 1)->end_ns, 20 * MS);
    assert_int_equal(timeline_dropped(f->tl), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_awaits_runs_and_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ends_and_reused_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_and_busy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
