/* The stall detector on synthetic samples: callback runs, boundaries half-way between samples,
 * impact, culprit choice, clipping, loop lag statistics and the live view (stall_loop_now). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "stall_groups.h"
#include "stalls.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

typedef struct fx {
    strtab *st;
    stall_detector *d;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->st = strtab_new();
    f->d = stall_detector_new(100 * MS, f->st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    stall_detector_free(f->d);
    strtab_free(f->st);
    free(f);
    return 0;
}

/* The detector found exactly one stall, from start_ms to end_ms (recording times) give or take
 * unc_ms. */
static const stall_event *the_only_stall(fx *f, uint64_t start_ms, uint64_t end_ms,
                                         uint64_t unc_ms)
{
    assert_int_equal(stall_count(f->d), 1);
    const stall_event *e = stall_at(f->d, 0);
    assert_int_equal(e->start_ns, 1000 * MS + start_ms * MS);
    assert_int_equal(e->end_ns, 1000 * MS + end_ms * MS);
    assert_int_equal(e->uncertainty_ns, unc_ms * MS);
    return e;
}

/* One sample of loop thread 9 at t ms: idle, or running callback `cb` whose innermost frames
 * are the given (name, file, line) triples after a library frame. */
static void feed(fx *f, uint64_t t_ms, bool idle, uint64_t cb, const char *leaf_file, int line)
{
    aprof_sample s;
    sample_init(&s);
    aprof_thread_sample *th = sample_add_thread(&s, 8);
    th->tid = 9;
    th->name = strtab_intern_cstr(f->st, "MainThread");
    th->loop = LOOP_ASYNCIO;
    th->loop_idle = idle;
    s.t_ns = 1000 * MS + t_ms * MS;
    const char *lib = strtab_intern_cstr(f->st, "/usr/lib/python3.11/asyncio/events.py");
    th->frames[th->nframes++] = (aprof_frame){strtab_intern_cstr(f->st, "Handle._run"), lib, 80,
                                              FRAME_PYTHON, 0};
    if (!idle) {
        th->callback_frame = 1;
        th->callback_id = cb;
        th->frames[th->nframes++] = (aprof_frame){strtab_intern_cstr(f->st, "handler"),
                                                  strtab_intern_cstr(f->st, "/srv/app.py"), 10,
                                                  FRAME_PYTHON, 0};
        th->frames[th->nframes++] = (aprof_frame){strtab_intern_cstr(f->st, "leaf"),
                                                  strtab_intern_cstr(f->st, leaf_file), line,
                                                  FRAME_PYTHON, 0};
    }
    for (uint32_t i = 0; i < th->nframes; i++)
        th->owners[i] = 0;
    stall_detector_feed(f->d, &s);
    sample_free(&s);
}

/* A torn sample of loop thread 9 at t ms; with `probed`, the reader's probe of the running task
 * step says it is still callback `cb` (cb != 0) or has ended (cb == 0). */
static void feed_torn(fx *f, uint64_t t_ms, bool probed, uint64_t cb)
{
    aprof_sample s;
    sample_init(&s);
    aprof_thread_sample *th = sample_add_thread(&s, 8);
    th->tid = 9;
    th->name = strtab_intern_cstr(f->st, "MainThread");
    th->loop = LOOP_ASYNCIO;
    th->flags = TSF_TORN | (probed ? TSF_STEP_PROBED : 0);
    th->callback_frame = -1;
    th->callback_id = cb;
    s.t_ns = 1000 * MS + t_ms * MS;
    stall_detector_feed(f->d, &s);
    sample_free(&s);
}

static void test_stall_boundaries_and_culprit(void **state)
{
    fx *f = *state;
    /* idle until 100, callback A 100..349 (leaf in the stdlib, called from own code), callback
     * B 350..379 (short), idle from 380 on; samples every 10 ms */
    for (uint64_t t = 0; t <= 600; t += 10) {
        if (t < 100 || t >= 380)
            feed(f, t, true, 0, "", 0);
        else if (t < 350)
            feed(f, t, false, 0xA, "/usr/lib/python3.11/json/decoder.py", 355);
        else
            feed(f, t, false, 0xB, "/srv/app.py", 20);
    }
    /* boundaries half-way: 95 and 345; half of each 10 ms straddling gap */
    const stall_event *e = the_only_stall(f, 95, 345, 10);
    assert_int_equal(e->impact, STALL_CRITICAL);
    assert_false(e->clipped);
    /* the stdlib leaf is not the culprit: the innermost own frame is */
    assert_string_equal(e->culprit.name, "handler");
    assert_int_equal(e->culprit.line, 10);
    assert_int_equal(e->nstack, 3);
    loop_lag lag;
    stall_loop_lag(f->d, 0, &lag);
    assert_int_equal(lag.count, 1);
    assert_true(lag.max_s > 0.279 && lag.max_s < 0.281); /* 95..375 */
    assert_int_equal(lag.stalls, 1);
}

