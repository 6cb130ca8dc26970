/* src/target/read_batch.c: one batched read of many ranges, run against this process's own
 * memory. The kernel copies ranges in order and stops at the first it cannot read: rb_copied
 * must say exactly which ranges arrived whole, rb_copied_count how many of a run did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memory.h"
#include "read_batch.h"

static uint64_t addr_of(const void *p) { return (uint64_t)(uintptr_t)p; }

static void test_all_ranges_copied(void **state)
{
    (void)state;
    mem m;
    assert_int_equal(mem_init(&m, target_src_live(getpid())), 0);
    uint64_t a = 0x1122334455667788ull, a2 = 0;
    uint8_t blob[300], blob2[300];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 7);
    memset(blob2, 0, sizeof(blob2));
    read_batch b;
    rb_init(&b);
    assert_int_equal(rb_next(&b), 0);
    assert_int_equal(rb_add(&b, addr_of(&a), &a2, 8), 0);
    assert_int_equal(rb_next(&b), 1);
    assert_int_equal(rb_add(&b, addr_of(blob), blob2, sizeof(blob)), 1);
    assert_int_equal(rb_read(&b, &m), 8 + (ssize_t)sizeof(blob));
    assert_true(rb_copied(&b, 0));
    assert_true(rb_copied(&b, 1));
    assert_false(rb_copied(&b, 2));                 /* never added */
    assert_false(rb_copied(&b, READ_BATCH_NONE));
    assert_int_equal(rb_copied_count(&b, 0, 2), 2);
    assert_int_equal(rb_copied_count(&b, 1, 5), 1); /* only one of them was added */
    assert_int_equal(rb_copied_count(&b, READ_BATCH_NONE, 3), 0);
    assert_true(a2 == a);
    assert_memory_equal(blob, blob2, sizeof(blob));
    mem_free(&m);
}

static void test_stops_at_first_unreadable(void **state)
{
    (void)state;
    mem m;
    assert_int_equal(mem_init(&m, target_src_live(getpid())), 0);
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    memset(map, 0xab, (size_t)page);
    assert_int_equal(munmap(map + page, (size_t)page), 0); /* the second page is gone */
    uint64_t first = 0, later = 0;
    uint8_t dst[64], straddle[64];
    read_batch b;
    rb_init(&b);
    size_t i0 = rb_add(&b, addr_of(map), &first, 8);
    size_t i1 = rb_add(&b, addr_of(map + 8), dst, sizeof(dst));
    size_t i2 = rb_add(&b, addr_of(map + page - 32), straddle, sizeof(straddle)); /* half gone */
    size_t i3 = rb_add(&b, addr_of(map), &later, 8); /* readable, but after a failing range */
    assert_int_equal(i3, 3);
    ssize_t got = rb_read(&b, &m);
    assert_true(got >= 8 + (ssize_t)sizeof(dst) && got < 8 + 2 * (ssize_t)sizeof(dst) + 8);
    assert_true(rb_copied(&b, i0));
    assert_true(rb_copied(&b, i1));
    assert_false(rb_copied(&b, i2));
    assert_false(rb_copied(&b, i3));
    assert_int_equal(rb_copied_count(&b, i0, 4), 2);
    assert_int_equal(rb_copied_count(&b, i1, 3), 1);
    assert_int_equal(rb_copied_count(&b, i2, 2), 0);
    assert_true(first == 0xababababababababull);
    /* a batch whose first range fails copies nothing */
    rb_init(&b);
    rb_add(&b, addr_of(map + page), dst, 8);
    rb_add(&b, addr_of(map), &later, 8);
    rb_read(&b, &m);
    assert_false(rb_copied(&b, 0));
    assert_false(rb_copied(&b, 1));
    munmap(map, (size_t)page);
    mem_free(&m);
}

static void test_capacity(void **state)
{
    (void)state;
    static read_batch b;
    uint8_t byte;
    rb_init(&b);
    for (size_t i = 0; i < READ_BATCH_MAX; i++)
        assert_int_equal(rb_add(&b, 0x1000, &byte, 1), i);
    assert_int_equal(rb_add(&b, 0x1000, &byte, 1), READ_BATCH_NONE); /* full: not added */
    assert_int_equal(rb_next(&b), READ_BATCH_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_ranges_copied),
        cmocka_unit_test(test_stops_at_first_unreadable),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
