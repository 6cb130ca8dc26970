/* Unit tests of the streaming JSON writer (src/output/json.c): structure, escaping, invalid UTF-8,
 * numbers under a comma-decimal locale, stream errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A writer into memory; finish() returns the NUL-terminated text (caller frees). */
typedef struct mem {
    char *buf;
    size_t len;
    FILE *f;
    json_writer w;
} mem;

static void mem_open(mem *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    assert_non_null(m->f);
    json_init(&m->w, m->f);
}

static char *mem_finish(mem *m, int expect_rc)
{
    int rc = json_finish(&m->w);
    assert_int_equal(rc, expect_rc);
    fclose(m->f);
    return m->buf;
}

/* One string value written alone. */
static char *string_json(const char *s, size_t len)
{
    mem m;
    mem_open(&m);
    json_string_n(&m.w, s, len);
    return mem_finish(&m, 0);
}

static void check_string(const char *in, size_t len, const char *want)
{
    char *got = string_json(in, len);
    assert_string_equal(got, want);
    free(got);
}

/* Independent UTF-8 check: decode each sequence to a code point and test its range. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static void test_structure(void **state)
{
    (void)state;
    mem m;
    mem_open(&m);
    json_begin_object(&m.w);
    json_kv_int(&m.w, "a", 1);
    json_key(&m.w, "b");
    json_begin_array(&m.w);
    json_uint(&m.w, 1);
    json_int(&m.w, -2);
    json_begin_object(&m.w);
    json_kv_string(&m.w, "c", "d");
    json_end_object(&m.w);
    json_begin_array(&m.w);
    json_end_array(&m.w);
    json_bool(&m.w, true);
    json_bool(&m.w, false);
    json_end_array(&m.w);
    json_key(&m.w, "e");
    json_begin_object(&m.w);
    json_end_object(&m.w);
    json_kv_uint(&m.w, "f", 7);
    json_end_object(&m.w);
    char *out = mem_finish(&m, 0);
    assert_string_equal(out, "{\"a\":1,\"b\":[1,-2,{\"c\":\"d\"},[],true,false],\"e\":{},\"f\":7}");
    free(out);
}

static void test_escapes(void **state)
{
    (void)state;
    check_string("plain", 5, "\"plain\"");
    check_string("", 0, "\"\"");
    check_string("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"");
    check_string("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    check_string("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    check_string("a\0b", 3, "\"a\\u0000b\"");
    /* keys are escaped too */
    mem m;
    mem_open(&m);
    json_begin_object(&m.w);
    json_kv_string(&m.w, "k\"\n", NULL);
    json_end_object(&m.w);
    char *out = mem_finish(&m, 0);
    assert_string_equal(out, "{\"k\\\"\\n\":\"\"}");
    free(out);
}

static void test_valid_utf8_passes(void **state)
{
    (void)state;
    const char *s = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF";
    char want[128];
    snprintf(want, sizeof(want), "\"%s\"", s);
    check_string(s, strlen(s), want);
}

#define FFFD "\xEF\xBF\xBD"

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    check_string("\xFF", 1, "\"" FFFD "\"");
    check_string("a\xC3", 2, "\"a" FFFD "\"");             /* truncated at the end */
    check_string("\xC3(", 2, "\"" FFFD "(\"");             /* bad continuation */
    check_string("\xE2\x82x", 3, "\"" FFFD "x\"");         /* maximal subpart: one U+FFFD */
    check_string("\xF0\x9F\x98", 3, "\"" FFFD "\"");       /* truncated 4-byte sequence */
    check_string("\xC0\xAF", 2, "\"" FFFD FFFD "\"");      /* overlong '/' */
    check_string("\xE0\x80\xAF", 3, "\"" FFFD FFFD FFFD "\""); /* overlong */
    check_string("\xED\xA0\x80", 3, "\"" FFFD FFFD FFFD "\""); /* surrogate U+D800 */
    check_string("\xF4\x90\x80\x80", 4, "\"" FFFD FFFD FFFD FFFD "\""); /* > U+10FFFF */
    check_string("\x80\xBF", 2, "\"" FFFD FFFD "\"");      /* lone continuation bytes */
    check_string("\xF5\xC1", 2, "\"" FFFD FFFD "\"");
    check_string("ok\xFE\"\n", 5, "\"ok" FFFD "\\\"\\n\"");
}

/* Random bytes in, valid UTF-8 JSON string out, with no raw control character. */
static void test_random_bytes_fuzz(void **state)
{
    (void)state;
    uint64_t x = 0x1234567887654321ull;
    unsigned char in[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 64);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* bias towards bytes that start or continue multi-byte sequences */
            in[i] = (x & 3) == 0 ? (unsigned char)(0x80 | (x >> 8 & 0x7F)) : (unsigned char)(x >> 16);
        }
        char *out = string_json((const char *)in, n);
        size_t len = strlen(out);
        assert_true(len >= 2 && out[0] == '"' && out[len - 1] == '"');
        assert_true(valid_utf8((const unsigned char *)out, len));
        for (size_t i = 0; i < len; i++)
            assert_true((unsigned char)out[i] >= 0x20);
        /* every quote inside is escaped */
        for (size_t i = 1; i + 1 < len; i++) {
            if (out[i] == '\\') {
                i++;
                continue;
            }
            assert_true(out[i] != '"');
        }
        if (valid_utf8(in, n)) { /* valid input with no specials is copied verbatim */
            int special = 0;
            for (size_t i = 0; i < n; i++)
                special |= in[i] < 0x20 || in[i] == '"' || in[i] == '\\';
            if (!special) {
                assert_int_equal(len, n + 2);
                assert_memory_equal(out + 1, in, n);
            }
        }
        free(out);
    }
}

