/* src/cpython/pyobj.c against live interpreters: for every CPython 3.10-3.13 under `pyenv root` and
 * Debian's /usr/bin/python3.11, start fixtures/objects_fixture.py, which prints the id() of many
 * objects and the values they hold (computed by the interpreter itself), read each object through
 * pyobj and compare. Then feed every function null, unaligned, unmapped, freed and garbage
 * addresses: errors, never a crash or a hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "layouts.h"
#include "memory.h"
#include "pyobj.h"
#include "strtab.h"

/* ---- a minimal JSON reader for the fixture's report ----------------------------------------- */

typedef struct jv {
    char t; /* 'n' null, 'b' bool, 'i' integer, 'f' other number, 's' string, 'a' array, 'o' object */
    int64_t i;
    char *s; /* string contents (UTF-8), or the number's text */
    size_t len;
    struct jv *kids;
    char **keys;
    size_t n;
} jv;

static const char *jp_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static const char *jp_string(const char *p, char **out, size_t *outlen)
{
    p++; /* opening quote */
    char *buf = malloc(strlen(p) + 1), *o = buf;
    if (!buf)
        return NULL;
    while (*p && *p != '"') {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        char e = *p++;
        switch (e) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            unsigned cp;
            if (sscanf(p, "%4x", &cp) != 1)
                goto bad;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo;
                if (sscanf(p + 2, "%4x", &lo) == 1 && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            o += put_utf8(o, cp);
            break;
        }
        case '\0': goto bad;
        default: *o++ = e; break; /* \" \\ \/ */
        }
    }
    if (*p != '"')
        goto bad;
    *o = '\0';
    *out = buf;
    *outlen = (size_t)(o - buf);
    return p + 1;
bad:
    free(buf);
    return NULL;
}

static const char *jp_value(const char *p, jv *v, int depth)
{
    memset(v, 0, sizeof *v);
    p = jp_ws(p);
    if (depth > 32)
        return NULL;
    if (*p == '"') {
        v->t = 's';
        return jp_string(p, &v->s, &v->len);
    }
    if (*p == '{' || *p == '[') {
        bool obj = *p == '{';
        v->t = obj ? 'o' : 'a';
        p = jp_ws(p + 1);
        size_t cap = 0;
        if (*p == (obj ? '}' : ']'))
            return p + 1;
        for (;;) {
            if (v->n == cap) {
                cap = cap ? cap * 2 : 8;
                jv *k = realloc(v->kids, cap * sizeof *k);
                char **ks = realloc(v->keys, cap * sizeof *ks);
                if (k)
                    v->kids = k;
                if (ks)
                    v->keys = ks;
                if (!k || !ks)
                    return NULL;
            }
            v->keys[v->n] = NULL;
            memset(&v->kids[v->n], 0, sizeof(jv));
            if (obj) {
                size_t kl;
                p = jp_ws(p);
                if (*p != '"' || !(p = jp_string(p, &v->keys[v->n], &kl)))
                    return NULL;
                p = jp_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            p = jp_value(p, &v->kids[v->n], depth + 1);
            v->n++;
            if (!p)
                return NULL;
            p = jp_ws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == (obj ? '}' : ']'))
                return p + 1;
            return NULL;
        }
    }
    if (strncmp(p, "null", 4) == 0) {
        v->t = 'n';
        return p + 4;
    }
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
        v->t = 'b';
        v->i = *p == 't';
        return p + (*p == 't' ? 4 : 5);
    }
    const char *start = p;
    while (*p && strchr("+-0123456789.eE", *p))
        p++;
    if (p == start)
        return NULL;
    v->s = strndup(start, (size_t)(p - start));
    v->len = (size_t)(p - start);
    v->t = strpbrk(v->s, ".eE") ? 'f' : 'i';
    v->i = strtoll(v->s, NULL, 10);
    return p;
}

static void jv_free(jv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jv_free(&v->kids[i]);
        free(v->keys[i]);
    }
    free(v->kids);
    free(v->keys);
    free(v->s);
}

static jv *jget(jv *o, const char *key)
{
    assert_non_null(o);
    assert_int_equal(o->t, 'o');
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->kids[i];
    fail_msg("fixture report has no key '%s'", key);
    return NULL;
}

static uint64_t jid(jv *o, const char *key)
{
    jv *v = jget(o, key);
    assert_int_equal(v->t, 'i');
    return (uint64_t)v->i;
}

static const char *jstr(jv *o, const char *key)
{
    jv *v = jget(o, key);
    assert_int_equal(v->t, 's');
    return v->s;
}

/* ---- interpreters and the fixture process --------------------------------------------------- */

