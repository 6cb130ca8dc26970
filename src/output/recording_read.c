#include "recording_read.h"

#include "grow.h"
#include "hash.h"
#include "hmap.h"
#include "json_pull.h"

#include <errno.h>
#include <stdint.h>
#include <zlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (8ull << 30)

typedef struct loader {
    recording *r;
    json_pull j;
    const char *path;
    aprof_error *err;
    /* speedscope: frame index -> function index */
    uint32_t *frame_fn;
    size_t nframes, cap_frames;
    hmap fn_index;
    size_t cap_functions;
    /* one profile's samples: function indices, flat, and where each sample starts */
    uint32_t *flat;
    size_t nflat, cap_flat;
    size_t *starts;
    size_t nstarts, cap_starts;
    uint64_t *seen; /* per function: the last sample that counted it (recursion) */
    size_t nseen;
    uint64_t sample_serial;
    double lag_count;
} loader;

static aprof_status bad(loader *L, const char *what)
{
    if (L->j.err[0])
        return aprof_error_set(L->err, APROF_E_BAD_INPUT, "%s: not valid JSON (%s)", L->path,
                               L->j.err);
    return aprof_error_set(L->err, APROF_E_BAD_INPUT, "%s: %s", L->path, what);
}

static aprof_status oom(loader *L)
{
    return aprof_error_set(L->err, APROF_E_INTERNAL, "out of memory reading %s", L->path);
}

/* ---- speedscope -------------------------------------------------------------------------- */

typedef struct fn_key {
    const recording *r;
    const char *name, *file;
} fn_key;

static bool fn_eq(const void *ctx, uint32_t idx)
{
    const fn_key *k = ctx;
    const rec_function *f = &k->r->functions[idx];
    return strcmp(f->name, k->name) == 0 && strcmp(f->file, k->file) == 0;
}

static uint32_t fn_hash(const char *name, const char *file)
{
    return hash32(hash_combine(hash_bytes(name, strlen(name)), hash_bytes(file, strlen(file))));
}

/* The function index of (name, file), added when new; UINT32_MAX when out of memory. */
static uint32_t function_of(loader *L, const char *name, const char *file)
{
    recording *r = L->r;
    fn_key k = {r, name, file};
    uint32_t h = fn_hash(name, file);
    uint32_t idx = hmap_find(&L->fn_index, h, fn_eq, &k);
    if (idx != HMAP_NONE)
        return idx;
    if (!grow_array((void **)&r->functions, &L->cap_functions, r->nfunctions + 1,
                    sizeof(*r->functions), 64, SIZE_MAX))
        return UINT32_MAX;
    rec_function *f = &r->functions[r->nfunctions];
    *f = (rec_function){strdup(name), strdup(file), 0, 0};
    if (!f->name || !f->file || hmap_insert(&L->fn_index, h, (uint32_t)r->nfunctions) != 0) {
        free(f->name);
        free(f->file);
        return UINT32_MAX;
    }
    return (uint32_t)r->nfunctions++;
}

/* One frame object {"name", "file"?, "line"?, ...}; the current token was its JT_BEGIN_OBJECT. */
static aprof_status read_frame(loader *L)
{
    char *name = NULL, *file = NULL;
    jtok t;
    while ((t = json_next(&L->j)) == JT_KEY) {
        char **dst = strcmp(L->j.str, "name") == 0 ? &name : strcmp(L->j.str, "file") == 0 ? &file
                                                                                          : NULL;
        t = json_next(&L->j);
        if (dst && t == JT_STRING) {
            free(*dst);
            *dst = strdup(L->j.str);
            if (!*dst)
                break;
        } else if (!json_skip(&L->j, t)) {
            break;
        }
    }
    aprof_status st = APROF_OK;
    if (t != JT_END_OBJECT)
        st = t == JT_KEY ? oom(L) : bad(L, "a malformed frame");
    else if (!name)
        st = bad(L, "a frame without a name");
    uint32_t fn = st == APROF_OK ? function_of(L, name, file ? file : "") : 0;
    if (st == APROF_OK && fn == UINT32_MAX)
        st = oom(L);
    if (st == APROF_OK && !grow_array((void **)&L->frame_fn, &L->cap_frames, L->nframes + 1,
                                      sizeof(*L->frame_fn), 64, SIZE_MAX))
        st = oom(L);
    if (st == APROF_OK)
        L->frame_fn[L->nframes++] = fn;
    free(name);
    free(file);
    return st;
}

