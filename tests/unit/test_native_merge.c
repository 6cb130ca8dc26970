/* Unit tests of the native/Python stack merge (src/native/native_merge.c) on synthetic stacks.
 *
 * Hand-written cases pin the rules; a randomized test builds a true interleaved stack first
 * (native frames, evaluation calls each running a group of Python frames), derives from it what
 * the unwinder and the Python walker would report, and checks that merging gives the true stack
 * back - or MERGE_UNMERGED when the inputs were made to disagree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "native_merge.h"
#include "strtab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF 256

typedef struct stacks {
    merge_native native[MAXF]; /* innermost first */
    uint32_t nnative;
    aprof_frame py[MAXF];      /* outermost first */
    uint64_t owners[MAXF];
    uint32_t npy;
} stacks;

static strtab *st;

static int setup(void **state)
{
    (void)state;
    st = strtab_new();
    return st ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    strtab_free(st);
    return 0;
}

static aprof_frame mark(void)
{
    return (aprof_frame){strtab_intern_cstr(st, "<unmerged>"), "", 0, FRAME_MARK, 0};
}

/* native spec, outermost first: words; "E" is an evaluation call, anything else a C function.
 * python spec, outermost first: "*name" is an entry frame. */
static void build(stacks *s, const char *native_spec, const char *py_spec)
{
    memset(s, 0, sizeof(*s));
    char buf[1024];
    merge_native tmp[MAXF];
    uint32_t n = 0;
    snprintf(buf, sizeof(buf), "%s", native_spec);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        bool ev = strcmp(tok, "E") == 0;
        tmp[n].f = (aprof_frame){strtab_intern_cstr(st, ev ? "_PyEval_EvalFrameDefault" : tok),
                                 "lib.so", 0, FRAME_NATIVE, 0};
        tmp[n++].is_eval = ev;
    }
    for (uint32_t i = 0; i < n; i++)
        s->native[i] = tmp[n - 1 - i];
    s->nnative = n;
    snprintf(buf, sizeof(buf), "%s", py_spec);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        bool entry = tok[0] == '*';
        s->py[s->npy] = (aprof_frame){strtab_intern_cstr(st, tok + entry), "a.py", 1, FRAME_PYTHON,
                                      entry ? FRAMEF_ENTRY : 0};
        s->owners[s->npy] = 1000 + s->npy;
        s->npy++;
    }
}

static merge_result run(const stacks *s, bool complete, bool broken, char *out, size_t len,
                        aprof_frame *frames, uint64_t *owners, int32_t *idx, uint32_t cap)
{
    merge_input in = {s->native, s->nnative, complete, s->py, s->owners, s->npy, broken, mark()};
    merge_output o = {frames, owners, cap, 0, idx, false};
    merge_result r = native_merge(&in, &o);
    size_t used = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < o.n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? " " : "", frames[i].name);
    return r;
}

static merge_result merged(const char *native_spec, const char *py_spec, bool complete, char *out)
{
    stacks s;
    build(&s, native_spec, py_spec);
    aprof_frame frames[MAXF];
    uint64_t owners[MAXF];
    int32_t idx[MAXF];
    return run(&s, complete, false, out, 2048, frames, owners, idx, MAXF);
}

static void test_one_frame_per_call(void **state)
{
    (void)state;
    char out[2048];
    /* 3.10: every Python frame has its own evaluation call, glue between them stays. */
    assert_int_equal(merged("_start main E vector E vector E cfunc select",
                            "*mod *f *g", true, out), MERGE_OK);
    assert_string_equal(out, "_start main mod vector f vector g cfunc select");
}

static void test_groups(void **state)
{
    (void)state;
    char out[2048];
    /* 3.11+: Python-to-Python calls stay in one evaluation call. */
    assert_int_equal(merged("clone start_thread E call E qsort cmp E sleep clock_nanosleep",
                            "*boot run loop *key *compare inner", true, out), MERGE_OK);
    assert_string_equal(out, "clone start_thread boot run loop call key qsort cmp compare inner "
                             "sleep clock_nanosleep");
}

