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
    assert_true(redact_task_name("worker-7", out, sizeof out));
    assert_string_equal(out, "task-6df928bb");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_task_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