static aprof_status read_shared(loader *L)
{
    if (json_next(&L->j) != JT_BEGIN_OBJECT)
        return bad(L, "\"shared\" is not an object");
    jtok t;
    while ((t = json_next(&L->j)) == JT_KEY) {
        bool frames = strcmp(L->j.str, "frames") == 0;
        t = json_next(&L->j);
        if (!frames) {
            if (!json_skip(&L->j, t))
                return bad(L, "malformed \"shared\"");
            continue;
        }
        if (t != JT_BEGIN_ARRAY)
            return bad(L, "\"shared.frames\" is not an array");
        while ((t = json_next(&L->j)) == JT_BEGIN_OBJECT) {
            aprof_status st = read_frame(L);
            if (st != APROF_OK)
                return st;
        }
        if (t != JT_END_ARRAY)
            return bad(L, "a frame that is not an object");
    }
    return t == JT_END_OBJECT ? APROF_OK : bad(L, "malformed \"shared\"");
}

/* "samples": [[frame index, ...], ...], outermost first: stored as function indices. */
static aprof_status read_samples(loader *L)
{
    L->nflat = L->nstarts = 0;
    if (json_next(&L->j) != JT_BEGIN_ARRAY)
        return bad(L, "a profile's \"samples\" is not an array");
    jtok t;
    while ((t = json_next(&L->j)) == JT_BEGIN_ARRAY) {
        if (!grow_array((void **)&L->starts, &L->cap_starts, L->nstarts + 2, sizeof(*L->starts), 64,
                        SIZE_MAX))
            return oom(L);
        L->starts[L->nstarts++] = L->nflat;
        while ((t = json_next(&L->j)) == JT_NUMBER) {
            double v = L->j.num;
            if (!(v >= 0) || v >= (double)L->nframes || v != (double)(size_t)v)
                return bad(L, "a sample names a frame that is not in \"shared.frames\" (a "
                              "speedscope file written by aprof lists its frames first)");
            if (!grow_array((void **)&L->flat, &L->cap_flat, L->nflat + 1, sizeof(*L->flat), 64,
                            SIZE_MAX))
                return oom(L);
            L->flat[L->nflat++] = L->frame_fn[(size_t)v];
        }
        if (t != JT_END_ARRAY)
            return bad(L, "a sample that is not an array of frame indices");
    }
    if (t != JT_END_ARRAY)
        return bad(L, "malformed \"samples\"");
    if (!grow_array((void **)&L->starts, &L->cap_starts, L->nstarts + 1, sizeof(*L->starts), 64,
                    SIZE_MAX))
        return oom(L); /* no sample at all: not allocated yet */
    L->starts[L->nstarts] = L->nflat;
    return APROF_OK;
}

static double unit_seconds(const char *unit)
{
    static const struct { const char *name; double s; } units[] = {
        {"seconds", 1}, {"milliseconds", 1e-3}, {"microseconds", 1e-6}, {"nanoseconds", 1e-9},
        {"none", 1},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].name) == 0)
            return units[i].s;
    return 0;
}

/* "weights": one per sample, read after "samples": each sample's time goes to every function
 * on its stack once (total) and to its innermost (self). */
static aprof_status read_weights(loader *L, double scale, bool have_samples)
{
    recording *r = L->r;
    if (!have_samples)
        return bad(L, "a profile's \"weights\" come before its \"samples\"");
    if (json_next(&L->j) != JT_BEGIN_ARRAY)
        return bad(L, "a profile's \"weights\" is not an array");
    if (L->nseen < r->nfunctions || !L->seen) { /* zeroed once: serials only grow */
        free(L->seen);
        L->nseen = r->nfunctions;
        if (!(L->seen = calloc(L->nseen ? L->nseen : 1, sizeof(*L->seen))))
            return oom(L);
    }
    uint64_t *seen = L->seen;
    size_t k = 0;
    jtok t;
    while ((t = json_next(&L->j)) == JT_NUMBER) {
        if (k >= L->nstarts)
            return bad(L, "more weights than samples");
        double w = L->j.num * scale;
        if (!(w >= 0))
            return bad(L, "a negative weight");
        uint64_t serial = ++L->sample_serial;
        for (size_t i = L->starts[k]; i < L->starts[k + 1]; i++) {
            uint32_t fn = L->flat[i];
            if (seen[fn] != serial) {
                seen[fn] = serial;
                r->functions[fn].total_s += w;
            }
        }
        if (L->starts[k + 1] > L->starts[k])
            r->functions[L->flat[L->starts[k + 1] - 1]].self_s += w;
        recording_tree_add(r, L->flat + L->starts[k], L->starts[k + 1] - L->starts[k], w);
        r->total_s += w;
        r->nsamples++;
        k++;
    }
    if (t != JT_END_ARRAY)
        return bad(L, "malformed \"weights\"");
    if (k != L->nstarts)
        return bad(L, "fewer weights than samples");
    return APROF_OK;
}