typedef struct target {
    const char *label;
    char python[512];   /* empty: not on this machine */
    pid_t pid;
    int in_fd, out_fd;
    char *line;
    jv report;
    mem m;
    pyobj_ctx c;
} target;

static target targets[] = {
    {.label = "3.10"}, {.label = "3.11"}, {.label = "3.12"}, {.label = "3.13"},
    {.label = "debian-3.11"},
};
#define NTARGETS (sizeof targets / sizeof targets[0])

static void pyenv_root(char *out, size_t cap)
{
    const char *env = getenv("PYENV_ROOT");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    FILE *f = popen("pyenv root 2>/dev/null", "r");
    if (f) {
        if (fgets(out, (int)cap, f)) {
            out[strcspn(out, "\n")] = '\0';
            pclose(f);
            if (*out)
                return;
        } else {
            pclose(f);
        }
    }
    const char *home = getenv("HOME");
    snprintf(out, cap, "%s/.pyenv", home && *home ? home : "/root");
}

static void find_interpreters(void)
{
    char root[400];
    pyenv_root(root, sizeof root);
    for (unsigned minor = 10; minor <= 13; minor++) {
        char pattern[512];
        snprintf(pattern, sizeof pattern, "%s/versions/3.%u.*/bin/python3.%u", root, minor, minor);
        glob_t g;
        if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0)
            snprintf(targets[minor - 10].python, sizeof targets[0].python, "%s",
                     g.gl_pathv[g.gl_pathc - 1]);
        globfree(&g);
    }
    if (access("/usr/bin/python3.11", X_OK) == 0)
        snprintf(targets[4].python, sizeof targets[4].python, "/usr/bin/python3.11");
}

static char *read_line(int fd, int timeout_ms)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (buf) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (memchr(buf, '\n', len))
            return buf;
    }
    free(buf);
    return NULL;
}

static int start_target(void **state)
{
    target *t = *state;
    t->pid = 0;
    t->line = NULL;
    memset(&t->report, 0, sizeof t->report);
    if (!t->python[0])
        return 0;
    const char *src = getenv("APROF_SOURCE_DIR");
    char fixture[600];
    snprintf(fixture, sizeof fixture, "%s/fixtures/objects_fixture.py", src ? src : ".");
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl(t->python, t->python, "-u", fixture, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    t->pid = pid;
    t->in_fd = in[1];
    t->out_fd = out[0];
    t->line = read_line(t->out_fd, 20000);
    if (!t->line || !jp_value(t->line, &t->report, 0) || t->report.t != 'o') {
        fprintf(stderr, "%s: no report from %s %s\n", t->label, t->python, fixture);
        return -1;
    }
    if (mem_init(&t->m, pid) != 0)
        return -1;
    return 0;
}

static int stop_target(void **state)
{
    target *t = *state;
    if (t->pid > 0) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
        close(t->in_fd);
        close(t->out_fd);
        mem_free(&t->m);
        t->pid = 0;
    }
    jv_free(&t->report);
    memset(&t->report, 0, sizeof t->report);
    free(t->line);
    t->line = NULL;
    return 0;
}

/* ---- helpers -------------------------------------------------------------------------------- */

#define EXPECT_RC(expr, want)                                                                    \
    do {                                                                                         \
        int rc_ = (expr);                                                                        \
        if (rc_ != (want))                                                                       \
            fail_msg("%s: %s = %d (%s), want %d (%s)", what, #expr, rc_, pyobj_strerror(rc_),    \
                     (int)(want), pyobj_strerror(want));                                         \
    } while (0)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct collect {
    uint64_t *a; /* items, or key/value pairs flattened */
    size_t n, cap;
} collect;

static void collect_push(collect *c, uint64_t v)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->a = realloc(c->a, c->cap * sizeof *c->a);
        assert_non_null(c->a);
    }
    c->a[c->n++] = v;
}

static bool collect_item(void *ud, uint64_t item)
{
    collect_push(ud, item);
    return true;
}

static bool collect_pair(void *ud, uint64_t key, uint64_t value)
{
    collect_push(ud, key);
    collect_push(ud, value);
    return true;
}

/* got (from pyobj) and want (a JSON array of ids) hold the same ids, as multisets. */
static void same_ids(const char *what, collect *got, jv *want)
{
    assert_int_equal(want->t, 'a');
    if (got->n != want->n)
        fail_msg("%s: read %zu items, want %zu", what, got->n, want->n);
    uint64_t *w = calloc(want->n + 1, sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < want->n; i++)
        w[i] = (uint64_t)want->kids[i].i;
    if (got->n) {
        qsort(w, want->n, sizeof *w, cmp_u64);
        qsort(got->a, got->n, sizeof *got->a, cmp_u64);
    }
    for (size_t i = 0; i < got->n; i++)
        if (got->a[i] != w[i]) {
            free(w);
            fail_msg("%s: item ids differ", what);
        }
    free(w);
}

