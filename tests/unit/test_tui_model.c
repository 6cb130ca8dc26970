/* Unit tests of the TUI's view models (src/tui/tui_text.c, tui_profile.c, tui_tasks.c, tui_loops.c):
 * text width and truncation, Top statistics and sorting, the call tree, the task tree, stalls
 * and loop lag. Expected values come from naive models kept by the test (stacks as arrays,
 * linear scans), never from the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aggregate.h"
#include "asyncio_reader.h"
#include "tui_loops.h"
#include "tui_profile.h"
#include "tui_tasks.h"
#include "tui_text.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- text ----------------------------------------------------------------------------------- */

static void test_text_width(void **state)
{
    (void)state;
    assert_int_equal(tui_text_width("abc", true), 3);
    assert_int_equal(tui_text_width("", true), 0);
    assert_int_equal(tui_text_width(NULL, true), 0);
    /* CJK characters take two columns, accented Latin one */
    assert_int_equal(tui_text_width("\xe6\xb7\xb1\xe3\x81\x84\xe5\x87\xa6\xe7\x90\x86", true), 8);
    assert_int_equal(tui_text_width("\xc3\xbc" "ber", true), 4);
    /* ASCII mode: every non-ASCII character is one '?' */
    assert_int_equal(tui_text_width("\xe6\xb7\xb1\xe3\x81\x84", false), 2);
    /* invalid UTF-8 and control characters: one column each */
    assert_int_equal(tui_text_width("a\xff\xfe" "b", true), 4);
    assert_int_equal(tui_text_width("a\tb\n", true), 4);
}

static void test_fit_exact_width(void **state)
{
    (void)state;
    const char *samples[] = {
        "short", "exactly-ten", "a much longer function name that needs cutting",
        "\xe6\xb7\xb1\xe3\x81\x84\xe5\x87\xa6\xe7\x90\x86_worker_function",
        "bad\xff\xfe\x01utf8", "\xc3\xbc" "ber_f\xc3\xbc" "nf",
    };
    char out[TUI_TEXT_CAP(64)];
    for (size_t i = 0; i < sizeof(samples) / sizeof(*samples); i++) {
        for (int utf8 = 0; utf8 < 2; utf8++) {
            int full = tui_text_width(samples[i], utf8);
            for (int w = 0; w <= 40; w++) {
                int cols = tui_fit(out, sizeof(out), samples[i], w, utf8);
                int real = tui_text_width(out, utf8);
                assert_int_equal(cols, real);
                assert_true(cols <= w);
                if (full <= w) {
                    assert_int_equal(cols, full); /* not cut */
                } else if (w > 0) {
                    /* cut: ends in the ellipsis, and at most one column short (a wide char) */
                    const char *ell = utf8 ? "\xe2\x80\xa6" : "~";
                    assert_true(strlen(out) >= strlen(ell));
                    assert_string_equal(out + strlen(out) - strlen(ell), ell);
                    assert_true(cols >= w - 1);
                }
                for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
                    assert_true(*p >= 0x20 && *p != 0x7f);
                    if (!utf8)
                        assert_true(*p < 0x80);
                }
                int padded = tui_fit_pad(out, sizeof(out), samples[i], w, utf8);
                assert_int_equal(padded, w);
                assert_int_equal(tui_text_width(out, utf8), w);
            }
        }
    }
    /* a tiny buffer never overflows */
    char tiny[4];
    tui_fit(tiny, sizeof(tiny), "abcdefgh", 40, true);
    assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_format_frame(void **state)
{
    (void)state;
    char out[TUI_TEXT_CAP(200)];
    tui_format_frame(out, sizeof(out), "run", "/srv/app/worker.py", 42, 100, true);
    assert_string_equal(out, "run (/srv/app/worker.py:42)");
    /* too wide for the path: the base name */
    tui_format_frame(out, sizeof(out), "run", "/srv/app/worker.py", 42, 20, true);
    assert_string_equal(out, "run (worker.py:42)");
    /* too wide even so: cut to the width */
    int cols = tui_format_frame(out, sizeof(out), "run", "/srv/app/worker.py", 42, 10, false);
    assert_int_equal(cols, 10);
    assert_string_equal(out, "run (work~");
    tui_format_frame(out, sizeof(out), "<task main>", "", 0, 40, true);
    assert_string_equal(out, "<task main>");
    tui_format_frame(out, sizeof(out), "select", "lib.py", 0, 40, true);
    assert_string_equal(out, "select (lib.py)");
}