static aprof_status read_profile(loader *L)
{
    double scale = 1;
    bool have_samples = false;
    jtok t;
    while ((t = json_next(&L->j)) == JT_KEY) {
        const char *key = L->j.str;
        if (strcmp(key, "type") == 0) {
            if (json_next(&L->j) != JT_STRING || strcmp(L->j.str, "sampled") != 0)
                return bad(L, "a profile that is not of type \"sampled\" (aprof writes only "
                              "those)");
        } else if (strcmp(key, "unit") == 0) {
            if (json_next(&L->j) != JT_STRING || !(scale = unit_seconds(L->j.str)))
                return bad(L, "a profile with an unknown unit");
        } else if (strcmp(key, "samples") == 0) {
            aprof_status st = read_samples(L);
            if (st != APROF_OK)
                return st;
            have_samples = true;
        } else if (strcmp(key, "weights") == 0) {
            aprof_status st = read_weights(L, scale, have_samples);
            if (st != APROF_OK)
                return st;
        } else if (!json_skip(&L->j, json_next(&L->j))) {
            return bad(L, "a malformed profile");
        }
    }
    return t == JT_END_OBJECT ? APROF_OK : bad(L, "a malformed profile");
}

static aprof_status read_profiles(loader *L)
{
    if (json_next(&L->j) != JT_BEGIN_ARRAY)
        return bad(L, "\"profiles\" is not an array");
    jtok t;
    while ((t = json_next(&L->j)) == JT_BEGIN_OBJECT) {
        aprof_status st = read_profile(L);
        if (st != APROF_OK)
            return st;
    }
    L->r->has_profile = true;
    return t == JT_END_ARRAY ? APROF_OK : bad(L, "a profile that is not an object");
}

/* ---- summary ----------------------------------------------------------------------------- */

/* Read the object just begun, calling on(key) for each member; on() reads or skips the value. */
typedef aprof_status (*member_fn)(loader *L, const char *key, void *ud);

static aprof_status each_member(loader *L, member_fn on, void *ud, const char *what)
{
    jtok t;
    while ((t = json_next(&L->j)) == JT_KEY) {
        char key[64];
        snprintf(key, sizeof key, "%s", L->j.str);
        aprof_status st = on(L, key, ud);
        if (st != APROF_OK)
            return st;
    }
    return t == JT_END_OBJECT ? APROF_OK : bad(L, what);
}

static aprof_status number_or_skip(loader *L, double *dst)
{
    jtok t = json_next(&L->j);
    if (t == JT_NUMBER) {
        *dst = L->j.num;
        return APROF_OK;
    }
    return json_skip(&L->j, t) ? APROF_OK : bad(L, "malformed summary");
}

static aprof_status skip_value(loader *L)
{
    return json_skip(&L->j, json_next(&L->j)) ? APROF_OK : bad(L, "malformed summary");
}

static aprof_status stall_member(loader *L, const char *key, void *ud)
{
    return strcmp(key, "duration_s") == 0 ? number_or_skip(L, ud) : skip_value(L);
}

static aprof_status read_stalls(loader *L)
{
    recording *r = L->r;
    if (json_next(&L->j) != JT_BEGIN_ARRAY)
        return bad(L, "\"stalls\" is not an array");
    jtok t;
    while ((t = json_next(&L->j)) == JT_BEGIN_OBJECT) {
        double d = 0;
        aprof_status st = each_member(L, stall_member, &d, "a malformed stall");
        if (st != APROF_OK)
            return st;
        r->stalls++;
        r->stall_total_s += d;
        if (d > r->stall_max_s)
            r->stall_max_s = d;
    }
    return t == JT_END_ARRAY ? APROF_OK : bad(L, "a stall that is not an object");
}

static aprof_status where_member(loader *L, const char *key, void *ud)
{
    rec_culprit *c = ud;
    char **dst = strcmp(key, "function") == 0 ? &c->function : strcmp(key, "file") == 0 ? &c->file
                                                                                     : NULL;
    jtok t = json_next(&L->j);
    if (dst && t == JT_STRING) {
        free(*dst);
        return (*dst = strdup(L->j.str)) ? APROF_OK : oom(L);
    }
    if (strcmp(key, "line") == 0 && t == JT_NUMBER) {
        /* (a double out of int64_t's range would not convert: undefined behaviour) */
        if (!(L->j.num >= INT32_MIN && L->j.num <= INT32_MAX))
            return bad(L, "a culprit line out of range");
        c->line = (int64_t)L->j.num;
        return APROF_OK;
    }
    return json_skip(&L->j, t) ? APROF_OK : bad(L, "a malformed culprit");
}