/* Pairs compared as (key, value) couples. */
typedef struct pair { uint64_t k, v; } pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->k != y->k)
        return x->k < y->k ? -1 : 1;
    return x->v < y->v ? -1 : x->v > y->v;
}

static void same_pairs(const char *what, collect *got, jv *want)
{
    size_t n = got->n / 2;
    if (n != want->n)
        fail_msg("%s: read %zu pairs, want %zu", what, n, want->n);
    pair *g = calloc(n + 1, sizeof *g), *w = calloc(n + 1, sizeof *w);
    assert_non_null(g);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++) {
        g[i] = (pair){got->a[2 * i], got->a[2 * i + 1]};
        w[i] = (pair){(uint64_t)want->kids[i].kids[0].i, (uint64_t)want->kids[i].kids[1].i};
    }
    qsort(g, n, sizeof *g, cmp_pair);
    qsort(w, n, sizeof *w, cmp_pair);
    int diff = n ? memcmp(g, w, n * sizeof *g) : 0;
    free(g);
    free(w);
    if (diff)
        fail_msg("%s: (key, value) pairs differ", what);
}

/* Valid UTF-8 prefix of `full` ending on a character boundary. */
static void is_utf8_prefix(const char *what, const char *got, size_t len, const char *full)
{
    if (strncmp(got, full, len) != 0 || strlen(got) != len)
        fail_msg("%s: truncated '%s' is not a prefix of '%s'", what, got, full);
    if (((unsigned char)full[len] & 0xC0) == 0x80)
        fail_msg("%s: truncated inside a character", what);
}

/* ---- the checks ----------------------------------------------------------------------------- */

static void check_strings(pyobj_ctx *c, jv *r)
{
    jv *strs = jget(r, "strings");
    strtab *tab = strtab_new();
    assert_non_null(tab);
    static char buf[1 << 16];
    for (size_t i = 0; i < strs->n; i++) {
        const char *what = strs->keys[i];
        uint64_t id = jid(&strs->kids[i], "id");
        const char *want = jstr(&strs->kids[i], "utf8");
        size_t len = 0;
        EXPECT_RC(pyobj_str_utf8(c, id, buf, sizeof buf, &len), PYOBJ_OK);
        if (strcmp(buf, want) != 0)
            fail_msg("%s: read '%.80s', want '%.80s'", what, buf, want);
        assert_int_equal(len, strlen(want));

        /* Truncation keeps a prefix that ends on a character boundary. */
        char small[8];
        int rc = pyobj_str_utf8(c, id, small, sizeof small, &len);
        EXPECT_RC(rc, strlen(want) < sizeof small ? PYOBJ_OK : PYOBJ_TRUNCATED);
        is_utf8_prefix(what, small, len, want);

        const char *a = NULL, *b = NULL;
        EXPECT_RC(pyobj_str_intern(c, id, tab, &a), strlen(want) < 4096 ? PYOBJ_OK : PYOBJ_TRUNCATED);
        EXPECT_RC(pyobj_str_intern(c, id, tab, &b), strlen(want) < 4096 ? PYOBJ_OK : PYOBJ_TRUNCATED);
        assert_ptr_equal(a, b);
        if (strlen(want) < 4096)
            assert_string_equal(a, want);

        EXPECT_RC(pyobj_str_equals(c, id, want, strlen(want)), 1);
        EXPECT_RC(pyobj_str_equals(c, id, "zz", 2), 0);
    }
    strtab_free(tab);
}

static void check_scalars(pyobj_ctx *c, jv *r)
{
    jv *ints = jget(r, "ints");
    for (size_t i = 0; i < ints->n; i++) {
        const char *what = ints->keys[i];
        uint64_t id = jid(&ints->kids[i], "id");
        const char *dec = jstr(&ints->kids[i], "dec");
        char buf[4096];
        EXPECT_RC(pyobj_int_decimal(c, id, buf, sizeof buf), PYOBJ_OK);
        assert_string_equal(buf, dec);
        errno = 0;
        long long want = strtoll(dec, NULL, 10);
        int64_t got = 0;
        if (errno == ERANGE) {
            EXPECT_RC(pyobj_int_value(c, id, &got), PYOBJ_E_RANGE);
        } else {
            EXPECT_RC(pyobj_int_value(c, id, &got), PYOBJ_OK);
            assert_int_equal(got, want);
        }
        char tiny[4];
        EXPECT_RC(pyobj_int_decimal(c, id, tiny, sizeof tiny),
                  strlen(dec) < sizeof tiny ? PYOBJ_OK : PYOBJ_TRUNCATED);
        assert_true(strncmp(tiny, dec, strlen(tiny)) == 0);
    }
    jv *floats = jget(r, "floats");
    for (size_t i = 0; i < floats->n; i++) {
        const char *what = "float";
        double got = 0;
        EXPECT_RC(pyobj_float_value(c, jid(&floats->kids[i], "id"), &got), PYOBJ_OK);
        assert_true(got == strtod(jstr(&floats->kids[i], "repr"), NULL));
    }
    jv *bytes = jget(r, "bytes");
    const char *what = "bytes", *hex = jstr(bytes, "hex");
    uint8_t buf[256];
    size_t size = 0;
    EXPECT_RC(pyobj_bytes(c, jid(bytes, "id"), buf, sizeof buf, &size), PYOBJ_OK);
    assert_int_equal(size * 2, strlen(hex));
    for (size_t i = 0; i < size; i++) {
        unsigned b;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &b), 1);
        assert_int_equal(buf[i], b);
    }
    EXPECT_RC(pyobj_bytes(c, jid(bytes, "id"), buf, 3, &size), PYOBJ_TRUNCATED);
    assert_int_equal(size * 2, strlen(hex));
}

