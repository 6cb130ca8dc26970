/* src/cpython/linetable.c against CPython itself.
 *
 * tools/gen_linetable_cases.py runs under every CPython 3.10-3.13 found on the machine (pyenv
 * versions and Debian's python3.11, as tests/common/interpreters.c finds them) and records, for
 * tens of thousands of code objects of its stdlib plus synthetic code and hand-built tables,
 * what that interpreter says: co_lines(), the line of every even byte offset, and
 * PyCode_Addr2Line() at probe offsets. Here we check that the iterator reproduces co_lines()
 * exactly and linetable_line_for_offset() every line.
 * Then robustness: random and truncated tables (run under ASan, with exactly-sized buffers so
 * any read past a table is caught) must neither crash nor loop, and keep the API's invariants.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "interpreters.h"
#include "linetable.h"

extern char **environ;

#define NONE_LINE INT32_MIN   /* co_lines() said None */
#define MAX_REPORTED 8        /* mismatches printed per interpreter */
#define MIN_RECORDS 5000      /* a corpus smaller than this means the generator went wrong */
/* Decode steps per code object for the per-offset check (see check_record). ASan makes every
 * byte read several times slower; its run is about memory safety, the plain one checks more. */
#ifdef __SANITIZE_ADDRESS__
#define OFFSET_CHECK_BUDGET 2e4
#define RECORD_STRIDE 3 /* every third code object: still tens of thousands of real tables */
#else
#define OFFSET_CHECK_BUDGET 1e6
#define RECORD_STRIDE 1
#endif

/* One generator run: every interpreter tests/common/interpreters.c finds. */
typedef struct interpreter {
    const char *python;
    char out[PATH_MAX];
    pid_t pid;
} interpreter;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------ reading a case file */

typedef struct reader {
    const uint8_t *p, *end;
    bool bad;
} reader;

static bool rd_take(reader *r, size_t n, const uint8_t **out)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    *out = r->p;
    r->p += n;
    return true;
}