static aprof_status culprit_member(loader *L, const char *key, void *ud)
{
    rec_culprit *c = ud;
    if (strcmp(key, "culprit") == 0) {
        if (json_next(&L->j) != JT_BEGIN_OBJECT)
            return bad(L, "a culprit that is not an object");
        return each_member(L, where_member, c, "a malformed culprit");
    }
    if (strcmp(key, "count") == 0) {
        double n = 0;
        aprof_status st = number_or_skip(L, &n);
        c->count = n > 0 ? (uint64_t)n : 0;
        return st;
    }
    if (strcmp(key, "total_s") == 0)
        return number_or_skip(L, &c->total_s);
    return skip_value(L);
}

static aprof_status read_culprits(loader *L)
{
    recording *r = L->r;
    if (json_next(&L->j) != JT_BEGIN_ARRAY)
        return bad(L, "\"stall_culprits\" is not an array");
    /* what the array is known to hold: a file may have the member twice (grow_array zeroes
     * what lies past the capacity it is given) */
    size_t cap = r->nculprits;
    jtok t;
    while ((t = json_next(&L->j)) == JT_BEGIN_OBJECT) {
        if (!grow_array((void **)&r->culprits, &cap, r->nculprits + 1, sizeof(*r->culprits), 64,
                        SIZE_MAX))
            return oom(L);
        rec_culprit *c = &r->culprits[r->nculprits++];
        *c = (rec_culprit){0};
        aprof_status st = each_member(L, culprit_member, c, "a malformed culprit");
        if (st != APROF_OK)
            return st;
        if (!c->function || !c->file)
            return bad(L, "a stall culprit without function or file");
    }
    return t == JT_END_ARRAY ? APROF_OK : bad(L, "a culprit that is not an object");
}

typedef struct lag_read {
    double count, p50, p95, p99, max;
} lag_read;

static aprof_status lag_member(loader *L, const char *key, void *ud)
{
    lag_read *g = ud;
    double *dst = strcmp(key, "count") == 0   ? &g->count
                  : strcmp(key, "p50_s") == 0 ? &g->p50
                  : strcmp(key, "p95_s") == 0 ? &g->p95
                  : strcmp(key, "p99_s") == 0 ? &g->p99
                  : strcmp(key, "max_s") == 0 ? &g->max
                                              : NULL;
    return dst ? number_or_skip(L, dst) : skip_value(L);
}

static aprof_status loop_member(loader *L, const char *key, void *ud)
{
    if (strcmp(key, "loop_lag") != 0)
        return skip_value(L);
    jtok t = json_next(&L->j);
    if (t != JT_BEGIN_OBJECT)
        return json_skip(&L->j, t) ? APROF_OK : bad(L, "malformed \"loop_lag\"");
    return each_member(L, lag_member, ud, "malformed \"loop_lag\"");
}

static aprof_status read_loops(loader *L)
{
    recording *r = L->r;
    if (json_next(&L->j) != JT_BEGIN_ARRAY)
        return bad(L, "\"loops\" is not an array");
    jtok t;
    while ((t = json_next(&L->j)) == JT_BEGIN_OBJECT) {
        lag_read g = {0};
        aprof_status st = each_member(L, loop_member, &g, "a malformed loop");
        if (st != APROF_OK)
            return st;
        if (g.count > 0 && g.count > L->lag_count) {
            L->lag_count = g.count;
            r->has_lag = true;
            r->lag_p50_s = g.p50;
            r->lag_p95_s = g.p95;
            r->lag_p99_s = g.p99;
            r->lag_max_s = g.max;
        }
    }
    return t == JT_END_ARRAY ? APROF_OK : bad(L, "a loop that is not an object");
}

/* ---- pprof ------------------------------------------------------------------------------- */

/* Protocol buffers, as far as profile.proto needs: varints, length-delimited fields, fixed
 * 32/64-bit fields skipped. */
typedef struct pb {
    const uint8_t *p, *end;
} pb;

static bool pb_varint(pb *b, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && b->p < b->end; shift += 7) {
        uint8_t byte = *b->p++;
        *v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return true;
    }
    return false;
}

/* The next field: its number and wire type; a varint's value in *v, a length-delimited
 * field's bytes in *sub. false at the end or on malformed input (*bad says which). */