static void test_innermost_call_without_frames(void **state)
{
    (void)state;
    char out[2048];
    /* 3.12+: a call that only pushed its shim frame so far; earlier versions: a frame not
     * linked yet. It disappears, the C frames inside it stay. */
    assert_int_equal(merged("_start E call E alloc", "*mod f", true, out), MERGE_OK);
    assert_string_equal(out, "_start mod f call alloc");
    assert_int_equal(merged("_start E call E E", "*mod", true, out), MERGE_OK);
    assert_string_equal(out, "_start mod call");
}

static void test_disagreements_are_not_merged(void **state)
{
    (void)state;
    char out[2048];
    /* More groups than calls: the native stack missed a call. */
    assert_int_equal(merged("_start E call read", "*mod *f *g", true, out), MERGE_UNMERGED);
    assert_string_equal(out, "mod f g <unmerged> call read");
    /* The first Python frame must start a call. */
    assert_int_equal(merged("_start E write", "mod *f", true, out), MERGE_UNMERGED);
    assert_string_equal(out, "mod f <unmerged> write");
    /* A cut native stack only merges when the counts match exactly. */
    assert_int_equal(merged("E call E read", "*f *g", false, out), MERGE_OK);
    assert_string_equal(out, "f call g read");
    assert_int_equal(merged("E call E read", "*f", false, out), MERGE_UNMERGED);
    assert_string_equal(out, "f <unmerged> read");
    /* No evaluation call recognised: every native frame after the mark. */
    assert_int_equal(merged("_start main poll", "*mod", true, out), MERGE_UNMERGED);
    assert_string_equal(out, "mod <unmerged> _start main poll");
    /* A torn Python stack is never merged. */
    stacks s;
    build(&s, "_start E poll", "*mod");
    aprof_frame frames[MAXF];
    uint64_t owners[MAXF];
    int32_t idx[MAXF];
    assert_int_equal(run(&s, true, true, out, sizeof(out), frames, owners, idx, MAXF),
                     MERGE_UNMERGED);
}

static void test_no_python(void **state)
{
    (void)state;
    char out[2048];
    /* A thread with no Python frame right now: its native stack, without evaluation calls. */
    assert_int_equal(merged("clone start_thread E finalize", "", true, out), MERGE_OK);
    assert_string_equal(out, "clone start_thread finalize");
}

static void test_owners_index_and_cap(void **state)
{
    (void)state;
    stacks s;
    build(&s, "_start E call E poll", "*mod f *g");
    aprof_frame frames[MAXF];
    uint64_t owners[MAXF];
    int32_t idx[MAXF];
    char out[2048];
    assert_int_equal(run(&s, true, false, out, sizeof(out), frames, owners, idx, MAXF), MERGE_OK);
    assert_string_equal(out, "_start mod f call g poll");
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 2);
    assert_int_equal(idx[2], 4);
    assert_int_equal(owners[0], 0);
    assert_int_equal(owners[1], 1000);
    assert_int_equal(owners[2], 1001);
    assert_int_equal(owners[3], 0);
    assert_int_equal(owners[4], 1002);
    assert_int_equal(frames[1].flags & FRAMEF_ENTRY, FRAMEF_ENTRY);
    assert_int_equal(frames[3].kind, FRAME_NATIVE);
    /* Too small: the outermost frames are kept, Python frames that did not fit get -1. */
    merge_input in = {s.native, s.nnative, true, s.py, s.owners, s.npy, false, mark()};
    merge_output o = {frames, owners, 3, 0, idx, false};
    assert_int_equal(native_merge(&in, &o), MERGE_OK);
    assert_int_equal(o.n, 3);
    assert_true(o.truncated);
    assert_int_equal(idx[2], -1);
    assert_string_equal(frames[2].name, "f");
}

/* ---------------------------------------------------------------- randomized */

typedef struct item {
    bool is_native, is_eval, entry;
    char name[16];
} item;

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* A true stack, outermost first: native frames and evaluation calls, each call followed by its
 * Python frames; only the innermost calls may have none. */
