/* grow_array: capacities double from `first` and stop at the limit, what was there is kept and
 * the new slots are zeroed, and a size that would overflow, a need over the limit or a zero
 * element size leave the array and its capacity as they were. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "grow.h"

static void test_doubles_keeps_and_zeroes(void **state)
{
    (void)state;
    size_t cap = 0;
    uint32_t *a = NULL;
    assert_true(grow_array((void **)&a, &cap, 1, sizeof *a, 16, 1000));
    assert_non_null(a);
    assert_int_equal(cap, 16);
    for (size_t i = 0; i < cap; i++) {
        assert_int_equal(a[i], 0);
        a[i] = (uint32_t)i + 1;
    }
    uint32_t *was = a;
    assert_true(grow_array((void **)&a, &cap, 16, sizeof *a, 16, 1000)); /* room enough */
    assert_true(grow_array((void **)&a, &cap, 0, sizeof *a, 16, 1000));
    assert_ptr_equal(a, was);
    assert_int_equal(cap, 16);
    assert_true(grow_array((void **)&a, &cap, 17, sizeof *a, 16, 1000));
    assert_int_equal(cap, 32);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(a[i], i + 1);
    for (size_t i = 16; i < 32; i++)
        assert_int_equal(a[i], 0);
    assert_true(grow_array((void **)&a, &cap, 100, sizeof *a, 16, 1000)); /* several doublings */
    assert_int_equal(cap, 128);
    free(a);
}

static void test_limit(void **state)
{
    (void)state;
    size_t cap = 0;
    char *a = NULL;
    assert_true(grow_array((void **)&a, &cap, 700, 1, 64, 1000));
    assert_int_equal(cap, 1000); /* 1024 is past the limit: the limit itself */
    char *was = a;
    assert_false(grow_array((void **)&a, &cap, 1001, 1, 64, 1000));
    assert_ptr_equal(a, was);
    assert_int_equal(cap, 1000);
    a[999] = 'x'; /* still the caller's, whole */
    free(a);
}

static void test_refusals_change_nothing(void **state)
{
    (void)state;
    size_t cap = 0;
    char *e = NULL;
    assert_false(grow_array((void **)&e, &cap, SIZE_MAX / 4 + 1, 8, 64, SIZE_MAX)); /* overflow */
    assert_false(grow_array((void **)&e, &cap, 3, 0, 64, SIZE_MAX)); /* no element size */
    assert_null(e);
    assert_int_equal(cap, 0);
    /* nothing needed yet: an empty array still gets its first slots */
    assert_true(grow_array((void **)&e, &cap, 0, 1, 8, 100));
    assert_non_null(e);
    assert_int_equal(cap, 8);
    free(e);
    uint64_t *a = NULL;
    cap = 0;
    assert_true(grow_array((void **)&a, &cap, 1, sizeof *a, 0, SIZE_MAX)); /* first 0: from 1 */
    assert_int_equal(cap, 1);
    /* a count read from a target, over the caller's limit: refused before any allocation (an
     * allocation that large would abort under ASan, not fail) */
    assert_false(grow_array((void **)&a, &cap, SIZE_MAX / 16, sizeof *a, 64, 1u << 20));
    assert_int_equal(cap, 1);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_keeps_and_zeroes),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_refusals_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