static void check_seqs(pyobj_ctx *c, jv *r)
{
    jv *seqs = jget(r, "seqs");
    const char *what = "sequence";
    for (size_t i = 0; i < seqs->n; i++) {
        uint64_t id = jid(&seqs->kids[i], "id");
        jv *items = jget(&seqs->kids[i], "items");
        uint64_t n = 0;
        EXPECT_RC(pyobj_seq_size(c, id, &n), PYOBJ_OK);
        assert_int_equal(n, items->n);
        uint64_t got[256];
        size_t k = 0;
        EXPECT_RC(pyobj_seq_items(c, id, got, 256, &k), PYOBJ_OK);
        assert_int_equal(k, items->n);
        for (size_t j = 0; j < k; j++) {
            assert_int_equal(got[j], (uint64_t)items->kids[j].i);
            uint64_t one = 0;
            EXPECT_RC(pyobj_seq_item(c, id, j, &one), PYOBJ_OK);
            assert_int_equal(one, got[j]);
        }
        uint64_t one;
        EXPECT_RC(pyobj_seq_item(c, id, n, &one), PYOBJ_E_RANGE);
        if (n > 2) {
            EXPECT_RC(pyobj_seq_items(c, id, got, 2, &k), PYOBJ_TRUNCATED);
            assert_int_equal(k, 2);
        }
    }
}

static void check_dicts(pyobj_ctx *c, jv *r)
{
    jv *dicts = jget(r, "dicts");
    for (size_t i = 0; i < dicts->n; i++) {
        const char *what = dicts->keys[i];
        uint64_t id = jid(&dicts->kids[i], "id");
        collect got = {0};
        EXPECT_RC(pyobj_dict_iter(c, id, collect_pair, &got), PYOBJ_OK);
        same_pairs(what, &got, jget(&dicts->kids[i], "items"));
        free(got.a);
        jv *keys = jget(&dicts->kids[i], "str_keys");
        for (size_t j = 0; j < keys->n; j++) {
            uint64_t v = 0;
            EXPECT_RC(pyobj_dict_get_str(c, id, keys->keys[j], &v), PYOBJ_OK);
            assert_int_equal(v, (uint64_t)keys->kids[j].i);
        }
        uint64_t v;
        EXPECT_RC(pyobj_dict_get_str(c, id, "no such key", &v), PYOBJ_E_NOTFOUND);
        EXPECT_RC(pyobj_dict_get_str(c, id, "k0", &v), PYOBJ_E_NOTFOUND); /* deleted/absent */
    }
    const char *what = "nested";
    uint64_t nested = 0, deeper = 0, x = 0;
    EXPECT_RC(pyobj_dict_get_str(c, jid(jget(dicts, "big"), "id"), "nested", &nested), PYOBJ_OK);
    assert_int_equal(nested, jid(jget(dicts, "nested"), "id"));
    EXPECT_RC(pyobj_dict_get_str(c, nested, "deeper", &deeper), PYOBJ_OK);
    EXPECT_RC(pyobj_dict_get_str(c, deeper, "x", &x), PYOBJ_OK);
    int64_t one = 0;
    EXPECT_RC(pyobj_int_value(c, x, &one), PYOBJ_OK);
    assert_int_equal(one, 1);
}

/* Attribute names read back by pyobj_attrs_iter, checked against the expected map. */
typedef struct attrs_state {
    pyobj_ctx *c;
    jv *attrs;
    size_t seen;
    const char *bad;
} attrs_state;