static void test_numbers(void **state)
{
    (void)state;
    char b[32];
    struct { uint64_t ns; const char *want; } d[] = {
        {0, "0"}, {850000, "850us"}, {1500000, "1.50ms"}, {12340000, "12.3ms"},
        {999960000, "1.00s"}, {1250000000, "1.25s"}, {12500000000ull, "12.5s"},
        {185000000000ull, "3m05s"}, {7260000000000ull, "2h01m"},
    };
    for (size_t i = 0; i < sizeof(d) / sizeof(*d); i++) {
        tui_format_duration(b, sizeof(b), d[i].ns);
        assert_string_equal(b, d[i].want);
        assert_true(strlen(b) <= 7);
    }
    tui_format_pct(b, sizeof(b), 1, 8);
    assert_string_equal(b, "12.5");
    tui_format_pct(b, sizeof(b), 5, 5);
    assert_string_equal(b, "100.0");
    tui_format_pct(b, sizeof(b), 1, 0);
    assert_string_equal(b, "-");
    tui_format_count(b, sizeof(b), 9999);
    assert_string_equal(b, "9999");
    tui_format_count(b, sizeof(b), 12345);
    assert_string_equal(b, "12.3k");
    assert_true(tui_contains("Blocker.run", "blocker"));
    assert_true(tui_contains("x", ""));
    assert_false(tui_contains("Blocker.run", "runner"));
}

/* ---- Top and Tree over a real aggregate ----------------------------------------------------- */

#define NFUNCS 6
#define MAXD 8

typedef struct model_sample {
    pid_t tid;
    int depth;
    int fn[MAXD];  /* function index per level, outermost first */
    int line[MAXD];
    uint64_t t, w;
} model_sample;

typedef struct fx {
    strtab *st;
    agg *a;
    const char *names[NFUNCS], *files[NFUNCS];
    model_sample *ms;
    size_t n;
} fx;

static void add(fx *f, pid_t tid, const int *fn, const int *line, int depth, uint64_t t, uint64_t w)
{
    aprof_frame frames[MAXD];
    for (int i = 0; i < depth; i++)
        frames[i] = (aprof_frame){f->names[fn[i]], f->files[fn[i]], line[i], FRAME_PYTHON, 0};
    char tname[32];
    snprintf(tname, sizeof(tname), "T%d", (int)tid);
    agg_profile *p = agg_thread_profile(f->a, 0, tid, strtab_intern_cstr(f->st, tname));
    assert_non_null(p);
    assert_int_equal(agg_profile_add(f->a, p, frames, (uint32_t)depth, t, w), 0);
    model_sample *m = &f->ms[f->n++];
    m->tid = tid;
    m->depth = depth;
    memcpy(m->fn, fn, sizeof(int) * (size_t)depth);
    memcpy(m->line, line, sizeof(int) * (size_t)depth);
    m->t = t;
    m->w = w;
}

static fx *make_fx(unsigned seed, size_t count)
{
    fx *f = calloc(1, sizeof(*f));
    f->st = strtab_new();
    f->a = agg_new(f->st);
    f->ms = calloc(count, sizeof(*f->ms));
    const char *names[NFUNCS] = {"main", "serve", "handle", "parse", "recurse", "idle"};
    for (int i = 0; i < NFUNCS; i++) {
        f->names[i] = strtab_intern_cstr(f->st, names[i]);
        f->files[i] = strtab_intern_cstr(f->st, i % 2 ? "/app/b.py" : "/app/a.py");
    }
    srand(seed);
    uint64_t t = 1000000000ull;
    for (size_t k = 0; k < count; k++) {
        int depth = 1 + rand() % MAXD, fn[MAXD], line[MAXD];
        fn[0] = 0;
        line[0] = 1;
        for (int i = 1; i < depth; i++) {
            fn[i] = 1 + rand() % (NFUNCS - 1); /* repeats make recursion */
            line[i] = 10 * fn[i] + rand() % 3;
        }
        t += 1000000;
        add(f, 100 + (pid_t)(rand() % 2), fn, line, depth, t, 500000 + (uint64_t)(rand() % 1000000));
    }
    return f;
}

static void free_fx(fx *f)
{
    agg_free(f->a);
    strtab_free(f->st);
    free(f->ms);
    free(f);
}

