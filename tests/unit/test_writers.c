/* Unit tests of the output writers (speedscope, collapsed) and of atomic output files.
 *
 * The speedscope output is parsed back with a small strict JSON parser written here (RFC 8259
 * grammar, UTF-8 checked, no duplicate keys) and compared with the synthetic samples the test
 * fed in. The schema check and the real speedscope app run in tests/integration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aggregate.h"
#include "outfile.h"
#include "writers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== a strict little JSON parser ============================================================ */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jv {
    jtype t;
    int b;
    double num;
    char *s;          /* J_STR: decoded UTF-8, NUL-terminated */
    size_t n;         /* J_ARR/J_OBJ: members */
    struct jv *items;
    char **keys;      /* J_OBJ */
} jv;

typedef struct jparser {
    const unsigned char *p, *end;
    int err;
    int depth;
} jparser;

static void jfree(jv *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static void ws(jparser *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Length of a valid UTF-8 sequence at s, 0 if invalid (own code, independent of src/output/json.c). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
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
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | cp >> 6);
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xE0 | cp >> 12);
        out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*o)++] = (char)(0xF0 | cp >> 18);
        out[(*o)++] = (char)(0x80 | (cp >> 12 & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(jparser *j, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (j->p >= j->end)
            return -1;
        unsigned c = *j->p++;
        int d = c >= '0' && c <= '9' ? (int)c - '0'
              : c >= 'a' && c <= 'f' ? (int)c - 'a' + 10
              : c >= 'A' && c <= 'F' ? (int)c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static char *jstring(jparser *j)
{
    if (j->p >= j->end || *j->p != '"') {
        j->err = 1;
        return NULL;
    }
    j->p++;
    char *out = malloc((size_t)(j->end - j->p) + 1);
    size_t o = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned c = *j->p;
        if (c < 0x20) { /* raw control characters are not allowed */
            j->err = 1;
            break;
        }
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end) {
                j->err = 1;
                break;
            }
            unsigned e = *j->p++;
            const char *simple = strchr("\"\\/bfnrt", (int)e);
            if (e && simple) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                out[o++] = map[simple - "\"\\/bfnrt"];
            } else if (e == 'u') {
                uint32_t cp, lo;
                if (hex4(j, &cp) < 0) {
                    j->err = 1;
                    break;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
                        j->err = 1;
                        break;
                    }
                    j->p += 2;
                    if (hex4(j, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF) {
                        j->err = 1;
                        break;
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    j->err = 1;
                    break;
                }
                put_utf8(out, &o, cp);
            } else {
                j->err = 1;
                break;
            }
            continue;
        }
        size_t len = utf8_len(j->p, (size_t)(j->end - j->p));
        if (!len) {
            j->err = 1;
            break;
        }
        memcpy(out + o, j->p, len);
        o += len;
        j->p += len;
    }
    if (!j->err && j->p < j->end)
        j->p++; /* closing quote */
    else
        j->err = 1;
    out[o] = '\0';
    return out;
}

static int jnumber(jparser *j, double *v)
{
    const unsigned char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return -1;
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    } else {
        return -1;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    char buf[64];
    size_t len = (size_t)(j->p - s);
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    *v = strtod(buf, NULL);
    return 0;
}

static void jvalue(jparser *j, jv *v)
{
    memset(v, 0, sizeof(*v));
    ws(j);
    if (j->err || j->p >= j->end || ++j->depth > 100) {
        j->err = 1;
        return;
    }
    unsigned c = *j->p;
    if (c == '{' || c == '[') {
        int obj = c == '{';
        v->t = obj ? J_OBJ : J_ARR;
        j->p++;
        size_t cap = 0;
        ws(j);
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            j->depth--;
            return;
        }
        for (;;) {
            if (v->n == cap) {
                cap = cap ? cap * 2 : 8;
                v->items = realloc(v->items, cap * sizeof(jv));
                if (obj)
                    v->keys = realloc(v->keys, cap * sizeof(char *));
            }
            if (obj) {
                ws(j);
                char *k = jstring(j);
                for (size_t i = 0; k && i < v->n; i++)
                    if (strcmp(v->keys[i], k) == 0)
                        j->err = 1; /* duplicate key */
                v->keys[v->n] = k;
                ws(j);
                if (j->p >= j->end || *j->p != ':')
                    j->err = 1;
                else
                    j->p++;
            }
            jvalue(j, &v->items[v->n++]);
            ws(j);
            if (j->err || j->p >= j->end) {
                j->err = 1;
                return;
            }
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p == (obj ? '}' : ']')) {
                j->p++;
                break;
            }
            j->err = 1;
            return;
        }
    } else if (c == '"') {
        v->t = J_STR;
        v->s = jstring(j);
    } else if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
        v->t = J_BOOL;
        v->b = 1;
        j->p += 4;
    } else if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
        v->t = J_BOOL;
        j->p += 5;
    } else if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        v->t = J_NULL;
        j->p += 4;
    } else {
        v->t = J_NUM;
        if (jnumber(j, &v->num) < 0)
            j->err = 1;
    }
    j->depth--;
}