static uint32_t rd_u32(reader *r)
{
    const uint8_t *b;
    if (!rd_take(r, 4, &b))
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int32_t rd_i32(reader *r)
{
    return (int32_t)rd_u32(r);
}

static int32_t i32_at(const uint8_t *b, size_t i)
{
    b += 4 * i;
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : (1u << 20);
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* ------------------------------------------------------------------ checking one corpus */

typedef struct corpus_stats {
    unsigned long records, ranges, offsets, offsets_checked, probes, refused, truncations;
    unsigned long failures;
} corpus_stats;

static void report(corpus_stats *st, const char *python, const char *name, const char *fmt, ...)
{
    if (st->failures++ >= MAX_REPORTED)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "MISMATCH %s %s: ", python, name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* How co_lines() shows a line: None for any negative line (3.10, 3.11) or for -1 (3.12+). */
static bool shown_as_none(unsigned minor, int line)
{
    return minor <= 11 ? line < 0 : line == -1;
}

/* Prefixes of a real table must not be read past their end (the copies are exactly sized for
 * ASan) and decode to a prefix of the full table's raw ranges; only the last range's line may
 * differ, when its line delta was cut off. */
static void check_truncations(corpus_stats *st, const char *python, const char *name,
                              uint8_t kind, const uint8_t *table, size_t len, int first)
{
    enum { MAX_RANGES = 4096 };
    static int full[MAX_RANGES][3];
    size_t nfull = 0;
    linetable_iter it;
    linetable_iter_init(&it, kind, table, len, first, LINETABLE_ITER_RAW);
    int s, e, l;
    while (nfull < MAX_RANGES && linetable_iter_next(&it, &s, &e, &l)) {
        full[nfull][0] = s;
        full[nfull][1] = e;
        full[nfull][2] = l;
        nfull++;
    }
    if (nfull == MAX_RANGES)
        return;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, table, cut);
        linetable_iter_init(&it, kind, copy, cut, first, LINETABLE_ITER_RAW);
        size_t n = 0;
        int last_line = 0;
        bool ok = true;
        while (linetable_iter_next(&it, &s, &e, &l)) {
            if (n >= nfull || s != full[n][0] || e != full[n][1]) {
                ok = false;
                break;
            }
            if (n > 0 && last_line != full[n - 1][2])
                ok = false; /* an earlier range changed: not just the cut one */
            last_line = l;
            n++;
        }
        if (!ok)
            report(st, python, name, "prefix of %zu bytes decodes differently", cut);
        /* Offsets past the prefix's ranges have no line. */
        if (n < nfull && linetable_line_for_offset(kind, copy, cut, first, full[nfull - 1][1]) != -1)
            report(st, python, name, "prefix of %zu bytes answers past its end", cut);
        free(copy);
        st->truncations++;
    }
}

static void check_record(corpus_stats *st, const char *python, unsigned minor, const char *name,
                         int first, const uint8_t *table_in_file, size_t table_len,
                         const uint8_t *triples, size_t ntriples, const uint8_t *expected,
                         size_t noffsets, const uint8_t *probes, size_t nprobes,
                         bool check_prefixes)
{
    uint8_t kind = minor >= 11 ? LINETABLE_311 : LINETABLE_310;
    /* the mode whose output equals this interpreter's code.co_lines(): merged since 3.12 */
    linetable_iter_mode mode = minor >= 12 ? LINETABLE_ITER_MERGE : LINETABLE_ITER_RAW;
    /* An exactly-sized copy, so ASan sees any read past the table. */
    uint8_t *table = malloc(table_len ? table_len : 1);
    assert_non_null(table);
    memcpy(table, table_in_file, table_len);
    bool refused = table_len > LINETABLE_MAX_LEN;
    st->refused += refused;

    /* The iterator equals co_lines(). */
    linetable_iter it;
    linetable_iter_init(&it, kind, table, table_len, first, mode);
    int s, e, l;
    size_t i = 0;
    for (; linetable_iter_next(&it, &s, &e, &l); i++) {
        if (refused || i >= ntriples) {
            report(st, python, name, "extra range (%d, %d, %d)", s, e, l);
            break;
        }
        int32_t xs = i32_at(triples, 3 * i), xe = i32_at(triples, 3 * i + 1);
        int32_t xl = i32_at(triples, 3 * i + 2);
        bool line_ok = xl == NONE_LINE ? shown_as_none(minor, l) : l == xl;
        if (s != xs || e != xe || !line_ok) {
            report(st, python, name, "range %zu is (%d, %d, %d), co_lines() says (%d, %d, %d)",
                   i, s, e, l, xs, xe, xl);
            break;
        }
    }
    if (!refused && i < ntriples)
        report(st, python, name, "only %zu of %zu ranges", i, ntriples);
    if (!refused && linetable_iter_malformed(&it))
        report(st, python, name, "table reported malformed");
    st->ranges += i;

    /* Every even offset, unless that would be too slow: line_for_offset() is linear in the
     * table, so a huge code object (a module body of thousands of lines) would cost
     * offsets x entries steps. There a spread of offsets with a random phase is checked, and
     * the iterator check above already covers every range of it. */
    size_t raw = 0;
    linetable_iter_init(&it, kind, table, table_len, first, LINETABLE_ITER_RAW);
    while (linetable_iter_next(&it, &s, &e, &l))
        raw++;
    size_t stride = 1;
    if (raw > 0 && (double)noffsets * (double)raw > OFFSET_CHECK_BUDGET)
        stride = (size_t)((double)noffsets * (double)raw / OFFSET_CHECK_BUDGET) + 1;
    for (size_t k = stride > 1 ? rng_next() % stride : 0; k < noffsets; k += stride) {
        int want = refused ? -1 : i32_at(expected, k);
        int got = linetable_line_for_offset(kind, table, table_len, first, (int)(2 * k));
        if (got != want) {
            report(st, python, name, "offset %zu: line %d, expected %d", 2 * k, got, want);
            break;
        }
        st->offsets_checked++;
    }
    st->offsets += noffsets;

    /* PyCode_Addr2Line() results, including negative offsets and offsets past the end. */
    for (size_t k = 0; k < nprobes; k++) {
        int off = i32_at(probes, 2 * k);
        int want = i32_at(probes, 2 * k + 1);
        if (refused && off >= 0)
            want = -1;
        int got = linetable_line_for_offset(kind, table, table_len, first, off);
        if (got != want)
            report(st, python, name, "PyCode_Addr2Line(%d) = %d, we say %d", off, want, got);
    }
    st->probes += nprobes;

    if (check_prefixes && !refused)
        check_truncations(st, python, name, kind, table, table_len, first);
    free(table);
}

/* Parse and check one generator output, adding to *st. */
static void check_corpus(const char *python, const char *path, corpus_stats *st)
{
    size_t len = 0;
    uint8_t *buf = read_file(path, &len);
    assert_non_null(buf);
    reader r = {buf, buf + len, false};
    const uint8_t *magic = NULL;
    assert_true(rd_take(&r, 8, &magic));
    assert_memory_equal(magic, "APLTCAS1", 8);
    unsigned major = rd_u32(&r), minor = rd_u32(&r);
    assert_int_equal(major, 3);
    assert_true(minor >= 10 && minor <= 13);

    for (;;) {
        const uint8_t *tag = NULL, *name_b = NULL, *table = NULL, *triples = NULL;
        const uint8_t *expected = NULL, *probes = NULL, *nl = NULL;
        if (!rd_take(&r, 1, &tag))
            break;
        if (tag[0] == 0) {
            assert_int_equal(rd_u32(&r), st->records);
            break;
        }
        assert_int_equal(tag[0], 1);
        rd_take(&r, 2, &nl);
        size_t name_len = r.bad ? 0 : (size_t)(nl[0] | nl[1] << 8);
        rd_take(&r, name_len, &name_b);
        int first = rd_i32(&r);
        size_t table_len = rd_u32(&r);
        rd_take(&r, table_len, &table);
        size_t ntriples = rd_u32(&r);
        rd_take(&r, 12 * ntriples, &triples);
        size_t noffsets = rd_u32(&r);
        rd_take(&r, 4 * noffsets, &expected);
        size_t nprobes = rd_u32(&r);
        rd_take(&r, 8 * nprobes, &probes);
        assert_false(r.bad);
        char name[320];
        snprintf(name, sizeof name, "%.*s", (int)name_len, (const char *)name_b);
        /* Truncation checks are quadratic: do them on every 97th small table only. */
        bool prefixes = st->records % (97 * RECORD_STRIDE) == 0 && table_len <= 1000;
        if (st->records % RECORD_STRIDE == 0)
            check_record(st, python, minor, name, first, table, table_len, triples, ntriples,
                         expected, noffsets, probes, nprobes, prefixes);
        st->records++;
    }
    assert_false(r.bad);
    free(buf);
}

static void test_against_cpython(void **state)
{
    (void)state;
    const char *src = getenv("APROF_SOURCE_DIR");
    char gen[PATH_MAX];
    snprintf(gen, sizeof gen, "%s/tools/gen_linetable_cases.py", src ? src : ".");
    assert_int_equal(access(gen, R_OK), 0);

    static test_interp found[TEST_MAX_INTERPRETERS];
    static interpreter py[TEST_MAX_INTERPRETERS];
    size_t n = test_find_interpreters(found, TEST_MAX_INTERPRETERS);
    for (size_t i = 0; i < n; i++)
        py[i].python = found[i].python;
    if (n == 0)
        fail_msg("no CPython 3.10-3.13 found (pyenv versions, Debian's python3.11)");

    char tmpdir[] = "/tmp/aprof-linetable-XXXXXX";
    assert_non_null(mkdtemp(tmpdir));

    /* The generators run in parallel: they are the slow part. */
    for (size_t i = 0; i < n; i++) {
        snprintf(py[i].out, sizeof py[i].out, "%s/cases-%zu.bin", tmpdir, i);
        char *argv[] = {(char *)py[i].python, "-I", gen, "--out", py[i].out, NULL};
        int rc = posix_spawn(&py[i].pid, py[i].python, NULL, NULL, argv, environ);
        assert_int_equal(rc, 0);
    }
    int failed_runs = 0;
    for (size_t i = 0; i < n; i++) {
        int status = 0;
        assert_int_equal(waitpid(py[i].pid, &status, 0), py[i].pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s: generator failed (status %d)\n", py[i].python, status);
            failed_runs++;
        }
    }

    struct rusage children, self0, self1;
    getrusage(RUSAGE_CHILDREN, &children);
    getrusage(RUSAGE_SELF, &self0);
    corpus_stats total = {0};
    for (size_t i = 0; i < n && failed_runs == 0; i++) {
        corpus_stats st = {0};
        check_corpus(py[i].python, py[i].out, &st);
        fprintf(stderr,
                "%s: %lu code objects (1 in %d checked), %lu ranges, %lu of %lu offsets, %lu Addr2Line probes, "
                "%lu truncations, %lu refused tables: %lu mismatches\n",
                py[i].python, st.records, RECORD_STRIDE, st.ranges, st.offsets_checked, st.offsets, st.probes,
                st.truncations,
                st.refused, st.failures);
        assert_true(st.records >= MIN_RECORDS);
        total.failures += st.failures;
        total.records += st.records;
    }
    getrusage(RUSAGE_SELF, &self1);
    fprintf(stderr, "generators: %.1f s CPU, checks: %.1f s CPU\n",
            (double)children.ru_utime.tv_sec + children.ru_utime.tv_usec / 1e6,
            (double)(self1.ru_utime.tv_sec - self0.ru_utime.tv_sec) +
                (self1.ru_utime.tv_usec - self0.ru_utime.tv_usec) / 1e6);
    for (size_t i = 0; i < n; i++)
        unlink(py[i].out);
    rmdir(tmpdir);
    assert_int_equal(failed_runs, 0);
    assert_int_equal(total.failures, 0);
}

/* ------------------------------------------------------------------ robustness */

/* A random table in one of several styles that stress different paths. */
static void random_table(uint8_t *t, size_t len)
{
    unsigned style = (unsigned)(rng_next() % 6);
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)rng_next();
        switch (style) {
        case 0: break;                                  /* uniform bytes */
        case 1: b |= 0x80; break;                       /* every byte an entry start */
        case 2: b = (uint8_t)(0xE8 | (b & 0x17)); break; /* varint codes, runs of bit 6 */
        case 3: b |= 0x40; break;                       /* endless varint continuations */
        case 4: b = (b & 1) ? 0 : 0x80; break;          /* empty 3.10 entries, short forms */
        default: b = (uint8_t)(b & 0x7F); break;        /* no entry starts at all */
        }
        t[i] = b;
    }
}