static bool attrs_cb(void *ud, uint64_t key, uint64_t value)
{
    attrs_state *s = ud;
    char name[256];
    if (pyobj_str_utf8(s->c, key, name, sizeof name, NULL) != PYOBJ_OK) {
        s->bad = "unreadable name";
        return false;
    }
    for (size_t i = 0; i < s->attrs->n; i++)
        if (strcmp(s->attrs->keys[i], name) == 0) {
            if ((uint64_t)s->attrs->kids[i].i != value)
                s->bad = "wrong value";
            s->seen++;
            return true;
        }
    s->bad = "unexpected attribute";
    return false;
}

static void check_instances(pyobj_ctx *c, jv *r)
{
    jv *insts = jget(r, "instances");
    for (size_t i = 0; i < insts->n; i++) {
        const char *what = insts->keys[i];
        uint64_t id = jid(&insts->kids[i], "id");
        jv *attrs = jget(&insts->kids[i], "attrs");
        for (size_t j = 0; j < attrs->n; j++) {
            uint64_t v = 0;
            EXPECT_RC(pyobj_getattr(c, id, attrs->keys[j], &v), PYOBJ_OK);
            if (v != (uint64_t)attrs->kids[j].i)
                fail_msg("%s.%s: wrong object", what, attrs->keys[j]);
        }
        jv *absent = jget(&insts->kids[i], "absent");
        for (size_t j = 0; j < absent->n; j++) {
            uint64_t v;
            EXPECT_RC(pyobj_getattr(c, id, absent->kids[j].s, &v), PYOBJ_E_NOTFOUND);
        }
        attrs_state s = {c, attrs, 0, NULL};
        EXPECT_RC(pyobj_attrs_iter(c, id, attrs_cb, &s), PYOBJ_OK);
        if (s.bad)
            fail_msg("%s: attrs_iter: %s", what, s.bad);
        assert_int_equal(s.seen, attrs->n);
    }
}

static void check_sets(pyobj_ctx *c, jv *r)
{
    jv *sets = jget(r, "sets");
    for (size_t i = 0; i < sets->n; i++) {
        const char *what = sets->keys[i];
        collect got = {0};
        EXPECT_RC(pyobj_set_iter(c, jid(&sets->kids[i], "id"), collect_item, &got), PYOBJ_OK);
        same_ids(what, &got, jget(&sets->kids[i], "items"));
        free(got.a);
    }
    jv *ws = jget(r, "weakset");
    const char *what = "weakset";
    collect got = {0};
    EXPECT_RC(pyobj_weakset_iter(c, jid(ws, "id"), collect_item, &got), PYOBJ_OK);
    same_ids(what, &got, jget(ws, "items"));
    free(got.a);
}

static void check_funcs(pyobj_ctx *c, jv *r)
{
    jv *f = jget(r, "funcs");
    const char *what = "functions";
    char buf[256];
    uint64_t v = 0, w = 0;

    jv *cl = jget(f, "closure");
    EXPECT_RC(pyobj_func_qualname(c, jid(cl, "id"), &v), PYOBJ_OK);
    EXPECT_RC(pyobj_str_utf8(c, v, buf, sizeof buf, NULL), PYOBJ_OK);
    assert_string_equal(buf, jstr(cl, "qualname"));
    EXPECT_RC(pyobj_func_closure(c, jid(cl, "id"), &v), PYOBJ_OK);
    assert_int_equal(v, jid(cl, "closure_tuple"));
    EXPECT_RC(pyobj_seq_item(c, v, 0, &w), PYOBJ_OK);
    assert_int_equal(w, jid(cl, "cell"));
    EXPECT_RC(pyobj_cell_get(c, w, &v), PYOBJ_OK);
    assert_int_equal(v, jid(cl, "cell_contents"));

    jv *plain = jget(f, "plain");
    EXPECT_RC(pyobj_func_qualname(c, jid(plain, "id"), &v), PYOBJ_OK);
    EXPECT_RC(pyobj_str_utf8(c, v, buf, sizeof buf, NULL), PYOBJ_OK);
    assert_string_equal(buf, jstr(plain, "qualname"));
    EXPECT_RC(pyobj_func_closure(c, jid(plain, "id"), &v), PYOBJ_OK);
    assert_int_equal(v, 0);

    jv *m = jget(f, "method");
    EXPECT_RC(pyobj_method_parts(c, jid(m, "id"), &v, &w), PYOBJ_OK);
    assert_int_equal(v, jid(m, "func"));
    assert_int_equal(w, jid(m, "self"));

    const char *builtins[] = {"builtin_method", "builtin_function"};
    for (size_t i = 0; i < 2; i++) {
        jv *b = jget(f, builtins[i]);
        EXPECT_RC(pyobj_cfunc_name(c, jid(b, "id"), buf, sizeof buf), PYOBJ_OK);
        assert_string_equal(buf, jstr(b, "name"));
        EXPECT_RC(pyobj_cfunc_self(c, jid(b, "id"), &v), PYOBJ_OK);
        assert_int_equal(v, jid(b, "self"));
    }
    /* Wrong kinds. */
    EXPECT_RC(pyobj_func_qualname(c, jid(m, "id"), &v), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_method_parts(c, jid(cl, "id"), &v, &w), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_cfunc_name(c, jid(cl, "id"), buf, sizeof buf), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_cell_get(c, jid(cl, "id"), &v), PYOBJ_E_TYPE);
}