static bool pb_next(pb *b, uint32_t *field, uint32_t *wire, uint64_t *v, pb *sub, bool *bad)
{
    *bad = false;
    *sub = (pb){NULL, NULL}; /* empty unless the field is length-delimited */
    if (b->p >= b->end)
        return false;
    uint64_t key;
    if (!pb_varint(b, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX) {
        *bad = true;
        return false;
    }
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    switch (*wire) {
    case 0:
        if (pb_varint(b, v))
            return true;
        break;
    case 1:
    case 5: {
        size_t n = *wire == 1 ? 8 : 4;
        if ((size_t)(b->end - b->p) >= n) {
            b->p += n;
            *v = 0;
            return true;
        }
        break;
    }
    case 2: {
        uint64_t len;
        if (pb_varint(b, &len) && len <= (uint64_t)(b->end - b->p)) {
            *sub = (pb){b->p, b->p + len};
            b->p += len;
            return true;
        }
        break;
    }
    default:
        break;
    }
    *bad = true;
    return false;
}

typedef struct pp_id {
    uint64_t id;
    size_t first, n; /* functions (function ids) of a location, or name/file of a function */
    uint64_t a, b;
} pp_id;

static int by_id(const void *x, const void *y)
{
    uint64_t a = ((const pp_id *)x)->id, b = ((const pp_id *)y)->id;
    return (a > b) - (a < b);
}

static const pp_id *find_id(const pp_id *v, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo].id == id ? &v[lo] : NULL;
}

typedef struct pprof_tables {
    pb *strings;        /* string_table */
    size_t nstrings, cap_strings;
    pp_id *functions;   /* id, a = name index, b = file index */
    size_t nfunctions, cap_fn;
    pp_id *locations;   /* id, [first, first + n) in line_fns */
    size_t nlocations, cap_loc;
    uint64_t *line_fns; /* function ids of the locations' lines, innermost first */
    size_t nline_fns, cap_line_fns;
    int64_t weight_index;
} pprof_tables;

static void pprof_tables_free(pprof_tables *t)
{
    free(t->strings);
    free(t->functions);
    free(t->locations);
    free(t->line_fns);
}

static bool pb_string_is(const pprof_tables *t, uint64_t idx, const char *s)
{
    if (idx >= t->nstrings)
        return false;
    size_t n = strlen(s);
    return (size_t)(t->strings[idx].end - t->strings[idx].p) == n &&
           memcmp(t->strings[idx].p, s, n) == 0;
}

static char *pb_strdup(const pprof_tables *t, uint64_t idx)
{
    if (idx >= t->nstrings)
        return NULL;
    size_t n = (size_t)(t->strings[idx].end - t->strings[idx].p);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, t->strings[idx].p, n);
        s[n] = '\0';
    }
    return s;
}

