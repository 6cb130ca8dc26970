/* src/core/json_pull.c: the token stream of valid documents, and every kind of malformed one
 * refused (never a read past the text: the texts here are not NUL-terminated copies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_pull.h"

/* Tokens of text as a string: { } [ ] k:NAME s:VALUE n:NUMBER t f z, then E (end) or X (error). */
static char *tokens(const char *text)
{
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1); /* exactly len bytes: no NUL after them */
    memcpy(copy, text, len);
    json_pull j;
    json_pull_init(&j, copy, len);
    static char out[4096];
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        jtok t = json_next(&j);
        char item[256];
        switch (t) {
        case JT_BEGIN_OBJECT: strcpy(item, "{"); break;
        case JT_END_OBJECT: strcpy(item, "}"); break;
        case JT_BEGIN_ARRAY: strcpy(item, "["); break;
        case JT_END_ARRAY: strcpy(item, "]"); break;
        case JT_KEY: snprintf(item, sizeof item, "k:%s", j.str); break;
        case JT_STRING: snprintf(item, sizeof item, "s:%s", j.str); break;
        case JT_NUMBER: snprintf(item, sizeof item, "n:%g", j.num); break;
        case JT_TRUE: strcpy(item, "t"); break;
        case JT_FALSE: strcpy(item, "f"); break;
        case JT_NULL: strcpy(item, "z"); break;
        case JT_EOF: strcpy(item, "E"); break;
        case JT_ERROR: strcpy(item, "X"); break;
        }
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", n ? " " : "", item);
        if (t == JT_EOF || t == JT_ERROR)
            break;
    }
    json_pull_free(&j);
    free(copy);
    return out;
}

static void test_valid(void **state)
{
    (void)state;
    assert_string_equal(tokens("{}"), "{ } E");
    assert_string_equal(tokens(" [ ] "), "[ ] E");
    assert_string_equal(tokens("{\"a\": [1, -2.5e3, \"x\"], \"b\": {\"c\": null}, \"d\": true}"),
                        "{ k:a [ n:1 n:-2500 s:x ] k:b { k:c z } k:d t } E");
    assert_string_equal(tokens("[[], [[]], {}]"), "[ [ ] [ [ ] ] { } ] E");
    assert_string_equal(tokens("\"\\u00e9\\n\\\"\\ud83d\\ude00\""), "s:\xc3\xa9\n\"\xf0\x9f\x98\x80 E");
    assert_string_equal(tokens("0"), "n:0 E");
    assert_string_equal(tokens("false"), "f E");
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "{", "[", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1,}",
        "{1:2}", "[1 2]", "01", "1.", "-", "1e", "+1", "\"abc", "\"\\x\"", "\"\\u12\"",
        "\"\\udc00\"", "\"\\ud800\"", "\"a\nb\"", "tru", "nul", "[1]]", "{}{}", "[1] x",
        "}", "]", "{\"a\":[}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *t = tokens(bad[i]);
        if (!strstr(t, "X"))
            fail_msg("accepted %s: %s", bad[i], t);
    }
    /* too deep */
    char deep[200];
    memset(deep, '[', sizeof deep);
    char *copy = malloc(sizeof deep);
    memcpy(copy, deep, sizeof deep);
    json_pull j;
    json_pull_init(&j, copy, sizeof deep);
    jtok t;
    int n = 0;
    while ((t = json_next(&j)) == JT_BEGIN_ARRAY)
        n++;
    assert_int_equal(t, JT_ERROR);
    assert_int_equal(n, JSON_PULL_MAX_DEPTH);
    assert_non_null(strstr(j.err, "deep"));
    json_pull_free(&j);
    free(copy);
}

static void test_skip(void **state)
{
    (void)state;
    const char *text = "{\"skip\": {\"x\": [1, {\"y\": []}]}, \"keep\": 7}";
    json_pull j;
    json_pull_init(&j, text, strlen(text));
    assert_int_equal(json_next(&j), JT_BEGIN_OBJECT);
    assert_int_equal(json_next(&j), JT_KEY);
    assert_true(json_skip(&j, json_next(&j)));
    assert_int_equal(json_next(&j), JT_KEY);
    assert_string_equal(j.str, "keep");
    assert_int_equal(json_next(&j), JT_NUMBER);
    assert_true(j.num == 7);
    assert_int_equal(json_next(&j), JT_END_OBJECT);
    assert_int_equal(json_next(&j), JT_EOF);
    json_pull_free(&j);
    json_pull_init(&j, "[1, [2", 6);
    assert_int_equal(json_next(&j), JT_BEGIN_ARRAY);
    assert_false(json_skip(&j, JT_BEGIN_ARRAY));
    json_pull_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_skip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