/* Late or dropped samples widen the gap that straddles a boundary: the bound says so. */
static void test_uncertainty_follows_gaps(void **state)
{
    fx *f = *state;
    /* idle until 100, callback A 100..299, idle after; samples every 10 ms except that the ones
     * at 90 and 290..320 are missing (late sampler, torn samples) */
    for (uint64_t t = 0; t <= 500; t += 10) {
        if (t == 90 || (t >= 290 && t <= 320))
            continue;
        if (t < 100 || t >= 300)
            feed(f, t, true, 0, "", 0);
        else
            feed(f, t, false, 0xA, "/srv/app.py", 20);
    }
    /* start between 80 and 100: 90 (+-10); end between 280 and 330: 305 (+-25) */
    the_only_stall(f, 90, 305, 35);
}

/* Torn samples around a stall's end: without probes its end can only be placed within the gap
 * to the next readable sample; probes of the task step pin it to one interval. */
/* Idle until 100, callback A from 100, readable until 190, then torn samples until idle from
 * 320. With probes, the torn ones say "A still runs" 200..290 and "ended" at 300 (310 has none). */
static void feed_torn_end(fx *f, bool probes)
{
    for (uint64_t t = 0; t <= 500; t += 10) {
        if (t < 100 || t >= 320)
            feed(f, t, true, 0, "", 0);
        else if (t < 200)
            feed(f, t, false, 0xA, "/srv/app.py", 20);
        else
            feed_torn(f, t, probes && t <= 300, t < 300 ? 0xA : 0);
    }
}

static void test_torn_samples_and_step_probes(void **state)
{
    fx *f = *state;
    feed_torn_end(f, true);
    const stall_event *e = the_only_stall(f, 95, 295, 10);
    assert_int_equal(e->impact, STALL_CRITICAL);
    assert_int_equal(e->culprit.line, 20);
    loop_lag lag;
    stall_loop_lag(f->d, 0, &lag);
    assert_int_equal(lag.count, 1);
    /* busy until at least 310 (a torn sample is busy evidence), idle at 320: 95..315 */
    assert_true(lag.max_s > 0.2199 && lag.max_s < 0.2201);
}

static void test_torn_samples_without_probes(void **state)
{
    fx *f = *state;
    /* no probe: the end lies somewhere between 190 and the idle sample at 320 */
    feed_torn_end(f, false);
    the_only_stall(f, 95, 255, 5 + 65);
}

static void test_below_threshold_and_clipped(void **state)
{
    fx *f = *state;
    /* busy from the very first sample (clipped start) for 150 ms, then a 50 ms run */
    for (uint64_t t = 0; t <= 400; t += 10) {
        if (t < 150)
            feed(f, t, false, 0xC, "/srv/app.py", 30);
        else if (t >= 200 && t < 250)
            feed(f, t, false, 0xD, "/srv/app.py", 40);
        else
            feed(f, t, true, 0, "", 0);
    }
    assert_int_equal(stall_count(f->d), 1);
    const stall_event *e = stall_at(f->d, 0);
    assert_true(e->clipped);
    assert_int_equal(e->impact, STALL_WARNING);
    assert_int_equal(e->culprit.line, 30);
    /* still busy at the end: clipped too */
    feed(f, 500, false, 0xE, "/srv/app.py", 50);
    feed(f, 650, false, 0xE, "/srv/app.py", 50);
    stall_detector_finish(f->d, 1000 * MS + 700 * MS);
    assert_int_equal(stall_count(f->d), 2);
    assert_true(stall_at(f->d, 1)->clipped);
}

static void test_loop_now(void **state)
{
    fx *f = *state;
    const uint64_t base = 1000 * MS;
    /* idle, busy 100..300 (boundaries 95 and 305: 210 ms), idle */
    for (uint64_t t = 0; t <= 600; t += 10)
        feed(f, t, !(t >= 100 && t < 310), 0xF, "/srv/app.py", 60);
    loop_now ln;
    stall_loop_now(f->d, 0, base + 700 * MS, 2000 * MS, &ln);
    assert_false(ln.busy);
    assert_int_equal(ln.current_ns, 210 * MS);
    assert_int_equal(ln.worst_ns, 210 * MS);
    /* three seconds later that stretch is no longer "now" */
    stall_loop_now(f->d, 0, base + 3600 * MS, 2000 * MS, &ln);
    assert_int_equal(ln.current_ns, 0);
    assert_int_equal(ln.worst_ns, 210 * MS);
    /* busy now: the running stretch counts, up to `now` */
    feed(f, 1000, true, 0, "", 0);
    feed(f, 1010, false, 0x10, "/srv/app.py", 70);
    feed(f, 1500, false, 0x10, "/srv/app.py", 70);
    stall_loop_now(f->d, 0, base + 1600 * MS, 2000 * MS, &ln);
    assert_true(ln.busy);
    assert_int_equal(ln.busy_for_ns, 595 * MS);
    assert_int_equal(ln.worst_ns, 595 * MS);
    assert_int_equal(ln.current_ns, 595 * MS);
}