/* First pass: strings, functions, locations, and which value is time. */
static aprof_status pprof_tables_read(loader *L, pb whole, pprof_tables *t)
{
    uint32_t field, wire;
    uint64_t v;
    pb sub;
    bool bad_wire;
    size_t nsample_types = 0;
    int64_t ns_index = -1;
    pb types[16];
    while (pb_next(&whole, &field, &wire, &v, &sub, &bad_wire)) {
        if (wire != 2)
            continue;
        if (field == 6) {
            if (!grow_array((void **)&t->strings, &t->cap_strings, t->nstrings + 1,
                            sizeof(*t->strings), 64, SIZE_MAX))
                return oom(L);
            t->strings[t->nstrings++] = sub;
        } else if (field == 1 && nsample_types < 16) {
            types[nsample_types++] = sub;
        } else if (field == 5) {
            pp_id f = {0};
            uint32_t ff, fw;
            uint64_t fv;
            pb fs;
            bool fbad;
            while (pb_next(&sub, &ff, &fw, &fv, &fs, &fbad))
                if (fw == 0 && ff == 1)
                    f.id = fv;
                else if (fw == 0 && ff == 2)
                    f.a = fv;
                else if (fw == 0 && ff == 4)
                    f.b = fv;
            if (fbad)
                return bad(L, "a malformed pprof function");
            if (!grow_array((void **)&t->functions, &t->cap_fn, t->nfunctions + 1, sizeof(pp_id),
                            64, SIZE_MAX))
                return oom(L);
            t->functions[t->nfunctions++] = f;
        } else if (field == 4) {
            pp_id loc = {.first = t->nline_fns};
            uint32_t lf, lw;
            uint64_t lv;
            pb ls;
            bool lbad;
            while (pb_next(&sub, &lf, &lw, &lv, &ls, &lbad)) {
                if (lw == 0 && lf == 1) {
                    loc.id = lv;
                } else if (lw == 2 && lf == 4) { /* Line {function_id = 1, line = 2} */
                    uint32_t nf, nw;
                    uint64_t nv, fn = 0;
                    pb ns;
                    bool nbad;
                    while (pb_next(&ls, &nf, &nw, &nv, &ns, &nbad))
                        if (nw == 0 && nf == 1)
                            fn = nv;
                    if (nbad)
                        return bad(L, "a malformed pprof line");
                    if (!grow_array((void **)&t->line_fns, &t->cap_line_fns, t->nline_fns + 1,
                                    sizeof(*t->line_fns), 64, SIZE_MAX))
                        return oom(L);
                    t->line_fns[t->nline_fns++] = fn;
                    loc.n++;
                }
            }
            if (lbad)
                return bad(L, "a malformed pprof location");
            if (!grow_array((void **)&t->locations, &t->cap_loc, t->nlocations + 1, sizeof(pp_id),
                            64, SIZE_MAX))
                return oom(L);
            t->locations[t->nlocations++] = loc;
        }
    }
    if (bad_wire)
        return bad(L, "not a pprof profile (malformed protocol buffer)");
    /* the time value: the one in nanoseconds (aprof writes samples/count, wall/nanoseconds) */
    for (size_t i = 0; i < nsample_types; i++) {
        uint32_t tf, tw;
        uint64_t tv, unit = 0;
        pb ts;
        bool tbad;
        while (pb_next(&types[i], &tf, &tw, &tv, &ts, &tbad))
            if (tw == 0 && tf == 2)
                unit = tv;
        if (pb_string_is(t, unit, "nanoseconds") && ns_index < 0)
            ns_index = (int64_t)i;
    }
    if (ns_index < 0)
        return bad(L, "a pprof profile without a value in nanoseconds (aprof writes one)");
    t->weight_index = ns_index;
    if (t->nfunctions > 1) /* none: the array may be NULL, which qsort must not get */
        qsort(t->functions, t->nfunctions, sizeof(pp_id), by_id);
    if (t->nlocations > 1)
        qsort(t->locations, t->nlocations, sizeof(pp_id), by_id);
    return APROF_OK;
}

/* Read a repeated integer field (packed or not) into a growing array. */
static bool pb_ints(pb *sub, uint32_t wire, uint64_t v, uint64_t **out, size_t *n, size_t *cap)
{
    if (wire == 0) {
        if (!grow_array((void **)out, cap, *n + 1, sizeof(**out), 64, SIZE_MAX))
            return false;
        (*out)[(*n)++] = v;
        return true;
    }
    if (wire != 2) /* ids and values are varints, one or packed; a fixed-size one is malformed */
        return false;
    while (sub->p < sub->end) {
        uint64_t x;
        if (!pb_varint(sub, &x) || !grow_array((void **)out, cap, *n + 1, sizeof(**out), 64,
                                               SIZE_MAX))
            return false;
        (*out)[(*n)++] = x;
    }
    return true;
}