typedef struct expect {
    uint64_t self, total, all;
} expect;

/* The naive model: per function, self = leaf weight, total = weight of samples that have the
 * function anywhere (once per sample); only samples of tid (0 all) at or after from, whose stack
 * has a function whose name contains filter. */
static void model_top(const fx *f, pid_t tid, uint64_t from, const char *filter, expect *e)
{
    memset(e, 0, sizeof(expect) * NFUNCS);
    for (size_t k = 0; k < f->n; k++) {
        const model_sample *m = &f->ms[k];
        if ((tid && m->tid != tid) || m->t < from)
            continue;
        e[0].all += m->w;
        bool match = !filter || !*filter;
        for (int i = 0; i < m->depth; i++)
            match |= strstr(f->names[m->fn[i]], filter) != NULL;
        if (!match)
            continue;
        e[m->fn[m->depth - 1]].self += m->w;
        bool seen[NFUNCS] = {0};
        for (int i = 0; i < m->depth; i++)
            if (!seen[m->fn[i]]) {
                seen[m->fn[i]] = true;
                e[m->fn[i]].total += m->w;
            }
    }
}

static void check_top(fx *f, pid_t tid, uint64_t from, const char *filter)
{
    tui_prof p;
    tui_prof_init(&p);
    tui_prof_select(&p, tid, filter, from);
    /* incrementally: half of the aggregate first is not possible after the fact, so update twice
     * and check the second update adds nothing */
    assert_int_equal(tui_prof_update(&p, f->a), 0);
    assert_int_equal(tui_prof_update(&p, f->a), 0);
    expect e[NFUNCS];
    model_top(f, tid, from, filter, e);
    assert_int_equal(p.total_ns, e[0].all);
    tui_top_row *rows = NULL;
    size_t cap = 0, n = tui_top_build(&p, f->a, &rows, &cap);
    size_t want_rows = 0;
    for (int i = 0; i < NFUNCS; i++) {
        bool shown = e[i].total && (!filter || !*filter || strstr(f->names[i], filter) ||
                                    strstr(f->files[i], filter));
        want_rows += shown;
        size_t r = 0;
        while (r < n && rows[r].name != f->names[i])
            r++;
        if (!shown) {
            assert_true(r == n);
            continue;
        }
        assert_true(r < n);
        assert_int_equal(rows[r].self_ns, e[i].self);
        assert_int_equal(rows[r].total_ns, e[i].total);
        assert_true(rows[r].total_ns <= p.total_ns); /* recursion counted once: never > 100% */
    }
    assert_int_equal(n, want_rows);
    /* sorting */
    for (int key = 0; key < TUI_TOP_NKEYS; key++) {
        for (int rev = 0; rev < 2; rev++) {
            tui_top_sort(rows, n, (tui_top_key)key, rev);
            for (size_t i = 1; i < n; i++) {
                const tui_top_row *a = &rows[rev ? i : i - 1], *b = &rows[rev ? i - 1 : i];
                switch (key) {
                case TUI_TOP_SELF: assert_true(a->self_ns >= b->self_ns); break;
                case TUI_TOP_TOTAL: assert_true(a->total_ns >= b->total_ns); break;
                case TUI_TOP_CALLS: assert_true(a->calls >= b->calls); break;
                default: assert_true(strcmp(a->name, b->name) <= 0); break;
                }
            }
        }
    }
    free(rows);
    tui_prof_free(&p);
}

static void test_top_matches_model(void **state)
{
    (void)state;
    fx *f = make_fx(42, 3000);
    check_top(f, 0, 0, "");
    check_top(f, 100, 0, "");
    check_top(f, 101, 0, "");
    check_top(f, 0, f->ms[f->n / 2].t, "");          /* a recent window */
    check_top(f, 0, 0, "pars");                        /* a filter */
    check_top(f, 101, f->ms[f->n / 3].t, "recur");
    free_fx(f);
}