static void check_types(pyobj_ctx *c, jv *r)
{
    jv *types = jget(r, "types");
    strtab *tab = strtab_new();
    assert_non_null(tab);
    for (size_t i = 0; i < types->n; i++) {
        jv *t = &types->kids[i];
        const char *what = jstr(t, "tp_name");
        char buf[256];
        EXPECT_RC(pyobj_type_name(c, jid(t, "id"), buf, sizeof buf), PYOBJ_OK);
        assert_string_equal(buf, what);
        const char *interned = NULL;
        EXPECT_RC(pyobj_type_name_intern(c, jid(t, "id"), tab, &interned), PYOBJ_OK);
        assert_ptr_equal(interned, strtab_intern_cstr(tab, what));
        jv *yes = jget(t, "is"), *no = jget(t, "not");
        for (size_t j = 0; j < yes->n; j++)
            EXPECT_RC(pyobj_is_instance(c, jid(t, "id"), yes->kids[j].s), 1);
        for (size_t j = 0; j < no->n; j++)
            EXPECT_RC(pyobj_is_instance(c, jid(t, "id"), no->kids[j].s), 0);
    }
    strtab_free(tab);
}

static void check_modules(pyobj_ctx *c, jv *r)
{
    jv *mods = jget(r, "modules");
    uint64_t sysmod = jid(mods, "sys_modules"), m = 0, v = 0;
    jv *want = jget(mods, "modules");
    const char *what = "modules";
    for (size_t i = 0; i < want->n; i++) {
        EXPECT_RC(pyobj_module_find(c, sysmod, want->keys[i], &m), PYOBJ_OK);
        assert_int_equal(m, (uint64_t)want->kids[i].i);
    }
    EXPECT_RC(pyobj_module_find(c, sysmod, "no_such_module", &m), PYOBJ_E_NOTFOUND);
    jv *g = jget(mods, "main_global");
    EXPECT_RC(pyobj_module_find(c, sysmod, "__main__", &m), PYOBJ_OK);
    EXPECT_RC(pyobj_module_global(c, m, jstr(g, "name"), &v), PYOBJ_OK);
    assert_int_equal(v, jid(g, "id"));
    char buf[128];
    EXPECT_RC(pyobj_str_utf8(c, v, buf, sizeof buf, NULL), PYOBJ_OK);
    assert_string_equal(buf, jstr(g, "value"));
    EXPECT_RC(pyobj_module_global(c, m, "NO_SUCH_GLOBAL", &v), PYOBJ_E_NOTFOUND);
    EXPECT_RC(pyobj_module_global(c, sysmod, "MARKER", &v), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_module_find(c, m, "sys", &v), PYOBJ_E_TYPE);
}

/* The fixture's instances must really be stored in the forms the version offers, or the
 * attribute checks would not cover them: p1 in a split table / values array, p3 in a dict. */
static void check_storage_forms(pyobj_ctx *c, jv *r)
{
    uint64_t p1 = jid(jget(jget(r, "instances"), "p1"), "id");
    uint64_t p3 = jid(jget(jget(r, "instances"), "p3"), "id");
    unsigned minor = c->L->version & 0xff;
    uint64_t w1 = 0, w3 = 0, values = 0;
    if (minor == 10) {
        /* tp_dictoffset 16 for a plain class: the dict of p1 is a split table. */
        uint64_t dict;
        assert_int_equal(mem_read_u64(c->m, p1 + 16, &dict), 0);
        assert_int_equal(mem_read_u64(c->m, dict + (uint64_t)c->L->dict.values, &values), 0);
        assert_true(values != 0);
        return;
    }
    assert_int_equal(mem_read_u64(c->m, p1 - 24, &w1), 0);
    assert_int_equal(mem_read_u64(c->m, p3 - 24, &w3), 0);
    assert_true(w3 != 0 && (w3 & 1) == 0); /* materialised dict */
    if (minor == 11) {
        assert_int_equal(w1, 0);
        assert_int_equal(mem_read_u64(c->m, p1 - 32, &values), 0);
        assert_true(values != 0);
    } else if (minor == 12) {
        assert_true((w1 & 1) == 1); /* tagged values pointer */
    } else {
        assert_int_equal(w1, 0); /* inline values, no dict */
    }
}