/* Parses a whole document; fails the test when it is not valid JSON. */
static void jparse(const char *text, size_t len, jv *out)
{
    jparser j = {(const unsigned char *)text, (const unsigned char *)text + len, 0, 0};
    jvalue(&j, out);
    ws(&j);
    if (j.p != j.end)
        j.err = 1;
    if (j.err)
        fprintf(stderr, "JSON parse error at byte %zu\n", (size_t)(j.p - (const unsigned char *)text));
    assert_false(j.err);
}

static const jv *jget(const jv *o, const char *key)
{
    if (o->t != J_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

static const jv *jreq(const jv *o, const char *key, jtype t)
{
    const jv *v = jget(o, key);
    if (!v || v->t != t)
        fprintf(stderr, "missing or mistyped key \"%s\"\n", key);
    assert_non_null(v);
    assert_int_equal(v->t, t);
    return v;
}

static int has_null(const jv *v)
{
    if (v->t == J_NULL)
        return 1;
    for (size_t i = 0; i < v->n; i++)
        if (has_null(&v->items[i]))
            return 1;
    return 0;
}

/* ==== synthetic recording ==================================================================== */

#define MAXREC 64
#define MAXF 8

/* What the test fed in, kept as ground truth. */
typedef struct record {
    int profile;           /* index in the expected profile list */
    uint32_t n;
    aprof_frame f[MAXF];
    uint64_t t_ns, w_ns;
} record;

typedef struct synth {
    strtab *st;
    agg *a;
    record rec[MAXREC];
    int nrec;
    const char *profile_names[8]; /* expected profiles with samples, in agg order */
    int nprofiles;
} synth;

#define WEIRD_NAME "we\"ird\n\x01name\xFF;semi\\"
#define WEIRD_NAME_DECODED "we\"ird\n\x01name\xEF\xBF\xBD;semi\\"
#define WEIRD_NAME_COLLAPSED "we\"ird  name\xEF\xBF\xBD:semi\\"

static aprof_frame mkframe(strtab *st, const char *name, const char *file, int line, int kind)
{
    return (aprof_frame){strtab_intern_cstr(st, name), strtab_intern_cstr(st, file), line,
                         (uint8_t)kind};
}

static void add_rec(synth *s, agg_profile *p, int pidx, const aprof_frame *f, uint32_t n,
                    uint64_t t, uint64_t w)
{
    assert_int_equal(agg_profile_add(s->a, p, f, n, t, w), 0);
    record *r = &s->rec[s->nrec++];
    r->profile = pidx;
    r->n = n;
    if (n)
        memcpy(r->f, f, n * sizeof(aprof_frame));
    r->t_ns = t;
    r->w_ns = w;
}

static void synth_build(synth *s)
{
    memset(s, 0, sizeof(*s));
    s->st = strtab_new();
    s->a = agg_new(s->st);
    strtab *st = s->st;
    aprof_frame main_f = mkframe(st, "<module>", "/app/main.py", 3, FRAME_PYTHON);
    aprof_frame run = mkframe(st, "Worker.run", "/app/work.py", 17, FRAME_PYTHON);
    aprof_frame cpu = mkframe(st, "cpu_bound", "/app/work.py", 40, FRAME_PYTHON);
    aprof_frame native = mkframe(st, "libc.so.6+0x1234", "", 0, FRAME_NATIVE);
    aprof_frame weird = mkframe(st, WEIRD_NAME, "dir/we;ird.py", 7, FRAME_PYTHON);
    aprof_frame nofile_line = mkframe(st, "exec", "/app/x.py", 0, FRAME_PYTHON);
    aprof_frame task = mkframe(st, "<task fetch-1>", "", 0, FRAME_TASK);
    aprof_frame idle = mkframe(st, "<idle>", "", 0, FRAME_MARK);

    /* created first, written last: thread profiles come first */
    agg_profile *syn = agg_profile_get(s->a, "asyncio: awaiting", 0);
    agg_profile *t1 = agg_profile_get(s->a, "Thread 42 \"MainThread\"", 42);
    (void)agg_profile_get(s->a, "Thread 43 \"never sampled\"", 43); /* omitted: no samples */
    agg_profile *t2 = agg_profile_get(s->a, "Thread 44 \"worker;1\"", 44);
    s->profile_names[0] = "Thread 42 \"MainThread\"";
    s->profile_names[1] = "Thread 44 \"worker;1\"";
    s->profile_names[2] = "asyncio: awaiting";
    s->nprofiles = 3;

    uint64_t base = 5000000000ull; /* CLOCK_MONOTONIC-like */
    for (int i = 0; i < 12; i++) {
        uint64_t t = base + (uint64_t)(i + 1) * 10000000u; /* every 10 ms */
        uint64_t w = 10000000u + (uint64_t)i * 1000u;      /* distinct weights */
        aprof_frame a1[4] = {main_f, run, cpu, native};
        aprof_frame a2[3] = {main_f, weird, nofile_line};
        if (i % 3 == 0)
            add_rec(s, t1, 0, a1, 4, t, w);
        else if (i % 3 == 1)
            add_rec(s, t1, 0, a1, 3, t, w);
        else
            add_rec(s, t1, 0, a2, 3, t, w);
        if (i >= 4) { /* a thread that starts later */
            aprof_frame b[2] = {run, cpu};
            add_rec(s, t2, 1, b, i % 2 ? 2 : 1, t + 1000, w);
        }
        if (i % 4 == 0)
            add_rec(s, syn, 2, (aprof_frame[2]){task, idle}, 2, t, w);
    }
    add_rec(s, syn, 2, NULL, 0, base + 200000000u, 3000000u); /* an empty stack */
}

static void synth_free(synth *s)
{
    agg_free(s->a);
    strtab_free(s->st);
}

static char *write_to_memory(synth *s, int speedscope, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    writer_meta meta = {"aprof: python3 app.py (pid 42)", "aprof@9.9.9-test"};
    int rc = speedscope ? write_speedscope(s->a, &meta, f) : write_collapsed(s->a, f);
    assert_int_equal(rc, 0);
    fclose(f);
    return buf;
}

/* ==== speedscope ============================================================================= */

static void test_speedscope_round_trip(void **state)
{
    (void)state;
    synth s;
    synth_build(&s);
    size_t len;
    char *text = write_to_memory(&s, 1, &len);
    jv root;
    jparse(text, len, &root);
    assert_int_equal(root.t, J_OBJ);
    assert_false(has_null(&root));
    assert_string_equal(jreq(&root, "$schema", J_STR)->s,
                        "https://www.speedscope.app/file-format-schema.json");
    assert_string_equal(jreq(&root, "exporter", J_STR)->s, "aprof@9.9.9-test");
    assert_string_equal(jreq(&root, "name", J_STR)->s, "aprof: python3 app.py (pid 42)");
    assert_true(jreq(&root, "activeProfileIndex", J_NUM)->num == 0);
    const jv *frames = jreq(jreq(&root, "shared", J_OBJ), "frames", J_ARR);
    const jv *profiles = jreq(&root, "profiles", J_ARR);
    assert_int_equal(profiles->n, (size_t)s.nprofiles);

    /* every frame: name always; file only when known; line only when known */
    for (size_t i = 0; i < frames->n; i++) {
        const jv *fr = &frames->items[i];
        jreq(fr, "name", J_STR);
        const jv *file = jget(fr, "file"), *line = jget(fr, "line");
        if (file)
            assert_true(file->t == J_STR && file->s[0] != '\0');
        if (line)
            assert_true(line->t == J_NUM && line->num > 0);
        for (size_t k = 0; k < fr->n; k++)
            assert_true(strcmp(fr->keys[k], "name") == 0 || strcmp(fr->keys[k], "file") == 0 ||
                        strcmp(fr->keys[k], "line") == 0);
    }

    uint64_t origin = UINT64_MAX;
    for (int r = 0; r < s.nrec; r++)
        if (s.rec[r].t_ns - s.rec[r].w_ns < origin)
            origin = s.rec[r].t_ns - s.rec[r].w_ns;

    for (int pi = 0; pi < s.nprofiles; pi++) {
        const jv *p = &profiles->items[pi];
        assert_string_equal(jreq(p, "type", J_STR)->s, "sampled");
        assert_string_equal(jreq(p, "unit", J_STR)->s, "seconds");
        assert_string_equal(jreq(p, "name", J_STR)->s, s.profile_names[pi]);
        const jv *samples = jreq(p, "samples", J_ARR), *weights = jreq(p, "weights", J_ARR);
        assert_int_equal(samples->n, weights->n);
        size_t k = 0;
        uint64_t start = UINT64_MAX, end = 0;
        for (int r = 0; r < s.nrec; r++) {
            const record *rec = &s.rec[r];
            if (rec->profile != pi)
                continue;
            assert_true(k < samples->n);
            const jv *stack = &samples->items[k];
            assert_int_equal(stack->t, J_ARR);
            assert_int_equal(stack->n, rec->n); /* root first, one index per frame */
            for (uint32_t d = 0; d < rec->n; d++) {
                double idx = stack->items[d].num;
                assert_true(idx >= 0 && idx < (double)frames->n && idx == floor(idx));
                const jv *fr = &frames->items[(size_t)idx];
                const char *want = rec->f[d].name;
                if (strcmp(want, WEIRD_NAME) == 0)
                    want = WEIRD_NAME_DECODED;
                assert_string_equal(jget(fr, "name")->s, want);
                const jv *file = jget(fr, "file"), *line = jget(fr, "line");
                assert_string_equal(file ? file->s : "", rec->f[d].file);
                assert_true((line ? line->num : 0) == rec->f[d].line);
            }
            double wsec = weights->items[k].num;
            assert_true(fabs(wsec * 1e9 - (double)rec->w_ns) < 1e-3);
            if (rec->t_ns - rec->w_ns < start)
                start = rec->t_ns - rec->w_ns;
            if (rec->t_ns > end)
                end = rec->t_ns;
            k++;
        }
        assert_int_equal(k, samples->n);
        /* seconds since the start of the first sample of the whole recording */
        assert_true(fabs(jreq(p, "startValue", J_NUM)->num - (double)(start - origin) / 1e9) < 1e-12);
        assert_true(fabs(jreq(p, "endValue", J_NUM)->num - (double)(end - origin) / 1e9) < 1e-12);
    }
    jfree(&root);
    free(text);
    synth_free(&s);
}

static void test_speedscope_empty_and_defaults(void **state)
{
    (void)state;
    strtab *st = strtab_new();
    agg *a = agg_new(st);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(write_speedscope(a, NULL, f), 0);
    fclose(f);
    jv root;
    jparse(buf, len, &root);
    assert_int_equal(jreq(&root, "profiles", J_ARR)->n, 0);
    assert_int_equal(jreq(jreq(&root, "shared", J_OBJ), "frames", J_ARR)->n, 0);
    assert_true(strncmp(jreq(&root, "exporter", J_STR)->s, "aprof@", 6) == 0);
    jfree(&root);
    free(buf);
    agg_free(a);
    strtab_free(st);
}

/* ==== collapsed ============================================================================== */

static void format_frame(char *out, size_t size, const aprof_frame *f)
{
    const char *name = strcmp(f->name, WEIRD_NAME) == 0 ? WEIRD_NAME_COLLAPSED : f->name;
    char file[128];
    snprintf(file, sizeof(file), "%s", f->file);
    for (char *c = file; *c; c++)
        if (*c == ';')
            *c = ':';
    if (!f->file[0])
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "%s (%s:%d)", name, file, f->line);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void test_collapsed_matches_samples(void **state)
{
    (void)state;
    synth s;
    synth_build(&s);
    size_t len;
    char *text = write_to_memory(&s, 0, &len);
    assert_true(len > 0 && text[len - 1] == '\n');

    /* expected: distinct (profile, stack) with sample counts, each as one full line */
    char *want[MAXREC];
    int nwant = 0;
    for (int r = 0; r < s.nrec; r++) {
        char line[1024], fr[256];
        snprintf(line, sizeof(line), "%s", s.profile_names[s.rec[r].profile]);
        for (char *c = line; *c; c++)
            if (*c == ';')
                *c = ':';
        for (uint32_t d = 0; d < s.rec[r].n; d++) {
            format_frame(fr, sizeof(fr), &s.rec[r].f[d]);
            strcat(line, ";");
            strcat(line, fr);
        }
        int dup = 0;
        for (int w = 0; w < nwant; w++)
            if (strncmp(want[w], line, strlen(line)) == 0 && want[w][strlen(line)] == ' ')
                dup = 1;
        if (dup)
            continue;
        int count = 0;
        for (int q = r; q < s.nrec; q++) {
            char other[1024];
            snprintf(other, sizeof(other), "%s", s.profile_names[s.rec[q].profile]);
            for (char *c = other; *c; c++)
                if (*c == ';')
                    *c = ':';
            for (uint32_t d = 0; d < s.rec[q].n; d++) {
                format_frame(fr, sizeof(fr), &s.rec[q].f[d]);
                strcat(other, ";");
                strcat(other, fr);
            }
            count += strcmp(other, line) == 0;
        }
        char full[1100];
        snprintf(full, sizeof(full), "%s %d", line, count);
        want[nwant++] = strdup(full);
    }

    char *got[MAXREC * 2];
    int ngot = 0;
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        assert_true(ngot < MAXREC * 2);
        got[ngot++] = strdup(ln);
    }
    qsort(want, (size_t)nwant, sizeof(char *), cmp_str);
    qsort(got, (size_t)ngot, sizeof(char *), cmp_str);
    for (int i = 0; i < ngot && i < nwant; i++)
        assert_string_equal(got[i], want[i]);
    assert_int_equal(ngot, nwant);
    for (int i = 0; i < nwant; i++)
        free(want[i]);
    for (int i = 0; i < ngot; i++)
        free(got[i]);
    free(text);
    synth_free(&s);
}

static void test_writers_report_stream_errors(void **state)
{
    (void)state;
    synth s;
    synth_build(&s);
    FILE *f = fopen("/dev/full", "w");
    if (!f) {
        synth_free(&s);
        skip();
    }
    writer_meta meta = {"n", "e"};
    errno = 0;
    assert_int_equal(write_speedscope(s.a, &meta, f), -1);
    assert_int_equal(errno, ENOSPC);
    fclose(f);
    f = fopen("/dev/full", "w");
    errno = 0;
    assert_int_equal(write_collapsed(s.a, f), -1);
    assert_int_equal(errno, ENOSPC);
    fclose(f);
    synth_free(&s);
}

/* ==== outfile ================================================================================ */

static char *make_tmpdir(void)
{
    char *d = strdup("/tmp/aprof-outfile-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void spit(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void remove_tree(char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

static void test_outfile_commit_replaces_atomically(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/out.json", dir);
    spit(path, "old contents", 0640);
    outfile o;
    assert_int_equal(outfile_open(&o, path), 0);
    fputs("new contents", outfile_stream(&o));
    fflush(outfile_stream(&o));
    char *now = slurp(path); /* a reader still sees the old file while writing goes on */
    assert_string_equal(now, "old contents");
    free(now);
    assert_int_equal(count_entries(dir), 2);
    assert_int_equal(outfile_commit(&o), 0);
    now = slurp(path);
    assert_string_equal(now, "new contents");
    free(now);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* permissions of the replaced file kept */
    assert_null(outfile_stream(&o));
    errno = 0;
    assert_int_equal(outfile_commit(&o), -1); /* already closed */
    assert_int_equal(errno, EBADF);
    outfile_abort(&o); /* harmless on a closed outfile */
    remove_tree(dir);
}

/* Special files are written in place: renaming over /dev/null would replace the device. */
static void test_outfile_special_files_written_in_place(void **state)
{
    (void)state;
    outfile o;
    assert_int_equal(outfile_open(&o, "/dev/null"), 0);
    assert_true(o.direct);
    fputs("discarded\n", outfile_stream(&o));
    assert_int_equal(outfile_commit(&o), 0);
    struct stat st;
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));

    char *dir = make_tmpdir();
    char fifo[256];
    snprintf(fifo, sizeof(fifo), "%s/pipe", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int rd = open(fifo, O_RDONLY | O_NONBLOCK); /* a reader, so opening for writing succeeds */
    assert_true(rd >= 0);
    assert_int_equal(outfile_open(&o, fifo), 0);
    fputs("through the pipe", outfile_stream(&o));
    assert_int_equal(outfile_commit(&o), 0);
    char buf[64] = {0};
    assert_int_equal(read(rd, buf, sizeof(buf) - 1), 16);
    assert_string_equal(buf, "through the pipe");
    close(rd);
    assert_int_equal(stat(fifo, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    unlink(fifo);
    rmdir(dir);
    free(dir);
}

static void test_outfile_abort_keeps_original(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/out.txt", dir);
    spit(path, "original", 0644);
    outfile o;
    assert_int_equal(outfile_open(&o, path), 0);
    fputs("partial garbage", outfile_stream(&o));
    outfile_abort(&o);
    char *now = slurp(path);
    assert_string_equal(now, "original");
    free(now);
    assert_int_equal(count_entries(dir), 1);

    /* a new file: created with the umask applied, and nothing at all after an abort */
    snprintf(path, sizeof(path), "%s/new.txt", dir);
    mode_t old = umask(027);
    assert_int_equal(outfile_open(&o, path), 0);
    fputs("x", outfile_stream(&o));
    assert_int_equal(outfile_commit(&o), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    snprintf(path, sizeof(path), "%s/never.txt", dir);
    assert_int_equal(outfile_open(&o, path), 0);
    outfile_abort(&o);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_entries(dir), 2);
    remove_tree(dir);
}

static void test_outfile_unwritable_paths(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[256];
    outfile o;

    snprintf(path, sizeof(path), "%s/no/such/dir/out.json", dir);
    errno = 0;
    assert_int_equal(outfile_open(&o, path), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(outfile_open(&o, dir), -1); /* a directory */
    assert_int_equal(errno, EISDIR);

    snprintf(path, sizeof(path), "%s/file", dir);
    spit(path, "x", 0644);
    snprintf(path, sizeof(path), "%s/file/out.json", dir); /* parent is a file */
    assert_int_equal(outfile_open(&o, path), -1);
    assert_int_equal(errno, ENOTDIR);

    assert_int_equal(outfile_open(&o, ""), -1);

    /* Permission denied: a read-only directory stops everyone but root; root is refused by
     * sysfs, which allows no new files. */
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/ro", dir);
        assert_int_equal(mkdir(path, 0555), 0);
        snprintf(path, sizeof(path), "%s/ro/out.json", dir);
    } else {
        snprintf(path, sizeof(path), "/sys/aprof-outfile-test.json");
    }
    struct stat st;
    if (stat(geteuid() != 0 ? dir : "/sys", &st) == 0) {
        errno = 0;
        assert_int_equal(outfile_open(&o, path), -1);
        assert_true(errno == EACCES || errno == EROFS || errno == EPERM);
    }
    assert_int_equal(count_entries(dir), geteuid() != 0 ? 2 : 1);
    remove_tree(dir);
}

static void test_outfile_end_to_end_speedscope(void **state)
{
    (void)state;
    synth s;
    synth_build(&s);
    char *dir = make_tmpdir();
    char path[256];
    snprintf(path, sizeof(path), "%s/profile.speedscope.json", dir);
    outfile o;
    assert_int_equal(outfile_open(&o, path), 0);
    writer_meta meta = {"x", "y"};
    assert_int_equal(write_speedscope(s.a, &meta, outfile_stream(&o)), 0);
    assert_int_equal(outfile_commit(&o), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    jv root;
    jparse(buf, n, &root);
    assert_int_equal(jreq(&root, "profiles", J_ARR)->n, (size_t)s.nprofiles);
    jfree(&root);
    free(buf);
    remove_tree(dir);
    synth_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_speedscope_round_trip),
        cmocka_unit_test(test_speedscope_empty_and_defaults),
        cmocka_unit_test(test_collapsed_matches_samples),
        cmocka_unit_test(test_writers_report_stream_errors),
        cmocka_unit_test(test_outfile_commit_replaces_atomically),
        cmocka_unit_test(test_outfile_abort_keeps_original),
        cmocka_unit_test(test_outfile_special_files_written_in_place),
        cmocka_unit_test(test_outfile_unwritable_paths),
        cmocka_unit_test(test_outfile_end_to_end_speedscope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
