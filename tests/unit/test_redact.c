/* redact.h: the documented placeholders (docs/record.md#redact). The task placeholders' hashes
 * were computed with an independent FNV-1a (Python) from the same names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "redact.h"

static void check_path(const char *in, const char *want, bool changed)
{
    char out[64];
    assert_int_equal(redact_path(in, out, sizeof out), changed);
    assert_string_equal(out, want);
}

static void test_paths(void **state)
{
    (void)state;
    check_path("/home/alice/src/app.py", "~/src/app.py", true);
    check_path("/home/alice", "~", true);
    check_path("/root/.pyenv/versions/3.12.1/lib/python3.12/asyncio/tasks.py",
               "~/.pyenv/versions/3.12.1/lib/python3.12/asyncio/tasks.py", true);
    check_path("/root", "~", true);
    check_path("/home/", "/home/", false);
    check_path("/home//x", "/home//x", false);
    check_path("/homework/x.py", "/homework/x.py", false);
    check_path("/rootfs/x.py", "/rootfs/x.py", false);
    check_path("/usr/lib/python3.11/json/decoder.py", "/usr/lib/python3.11/json/decoder.py", false);
    check_path("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap>", false);
    check_path("", "", false);
    char tiny[4];
    assert_true(redact_path("/home/alice/long/path.py", tiny, sizeof tiny));
    assert_string_equal(tiny, "~/l"); /* truncated, always terminated */
}

static void test_task_names(void **state)
{
    (void)state;
    char out[32];
    /* a trailing counter stays, the rest is hashed: tasks of one kind still group */
    assert_true(redact_task_name("worker-7", out, sizeof out));
    assert_string_equal(out, "task-95ce3757-7");
    assert_true(redact_task_name("w-730", out, sizeof out));
    assert_string_equal(out, "task-f20c3f36-730");
    assert_int_equal(task_name_group_len(out), 14);
    assert_true(redact_task_name("supervisor", out, sizeof out));
    assert_string_equal(out, "task-73395737"); /* all decimal, yet not a counter: */
    assert_int_equal(task_name_group_len(out), 0);
    assert_true(redact_task_name("Task-x", out, sizeof out));
    assert_string_equal(out, "task-c4c05d51");
    assert_true(redact_task_name("Task-", out, sizeof out));
    assert_string_equal(out, "task-db9e0473");
    assert_false(redact_task_name("Task-123", out, sizeof out)); /* asyncio's default */
    assert_string_equal(out, "Task-123");
    assert_true(task_name_is_default("Task-1"));
    assert_false(task_name_is_default("Task-1a"));
    assert_false(task_name_is_default("task-1"));
    assert_false(task_name_is_default(NULL));
}

/* Names that differ only in a trailing counter group (stitched stacks, the report's tree). */
static void test_task_name_groups(void **state)
{
    (void)state;
    assert_int_equal(task_name_group_len("Task-17"), 5);
    assert_int_equal(task_name_group_len("w-730"), 2);
    assert_int_equal(task_name_group_len("conn_41"), 5);
    assert_int_equal(task_name_group_len("job.3"), 4);
    assert_int_equal(task_name_group_len("req#9"), 4);
    assert_int_equal(task_name_group_len("batch 12"), 6);
    assert_int_equal(task_name_group_len("worker-7-b"), 0); /* no trailing counter */
    assert_int_equal(task_name_group_len("blocker"), 0);
    assert_int_equal(task_name_group_len("w1"), 0);         /* no separator */
    assert_int_equal(task_name_group_len("-5"), 0);         /* nothing before it */
    assert_int_equal(task_name_group_len("Task-"), 0);      /* no digits */
    assert_int_equal(task_name_group_len("2024"), 0);
    assert_int_equal(task_name_group_len(""), 0);
    assert_int_equal(task_name_group_len(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_task_names),
        cmocka_unit_test(test_task_name_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