static void test_top_incremental(void **state)
{
    (void)state;
    /* the same result whether the aggregate is read once or after every few samples */
    fx *f = make_fx(7, 0);
    f->ms = realloc(f->ms, 2000 * sizeof(*f->ms));
    tui_prof inc;
    tui_prof_init(&inc);
    tui_prof_select(&inc, 0, "", 0);
    srand(7);
    uint64_t t = 1;
    for (int k = 0; k < 2000; k++) {
        int depth = 1 + rand() % MAXD, fn[MAXD], line[MAXD];
        for (int i = 0; i < depth; i++) {
            fn[i] = rand() % NFUNCS;
            line[i] = fn[i];
        }
        add(f, 7, fn, line, depth, t += 1000, 1000);
        if (rand() % 7 == 0)
            assert_int_equal(tui_prof_update(&inc, f->a), 0);
    }
    assert_int_equal(tui_prof_update(&inc, f->a), 0);
    tui_prof once;
    tui_prof_init(&once);
    tui_prof_select(&once, 0, "", 0);
    assert_int_equal(tui_prof_update(&once, f->a), 0);
    assert_int_equal(inc.nstat, once.nstat);
    assert_memory_equal(inc.stat, once.stat, once.nstat * sizeof(*once.stat));
    tui_prof_free(&inc);
    tui_prof_free(&once);
    free_fx(f);
}

static void test_calls_seen(void **state)
{
    (void)state;
    fx *f = make_fx(1, 0);
    f->ms = realloc(f->ms, 16 * sizeof(*f->ms));
    /* main>serve>handle, same, main>serve>parse, main>serve>handle, main>idle:
     * handle is seen starting twice, parse once, serve once, idle once, main once */
    int s1[] = {0, 1, 2}, s2[] = {0, 1, 3}, s3[] = {0, 5};
    int l1[] = {1, 10, 20}, l2[] = {1, 10, 30}, l3[] = {1, 50};
    add(f, 1, s1, l1, 3, 1000, 10);
    add(f, 1, s1, l1, 3, 2000, 10);
    add(f, 1, s2, l2, 3, 3000, 10);
    add(f, 1, s1, l1, 3, 4000, 10);
    add(f, 1, s3, l3, 2, 5000, 10);
    tui_prof p;
    tui_prof_init(&p);
    tui_prof_select(&p, 0, "", 0);
    assert_int_equal(tui_prof_update(&p, f->a), 0);
    tui_top_row *rows = NULL;
    size_t cap = 0, n = tui_top_build(&p, f->a, &rows, &cap);
    const char *names[] = {"main", "serve", "handle", "parse", "idle"};
    uint32_t calls[] = {1, 1, 2, 1, 1};
    for (size_t i = 0; i < 5; i++) {
        size_t r = 0;
        while (r < n && strcmp(rows[r].name, names[i]) != 0)
            r++;
        assert_true(r < n);
        assert_int_equal(rows[r].calls, calls[i]);
    }
    /* the line shown for serve is its only line; for main the hottest line is line 1 */
    free(rows);
    tui_prof_free(&p);
    free_fx(f);
}

static void test_tree(void **state)
{
    (void)state;
    fx *f = make_fx(3, 0);
    f->ms = realloc(f->ms, 16 * sizeof(*f->ms));
    int a[] = {0, 1, 2}, b[] = {0, 1, 3}, c[] = {0, 5};
    int la[] = {1, 2, 3}, lb[] = {1, 2, 4}, lc[] = {1, 5};
    /* main 100%: serve 60% (handle 40, parse 20), idle 40% */
    add(f, 1, a, la, 3, 1, 40);
    add(f, 1, b, lb, 3, 2, 20);
    add(f, 1, c, lc, 2, 3, 40);
    tui_prof p;
    tui_prof_init(&p);
    tui_prof_select(&p, 0, "", 0);
    assert_int_equal(tui_prof_update(&p, f->a), 0);
    tui_tree_state ts = {0};
    tui_tree_row *rows = NULL;
    size_t cap = 0;
    size_t n = tui_tree_build(&p, f->a, &ts, &rows, &cap);
    /* all nodes have >= 10%: all expanded; children by total: serve before idle, handle before parse */
    const char *order[] = {"main", "serve", "handle", "parse", "idle"};
    uint32_t depth[] = {0, 1, 2, 2, 1};
    uint64_t total[] = {100, 60, 40, 20, 40};
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].frame.name, order[i]);
        assert_int_equal(rows[i].depth, depth[i]);
        assert_int_equal(rows[i].total_ns, total[i]);
    }
    assert_true(rows[0].has_children && rows[0].expanded);
    assert_false(rows[2].has_children);
    /* collapse serve */
    assert_int_equal(tui_tree_set(&ts, rows[1].node, false), 0);
    n = tui_tree_build(&p, f->a, &ts, &rows, &cap);
    assert_int_equal(n, 3);
    assert_string_equal(rows[2].frame.name, "idle");
    assert_false(rows[1].expanded);
    /* zoom into serve: serve at depth 0 (expanded while zoomed) and its children */
    tui_tree_zoom_in(&ts, rows[1].node);
    n = tui_tree_build(&p, f->a, &ts, &rows, &cap);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].frame.name, "serve");
    assert_int_equal(rows[0].depth, 0);
    assert_int_equal(rows[1].depth, 1);
    tui_tree_zoom_out(&ts);
    n = tui_tree_build(&p, f->a, &ts, &rows, &cap);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].frame.name, "main");
    /* a filter keeps only matching stacks: "pars" -> main, serve, parse */
    tui_tree_state_clear(&ts);
    tui_prof_select(&p, 0, "pars", 0);
    assert_int_equal(tui_prof_update(&p, f->a), 0);
    n = tui_tree_build(&p, f->a, &ts, &rows, &cap);
    assert_int_equal(n, 3);
    assert_string_equal(rows[2].frame.name, "parse");
    assert_int_equal(rows[0].total_ns, 20);
    assert_int_equal(p.total_ns, 100); /* percentages stay relative to everything */
    free(rows);
    tui_tree_state_free(&ts);
    tui_prof_free(&p);
    free_fx(f);
}

