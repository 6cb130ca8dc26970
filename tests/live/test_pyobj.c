/* src/cpython/pyobj.c against live interpreters: for every CPython 3.10-3.13 under pyenv (the
 * newest of each minor) and Debian's python3.11 (tests/common/interpreters.c finds them), start
 * fixtures/objects_fixture.py, which prints the id() of many objects and the values they hold
 * (computed by the interpreter itself) as one JSON line, read each object through pyobj and
 * compare (and a set whose table the test moves while it is read must be reported). Then feed
 * every function null, unaligned, unmapped, freed and garbage addresses: errors, never a crash
 * or a hang. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "interpreters.h"
#include "layouts.h"
#include "memory.h"
#include "pyobj.h"
#include "strtab.h"

/* ---- the fixture's report (JSON, read with libjansson) ------------------------------------ */

/* Every number in the report is an int64 (an id, a pid, a version part): ints are also sent as
 * their decimal text ("dec"), so that ints beyond int64 are described too. */

/* The member `key` of object o; the test fails when there is none. */
static json_t *jget(json_t *o, const char *key)
{
    assert_true(json_is_object(o));
    json_t *v = json_object_get(o, key);
    if (!v)
        fail_msg("fixture report has no key '%s'", key);
    return v;
}

static json_t *jobj(json_t *o, const char *key)
{
    json_t *v = jget(o, key);
    assert_true(json_is_object(v));
    return v;
}

static json_t *jarr(json_t *o, const char *key)
{
    json_t *v = jget(o, key);
    assert_true(json_is_array(v));
    return v;
}

static uint64_t jint(const json_t *v)
{
    assert_true(json_is_integer(v));
    return (uint64_t)json_integer_value(v);
}