static aprof_status read_pprof(loader *L, const uint8_t *data, size_t len)
{
    recording *r = L->r;
    pprof_tables t = {0};
    pb whole = {data, data + len};
    aprof_status st = pprof_tables_read(L, whole, &t);
    /* function id -> recording function index */
    uint32_t *fn_of = st == APROF_OK ? calloc(t.nfunctions + 1, sizeof(*fn_of)) : NULL;
    if (st == APROF_OK && !fn_of)
        st = oom(L);
    for (size_t i = 0; st == APROF_OK && i < t.nfunctions; i++) {
        char *name = pb_strdup(&t, t.functions[i].a), *file = pb_strdup(&t, t.functions[i].b);
        if (!name || !file)
            st = bad(L, "a pprof function whose name or file is not in the string table");
        uint32_t fn = st == APROF_OK ? function_of(L, name, file) : 0;
        if (st == APROF_OK && fn == UINT32_MAX)
            st = oom(L);
        fn_of[i] = fn;
        free(name);
        free(file);
    }
    uint64_t *locs = NULL, *vals = NULL;
    size_t cap_locs = 0, cap_vals = 0;
    if (st == APROF_OK && !(L->seen = calloc(r->nfunctions + 1, sizeof(*L->seen))))
        st = oom(L);
    uint32_t field, wire;
    uint64_t v;
    pb sub;
    bool bad_wire = false;
    while (st == APROF_OK && pb_next(&whole, &field, &wire, &v, &sub, &bad_wire)) {
        if (field != 2 || wire != 2)
            continue;
        size_t nlocs = 0, nvals = 0;
        uint32_t sf, sw;
        uint64_t sv;
        pb ss;
        bool sbad;
        while (st == APROF_OK && pb_next(&sub, &sf, &sw, &sv, &ss, &sbad))
            if ((sf == 1 && !pb_ints(&ss, sw, sv, &locs, &nlocs, &cap_locs)) ||
                (sf == 2 && !pb_ints(&ss, sw, sv, &vals, &nvals, &cap_vals)))
                st = bad(L, "a malformed pprof sample");
        if (st == APROF_OK && sbad)
            st = bad(L, "a malformed pprof sample");
        if (st != APROF_OK)
            break;
        if ((size_t)t.weight_index >= nvals)
            continue; /* no time */
        double w = (double)(int64_t)vals[t.weight_index] * 1e-9;
        if (!(w >= 0)) {
            st = bad(L, "a negative pprof sample value");
            break;
        }
        uint64_t serial = ++L->sample_serial;
        bool leaf = true;
        L->nflat = 0; /* the stack, innermost first, for the tree */
        for (size_t i = 0; i < nlocs && st == APROF_OK; i++) { /* innermost first */
            const pp_id *loc = find_id(t.locations, t.nlocations, locs[i]);
            if (!loc) {
                st = bad(L, "a pprof sample names a location that is not in the file");
                break;
            }
            for (size_t k = loc->first; k < loc->first + loc->n; k++) {
                const pp_id *f = find_id(t.functions, t.nfunctions, t.line_fns[k]);
                if (!f) {
                    st = bad(L, "a pprof line names a function that is not in the file");
                    break;
                }
                uint32_t fn = fn_of[f - t.functions];
                if (!grow_array((void **)&L->flat, &L->cap_flat, L->nflat + 1, sizeof(*L->flat), 64,
                                SIZE_MAX)) {
                    st = oom(L);
                    break;
                }
                L->flat[L->nflat++] = fn;
                if (leaf)
                    r->functions[fn].self_s += w;
                leaf = false;
                if (L->seen[fn] != serial) {
                    L->seen[fn] = serial;
                    r->functions[fn].total_s += w;
                }
            }
        }
        if (st != APROF_OK)
            break;
        for (size_t a = 0, b = L->nflat; a + 1 < b; a++, b--) { /* outermost first */
            uint32_t x = L->flat[a];
            L->flat[a] = L->flat[b - 1];
            L->flat[b - 1] = x;
        }
        recording_tree_add(r, L->flat, L->nflat, w);
        r->total_s += w;
        r->nsamples++;
    }
    if (st == APROF_OK && bad_wire)
        st = bad(L, "not a pprof profile (malformed protocol buffer)");
    if (st == APROF_OK)
        r->has_profile = true;
    free(locs);
    free(vals);
    free(fn_of);
    pprof_tables_free(&t);
    return st;
}

/* Double a whole-file buffer, up to MAX_FILE_BYTES; false (buffer unchanged) beyond that or
 * when out of memory. */
static bool double_buffer(void **buf, size_t *cap)
{
    void *b = *cap < MAX_FILE_BYTES ? realloc(*buf, *cap * 2) : NULL;
    if (!b)
        return false;
    *buf = b;
    *cap *= 2;
    return true;
}

/* The gzip stream's contents (pprof files are gzipped); NULL when it is not valid gzip. */
static uint8_t *gunzip(const uint8_t *data, size_t len, size_t *out_len, bool *nomem)
{
    *nomem = false;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        *nomem = true;
        return NULL;
    }
    size_t cap = len * 4 + 4096, n = 0;
    uint8_t *out = malloc(cap);
    int rc = Z_OK;
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)(len < UINT32_MAX ? len : UINT32_MAX);
    while (out && rc == Z_OK) {
        if (n == cap && !double_buffer((void **)&out, &cap)) {
            free(out);
            out = NULL;
            *nomem = true;
            break;
        }
        zs.next_out = out + n;
        zs.avail_out = (uInt)(cap - n < UINT32_MAX ? cap - n : UINT32_MAX);
        rc = inflate(&zs, Z_NO_FLUSH);
        n = (size_t)(zs.next_out - out);
    }
    inflateEnd(&zs);
    if (!out && !*nomem)
        *nomem = true;
    if (out && rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    *out_len = n;
    return out;
}

/* ---- the file ---------------------------------------------------------------------------- */