/* Invariants any table must keep: ranges non-empty and contiguous from 0, at most one per
 * table byte, line_for_offset agreeing with the raw ranges, MERGE covering the same bytes. */
static void check_invariants(uint8_t kind, const uint8_t *t, size_t len, int first)
{
    enum { MAX_RANGES = 4200 };
    static int rs[MAX_RANGES], re[MAX_RANGES], rl[MAX_RANGES];
    size_t n = 0;
    linetable_iter it;
    linetable_iter_init(&it, kind, t, len, first, LINETABLE_ITER_RAW);
    int s, e, l, prev_end = 0;
    while (linetable_iter_next(&it, &s, &e, &l)) {
        assert_true(n < len && n < MAX_RANGES);
        assert_int_equal(s, prev_end);
        assert_true(e > s);
        rs[n] = s, re[n] = e, rl[n] = l;
        prev_end = e;
        n++;
    }
    assert_false(linetable_iter_next(&it, &s, &e, &l)); /* stays finished */

    size_t step = n / 64 + 1; /* line_for_offset is linear: sample long tables */
    for (size_t k = 0; k < n; k += step) {
        assert_int_equal(linetable_line_for_offset(kind, t, len, first, rs[k]), rl[k]);
        assert_int_equal(linetable_line_for_offset(kind, t, len, first, re[k] - 1), rl[k]);
    }
    assert_int_equal(linetable_line_for_offset(kind, t, len, first, prev_end), -1);
    assert_int_equal(linetable_line_for_offset(kind, t, len, first, INT_MAX), -1);
    assert_int_equal(linetable_line_for_offset(kind, t, len, first, -2), first);
    assert_int_equal(linetable_line_for_offset(kind, t, len, first, INT_MIN), first);

    /* MERGE: same coverage, each range's line is the raw line there, neighbours differ. */
    linetable_iter_init(&it, kind, t, len, first, LINETABLE_ITER_MERGE);
    size_t k = 0;
    int merged_end = 0, last_line = 0;
    bool have_last = false;
    while (linetable_iter_next(&it, &s, &e, &l)) {
        assert_int_equal(s, merged_end);
        assert_true(k < n && rs[k] == s);
        assert_int_equal(rl[k], l);
        while (k < n && re[k] <= e)
            assert_int_equal(rl[k++], l);
        assert_true(k > 0 && re[k - 1] == e);
        if (have_last)
            assert_int_not_equal(last_line, l);
        last_line = l;
        have_last = true;
        merged_end = e;
    }
    assert_int_equal(k, n);
    assert_int_equal(merged_end, prev_end);
}