static uint64_t jid(json_t *o, const char *key)
{
    return jint(jget(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = jget(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* ---- interpreters and the fixture process --------------------------------------------------- */

typedef struct target {
    const char *label;
    const char *python; /* NULL: not on this machine */
    pid_t pid;
    int in_fd, out_fd;
    char *line;
    json_t *report;
    mem m;
    pyobj_ctx c;
} target;

static target targets[] = {
    {.label = "3.10"}, {.label = "3.11"}, {.label = "3.12"}, {.label = "3.13"},
    {.label = "debian-3.11"},
};
#define NTARGETS (sizeof targets / sizeof targets[0])

/* The newest pyenv interpreter of each minor, and Debian's (labelled alike by the finder). */
static void find_interpreters(void)
{
    static test_interp found[TEST_MAX_INTERPRETERS];
    size_t n = test_find_interpreters(found, TEST_MAX_INTERPRETERS);
    for (int minor = 10; minor <= 13; minor++) {
        const test_interp *t = test_interp_pyenv_minor(found, n, minor);
        targets[minor - 10].python = t ? t->python : NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!found[i].pyenv && strcmp(found[i].label, targets[4].label) == 0)
            targets[4].python = found[i].python;
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
    t->report = NULL;
    if (!t->python)
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
    json_error_t err;
    snprintf(err.text, sizeof err.text, "no line");
    if (t->line) /* the report is its first line */
        t->report = json_loadb(t->line, strcspn(t->line, "\n"), 0, &err);
    if (!json_is_object(t->report)) {
        fprintf(stderr, "%s: no report from %s %s: %s\n", t->label, t->python, fixture,
                t->report ? "not an object" : err.text);
        json_decref(t->report);
        t->report = NULL;
        return -1;
    }
    if (mem_init(&t->m, target_src_live(pid)) != 0)
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
    json_decref(t->report);
    t->report = NULL;
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
static void same_ids(const char *what, collect *got, json_t *want)
{
    assert_true(json_is_array(want));
    size_t nwant = json_array_size(want);
    if (got->n != nwant)
        fail_msg("%s: read %zu items, want %zu", what, got->n, nwant);
    uint64_t *w = calloc(nwant + 1, sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < nwant; i++)
        w[i] = jint(json_array_get(want, i));
    if (got->n) {
        qsort(w, nwant, sizeof *w, cmp_u64);
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

static void same_pairs(const char *what, collect *got, json_t *want)
{
    assert_true(json_is_array(want));
    size_t n = got->n / 2;
    if (n != json_array_size(want))
        fail_msg("%s: read %zu pairs, want %zu", what, n, json_array_size(want));
    pair *g = calloc(n + 1, sizeof *g), *w = calloc(n + 1, sizeof *w);
    assert_non_null(g);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++) {
        g[i] = (pair){got->a[2 * i], got->a[2 * i + 1]};
        json_t *kv = json_array_get(want, i);
        w[i] = (pair){jint(json_array_get(kv, 0)), jint(json_array_get(kv, 1))};
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

static void check_strings(pyobj_ctx *c, json_t *r)
{
    json_t *strs = jobj(r, "strings"), *s;
    strtab *tab = strtab_new();
    assert_non_null(tab);
    static char buf[1 << 16];
    const char *what;
    json_object_foreach(strs, what, s) {
        uint64_t id = jid(s, "id");
        json_t *utf8 = jget(s, "utf8");
        assert_true(json_is_string(utf8));
        const char *want = json_string_value(utf8);
        size_t wlen = json_string_length(utf8);
        size_t len = 0;
        EXPECT_RC(pyobj_str_utf8(c, id, buf, sizeof buf, &len), PYOBJ_OK);
        if (len != wlen || memcmp(buf, want, wlen) != 0)
            fail_msg("%s: read '%.80s' (%zu bytes), want '%.80s' (%zu)", what, buf, len, want,
                     wlen);

        /* Truncation keeps a prefix that ends on a character boundary. */
        char small[8];
        int rc = pyobj_str_utf8(c, id, small, sizeof small, &len);
        EXPECT_RC(rc, wlen < sizeof small ? PYOBJ_OK : PYOBJ_TRUNCATED);
        is_utf8_prefix(what, small, len, want);

        const char *a = NULL, *b = NULL;
        EXPECT_RC(pyobj_str_intern(c, id, tab, &a), wlen < 4096 ? PYOBJ_OK : PYOBJ_TRUNCATED);
        EXPECT_RC(pyobj_str_intern(c, id, tab, &b), wlen < 4096 ? PYOBJ_OK : PYOBJ_TRUNCATED);
        assert_ptr_equal(a, b);
        if (wlen < 4096)
            assert_string_equal(a, want);

        EXPECT_RC(pyobj_str_equals(c, id, want, wlen), 1);
        EXPECT_RC(pyobj_str_equals(c, id, "zz", 2), 0);
    }
    strtab_free(tab);
}

static void check_scalars(pyobj_ctx *c, json_t *r)
{
    json_t *ints = jobj(r, "ints"), *one;
    const char *name;
    json_object_foreach(ints, name, one) {
        const char *what = name;
        uint64_t id = jid(one, "id");
        const char *dec = jstr(one, "dec");
        errno = 0;
        long long want = strtoll(dec, NULL, 10);
        int64_t got = 0;
        if (errno == ERANGE) {
            EXPECT_RC(pyobj_int_value(c, id, &got), PYOBJ_E_RANGE);
        } else {
            EXPECT_RC(pyobj_int_value(c, id, &got), PYOBJ_OK);
            assert_int_equal(got, want);
        }
    }
    json_t *bytes = jobj(r, "bytes");
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

static void check_seqs(pyobj_ctx *c, json_t *r)
{
    json_t *seqs = jarr(r, "seqs"), *seq;
    const char *what = "sequence";
    size_t i;
    json_array_foreach(seqs, i, seq) {
        uint64_t id = jid(seq, "id");
        json_t *items = jarr(seq, "items");
        uint64_t n = 0;
        EXPECT_RC(pyobj_seq_size(c, id, &n), PYOBJ_OK);
        assert_int_equal(n, json_array_size(items));
        uint64_t got[256];
        size_t k = 0;
        EXPECT_RC(pyobj_seq_items(c, id, got, 256, &k), PYOBJ_OK);
        assert_int_equal(k, json_array_size(items));
        for (size_t j = 0; j < k; j++) {
            assert_int_equal(got[j], jint(json_array_get(items, j)));
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

static void check_dicts(pyobj_ctx *c, json_t *r)
{
    json_t *dicts = jobj(r, "dicts"), *d;
    const char *name;
    json_object_foreach(dicts, name, d) {
        const char *what = name;
        uint64_t id = jid(d, "id");
        collect got = {0};
        EXPECT_RC(pyobj_dict_iter(c, id, collect_pair, &got), PYOBJ_OK);
        same_pairs(what, &got, jget(d, "items"));
        free(got.a);
        json_t *keys = jobj(d, "str_keys"), *want;
        const char *key;
        json_object_foreach(keys, key, want) {
            uint64_t v = 0;
            EXPECT_RC(pyobj_dict_get_str(c, id, key, &v), PYOBJ_OK);
            assert_int_equal(v, jint(want));
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

static void check_instances(pyobj_ctx *c, json_t *r)
{
    json_t *insts = jobj(r, "instances"), *inst;
    const char *name;
    json_object_foreach(insts, name, inst) {
        const char *what = name;
        uint64_t id = jid(inst, "id");
        json_t *attrs = jobj(inst, "attrs"), *want;
        const char *attr;
        json_object_foreach(attrs, attr, want) {
            uint64_t v = 0;
            EXPECT_RC(pyobj_getattr(c, id, attr, &v), PYOBJ_OK);
            if (v != jint(want))
                fail_msg("%s.%s: wrong object", what, attr);
        }
        json_t *absent = jarr(inst, "absent"), *a;
        size_t j;
        json_array_foreach(absent, j, a) {
            uint64_t v;
            assert_true(json_is_string(a));
            EXPECT_RC(pyobj_getattr(c, id, json_string_value(a), &v), PYOBJ_E_NOTFOUND);
        }
    }
}

/* The target's set as a resize would leave it while it is read: on the first item, its table
 * pointer is moved (in the target, written with process_vm_writev; put back by the caller). */
typedef struct moving_set {
    pid_t pid;
    uint64_t field, table; /* where the set's table pointer lives, and its value */
    bool moved;
} moving_set;

static bool move_table(void *ud, uint64_t item)
{
    (void)item;
    moving_set *ms = ud;
    if (!ms->moved) {
        uint64_t other = ms->table + 64;
        struct iovec local = {&other, 8}, remote = {(void *)(uintptr_t)ms->field, 8};
        assert_int_equal(process_vm_writev(ms->pid, &local, 1, &remote, 1, 0), 8);
        ms->moved = true;
    }
    return true;
}

static void check_sets(pyobj_ctx *c, json_t *r, pid_t pid)
{
    json_t *sets = jobj(r, "sets"), *set;
    const char *name;
    json_object_foreach(sets, name, set) {
        const char *what = name;
        collect got = {0};
        EXPECT_RC(pyobj_set_iter(c, jid(set, "id"), collect_item, &got), PYOBJ_OK);
        same_ids(what, &got, jget(set, "items"));
        free(got.a);
    }
    /* A set whose table is replaced while it is read (it grew: the table read is freed) is
     * reported, not taken as complete. The fixture is idle, waiting on its stdin. */
    json_object_foreach(sets, name, set) {
        if (json_array_size(jget(set, "items")) == 0)
            continue;
        const char *what = name;
        uint64_t id = jid(set, "id");
        moving_set ms = {pid, id + (uint64_t)c->L->set.table, 0, false};
        assert_int_equal(mem_read_u64(c->m, ms.field, &ms.table), 0);
        int rc = pyobj_set_iter(c, id, move_table, &ms);
        struct iovec local = {&ms.table, 8}, remote = {(void *)(uintptr_t)ms.field, 8};
        assert_int_equal(process_vm_writev(pid, &local, 1, &remote, 1, 0), 8);
        assert_true(ms.moved);
        EXPECT_RC(rc, PYOBJ_E_CORRUPT);
        return;
    }
    fail_msg("no set with items in the fixture's report");
}

static void check_funcs(pyobj_ctx *c, json_t *r)
{
    json_t *f = jobj(r, "funcs");
    const char *what = "functions";
    uint64_t v = 0, w = 0;

    json_t *cl = jobj(f, "closure");
    EXPECT_RC(pyobj_func_closure(c, jid(cl, "id"), &v), PYOBJ_OK);
    assert_int_equal(v, jid(cl, "closure_tuple"));
    EXPECT_RC(pyobj_seq_item(c, v, 0, &w), PYOBJ_OK);
    assert_int_equal(w, jid(cl, "cell"));
    EXPECT_RC(pyobj_cell_get(c, w, &v), PYOBJ_OK);
    assert_int_equal(v, jid(cl, "cell_contents"));

    json_t *plain = jobj(f, "plain");
    EXPECT_RC(pyobj_func_closure(c, jid(plain, "id"), &v), PYOBJ_OK);
    assert_int_equal(v, 0);

    json_t *m = jobj(f, "method");
    EXPECT_RC(pyobj_method_parts(c, jid(m, "id"), &v, &w), PYOBJ_OK);
    assert_int_equal(v, jid(m, "func"));
    assert_int_equal(w, jid(m, "self"));

    /* Wrong kinds. */
    EXPECT_RC(pyobj_method_parts(c, jid(cl, "id"), &v, &w), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_cell_get(c, jid(cl, "id"), &v), PYOBJ_E_TYPE);
}

static void check_types(pyobj_ctx *c, json_t *r)
{
    json_t *types = jarr(r, "types"), *t;
    size_t i;
    json_array_foreach(types, i, t) {
        const char *what = jstr(t, "tp_name");
        char buf[256];
        EXPECT_RC(pyobj_type_name(c, jid(t, "id"), buf, sizeof buf), PYOBJ_OK);
        assert_string_equal(buf, what);
        json_t *yes = jarr(t, "is"), *no = jarr(t, "not"), *name;
        size_t j;
        json_array_foreach(yes, j, name) {
            assert_true(json_is_string(name));
            EXPECT_RC(pyobj_is_instance(c, jid(t, "id"), json_string_value(name)), 1);
        }
        json_array_foreach(no, j, name) {
            assert_true(json_is_string(name));
            EXPECT_RC(pyobj_is_instance(c, jid(t, "id"), json_string_value(name)), 0);
        }
    }
}

static void check_modules(pyobj_ctx *c, json_t *r)
{
    json_t *mods = jobj(r, "modules");
    uint64_t sysmod = jid(mods, "sys_modules"), m = 0, v = 0;
    json_t *want = jobj(mods, "modules"), *id;
    const char *what = "modules", *name;
    json_object_foreach(want, name, id) {
        EXPECT_RC(pyobj_module_find(c, sysmod, name, &m), PYOBJ_OK);
        assert_int_equal(m, jint(id));
    }
    EXPECT_RC(pyobj_module_find(c, sysmod, "no_such_module", &m), PYOBJ_E_NOTFOUND);
    json_t *g = jobj(mods, "main_global");
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
static void check_storage_forms(pyobj_ctx *c, json_t *r)
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
static void check_type_confusion(pyobj_ctx *c, json_t *r)
{
    const char *what = "type confusion";
    uint64_t str = jid(jget(jget(r, "strings"), "ascii"), "id");
    uint64_t dict = jid(jget(jget(r, "dicts"), "big"), "id");
    uint64_t lst = jid(json_array_get(jarr(r, "seqs"), 1), "id");
    uint64_t one = jid(jget(jget(r, "ints"), "one"), "id");
    uint64_t set = jid(jget(jget(r, "sets"), "set"), "id");
    char buf[64];
    uint64_t v;
    int64_t i;
    collect got = {0};
    EXPECT_RC(pyobj_str_utf8(c, dict, buf, sizeof buf, NULL), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_dict_iter(c, str, collect_pair, &got), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_dict_get_str(c, lst, "x", &v), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_int_value(c, str, &i), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_seq_size(c, dict, &v), PYOBJ_E_TYPE);
    EXPECT_RC(pyobj_set_iter(c, lst, collect_item, &got), PYOBJ_E_TYPE);
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
    size_t n = 0, k;
    const char *s;
    uint64_t items[16];
    int ok = 0;
    ok += pyobj_type(c, a, &v) >= 0;
    ok += pyobj_type_name(c, a, buf, sizeof buf) >= 0;
    ok += pyobj_is_instance(c, a, "object") >= 0;
    ok += pyobj_str_utf8(c, a, buf, sizeof buf, NULL) >= 0;
    ok += pyobj_str_intern(c, a, tab, &s) >= 0;
    ok += pyobj_str_equals(c, a, "x", 1) >= 0;
    ok += pyobj_bytes(c, a, buf, sizeof buf, &k) >= 0;
    ok += pyobj_int_value(c, a, &i) >= 0;
    ok += pyobj_seq_size(c, a, &v) >= 0;
    ok += pyobj_seq_item(c, a, 1, &v) >= 0;
    ok += pyobj_seq_items(c, a, items, 16, &k) >= 0;
    ok += pyobj_dict_iter(c, a, stop_after_many_pairs, &n) >= 0;
    ok += pyobj_dict_get_str(c, a, "x", &v) >= 0;
    ok += pyobj_set_iter(c, a, stop_after_many, &n) >= 0;
    ok += pyobj_weakref_get(c, a, &v) >= 0;
    ok += pyobj_getattr(c, a, "x", &v) >= 0;
    ok += pyobj_module_find(c, a, "sys", &v) >= 0;
    ok += pyobj_module_global(c, a, "x", &v) >= 0;
    ok += pyobj_func_closure(c, a, &v) >= 0;
    ok += pyobj_method_parts(c, a, &v, &w) >= 0;
    ok += pyobj_cell_get(c, a, &v) >= 0;
    strtab_free(tab);
    return ok;
}

static void check_garbage(target *t)
{
    pyobj_ctx *c = &t->c;
    static maps mp;
    read_maps(t->pid, &mp);
    uint64_t some_obj = jid(jget(jget(t->report, "strings"), "ascii"), "id");

    /* Null, tiny, non-canonical, unaligned: every reader fails. */
    const uint64_t never[] = {0, 8, 0xfff, 0xdead000000000000ull, UINT64_MAX,
                              some_obj + 1, some_obj + 3, some_obj + 4};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (all_readers(c, never[i]) != 0)
            fail_msg("address %#llx: a reader succeeded", (unsigned long long)never[i]);

    /* Unmapped addresses, including the freed 2 MiB object once its mapping is gone. */
    uint64_t freed = jid(t->report, "freed");
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
    json_t *r = t->report;
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
    if (!t->python) {
        print_message("%s: interpreter not found, skipped\n", t->label);
        skip();
    }
    assert_true(t->pid > 0);
    json_t *ver = jarr(t->report, "version");
    assert_int_equal(json_array_size(ver), 2);
    const py_layout *L = layout_for_version((unsigned)jint(json_array_get(ver, 0)),
                                            (unsigned)jint(json_array_get(ver, 1)));
    assert_non_null(L);
    t->c = (pyobj_ctx){&t->m, L};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    check_types(&t->c, t->report);
    check_strings(&t->c, t->report);
    check_scalars(&t->c, t->report);
    check_seqs(&t->c, t->report);
    check_dicts(&t->c, t->report);
    check_storage_forms(&t->c, t->report);
    check_instances(&t->c, t->report);
    check_sets(&t->c, t->report, t->pid);
    check_funcs(&t->c, t->report);
    check_modules(&t->c, t->report);
    check_type_confusion(&t->c, t->report);
    /* The same again with an empty page cache, as after mem_begin_sample(). */
    mem_begin_sample(&t->m);
    check_instances(&t->c, t->report);
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
        found += targets[i].python != NULL;
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