static char *read_all(const char *path, size_t *len, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap && !double_buffer((void **)&buf, &cap)) {
            free(buf);
            buf = NULL;
            break;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    *err = buf && ferror(f) ? EIO : buf ? 0 : ENOMEM;
    fclose(f);
    if (*err) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

aprof_status recording_add_file(recording *r, const char *path, aprof_error *err)
{
    int e;
    size_t len = 0;
    char *text = read_all(path, &len, &e);
    if (!text)
        return aprof_error_set(err, e == ENOMEM ? APROF_E_INTERNAL : APROF_E_BAD_INPUT,
                               "cannot read %s: %s", path, strerror(e));
    if (!r->path)
        r->path = strdup(path);
    loader L = {.r = r, .path = path, .err = err};
    json_pull_init(&L.j, text, len);
    const uint8_t *bytes = (const uint8_t *)text;
    bool gz = len >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
    size_t first = 0;
    while (first < len && (text[first] == ' ' || text[first] == '\n' || text[first] == '\t' ||
                           text[first] == '\r'))
        first++;
    if (gz || (len && first < len && text[first] != '{' && text[first] != '[')) {
        /* not JSON: a pprof profile, gzipped as aprof writes it, or raw */
        aprof_status st = hmap_init(&L.fn_index, 1024) == 0 ? APROF_OK : oom(&L);
        for (size_t i = 0; st == APROF_OK && i < r->nfunctions; i++)
            if (hmap_insert(&L.fn_index, fn_hash(r->functions[i].name, r->functions[i].file),
                            (uint32_t)i) != 0)
                st = oom(&L);
        L.cap_functions = r->nfunctions;
        size_t plen = len;
        uint8_t *plain = NULL;
        if (st == APROF_OK && gz) {
            bool nomem;
            plain = gunzip(bytes, len, &plen, &nomem);
            if (!plain)
                st = nomem ? oom(&L) : bad(&L, "a gzip file that does not decompress");
        }
        if (st == APROF_OK)
            st = read_pprof(&L, plain ? plain : bytes, plen);
        free(plain);
        hmap_free(&L.fn_index);
        free(L.seen);
        free(L.flat); /* each sample's stack, for the tree */
        json_pull_free(&L.j);
        free(text);
        return st;
    }
    aprof_status st = hmap_init(&L.fn_index, 1024) == 0 ? APROF_OK : oom(&L);
    for (size_t i = 0; st == APROF_OK && i < r->nfunctions; i++)
        if (hmap_insert(&L.fn_index, fn_hash(r->functions[i].name, r->functions[i].file),
                        (uint32_t)i) != 0)
            st = oom(&L);
    L.cap_functions = r->nfunctions;
    bool profile = false, summary = false;
    if (st == APROF_OK && json_next(&L.j) != JT_BEGIN_OBJECT)
        st = bad(&L, "not an aprof speedscope or summary file (not a JSON object)");
    jtok t = JT_KEY;
    while (st == APROF_OK && (t = json_next(&L.j)) == JT_KEY) {
        const char *key = L.j.str;
        if (strcmp(key, "shared") == 0) {
            st = read_shared(&L);
            profile = true;
        } else if (strcmp(key, "profiles") == 0) {
            st = read_profiles(&L);
            profile = true;
        } else if (strcmp(key, "stalls") == 0) {
            st = read_stalls(&L);
            summary = true;
        } else if (strcmp(key, "stall_culprits") == 0) {
            st = read_culprits(&L);
        } else if (strcmp(key, "loops") == 0) {
            st = read_loops(&L);
        } else if (strcmp(key, "stall_threshold_s") == 0) {
            summary = true;
            st = skip_value(&L);
        } else if (strcmp(key, "duration_s") == 0) {
            st = number_or_skip(&L, &r->duration_s);
        } else {
            st = skip_value(&L);
        }
    }
    if (st == APROF_OK && t != JT_END_OBJECT)
        st = bad(&L, "malformed JSON object");
    if (st == APROF_OK && json_next(&L.j) != JT_EOF)
        st = bad(&L, "text after the JSON object");
    if (st == APROF_OK && !profile && !summary)
        st = bad(&L, "neither a speedscope file nor a --summary file of aprof");
    if (st == APROF_OK && profile && !r->has_profile)
        st = bad(&L, "a speedscope file without \"profiles\"");
    if (summary)
        r->has_summary = true;
    json_pull_free(&L.j);
    hmap_free(&L.fn_index);
    free(L.frame_fn);
    free(L.flat);
    free(L.starts);
    free(L.seen);
    free(text);
    return st;
}