/* Objects of one kind handed to readers of another kind. */
static void check_type_confusion(pyobj_ctx *c, jv *r)
{
    const char *what = "type confusion";
    uint64_t str = jid(jget(jget(r, "strings"), "ascii"), "id");
    uint64_t dict = jid(jget(jget(r, "dicts"), "big"), "id");
    uint64_t lst = jid(&jget(r, "seqs")->kids[1], "id");
    uint64_t one = jid(jget(jget(r, "ints"), "one"), "id");
    uint64_t set = jid(jget(jget(r, "sets"), "set"), "id");
    char buf[64];
    uint64_t v;
    int64_t i;
    double d;
    collect got = {0};
    EXPECT_RC(pyobj_str_utf8(c, dict, buf, sizeof buf, NULL), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_dict_iter(c, str, collect_pair, &got), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_dict_get_str(c, lst, "x", &v), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_int_value(c, str, &i), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_float_value(c, one, &d), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_seq_size(c, dict, &v), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_set_iter(c, lst, collect_item, &got), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_weakset_iter(c, set, collect_item, &got), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_weakref_get(c, set, &v), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_bytes(c, str, buf, sizeof buf, NULL), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_getattr(c, one, "real", &v), PYOBJ_E_NOTFOUND); /* no __dict__ */
    assert_int_equal(got.n, 0);
    free(got.a);
}

/* ---- robustness ----------------------------------------------------------------------------- */

typedef struct maps {
    uint64_t lo[8192], hi[8192];
    size_t n;
} maps;

static void read_maps(pid_t pid, maps *mp)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    mp->n = 0;
    while (fgets(line, sizeof line, f) && mp->n < 8192) {
        unsigned long long lo, hi;
        if (sscanf(line, "%llx-%llx", &lo, &hi) == 2) {
            mp->lo[mp->n] = lo;
            mp->hi[mp->n] = hi;
            mp->n++;
        }
    }
    fclose(f);
}

static bool mapped(const maps *mp, uint64_t a, uint64_t len)
{
    for (size_t i = 0; i < mp->n; i++)
        if (a + len > mp->lo[i] && a < mp->hi[i])
            return true;
    return false;
}

static bool stop_after_many(void *ud, uint64_t item)
{
    (void)item;
    return ++*(size_t *)ud < 100000;
}

static bool stop_after_many_pairs(void *ud, uint64_t k, uint64_t v)
{
    (void)k;
    (void)v;
    return ++*(size_t *)ud < 100000;
}

/* Every reader on one address. Returns how many calls succeeded. */
static int all_readers(pyobj_ctx *c, uint64_t a)
{
    static char buf[4096];
    strtab *tab = strtab_new();
    assert_non_null(tab);
    uint64_t v, w;
    int64_t i;
    double d;
    size_t n = 0, k;
    const char *s;
    uint64_t items[16];
    int ok = 0;
    ok += pyobj_type(c, a, &v) >= 0;
    ok += pyobj_type_name(c, a, buf, sizeof buf) >= 0;
    ok += pyobj_type_name_intern(c, a, tab, &s) >= 0;
    ok += pyobj_is_instance(c, a, "object") >= 0;
    ok += pyobj_str_utf8(c, a, buf, sizeof buf, NULL) >= 0;
    ok += pyobj_str_intern(c, a, tab, &s) >= 0;
    ok += pyobj_str_equals(c, a, "x", 1) >= 0;
    ok += pyobj_bytes(c, a, buf, sizeof buf, &k) >= 0;
    ok += pyobj_int_value(c, a, &i) >= 0;
    ok += pyobj_int_decimal(c, a, buf, sizeof buf) >= 0;
    ok += pyobj_float_value(c, a, &d) >= 0;
    ok += pyobj_seq_size(c, a, &v) >= 0;
    ok += pyobj_seq_item(c, a, 1, &v) >= 0;
    ok += pyobj_seq_items(c, a, items, 16, &k) >= 0;
    ok += pyobj_dict_iter(c, a, stop_after_many_pairs, &n) >= 0;
    ok += pyobj_dict_get_str(c, a, "x", &v) >= 0;
    ok += pyobj_set_iter(c, a, stop_after_many, &n) >= 0;
    ok += pyobj_weakref_get(c, a, &v) >= 0;
    ok += pyobj_weakset_iter(c, a, stop_after_many, &n) >= 0;
    ok += pyobj_getattr(c, a, "x", &v) >= 0;
    ok += pyobj_attrs_iter(c, a, stop_after_many_pairs, &n) >= 0;
    ok += pyobj_module_find(c, a, "sys", &v) >= 0;
    ok += pyobj_module_global(c, a, "x", &v) >= 0;
    ok += pyobj_func_qualname(c, a, &v) >= 0;
    ok += pyobj_func_closure(c, a, &v) >= 0;
    ok += pyobj_method_parts(c, a, &v, &w) >= 0;
    ok += pyobj_cfunc_name(c, a, buf, sizeof buf) >= 0;
    ok += pyobj_cfunc_self(c, a, &v) >= 0;
    ok += pyobj_cell_get(c, a, &v) >= 0;
    strtab_free(tab);
    return ok;
}