static void test_own_code(void **state)
{
    (void)state;
    assert_true(stall_is_own_code("/srv/app.py"));
    assert_true(stall_is_own_code("/home/u/lib/python_tools/x.py"));
    assert_false(stall_is_own_code("/usr/lib/python3.11/asyncio/events.py"));
    assert_false(stall_is_own_code("/root/.pyenv/versions/3.12.1/lib/python3.12/selectors.py"));
    assert_false(stall_is_own_code("/usr/lib/python3/dist-packages/aiohttp/web.py"));
    assert_false(stall_is_own_code("/venv/lib/python3.12/site-packages/x.py"));
    assert_false(stall_is_own_code("<frozen importlib._bootstrap>"));
    assert_false(stall_is_own_code(""));
}

/* Stalls grouped by culprit line: counts, totals, maxima, worst impact and the longest one's
 * index, most total time first; a subset of indices groups only those. */
static void test_group_by_culprit(void **state)
{
    (void)state;
    static const char *fa = "a.py", *fb = "b.py", *fn = "f";
    aprof_frame l1 = {fn, fa, 10, FRAME_PYTHON, 0, 1}, l2 = {fn, fa, 20, FRAME_PYTHON, 0, 1};
    aprof_frame l3 = {fn, fb, 10, FRAME_PYTHON, 0, 1};
    /* durations in ms: line 10 of a.py: 100 + 300; line 20: 150 + 150 + 150; b.py:10: 500 */
    struct { aprof_frame *f; uint64_t ms; uint8_t impact; } spec[] = {
        {&l1, 100, STALL_WARNING}, {&l2, 150, STALL_WARNING}, {&l1, 300, STALL_CRITICAL},
        {&l2, 150, STALL_WARNING}, {&l3, 500, STALL_CRITICAL}, {&l2, 150, STALL_WARNING},
    };
    stall_event ev[6];
    memset(ev, 0, sizeof(ev));
    for (int i = 0; i < 6; i++) {
        ev[i].start_ns = 1000000000ull * (uint64_t)i;
        ev[i].end_ns = ev[i].start_ns + spec[i].ms * 1000000ull;
        ev[i].culprit = *spec[i].f;
        ev[i].impact = spec[i].impact;
        ev[i].clipped = i == 5;
    }
    stall_group *g = NULL;
    size_t n = stall_group_by_culprit(ev, NULL, 6, &g);
    assert_int_equal(n, 3);
    /* totals: b.py:10 500, a.py:10 400, a.py:20 450 -> 500, 450, 400 */
    assert_ptr_equal(g[0].culprit.file, fb);
    assert_int_equal(g[0].count, 1);
    assert_int_equal(g[1].culprit.line, 20);
    assert_int_equal(g[1].count, 3);
    assert_int_equal(g[1].total_ns, 450000000ull);
    assert_int_equal(g[1].max_ns, 150000000ull);
    assert_int_equal(g[1].worst_impact, STALL_WARNING);
    assert_int_equal(g[1].clipped, 1);
    assert_int_equal(g[2].culprit.line, 10);
    assert_int_equal(g[2].total_ns, 400000000ull);
    assert_int_equal(g[2].worst_impact, STALL_CRITICAL);
    assert_int_equal(g[2].longest, 2);
    free(g);
    uint32_t subset[2] = {0, 3};
    n = stall_group_by_culprit(ev, subset, 2, &g);
    assert_int_equal(n, 2);
    assert_int_equal(g[0].culprit.line, 20); /* 150 > 100 */
    assert_int_equal(g[0].longest, 3);
    free(g);
    assert_int_equal(stall_group_by_culprit(ev, NULL, 0, &g), 0);
    assert_null(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stall_boundaries_and_culprit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uncertainty_follows_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_samples_and_step_probes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_samples_without_probes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_below_threshold_and_clipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_now, setup, teardown),
        cmocka_unit_test(test_own_code),
        cmocka_unit_test(test_group_by_culprit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
