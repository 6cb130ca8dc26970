/* asyncio_offsets_apply (src/cpython/asyncio_offsets.c) on the bytes of the `.AsyncioDebug`
 * section of Debian's python3.14 `_asyncio` (3.14.10, release build, read with readelf) and of
 * its python3.15 executable (3.15.2, _asyncio built in, objcopy --only-section), and on
 * corruptions of them: every corruption leaves the layout untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "asyncio_offsets.h"

static const uint64_t real_3_14[13] = {168, 136, 96, 108, 109, 128, 152,
                                       225864, 10880, 936, 864, 872, 880};
static const uint64_t real_3_15[13] = {168, 136, 96, 108, 109, 128, 152,
                                       226240, 10856, 1104, 1024, 1032, 1048};

static void test_real_section_applies(void **state)
{
    (void)state;
    const py_layout *in = layout_for_version(3, 14);
    assert_non_null(in);
    py_layout out;
    assert_true(asyncio_offsets_apply(real_3_14, sizeof real_3_14, in, &out));
    assert_int_equal(out.asyncio.task_sizeof, 168);
    assert_int_equal(out.asyncio.task_name, 136);
    assert_int_equal(out.asyncio.task_coro, 128);
    assert_int_equal(out.asyncio.task_node, 152);
    /* the release build's interpreter differs from the debug build's the table comes from */
    assert_int_equal(out.interp.asyncio_tasks_head, 10880);
    assert_int_equal(in->interp.asyncio_tasks_head, 10888);
    assert_int_equal(out.tstate.asyncio_running_loop, 864);
    assert_int_equal(out.tstate.asyncio_running_task, 872);
    assert_int_equal(out.tstate.asyncio_tasks_head, 880);
    /* nothing else changes */
    py_layout expect = *in;
    expect.asyncio.task_sizeof = 168;
    expect.asyncio.task_name = 136;
    expect.asyncio.task_coro = 128;
    expect.asyncio.task_node = 152;
    expect.interp.asyncio_tasks_head = 10880;
    expect.tstate.asyncio_running_loop = 864;
    expect.tstate.asyncio_running_task = 872;
    expect.tstate.asyncio_tasks_head = 880;
    assert_memory_equal(&out, &expect, sizeof out);
}

static void expect_rejected(const uint64_t *b, size_t len, const py_layout *in)
{
    py_layout out;
    memset(&out, 0xab, sizeof out);
    assert_false(asyncio_offsets_apply(b, len, in, &out));
    assert_memory_equal(&out, in, sizeof out); /* nothing half-applied */
}

static void test_corruptions_rejected(void **state)
{
    (void)state;
    const py_layout *in = layout_for_version(3, 14);
    uint64_t b[13];
    expect_rejected(real_3_14, sizeof real_3_14 - 8, in);           /* short */
    expect_rejected(NULL, 0, in);
    expect_rejected(real_3_14, sizeof real_3_14, layout_for_version(3, 13)); /* no such struct */
    size_t sizes[] = {0, 7, 9};
    for (size_t i = 0; i < 3; i++) {
        memcpy(b, real_3_14, sizeof b);
        b[sizes[i]] = 0;                                            /* a size of 0 */
        expect_rejected(b, sizeof b, in);
        b[sizes[i]] = UINT64_MAX;                                   /* an absurd size */
        expect_rejected(b, sizeof b, in);
    }
    for (size_t i = 1; i < 13; i++) {
        if (i == 7 || i == 9)
            continue;
        memcpy(b, real_3_14, sizeof b);
        b[i] = 1u << 30;                                            /* outside its struct */
        expect_rejected(b, sizeof b, in);
    }
    memcpy(b, real_3_14, sizeof b);
    b[9] = 100; /* a thread state smaller than where the interpreter keeps its data stack */
    expect_rejected(b, sizeof b, in);
}

/* 3.15: the same struct; the release build's interpreter list is 8 bytes before the debug
 * build's, its thread state fields where the debug build has them. */
static void test_real_315_section_applies(void **state)
{
    (void)state;
    const py_layout *in = layout_for_version(3, 15);
    assert_non_null(in);
    py_layout out;
    assert_true(asyncio_offsets_apply(real_3_15, sizeof real_3_15, in, &out));
    py_layout expect = *in;
    expect.interp.asyncio_tasks_head = 10856;
    assert_int_equal(in->interp.asyncio_tasks_head, 10864);
    assert_int_equal(out.tstate.asyncio_running_loop, 1024);
    assert_int_equal(out.tstate.asyncio_running_task, 1032);
    assert_int_equal(out.tstate.asyncio_tasks_head, 1048);
    assert_int_equal(out.asyncio.task_node, 152);
    assert_memory_equal(&out, &expect, sizeof out);
    /* a 3.14 section whose thread state is too small for 3.15's data stack pointer */
    uint64_t b[13];
    memcpy(b, real_3_15, sizeof b);
    b[9] = 240;
    expect_rejected(b, sizeof b, in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_section_applies),
        cmocka_unit_test(test_corruptions_rejected),
        cmocka_unit_test(test_real_315_section_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