static void check_garbage(target *t)
{
    pyobj_ctx *c = &t->c;
    static maps mp;
    read_maps(t->pid, &mp);
    uint64_t some_obj = jid(jget(jget(&t->report, "strings"), "ascii"), "id");

    /* Null, tiny, non-canonical, unaligned: every reader fails. */
    const uint64_t never[] = {0, 8, 0xfff, 0xdead000000000000ull, UINT64_MAX,
                              some_obj + 1, some_obj + 3, some_obj + 4};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (all_readers(c, never[i]) != 0)
            fail_msg("address %#llx: a reader succeeded", (unsigned long long)never[i]);

    /* Unmapped addresses, including the freed 2 MiB object once its mapping is gone. */
    uint64_t freed = jid(&t->report, "freed");
    if (!mapped(&mp, freed, 64)) {
        if (all_readers(c, freed) != 0)
            fail_msg("freed object %#llx: a reader succeeded", (unsigned long long)freed);
    } else {
        all_readers(c, freed); /* still mapped (allocator kept it): must just not crash */
    }
    srand(12345);
    int unmapped_tested = 0;
    for (int i = 0; i < 300; i++) {
        uint64_t a = (((uint64_t)rand() << 31) ^ (uint64_t)rand() ^ ((uint64_t)rand() << 16)) &
                     0x7ffffffffff8ull;
        if (mapped(&mp, a, 4096) || a < 0x10000)
            continue;
        unmapped_tested++;
        if (all_readers(c, a) != 0)
            fail_msg("unmapped %#llx: a reader succeeded", (unsigned long long)a);
    }
    assert_true(unmapped_tested > 250);

    /* Mapped garbage: addresses in and around live objects. Any result, but return promptly. */
    jv *r = &t->report;
    uint64_t bases[] = {
        some_obj,
        jid(jget(jget(r, "dicts"), "big"), "id"),
        jid(jget(jget(r, "instances"), "p1"), "id"),
        jid(jget(jget(r, "sets"), "set"), "id"),
        jid(jget(r, "modules"), "sys_modules"),
    };
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
        for (int i = 0; i < 60; i++) {
            uint64_t a = bases[b] + (uint64_t)((rand() % 8192) - 4096) * 8;
            all_readers(c, a);
        }
}

/* ---- the test ------------------------------------------------------------------------------- */

static void test_objects(void **state)
{
    target *t = *state;
    if (!t->python[0]) {
        print_message("%s: interpreter not found, skipped\n", t->label);
        skip();
    }
    assert_true(t->pid > 0);
    jv *ver = jget(&t->report, "version");
    assert_int_equal(ver->n, 2);
    const py_layout *L = layout_for_version((unsigned)ver->kids[0].i, (unsigned)ver->kids[1].i);
    assert_non_null(L);
    t->c = (pyobj_ctx){&t->m, L};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    check_types(&t->c, &t->report);
    check_strings(&t->c, &t->report);
    check_scalars(&t->c, &t->report);
    check_seqs(&t->c, &t->report);
    check_dicts(&t->c, &t->report);
    check_storage_forms(&t->c, &t->report);
    check_instances(&t->c, &t->report);
    check_sets(&t->c, &t->report);
    check_funcs(&t->c, &t->report);
    check_modules(&t->c, &t->report);
    check_type_confusion(&t->c, &t->report);
    /* The same again with an empty page cache, as after mem_begin_sample(). */
    mem_begin_sample(&t->m);
    check_instances(&t->c, &t->report);
    check_garbage(t);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("%s (%s): all object checks passed in %.2f s\n", t->label, t->python,
                  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static void test_some_interpreter_found(void **state)
{
    (void)state;
    size_t found = 0;
    for (size_t i = 0; i < NTARGETS; i++)
        found += targets[i].python[0] != '\0';
    assert_true(found > 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    find_interpreters();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_some_interpreter_found),
        {"objects_3.10", test_objects, start_target, stop_target, &targets[0]},
        {"objects_3.11", test_objects, start_target, stop_target, &targets[1]},
        {"objects_3.12", test_objects, start_target, stop_target, &targets[2]},
        {"objects_3.13", test_objects, start_target, stop_target, &targets[3]},
        {"objects_debian-3.11", test_objects, start_target, stop_target, &targets[4]},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
