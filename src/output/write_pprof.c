/* pprof writer: a gzip-compressed profile.proto (github.com/google/pprof, proto/profile.proto),
 * what `go tool pprof` and Grafana Pyroscope read.
 *
 * Only thread profiles go in: the synthetic ones ("asyncio: awaiting", "event loop stalls")
 * re-present time already sampled from threads and would count it twice. One pprof Sample per
 * distinct (thread, stack): values = [number of samples, their weight in nanoseconds], labels
 * pid, thread_id, thread_name and, for a task-stitched stack, task_name (its innermost task).
 * One Location per frame of the frame table (id = index + 1, one Line), one Function per
 * distinct (name, file). The protobuf is encoded by hand: a few message types, all of them
 * varints, packed varints, strings and nested messages.
 * Frame kinds show in names as elsewhere: "<task NAME>", "<unreadable>", native symbols.
 */
#include "writers.h"

#include "grow.h"
#include "hash.h"
#include "hmap.h"
#include "json.h" /* utf8_valid_len */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- protobuf encoding ---------------------------------------------------------------------- */

typedef struct pbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} pbuf;

static void pb_bytes(pbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (n > SIZE_MAX - b->len || !grow_array((void **)&b->p, &b->cap, b->len + n, 1, 256,
                                             SIZE_MAX)) {
        b->oom = true;
        return;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    pb_bytes(b, tmp, n);
}

/* field with wire type 0 (varint); zero values are omitted, as proto3 does */
static void pb_uint(pbuf *b, uint32_t field, uint64_t v)
{
    if (!v)
        return;
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

/* field with wire type 2 (length-delimited) */
static void pb_len(pbuf *b, uint32_t field, const void *data, size_t n)
{
    pb_varint(b, ((uint64_t)field << 3) | 2);
    pb_varint(b, n);
    pb_bytes(b, data, n);
}

static void pb_sub(pbuf *b, uint32_t field, const pbuf *sub)
{
    if (sub->oom)
        b->oom = true;
    else
        pb_len(b, field, sub->p, sub->len);
}

/* ---- the string table ---------------------------------------------------------------------- */

typedef struct stab {
    char **s; /* copies: some strings are built in a caller's buffer */
    size_t n, cap;
    hmap map;
    bool oom;
} stab;

typedef struct stab_query {
    const stab *t;
    const char *s;
} stab_query;

static bool stab_is(const void *ctx, uint32_t idx)
{
    const stab_query *q = ctx;
    return strcmp(q->t->s[idx], q->s) == 0;
}

/* A copy of s that is valid UTF-8 (protobuf strings must be): each invalid subpart becomes
 * U+FFFD, as in every other output. NULL when out of memory. */
static char *utf8_copy(const char *s)
{
    size_t len = strlen(s), o = 0;
    char *out = malloc(3 * len + 1); /* one byte can become three */
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t skip = 1, ok = (unsigned char)s[i] < 0x80 ? 1
                            : utf8_valid_len((const unsigned char *)s + i, len - i, &skip);
        if (ok) {
            memcpy(out + o, s + i, ok);
            o += ok;
            i += ok;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += skip;
        }
    }
    out[o] = 0;
    return out;
}

/* The index of s in the table, added on first use; 0 ("", always first) when out of memory. */
static int64_t stab_id(stab *t, const char *s)
{
    if (!s)
        s = "";
    uint32_t h = (uint32_t)hash_bytes(s, strlen(s));
    stab_query q = {t, s};
    uint32_t found = hmap_find(&t->map, h, stab_is, &q);
    if (found != HMAP_NONE)
        return found;
    if (!grow_array((void **)&t->s, &t->cap, t->n + 1, sizeof(*t->s), 256, SIZE_MAX)) {
        t->oom = true;
        return 0;
    }
    char *copy = utf8_copy(s);
    if (!copy || hmap_insert(&t->map, h, (uint32_t)t->n) < 0) {
        free(copy);
        t->oom = true;
        return 0;
    }
    t->s[t->n] = copy;
    return (int64_t)t->n++;
}

/* ---- functions: one per distinct (name, file) ---------------------------------------------- */

typedef struct ftab {
    const aprof_frame **f; /* the first frame seen of each function */
    size_t n, cap;
    hmap map;
    bool oom;
} ftab;

typedef struct ftab_query {
    const ftab *t;
    const aprof_frame *f;
} ftab_query;

static bool ftab_is(const void *ctx, uint32_t idx)
{
    const ftab_query *q = ctx;
    const aprof_frame *x = q->t->f[idx];
    return x->name == q->f->name && x->file == q->f->file; /* interned strings */
}

/* function id (index + 1); 0 when out of memory */
static uint64_t ftab_id(ftab *t, const aprof_frame *f)
{
    uint32_t h = (uint32_t)hash_combine(hash64((uint64_t)(uintptr_t)f->name),
                                        (uint64_t)(uintptr_t)f->file);
    ftab_query q = {t, f};
    uint32_t found = hmap_find(&t->map, h, ftab_is, &q);
    if (found != HMAP_NONE)
        return (uint64_t)found + 1;
    if (!grow_array((void **)&t->f, &t->cap, t->n + 1, sizeof(*t->f), 256, SIZE_MAX)) {
        t->oom = true;
        return 0;
    }
    if (hmap_insert(&t->map, h, (uint32_t)t->n) < 0) {
        t->oom = true;
        return 0;
    }
    t->f[t->n++] = f;
    return t->n;
}

/* ---- the profile message ------------------------------------------------------------------- */

static void value_type(pbuf *b, uint32_t field, stab *st, const char *type, const char *unit)
{
    pbuf vt = {0};
    pb_uint(&vt, 1, (uint64_t)stab_id(st, type));
    pb_uint(&vt, 2, (uint64_t)stab_id(st, unit));
    pb_sub(b, field, &vt);
    free(vt.p);
}

static void label(pbuf *b, stab *st, const char *key, const char *str, int64_t num)
{
    pbuf l = {0};
    pb_uint(&l, 1, (uint64_t)stab_id(st, key));
    if (str)
        pb_uint(&l, 2, (uint64_t)stab_id(st, str));
    else
        pb_uint(&l, 3, (uint64_t)num);
    pb_sub(b, 3, &l);
    free(l.p);
}

/* "<task NAME>" -> NAME, kept in buf */
static const char *task_name(const char *frame_name, char *buf, size_t size)
{
    size_t n = strlen(frame_name);
    if (n > 7 && strncmp(frame_name, "<task ", 6) == 0 && frame_name[n - 1] == '>') {
        snprintf(buf, size, "%.*s", (int)(n - 7), frame_name + 6);
        return buf;
    }
    return frame_name;
}

/* Samples of one thread profile, grouped by leaf. */
static int add_samples(pbuf *prof, const agg *a, const agg_profile *p, const pprof_meta *m,
                       stab *st, uint32_t *stack, uint32_t max_depth)
{
    const char *tname = agg_profile_thread_name(p);
    pbuf s = {0}, packed = {0};
    int rc = 0;
    size_t nnodes = agg_node_count(a);
    uint64_t *count = malloc((nnodes + 1) * sizeof(uint64_t));
    uint64_t *wsum = malloc((nnodes + 1) * sizeof(uint64_t));
    if (!count || !wsum || agg_profile_leaf_totals(a, p, count, wsum) < 0) {
        free(count);
        free(wsum);
        return -1;
    }
    for (size_t k = 0; k <= nnodes && rc == 0; k++) { /* the empty stack (k == nnodes) last */
        if (count[k] == 0)
            continue;
        uint32_t node = k == nnodes ? AGG_ROOT : (uint32_t)k;
        uint32_t depth = node == AGG_ROOT ? 0 : agg_stack_frames(a, node, stack, max_depth);
        s.len = 0;
        packed.len = 0;
        const char *task = NULL;
        for (uint32_t d = depth; d-- > 0;) { /* leaf first */
            pb_varint(&packed, (uint64_t)stack[d] + 1);
            const aprof_frame *f = agg_frame_at(a, stack[d]);
            if (!task && f->kind == FRAME_TASK)
                task = f->name;
        }
        if (packed.len)
            pb_sub(&s, 1, &packed);
        packed.len = 0;
        pb_varint(&packed, count[k]);
        pb_varint(&packed, wsum[k]);
        pb_sub(&s, 2, &packed);
        label(&s, st, "pid", NULL, p->pid ? p->pid : m->pid); /* several with --subprocesses */
        label(&s, st, "thread_id", NULL, p->tid);
        if (tname && tname[0])
            label(&s, st, "thread_name", tname, 0);
        if (task) {
            char buf[512];
            label(&s, st, "task_name", task_name(task, buf, sizeof(buf)), 0);
        }
        pb_sub(prof, 2, &s);
        if (s.oom || packed.oom || prof->oom || st->oom)
            rc = -1;
    }
    free(s.p);
    free(packed.p);
    free(count);
    free(wsum);
    return rc;
}

static int encode(const agg *a, const pprof_meta *m, pbuf *prof)
{
    stab st = {0};
    ftab ft = {0};
    int rc = -1;
    uint32_t max_depth = agg_max_depth(a);
    uint32_t *stack = malloc((max_depth ? max_depth : 1) * sizeof(uint32_t));
    if (!stack || hmap_init(&st.map, 1024) < 0 || hmap_init(&ft.map, 1024) < 0)
        goto out;
    stab_id(&st, ""); /* string_table[0] must be "" */

    const char *value_kind = m->cpu ? "cpu" : "wall";
    value_type(prof, 1, &st, "samples", "count");
    value_type(prof, 1, &st, value_kind, "nanoseconds");

    size_t nprof = agg_profile_count(a);
    for (size_t i = 0; i < nprof; i++) {
        const agg_profile *p = agg_profile_at(a, i);
        if (p->tid != 0 && p->npoints > 0 && add_samples(prof, a, p, m, &st, stack, max_depth))
            goto out;
    }

    /* One mapping standing for the whole program, saying that functions, files and lines are
     * known (so pprof does not try to symbolize addresses). */
    pbuf map = {0};
    pb_uint(&map, 1, 1);
    pb_uint(&map, 5, (uint64_t)stab_id(&st, m->program ? m->program : "python"));
    for (uint32_t field = 7; field <= 9; field++)
        pb_uint(&map, field, 1);
    pb_sub(prof, 3, &map);
    free(map.p);

    /* Locations: one per frame, with its one Line. */
    size_t nframes = agg_frame_count(a);
    pbuf loc = {0}, line = {0};
    for (uint32_t i = 0; i < nframes; i++) {
        const aprof_frame *f = agg_frame_at(a, i);
        loc.len = line.len = 0;
        pb_uint(&loc, 1, (uint64_t)i + 1);
        pb_uint(&loc, 2, 1);
        pb_uint(&line, 1, ftab_id(&ft, f));
        pb_uint(&line, 2, (uint64_t)(f->line > 0 ? f->line : 0));
        pb_sub(&loc, 4, &line);
        pb_sub(prof, 4, &loc);
    }
    bool loc_oom = loc.oom || line.oom;
    free(loc.p);
    free(line.p);
    if (loc_oom || ft.oom)
        goto out;

    /* Functions. */
    pbuf fn = {0};
    for (size_t i = 0; i < ft.n; i++) {
        const aprof_frame *f = ft.f[i];
        fn.len = 0;
        pb_uint(&fn, 1, (uint64_t)i + 1);
        pb_uint(&fn, 2, (uint64_t)stab_id(&st, f->name));
        /* no system_name: a name equal to it would be "demangled" by pprof ("<module>" and
         * "<task x>" read as C++ template arguments and removed) */
        pb_uint(&fn, 4, (uint64_t)stab_id(&st, f->file));
        pb_uint(&fn, 5, (uint64_t)(f->first_line > 0 ? f->first_line : 0));
        pb_sub(prof, 5, &fn);
    }
    bool fn_oom = fn.oom;
    free(fn.p);
    if (fn_oom)
        goto out;

    pb_uint(prof, 9, m->time_nanos);
    pb_uint(prof, 10, m->duration_nanos);
    value_type(prof, 11, &st, value_kind, "nanoseconds");
    pb_uint(prof, 12, m->period_nanos);
    pb_uint(prof, 14, (uint64_t)stab_id(&st, value_kind));

    /* The string table goes last: every index is known by now. */
    for (size_t i = 0; i < st.n; i++)
        pb_len(prof, 6, st.s[i], strlen(st.s[i]));
    rc = prof->oom || st.oom ? -1 : 0;
out:
    free(stack);
    for (size_t i = 0; i < st.n; i++)
        free(st.s[i]);
    free(st.s);
    free(ft.f);
    hmap_free(&st.map);
    hmap_free(&ft.map);
    return rc;
}

int write_pprof(const agg *a, const pprof_meta *m, FILE *out)
{
    if (!a || !m || !out) {
        errno = EINVAL;
        return -1;
    }
    pbuf prof = {0};
    if (encode(a, m, &prof) != 0) {
        free(prof.p);
        errno = ENOMEM;
        return -1;
    }
    z_stream z;
    memset(&z, 0, sizeof(z));
    /* windowBits 15 + 16: a gzip wrapper around the deflate stream */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(prof.p);
        errno = ENOMEM;
        return -1;
    }
    z.next_in = prof.p;
    z.avail_in = (uInt)prof.len;
    int rc = 0, zr;
    errno = 0;
    do {
        uint8_t chunk[65536];
        z.next_out = chunk;
        z.avail_out = sizeof(chunk);
        zr = deflate(&z, Z_FINISH);
        if (zr == Z_STREAM_ERROR) {
            errno = EIO;
            rc = -1;
            break;
        }
        size_t have = sizeof(chunk) - z.avail_out;
        if (have && fwrite(chunk, 1, have, out) != have) {
            if (!errno)
                errno = EIO;
            rc = -1;
            break;
        }
    } while (zr != Z_STREAM_END);
    deflateEnd(&z);
    free(prof.p);
    if (rc == 0 && (fflush(out) != 0 || ferror(out))) {
        if (!errno)
            errno = EIO;
        rc = -1;
    }
    return rc;
}