static uint32_t make_truth(item *t, uint32_t max)
{
    uint32_t n = 0, id = 0;
    uint32_t calls = rnd(6);
    uint32_t empty_inner = calls ? rnd(3) : 0;
    if (empty_inner > calls)
        empty_inner = calls;
    for (uint32_t c = 0; c <= calls && n + 12 < max; c++) {
        uint32_t glue = rnd(4);
        for (uint32_t g = 0; g < glue; g++) {
            t[n] = (item){true, false, false, ""};
            snprintf(t[n++].name, sizeof(t[0].name), "c%u", id++);
        }
        if (c == calls)
            break;
        t[n++] = (item){true, true, false, "E"};
        uint32_t frames = c >= calls - empty_inner ? 0 : 1 + rnd(4);
        for (uint32_t k = 0; k < frames; k++) {
            t[n] = (item){false, false, k == 0, ""};
            snprintf(t[n++].name, sizeof(t[0].name), "p%u", id++);
        }
    }
    return n;
}

static void test_random_stacks(void **state)
{
    (void)state;
    for (int round = 0; round < 20000; round++) {
        item truth[MAXF];
        uint32_t n = make_truth(truth, MAXF);
        stacks s;
        memset(&s, 0, sizeof(s));
        char expect[4096];
        size_t used = 0;
        expect[0] = 0;
        merge_native outer_first[MAXF];
        uint32_t nn = 0;
        for (uint32_t i = 0; i < n; i++) {
            const item *it = &truth[i];
            if (it->is_native) {
                outer_first[nn].f = (aprof_frame){strtab_intern_cstr(st, it->name), "", 0,
                                                  FRAME_NATIVE, 0};
                outer_first[nn++].is_eval = it->is_eval;
            } else {
                s.py[s.npy] = (aprof_frame){strtab_intern_cstr(st, it->name), "a.py", 1,
                                            FRAME_PYTHON, it->entry ? FRAMEF_ENTRY : 0};
                s.owners[s.npy] = s.npy + 1;
                s.npy++;
            }
            if (!it->is_eval)
                used += (size_t)snprintf(expect + used, sizeof(expect) - used, "%s%s",
                                         used ? " " : "", it->name);
        }
        for (uint32_t i = 0; i < nn; i++)
            s.native[i] = outer_first[nn - 1 - i];
        s.nnative = nn;
        aprof_frame frames[MAXF];
        uint64_t owners[MAXF];
        int32_t idx[MAXF];
        char out[4096];
        merge_result r = run(&s, true, false, out, sizeof(out), frames, owners, idx, MAXF);
        if (r != MERGE_OK || strcmp(out, expect) != 0)
            fail_msg("round %d: expected [%s], got [%s] (%d)", round, expect, out, (int)r);
        for (uint32_t i = 0; i < s.npy; i++)
            if (idx[i] < 0 || frames[idx[i]].name != s.py[i].name || owners[idx[i]] != i + 1)
                fail_msg("round %d: Python frame %u misplaced", round, i);
        /* Lose one evaluation call that has frames: the counts disagree. */
        uint32_t groups = native_merge_groups(s.py, s.npy);
        if (groups == 0)
            continue;
        uint32_t victim = rnd(groups), seen = 0;
        merge_native fewer[MAXF];
        uint32_t nf = 0;
        for (uint32_t i = 0; i < nn; i++) {
            const merge_native *m = &outer_first[i];
            if (m->is_eval && seen++ == victim)
                continue;
            fewer[nf++] = *m;
        }
        for (uint32_t i = 0; i < nf; i++)
            s.native[i] = fewer[nf - 1 - i];
        s.nnative = nf;
        uint32_t evals = native_merge_evals(s.native, s.nnative);
        r = run(&s, true, false, out, sizeof(out), frames, owners, idx, MAXF);
        if (evals < groups && r != MERGE_UNMERGED)
            fail_msg("round %d: %u groups, %u calls, merged anyway: [%s]", round, groups, evals,
                     out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_frame_per_call),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_innermost_call_without_frames),
        cmocka_unit_test(test_disagreements_are_not_merged),
        cmocka_unit_test(test_no_python),
        cmocka_unit_test(test_owners_index_and_cap),
        cmocka_unit_test(test_random_stacks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