static char *numbers_json(void)
{
    mem m;
    mem_open(&m);
    json_begin_array(&m.w);
    json_int(&m.w, INT64_MIN);
    json_int(&m.w, INT64_MAX);
    json_uint(&m.w, UINT64_MAX);
    json_uint(&m.w, 0);
    json_seconds_ns(&m.w, 0);
    json_seconds_ns(&m.w, 1500000000u);
    json_seconds_ns(&m.w, 1);
    json_seconds_ns(&m.w, 123456789012345ull);
    json_seconds_ns(&m.w, 10000000);
    json_double(&m.w, 0.1);
    json_double(&m.w, -2.5);
    json_double(&m.w, 1e300);
    json_double(&m.w, 1.0 / 3.0);
    json_double(&m.w, NAN);
    json_double(&m.w, INFINITY);
    json_double(&m.w, 5e-324);
    json_double(&m.w, 1000.0);
    json_double(&m.w, -0.0);
    json_double(&m.w, 1234.5);
    json_double(&m.w, 1e20);
    json_end_array(&m.w);
    return mem_finish(&m, 0);
}

static const char numbers_want[] =
    "[-9223372036854775808,9223372036854775807,18446744073709551615,0,"
    "0,1.5,0.000000001,123456.789012345,0.01,"
    "0.1,-2.5,1e+300,0.3333333333333333,0,0,5e-324,1000,0,1234.5,1e+20]";

static void test_numbers(void **state)
{
    (void)state;
    char *out = numbers_json();
    assert_string_equal(out, numbers_want);
    free(out);
}

/* Doubles must not pick up the locale's decimal comma. Builds a de_DE locale with localedef when
 * the system can (skips otherwise). */
static void test_numbers_under_comma_locale(void **state)
{
    (void)state;
    char dir[] = "/tmp/aprof-locale-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
    int built = system(cmd) == 0;
    const char *old = getenv("LOCPATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("LOCPATH", dir, 1);
    int have = built && setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
    char *out = NULL;
    char probe[16] = "";
    if (have) {
        snprintf(probe, sizeof(probe), "%.1f", 0.5);
        out = numbers_json();
        setlocale(LC_NUMERIC, "C");
    }
    if (saved)
        setenv("LOCPATH", saved, 1);
    else
        unsetenv("LOCPATH");
    free(saved);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    if (!have) {
        printf("# no de_DE locale could be built: locale part skipped\n");
        skip();
    }
    assert_string_equal(probe, "0,5"); /* the locale really is in force */
    assert_string_equal(out, numbers_want);
    free(out);
}

static void test_misuse_is_an_error(void **state)
{
    (void)state;
    mem m;
    mem_open(&m);
    json_begin_array(&m.w);
    json_end_object(&m.w); /* mismatched */
    free(mem_finish(&m, -1));
    assert_int_equal(errno, EINVAL);

    mem_open(&m);
    json_begin_object(&m.w);
    json_uint(&m.w, 1); /* value without a key */
    json_end_object(&m.w);
    free(mem_finish(&m, -1));

    mem_open(&m);
    json_begin_object(&m.w); /* never closed */
    free(mem_finish(&m, -1));

    mem_open(&m);
    json_key(&m.w, "x"); /* key outside an object */
    free(mem_finish(&m, -1));

    mem_open(&m);
    for (int i = 0; i < JSON_MAX_DEPTH + 1; i++)
        json_begin_array(&m.w);
    free(mem_finish(&m, -1));
    assert_int_equal(errno, EOVERFLOW);
}

static void test_stream_error_reported(void **state)
{
    (void)state;
    FILE *f = fopen("/dev/full", "w");
    if (!f)
        skip();
    json_writer w;
    json_init(&w, f);
    json_begin_array(&w);
    for (int i = 0; i < 10000; i++)
        json_string(&w, "some text to fill the buffers");
    json_end_array(&w);
    errno = 0;
    assert_int_equal(json_finish(&w), -1);
    assert_int_equal(errno, ENOSPC);
    fclose(f);
}

static void test_utf8_valid_len(void **state)
{
    (void)state;
    size_t skip = 99;
    assert_int_equal(utf8_valid_len((const unsigned char *)"A", 1, &skip), 1);
    assert_int_equal(utf8_valid_len((const unsigned char *)"\xC3\xA9", 2, &skip), 2);
    assert_int_equal(utf8_valid_len((const unsigned char *)"\xE2\x82\xAC", 3, &skip), 3);
    assert_int_equal(utf8_valid_len((const unsigned char *)"\xF0\x9F\x98\x80", 4, &skip), 4);
    assert_int_equal(utf8_valid_len((const unsigned char *)"\xF0\x9F\x98\x80", 3, &skip), 0);
    assert_int_equal(skip, 3);
    assert_int_equal(utf8_valid_len((const unsigned char *)"\xED\xA0\x80", 3, &skip), 0);
    assert_int_equal(skip, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_valid_utf8_passes),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_random_bytes_fuzz),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_numbers_under_comma_locale),
        cmocka_unit_test(test_misuse_is_an_error),
        cmocka_unit_test(test_stream_error_reported),
        cmocka_unit_test(test_utf8_valid_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