/* ---- tasks ------------------------------------------------------------------------------------ */

typedef struct task_spec {
    const char *name;
    uint8_t state;
    int awaits[3]; /* task indices, -1 ends */
} task_spec;

static void build_snapshot(async_snapshot *s, strtab *st, const task_spec *spec, uint32_t n)
{
    async_snapshot_init(s);
    s->tasks = calloc(n, sizeof(*s->tasks));
    s->edges = calloc(n * 6, sizeof(uint32_t));
    s->frames = calloc(n, sizeof(aprof_frame));
    s->ntasks = n;
    s->nloops = 1;
    s->loops[0] = (async_loop){.id = 0x1000, .tid = 77, .thread_name = "MainThread", .ntasks = n};
    uint32_t e = 0;
    for (uint32_t i = 0; i < n; i++) {
        async_task *t = &s->tasks[i];
        t->id = 0x5000 + i;
        t->name = strtab_intern_cstr(st, spec[i].name);
        t->state = spec[i].state;
        t->loop_index = 0;
        t->frame_start = i;
        t->nframes = 1;
        s->frames[i] = (aprof_frame){strtab_intern_cstr(st, "coro"), "/x.py", (int32_t)i + 1, 0, 0};
        t->awaits_start = e;
        for (int k = 0; k < 3 && spec[i].awaits[k] >= 0; k++) {
            s->edges[e++] = (uint32_t)spec[i].awaits[k];
            s->tasks[spec[i].awaits[k]].nby++;
        }
        t->nawaits = e - t->awaits_start;
    }
    s->nedges = e;
    s->nframes = n;
}

static void free_snapshot(async_snapshot *s)
{
    free(s->tasks);
    free(s->edges);
    free(s->frames);
}