static void test_random_tables_are_harmless(void **state)
{
    (void)state;
    for (unsigned round = 0; round < 60000; round++) {
        size_t len = (size_t)(rng_next() % (round % 500 == 0 ? 4096 : 48));
        uint8_t *t = malloc(len ? len : 1); /* exactly sized: ASan catches overreads */
        assert_non_null(t);
        random_table(t, len);
        int first = (int)(rng_next() % 5 == 0 ? (int32_t)rng_next() : (int)(rng_next() % 1000));
        check_invariants(LINETABLE_310, t, len, first);
        check_invariants(LINETABLE_311, t, len, first);
        free(t);
    }
}

static void test_refuses_bad_arguments(void **state)
{
    (void)state;
    const uint8_t t[] = {0x80, 0x80, 0x80, 0x80}; /* valid in both formats */
    linetable_iter it;
    int s, e, l;
    assert_int_equal(linetable_line_for_offset(7, t, sizeof t, 5, 0), -1);
    assert_int_equal(linetable_line_for_offset(7, t, sizeof t, 5, -2), 5);
    assert_int_equal(linetable_line_for_offset(LINETABLE_311, NULL, 4, 5, 0), -1);
    assert_int_equal(linetable_line_for_offset(LINETABLE_311, NULL, 0, 5, 0), -1);
    linetable_iter_init(&it, 7, t, sizeof t, 5, LINETABLE_ITER_RAW);
    assert_false(linetable_iter_next(&it, &s, &e, &l));
    assert_true(linetable_iter_malformed(&it));
    linetable_iter_init(&it, LINETABLE_311, t, sizeof t, 5, (linetable_iter_mode)9);
    assert_false(linetable_iter_next(&it, &s, &e, &l));
    linetable_iter_init(&it, LINETABLE_311, NULL, 0, 5, LINETABLE_ITER_RAW);
    assert_false(linetable_iter_next(&it, &s, &e, &l));
    assert_false(linetable_iter_malformed(&it));
}

