/* Unit tests of the output writers (speedscope, collapsed) and of atomic output files.
 *
 * The speedscope output is parsed back with libjansson (RFC 8259, UTF-8 checked, duplicate keys
 * rejected) and compared with the synthetic samples the test fed in. The schema check and the real speedscope app run in tests/integration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

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

/* ==== reading the output back (libjansson: strict RFC 8259, UTF-8 checked) ==================== */

/* Parses a whole document, rejecting duplicate keys; fails the test when it is not valid JSON. */
static json_t *jparse(const char *text, size_t len)
{
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!root)
        fprintf(stderr, "JSON parse error at byte %d: %s\n", e.position, e.text);
    assert_non_null(root);
    return root;
}

static json_t *jreq(json_t *o, const char *key, json_type t)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_typeof(v) != t)
        fprintf(stderr, "missing or mistyped key \"%s\"\n", key);
    assert_non_null(v);
    assert_int_equal(json_typeof(v), t);
    return v;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(jreq(o, key, JSON_STRING));
}

static double jnum(json_t *v)
{
    assert_non_null(v);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static int has_null(json_t *v)
{
    if (json_is_null(v))
        return 1;
    size_t i;
    json_t *x;
    const char *k;
    if (json_is_array(v))
        json_array_foreach(v, i, x) if (has_null(x)) return 1;
    if (json_is_object(v))
        json_object_foreach(v, k, x) if (has_null(x)) return 1;
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
    json_t *root = jparse(text, len);
    assert_true(json_is_object(root));
    assert_false(has_null(root));
    assert_string_equal(jstr(root, "$schema"), "https://www.speedscope.app/file-format-schema.json");
    assert_string_equal(jstr(root, "exporter"), "aprof@9.9.9-test");
    assert_string_equal(jstr(root, "name"), "aprof: python3 app.py (pid 42)");
    assert_true(json_integer_value(jreq(root, "activeProfileIndex", JSON_INTEGER)) == 0);
    json_t *frames = jreq(jreq(root, "shared", JSON_OBJECT), "frames", JSON_ARRAY);
    json_t *profiles = jreq(root, "profiles", JSON_ARRAY);
    assert_int_equal(json_array_size(profiles), (size_t)s.nprofiles);

    /* every frame: name always; file only when known; line only when known */
    for (size_t i = 0; i < json_array_size(frames); i++) {
        json_t *fr = json_array_get(frames, i);
        jstr(fr, "name");
        json_t *file = json_object_get(fr, "file"), *line = json_object_get(fr, "line");
        if (file)
            assert_true(json_is_string(file) && json_string_value(file)[0] != '\0');
        if (line)
            assert_true(json_is_integer(line) && json_integer_value(line) > 0);
        const char *key;
        json_t *val;
        json_object_foreach(fr, key, val)
            assert_true(strcmp(key, "name") == 0 || strcmp(key, "file") == 0 ||
                        strcmp(key, "line") == 0);
    }

    uint64_t origin = UINT64_MAX;
    for (int r = 0; r < s.nrec; r++)
        if (s.rec[r].t_ns - s.rec[r].w_ns < origin)
            origin = s.rec[r].t_ns - s.rec[r].w_ns;

    for (int pi = 0; pi < s.nprofiles; pi++) {
        json_t *p = json_array_get(profiles, (size_t)pi);
        assert_string_equal(jstr(p, "type"), "sampled");
        assert_string_equal(jstr(p, "unit"), "seconds");
        assert_string_equal(jstr(p, "name"), s.profile_names[pi]);
        json_t *samples = jreq(p, "samples", JSON_ARRAY), *weights = jreq(p, "weights", JSON_ARRAY);
        assert_int_equal(json_array_size(samples), json_array_size(weights));
        size_t k = 0;
        uint64_t start = UINT64_MAX, end = 0;
        for (int r = 0; r < s.nrec; r++) {
            const record *rec = &s.rec[r];
            if (rec->profile != pi)
                continue;
            assert_true(k < json_array_size(samples));
            json_t *stack = json_array_get(samples, k);
            assert_true(json_is_array(stack));
            assert_int_equal(json_array_size(stack), rec->n); /* root first, one index per frame */
            for (uint32_t d = 0; d < rec->n; d++) {
                json_t *ix = json_array_get(stack, d);
                assert_true(json_is_integer(ix));
                json_int_t idx = json_integer_value(ix);
                assert_true(idx >= 0 && (size_t)idx < json_array_size(frames));
                json_t *fr = json_array_get(frames, (size_t)idx);
                const char *want = rec->f[d].name;
                if (strcmp(want, WEIRD_NAME) == 0)
                    want = WEIRD_NAME_DECODED;
                assert_string_equal(jstr(fr, "name"), want);
                json_t *file = json_object_get(fr, "file"), *line = json_object_get(fr, "line");
                assert_string_equal(file ? json_string_value(file) : "", rec->f[d].file);
                assert_true((line ? json_integer_value(line) : 0) == rec->f[d].line);
            }
            double wsec = jnum(json_array_get(weights, k));
            assert_true(fabs(wsec * 1e9 - (double)rec->w_ns) < 1e-3);
            if (rec->t_ns - rec->w_ns < start)
                start = rec->t_ns - rec->w_ns;
            if (rec->t_ns > end)
                end = rec->t_ns;
            k++;
        }
        assert_int_equal(k, json_array_size(samples));
        /* seconds since the start of the first sample of the whole recording */
        assert_true(fabs(jnum(json_object_get(p, "startValue")) -
                         (double)(start - origin) / 1e9) < 1e-12);
        assert_true(fabs(jnum(json_object_get(p, "endValue")) -
                         (double)(end - origin) / 1e9) < 1e-12);
    }
    json_decref(root);
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
    json_t *root = jparse(buf, len);
    assert_int_equal(json_array_size(jreq(root, "profiles", JSON_ARRAY)), 0);
    assert_int_equal(json_array_size(jreq(jreq(root, "shared", JSON_OBJECT), "frames", JSON_ARRAY)), 0);
    assert_true(strncmp(jstr(root, "exporter"), "aprof@", 6) == 0);
    json_decref(root);
    free(buf);
    agg_free(a);
    strtab_free(st);
}

/* --time-resolution: a thread's points within each window merged by stack, in order of first
 * sight, weights added; synthetic profiles untouched; every total unchanged. */
static void test_speedscope_time_windows(void **state)
{
    (void)state;
    strtab *st = strtab_new();
    agg *a = agg_new(st);
    agg_profile *p = agg_thread_profile(a, 0, 5, "main");
    agg_profile *syn = agg_profile_get(a, "synthetic", 0);
    const char *names[3] = {"A", "B", "C"};
    aprof_frame fr[3][2];
    for (int k = 0; k < 3; k++) {
        fr[k][0] = (aprof_frame){strtab_intern_cstr(st, "root"), strtab_intern_cstr(st, "m.py"), 1,
                                 FRAME_PYTHON, 0, 1};
        fr[k][1] = (aprof_frame){strtab_intern_cstr(st, names[k]), strtab_intern_cstr(st, "m.py"),
                                 10 + k, FRAME_PYTHON, 0, 10};
    }
    /* samples every 100 ms from t = 100 ms, each standing for 100 ms (origin 0):
     * window 0 (t < 1 s): A B A C A B A C A;  window 1: B A B A ...;  window 2: C only */
    const char *seq = "ABACABACA" "BABABABABA" "CCCCC";
    uint64_t want_w[3][3] = {{0}};
    for (int i = 0; seq[i]; i++) {
        int k = seq[i] - 'A';
        uint64_t t = 100000000ull * (uint64_t)(i + 1);
        want_w[t / 1000000000ull][k] += 100000000ull;
        assert_int_equal(agg_profile_add(a, p, fr[k], 2, t, 100000000ull), 0);
        assert_int_equal(agg_profile_add(a, syn, fr[k], 2, t, 100000000ull), 0);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    writer_meta meta = {"x", "aprof@test", 1000000000ull};
    assert_int_equal(write_speedscope(a, &meta, f), 0);
    fclose(f);
    json_t *root = jparse(buf, len);
    json_t *frames = jreq(jreq(root, "shared", JSON_OBJECT), "frames", JSON_ARRAY);
    json_t *profiles = jreq(root, "profiles", JSON_ARRAY);
    json_t *tp = json_array_get(profiles, 0), *sp = json_array_get(profiles, 1);
    json_t *samples = jreq(tp, "samples", JSON_ARRAY), *weights = jreq(tp, "weights", JSON_ARRAY);
    /* window 0: A B C; window 1: B A; window 2: C */
    const char *order = "ABCBAC";
    int window_of[6] = {0, 0, 0, 1, 1, 2};
    assert_int_equal(json_array_size(samples), 6);
    assert_int_equal(json_array_size(weights), 6);
    for (size_t i = 0; i < 6; i++) {
        json_t *stack = json_array_get(samples, i);
        assert_int_equal(json_array_size(stack), 2);
        json_t *leaf = json_array_get(frames, (size_t)json_integer_value(json_array_get(stack, 1)));
        assert_int_equal(jstr(leaf, "name")[0], order[i]);
        double w = jnum(json_array_get(weights, i)) * 1e9;
        assert_true(fabs(w - (double)want_w[window_of[i]][order[i] - 'A']) < 1);
    }
    /* the synthetic profile keeps every sample; both end where the last sample ends */
    assert_int_equal(json_array_size(jreq(sp, "samples", JSON_ARRAY)), strlen(seq));
    assert_true(fabs(jnum(json_object_get(tp, "endValue")) - 2.4) < 1e-9);
    assert_true(fabs(jnum(json_object_get(tp, "startValue")) - 0.0) < 1e-9);
    json_decref(root);
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
    json_t *root = jparse(buf, n);
    assert_int_equal(json_array_size(jreq(root, "profiles", JSON_ARRAY)), (size_t)s.nprofiles);
    json_decref(root);
    free(buf);
    remove_tree(dir);
    synth_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_speedscope_round_trip),
        cmocka_unit_test(test_speedscope_empty_and_defaults),
        cmocka_unit_test(test_speedscope_time_windows),
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