static void test_tasks_tree(void **state)
{
    (void)state;
    strtab *st = strtab_new();
    /* 0 main awaits gatherer(1); gatherer awaits worker-10(2), worker-2(3); worker-2 awaits
     * shared(4); worker-10 awaits shared(4) too; cycle-a(5) <-> cycle-b(6); done(7) */
    task_spec spec[] = {
        {"main", ATS_PENDING, {1, -1}},
        {"gatherer", ATS_PENDING, {2, 3, -1}},
        {"worker-10", ATS_RUNNING, {4, -1}},
        {"worker-2", ATS_PENDING, {4, -1}},
        {"shared", ATS_PENDING, {-1}},
        {"cycle-a", ATS_PENDING, {6, -1}},
        {"cycle-b", ATS_PENDING, {5, -1}},
        {"done", ATS_DONE, {-1}},
    };
    async_snapshot s;
    build_snapshot(&s, st, spec, 8);
    assert_int_equal(tui_tasks_alive(&s), 7);
    tui_task_row *rows = NULL;
    size_t cap = 0;
    size_t n = tui_tasks_build(&s, "", false, &rows, &cap);
    struct { const char *name; uint32_t depth; bool again; } want[] = {
        {"main", 0, false}, {"gatherer", 1, false}, {"worker-10", 2, false},
        {"shared", 3, false}, {"worker-2", 2, false}, {"shared", 3, true},
        {"cycle-a", 0, false}, {"cycle-b", 1, false}, {"cycle-a", 2, true},
    };
    assert_int_equal(n, 1 + sizeof(want) / sizeof(*want));
    assert_true(rows[0].is_loop);
    assert_int_equal(rows[0].ntasks, 8);
    assert_int_equal(rows[0].tid, 77);
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        assert_false(rows[i + 1].is_loop);
        assert_string_equal(rows[i + 1].name, want[i].name);
        assert_int_equal(rows[i + 1].depth, want[i].depth);
        assert_int_equal(rows[i + 1].again, want[i].again);
        assert_int_equal(rows[i + 1].where.line, rows[i + 1].task + 1);
    }
    /* finished tasks on request; roots sorted by name with numbers compared as numbers */
    n = tui_tasks_build(&s, "", true, &rows, &cap);
    assert_int_equal(n, 11);
    assert_string_equal(rows[1].name, "done");    /* roots by name: done, main; then cycles */
    assert_string_equal(rows[2].name, "main");
    assert_string_equal(rows[4].name, "worker-10"); /* children keep their edge order */
    assert_string_equal(rows[8].name, "cycle-a");
    assert_true(rows[10].again);
    /* a filter keeps the matching tasks only */
    n = tui_tasks_build(&s, "worker", false, &rows, &cap);
    assert_int_equal(n, 3);
    assert_string_equal(rows[1].name, "worker-10");
    assert_string_equal(rows[2].name, "worker-2");
    n = tui_tasks_build(&s, "nothing-matches", false, &rows, &cap);
    assert_int_equal(n, 0);
    free_snapshot(&s);

    /* roots: numbers inside names compare as numbers */
    task_spec roots[] = {{"w-10", ATS_PENDING, {-1}}, {"w-9", ATS_PENDING, {-1}},
                         {"w-100", ATS_PENDING, {-1}}, {"v", ATS_PENDING, {-1}}};
    build_snapshot(&s, st, roots, 4);
    n = tui_tasks_build(&s, NULL, false, &rows, &cap);
    assert_int_equal(n, 5);
    const char *sorted[] = {"v", "w-9", "w-10", "w-100"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(rows[i + 1].name, sorted[i]);
    free(rows);
    free_snapshot(&s);
    strtab_free(st);
}

/* ---- stalls and lag ------------------------------------------------------------------------- */

static void test_stalls_order(void **state)
{
    (void)state;
    tui_stall_list l = {0};
    l.ev = calloc(4, sizeof(*l.ev));
    l.cap = 4;
    const char *culprits[] = {"a_block", "b_block", "c_block", "d_block"};
    uint64_t starts[] = {300, 100, 400, 200};
    for (int i = 0; i < 4; i++) {
        l.ev[i].start_ns = starts[i];
        l.ev[i].end_ns = starts[i] + 150;
        l.ev[i].culprit.name = culprits[i];
        l.ev[i].culprit.file = "/app.py";
        l.ev[i].task = i == 3 ? "blocker" : NULL;
        l.ev[i].stack = malloc(sizeof(aprof_frame));
        l.ev[i].nstack = 1;
    }
    l.n = 4;
    uint32_t out[4];
    size_t n = tui_stalls_order(&l, "", out);
    assert_int_equal(n, 4);
    uint32_t want[] = {2, 0, 3, 1}; /* newest (latest start) first */
    for (int i = 0; i < 4; i++)
        assert_int_equal(out[i], want[i]);
    n = tui_stalls_order(&l, "blocker", out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 3);
    n = tui_stalls_order(&l, "c_bl", out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 2);
    tui_stall_list_free(&l);
}

int main(void)
{
    setlocale(LC_CTYPE, "C.UTF-8"); /* wcwidth() for the wide characters */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_width),      cmocka_unit_test(test_fit_exact_width),
        cmocka_unit_test(test_format_frame),    cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_top_matches_model), cmocka_unit_test(test_top_incremental),
        cmocka_unit_test(test_calls_seen),      cmocka_unit_test(test_tree),
        cmocka_unit_test(test_tasks_tree),
        cmocka_unit_test(test_stalls_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