/* A table of exactly LINETABLE_MAX_LEN bytes is decoded, one byte more is refused.
 * 3.11+: each 0x80 is an entry of one code unit with line delta 0.
 * 3.10: each (0x02, 0x00) pair an entry of 2 bytes with line delta 0. */
static void test_length_cap(void **state)
{
    (void)state;
    size_t cap = LINETABLE_MAX_LEN;
    uint8_t *t = malloc(cap + 1);
    assert_non_null(t);
    linetable_iter it;
    int s, e, l;

    memset(t, 0x80, cap + 1);
    int last = (int)(2 * cap - 2);
    assert_int_equal(linetable_line_for_offset(LINETABLE_311, t, cap, 42, last), 42);
    assert_int_equal(linetable_line_for_offset(LINETABLE_311, t, cap, 42, last + 2), -1);
    assert_int_equal(linetable_line_for_offset(LINETABLE_311, t, cap + 1, 42, 0), -1);
    size_t count = 0;
    linetable_iter_init(&it, LINETABLE_311, t, cap, 42, LINETABLE_ITER_RAW);
    while (linetable_iter_next(&it, &s, &e, &l))
        count++;
    assert_int_equal(count, cap);
    linetable_iter_init(&it, LINETABLE_311, t, cap, 42, LINETABLE_ITER_MERGE);
    assert_true(linetable_iter_next(&it, &s, &e, &l));
    assert_int_equal(e, 2 * cap);
    assert_false(linetable_iter_next(&it, &s, &e, &l));
    linetable_iter_init(&it, LINETABLE_311, t, cap + 1, 42, LINETABLE_ITER_RAW);
    assert_false(linetable_iter_next(&it, &s, &e, &l));
    assert_true(linetable_iter_malformed(&it));

    for (size_t i = 0; i <= cap; i++)
        t[i] = (i % 2) ? 0x00 : 0x02;
    last = (int)(cap - 1); /* cap/2 entries of 2 bytes */
    assert_int_equal(linetable_line_for_offset(LINETABLE_310, t, cap, 42, last), 42);
    assert_int_equal(linetable_line_for_offset(LINETABLE_310, t, cap, 42, last + 1), -1);
    assert_int_equal(linetable_line_for_offset(LINETABLE_310, t, cap + 1, 42, 0), -1);
    linetable_iter_init(&it, LINETABLE_310, t, cap + 1, 42, LINETABLE_ITER_RAW);
    assert_false(linetable_iter_next(&it, &s, &e, &l));
    assert_true(linetable_iter_malformed(&it));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_bad_arguments),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_random_tables_are_harmless),
        cmocka_unit_test(test_against_cpython),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
